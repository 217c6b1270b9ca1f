-- A film's page shows more of its genre from its decade, most voted first. That relation had no
-- index of its own: it walked movies_by_genre_votes (every film of the genre, most voted first)
-- until six were from the decade, ~1 film in 9 (PostgreSQL), or read the genre's films of the
-- decade by date and sorted them all (SQLite: ~20,000 films of Drama from the 1950s, 100 ms).
-- Led by the genre and the decade as list_counts names it, this index holds the relation in its
-- order: the six films are its first six entries.
create index movies_related_genre on movies (genre, substr(release_date, 1, 3), imdb_votes desc nulls last, slug);
-- the planner's figures for the indexed expression
analyze movies;
