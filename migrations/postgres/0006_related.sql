-- A film's page shows more by its director, newest first (and more of its genre from its decade,
-- which movies_by_genre serves).
create index movies_by_director on movies (director, release_date desc, slug);
