-- Lists narrowed by two or three filters, read cell by cell. A list_counts cell is one (genre,
-- decade, MPAA rating), '' for a film without the genre or the rating; a list with two filters is
-- the few cells that share them (≤ 17: every genre of a decade and rating), one with three filters
-- a single cell. Each index below holds the films of each cell in one sort's order, so a page
-- walks each of its cells from the top (or, past the middle, from the end) and merges them
-- (`Db::filtered_page`): it reads the list's own entries, never another list's.
-- Before, the walk of the leading filter's index (migration 0007) tested the others on each
-- entry: a small list read its whole leading filter (~57,000 entries for a genre at 1M films), and
-- a deep page every entry above it in every other cell. Cold at 1M films (EXPLAIN (ANALYZE,
-- BUFFERS), then benches/RESULTS-cold.md):
--   /movies?genre=musical&decade=1950&rating=not-rated&sort=gross          186 ms → see RESULTS-cold
--   /movies?genre=musical&decade=1970&sort=rating&page=130                 131 ms → see RESULTS-cold
-- One filter keeps its own index of 0007 (its list is one walk of entries that are all its own).
-- The cell's names are those of list_counts ("C" collation), so a cell's row meets its index; the
-- columns the cell is made of are in the index too (INCLUDE): PostgreSQL walks an index alone only
-- when it holds every column the query names, and without them each entry read its film's row
-- (musical, 1970s, by rating, page 132: 6,415 pages read, 14 ms for the walks; with them 1.9 ms).
create index movies_cell_newest on movies
    ((coalesce(genre, '') collate "C"), (substr(release_date, 1, 3)), (coalesce(mpaa_rating, '') collate "C"),
     release_date desc, slug) include (genre, mpaa_rating);
create index movies_cell_rating on movies
    ((coalesce(genre, '') collate "C"), (substr(release_date, 1, 3)), (coalesce(mpaa_rating, '') collate "C"),
     imdb_rating desc nulls last, slug) include (genre, release_date, mpaa_rating);
create index movies_cell_votes on movies
    ((coalesce(genre, '') collate "C"), (substr(release_date, 1, 3)), (coalesce(mpaa_rating, '') collate "C"),
     imdb_votes desc nulls last, slug) include (genre, release_date, mpaa_rating);
create index movies_cell_gross on movies
    ((coalesce(genre, '') collate "C"), (substr(release_date, 1, 3)), (coalesce(mpaa_rating, '') collate "C"),
     worldwide_gross desc nulls last, slug) include (genre, release_date, mpaa_rating);
-- The planner's figures for the cells' expressions: without them it took each cell for 3 films
-- and walked another sort's index, sorting its films (a seed's `vacuum (analyze)` makes them too).
analyze movies;
