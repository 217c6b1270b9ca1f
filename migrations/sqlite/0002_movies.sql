-- One word for the thing in code: the table and the count say "movie", as the routes and keys do.
alter table films rename to movies;
drop index films_listing;
create index movies_listing on movies (release_date desc, slug);
alter table catalog rename column film_count to movie_count;
