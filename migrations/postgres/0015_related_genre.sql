-- The films of a film's genre from its decade, most voted first (a film page's second row of
-- related films), from one index whatever the two are, so that its plan may be kept (see
-- `Plans` in src/db/mod.rs: at 1,000,000 films, planning the related films' query each run took
-- 0.6 ms, three times its run). Without it the best index depends on the values: the plan made
-- without them walked movies_by_genre_votes (0007) and tested each entry's decade, which for a
-- decade with no Drama read all 172,830 Drama films (333 ms). Here the genre and the decade lead
-- the key for every pair (0.1-0.4 ms cold, `EXPLAIN (ANALYZE, BUFFERS)` of the kept plan), and
-- release_date is included: PostgreSQL reads an expression index alone only when it holds the
-- columns the expression is made of (without it, the plan kept the walk above).
create index movies_related_genre on movies (genre, substr(release_date, 1, 3), imdb_votes desc nulls last, slug)
    include (release_date);
analyze movies;
