-- A film's page shows more of its genre from its decade, most voted first. That relation had no
-- index of its own: SQLite read the genre's films of the decade by date (movies_by_genre_newest)
-- and sorted them all (~20,000 films of Drama from the 1950s, 100 ms). Led by the genre and the
-- decade as list_counts names it, this index holds the relation in its order: the six films are
-- its first six entries.
create index movies_related_genre on movies (genre, substr(release_date, 1, 3), imdb_votes desc, slug);
-- The planner's figures for the new index (without them SQLite takes it for any list led by a
-- genre, and sorts the genre's films: genre=drama&rating=r&sort=rating, 5 s).
analyze movies;
