-- Every page fast with nothing cached, at a million films (plans measured with EXPLAIN (ANALYZE,
-- BUFFERS) on 1,000,000 seeded films; times are cold server, warm database, before → after).

-- How many films each list holds, without counting them: one row per (genre, decade, MPAA rating)
-- cell ('' for none; the decade as the first three digits of the year, '199'), kept by the
-- triggers below. A list's size is the sum of its cells (at most ~1,100 rows), instead of a
-- `count(*) over ()` that fetched every match: /movies?genre=comedy&sort=rating 6.9 s → see
-- benches/RESULTS-cold.md.
create table list_counts (
    genre       text collate "C" not null,
    decade      text collate "C" not null,
    mpaa_rating text collate "C" not null,
    n           bigint not null,
    primary key (genre, decade, mpaa_rating)
);
insert into list_counts (genre, decade, mpaa_rating, n)
    select coalesce(genre, ''), substr(release_date, 1, 3), coalesce(mpaa_rating, ''), count(*)
    from movies group by 1, 2, 3;

-- Anchors kept by writes: for each sort, how many films have each sort key, in buckets (a month of
-- release; an IMDB rating; votes and gross by their first two digits; -1 for films without the
-- value, which come last). A deep page of an unfiltered list finds its bucket by adding counts
-- (≤ ~1,100 rows) and walks at most one bucket of its sort's index, instead of the full
-- row_number() scan the anchors were built from (first deep listing page 2.4 s → see RESULTS-cold).
create table sort_buckets (
    sort    text collate "C" not null,
    bucket  double precision not null,
    n       bigint not null,
    primary key (sort, bucket)
);

-- votes and gross: the value with all but its first two digits zeroed (123456 → 120000)
create function two_digit_bucket(v bigint) returns double precision immutable language sql as $$
    select case when v is null then -1
        else (v - v % ('1' || repeat('0', greatest(length(v::text) - 2, 0)))::bigint)::double precision end
$$;

create function sort_keys(release_date text, imdb_rating double precision, imdb_votes bigint, worldwide_gross bigint)
    returns table (sort text, bucket double precision) immutable language sql as $$
    values ('newest', (substr(release_date, 1, 4) || substr(release_date, 6, 2))::double precision),
           ('rating', coalesce(imdb_rating, -1)),
           ('votes', two_digit_bucket(imdb_votes)),
           ('gross', two_digit_bucket(worldwide_gross))
$$;

insert into sort_buckets (sort, bucket, n)
    select k.sort, k.bucket, count(*) from movies m
    cross join lateral sort_keys(m.release_date, m.imdb_rating, m.imdb_votes, m.worldwide_gross) k
    group by 1, 2;

-- One statement-level trigger per kind of write: the rows a statement removed count -1, those it
-- added +1, summed per cell and bucket (a seed's 500-row insert is one upsert per cell it touches).
-- Every write takes the catalog row first, so writers reach these rows one at a time.
create function movies_tally() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into list_counts (genre, decade, mpaa_rating, n)
            select coalesce(genre, ''), substr(release_date, 1, 3), coalesce(mpaa_rating, ''), sum(k) from (select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, 1 as k from new_rows) d
            group by 1, 2, 3
            on conflict (genre, decade, mpaa_rating) do update set n = list_counts.n + excluded.n;
        insert into sort_buckets (sort, bucket, n)
            select s.sort, s.bucket, sum(k) from (select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, 1 as k from new_rows) d
            cross join lateral sort_keys(release_date, imdb_rating, imdb_votes, worldwide_gross) s
            group by 1, 2
            on conflict (sort, bucket) do update set n = sort_buckets.n + excluded.n;
    elsif tg_op = 'DELETE' then
        insert into list_counts (genre, decade, mpaa_rating, n)
            select coalesce(genre, ''), substr(release_date, 1, 3), coalesce(mpaa_rating, ''), sum(k) from (select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, -1 as k from old_rows) d
            group by 1, 2, 3
            on conflict (genre, decade, mpaa_rating) do update set n = list_counts.n + excluded.n;
        insert into sort_buckets (sort, bucket, n)
            select s.sort, s.bucket, sum(k) from (select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, -1 as k from old_rows) d
            cross join lateral sort_keys(release_date, imdb_rating, imdb_votes, worldwide_gross) s
            group by 1, 2
            on conflict (sort, bucket) do update set n = sort_buckets.n + excluded.n;
    else
        insert into list_counts (genre, decade, mpaa_rating, n)
            select coalesce(genre, ''), substr(release_date, 1, 3), coalesce(mpaa_rating, ''), sum(k) from (select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, -1 as k from old_rows union all select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, 1 from new_rows) d
            group by 1, 2, 3
            on conflict (genre, decade, mpaa_rating) do update set n = list_counts.n + excluded.n;
        insert into sort_buckets (sort, bucket, n)
            select s.sort, s.bucket, sum(k) from (select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, -1 as k from old_rows union all select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, 1 from new_rows) d
            cross join lateral sort_keys(release_date, imdb_rating, imdb_votes, worldwide_gross) s
            group by 1, 2
            on conflict (sort, bucket) do update set n = sort_buckets.n + excluded.n;
    end if;
    return null;
end $$;
create trigger movies_tally_insert after insert on movies
    referencing new table as new_rows for each statement execute function movies_tally();
create trigger movies_tally_delete after delete on movies
    referencing old table as old_rows for each statement execute function movies_tally();
create trigger movies_tally_update after update on movies
    referencing old table as old_rows new table as new_rows for each statement execute function movies_tally();

-- Lists by one filter and a sort, the filter leading: a page walks only the list's own entries,
-- and the other filters and the key are read from the index (INCLUDE) so that a deep page is an
-- index-only walk (two-step read: the page's slugs first, then their 24 rows).
--   /movies?genre=horror&sort=gross&page=7 0.57 s → see RESULTS-cold.md
create index movies_by_genre_rating on movies (genre, imdb_rating desc nulls last, slug) include (release_date, mpaa_rating);
create index movies_by_genre_votes on movies (genre, imdb_votes desc nulls last, slug) include (release_date, mpaa_rating);
create index movies_by_genre_gross on movies (genre, worldwide_gross desc nulls last, slug) include (release_date, mpaa_rating);
create index movies_by_genre_newest on movies (genre, release_date desc, slug) include (mpaa_rating);
drop index movies_by_genre;
create index movies_by_mpaa_rating on movies (mpaa_rating, imdb_rating desc nulls last, slug) include (release_date, genre);
create index movies_by_mpaa_votes on movies (mpaa_rating, imdb_votes desc nulls last, slug) include (release_date, genre);
create index movies_by_mpaa_gross on movies (mpaa_rating, worldwide_gross desc nulls last, slug) include (release_date, genre);
create index movies_by_mpaa_newest on movies (mpaa_rating, release_date desc, slug) include (genre);
-- a decade with another sort: the decade is the first three digits of the year, as list_counts has it
-- (with release_date itself in the index too: without it PostgreSQL cannot walk the index alone,
-- and a deep page sorted every film of the decade: decade=1990&sort=votes&page=2000 0.58 s of SQL)
create index movies_by_decade_rating on movies (substr(release_date, 1, 3), imdb_rating desc nulls last, slug) include (release_date, genre, mpaa_rating);
create index movies_by_decade_votes on movies (substr(release_date, 1, 3), imdb_votes desc nulls last, slug) include (release_date, genre, mpaa_rating);
create index movies_by_decade_gross on movies (substr(release_date, 1, 3), worldwide_gross desc nulls last, slug) include (release_date, genre, mpaa_rating);
