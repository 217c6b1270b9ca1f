-- Lists other than the listing (a genre, a decade, an MPAA rating, another sort) follow their own
-- version: bumped by every write that may change which films a list holds or their order (a date,
-- a genre, a rating, votes, gross, a film created or deleted).
alter table catalog add column list_version bigint not null default 0;
-- the sorts: highest first, films without a value last, ties by slug
create index movies_by_rating on movies (imdb_rating desc nulls last, slug);
create index movies_by_votes on movies (imdb_votes desc nulls last, slug);
create index movies_by_gross on movies (worldwide_gross desc nulls last, slug);
create index movies_by_genre on movies (genre, release_date desc, slug);
