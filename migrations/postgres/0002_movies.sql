-- One word for the thing in code: the table and the count say "movie", as the routes and keys do.
alter table films rename to movies;
alter index films_listing rename to movies_listing;
alter table catalog rename column film_count to movie_count;
