-- Every page fast with nothing cached, at a million films (plans measured with EXPLAIN QUERY PLAN
-- and `.timer on` on 1,000,000 seeded films; times in benches/RESULTS-cold.md).

-- How many films each list holds, without counting them: one row per (genre, decade, MPAA rating)
-- cell ('' for none; the decade as the first three digits of the year, '199'), kept by the
-- triggers below. A list's size is the sum of its cells (at most ~1,100 rows) instead of a
-- `count(*) over ()` that read every match.
create table list_counts (
    genre       text not null,
    decade      text not null,
    mpaa_rating text not null,
    n           integer not null,
    primary key (genre, decade, mpaa_rating)
) without rowid;
insert into list_counts (genre, decade, mpaa_rating, n)
    select coalesce(genre, ''), substr(release_date, 1, 3), coalesce(mpaa_rating, ''), count(*)
    from movies group by 1, 2, 3;

-- Anchors kept by writes: for each sort, how many films have each sort key, in buckets (a month of
-- release; an IMDB rating; votes and gross by their first two digits; -1 for films without the
-- value, which come last). A deep page of an unfiltered list finds its bucket by adding counts
-- (≤ ~1,100 rows) and walks at most one bucket of its sort's index, instead of the full
-- row_number() scan the anchors were built from.
create table sort_buckets (
    sort    text not null,
    bucket  real not null,
    n       integer not null,
    primary key (sort, bucket)
) without rowid;
insert into sort_buckets (sort, bucket, n) select 'newest', cast(substr(m.release_date, 1, 4) || substr(m.release_date, 6, 2) as integer), count(*) from movies m group by 2;
insert into sort_buckets (sort, bucket, n) select 'rating', coalesce(m.imdb_rating, -1), count(*) from movies m group by 2;
insert into sort_buckets (sort, bucket, n) select 'votes', case when m.imdb_votes is null then -1 else m.imdb_votes - m.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(m.imdb_votes) - 2, 0)) as integer) end, count(*) from movies m group by 2;
insert into sort_buckets (sort, bucket, n) select 'gross', case when m.worldwide_gross is null then -1 else m.worldwide_gross - m.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(m.worldwide_gross) - 2, 0)) as integer) end, count(*) from movies m group by 2;

-- The rows a write removes count -1, those it adds +1.
create trigger movies_tally_insert after insert on movies begin
    insert into list_counts (genre, decade, mpaa_rating, n) values (coalesce(new.genre, ''), substr(new.release_date, 1, 3), coalesce(new.mpaa_rating, ''), 1)
        on conflict (genre, decade, mpaa_rating) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('newest', cast(substr(new.release_date, 1, 4) || substr(new.release_date, 6, 2) as integer), 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('rating', coalesce(new.imdb_rating, -1), 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('votes', case when new.imdb_votes is null then -1 else new.imdb_votes - new.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) end, 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('gross', case when new.worldwide_gross is null then -1 else new.worldwide_gross - new.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(new.worldwide_gross) - 2, 0)) as integer) end, 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
end;
create trigger movies_tally_delete after delete on movies begin
    insert into list_counts (genre, decade, mpaa_rating, n) values (coalesce(old.genre, ''), substr(old.release_date, 1, 3), coalesce(old.mpaa_rating, ''), -1)
        on conflict (genre, decade, mpaa_rating) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('newest', cast(substr(old.release_date, 1, 4) || substr(old.release_date, 6, 2) as integer), -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('rating', coalesce(old.imdb_rating, -1), -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('votes', case when old.imdb_votes is null then -1 else old.imdb_votes - old.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) end, -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('gross', case when old.worldwide_gross is null then -1 else old.worldwide_gross - old.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(old.worldwide_gross) - 2, 0)) as integer) end, -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
end;
create trigger movies_tally_update after update of genre, release_date, mpaa_rating, imdb_rating, imdb_votes,
    worldwide_gross on movies begin
    insert into list_counts (genre, decade, mpaa_rating, n) values (coalesce(old.genre, ''), substr(old.release_date, 1, 3), coalesce(old.mpaa_rating, ''), -1)
        on conflict (genre, decade, mpaa_rating) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('newest', cast(substr(old.release_date, 1, 4) || substr(old.release_date, 6, 2) as integer), -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('rating', coalesce(old.imdb_rating, -1), -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('votes', case when old.imdb_votes is null then -1 else old.imdb_votes - old.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) end, -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('gross', case when old.worldwide_gross is null then -1 else old.worldwide_gross - old.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(old.worldwide_gross) - 2, 0)) as integer) end, -1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into list_counts (genre, decade, mpaa_rating, n) values (coalesce(new.genre, ''), substr(new.release_date, 1, 3), coalesce(new.mpaa_rating, ''), 1)
        on conflict (genre, decade, mpaa_rating) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('newest', cast(substr(new.release_date, 1, 4) || substr(new.release_date, 6, 2) as integer), 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('rating', coalesce(new.imdb_rating, -1), 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('votes', case when new.imdb_votes is null then -1 else new.imdb_votes - new.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) end, 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
    insert into sort_buckets (sort, bucket, n) values ('gross', case when new.worldwide_gross is null then -1 else new.worldwide_gross - new.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(new.worldwide_gross) - 2, 0)) as integer) end, 1)
        on conflict (sort, bucket) do update set n = n + excluded.n;
end;

-- Lists by one filter and a sort, the filter leading: a page walks only the list's own entries,
-- and the other filters are read from the index, so that a deep page walks the index alone
-- (two-step read: the page's slugs first, then their rows).
create index movies_by_genre_rating on movies (genre, imdb_rating desc, slug, release_date, mpaa_rating);
create index movies_by_genre_votes on movies (genre, imdb_votes desc, slug, release_date, mpaa_rating);
create index movies_by_genre_gross on movies (genre, worldwide_gross desc, slug, release_date, mpaa_rating);
create index movies_by_genre_newest on movies (genre, release_date desc, slug, mpaa_rating);
drop index movies_by_genre;
create index movies_by_mpaa_rating on movies (mpaa_rating, imdb_rating desc, slug, release_date, genre);
create index movies_by_mpaa_votes on movies (mpaa_rating, imdb_votes desc, slug, release_date, genre);
create index movies_by_mpaa_gross on movies (mpaa_rating, worldwide_gross desc, slug, release_date, genre);
create index movies_by_mpaa_newest on movies (mpaa_rating, release_date desc, slug, genre);
-- a decade with another sort: the decade is the first three digits of the year, as list_counts has it
-- (release_date itself in the index too, so that the walk reads no row)
create index movies_by_decade_rating on movies (substr(release_date, 1, 3), imdb_rating desc, slug, release_date, genre, mpaa_rating);
create index movies_by_decade_votes on movies (substr(release_date, 1, 3), imdb_votes desc, slug, release_date, genre, mpaa_rating);
create index movies_by_decade_gross on movies (substr(release_date, 1, 3), worldwide_gross desc, slug, release_date, genre, mpaa_rating);
