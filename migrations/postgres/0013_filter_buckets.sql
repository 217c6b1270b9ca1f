-- Deep pages of a list narrowed by one filter, without a crawl. Such a page walked the filter's
-- index from the top (or, past the middle, from the end) with OFFSET: the middle page of the
-- films rated R (~167,000 at 1M films) read ~84,000 index entries (150-250 ms cold; see
-- benches/RESULTS-cold.md). As sort_buckets (0007) does for every film, this table counts, for
-- each filter's value and each sort, the films in each bucket of the sort's key; a deep page adds
-- a list's counts (≤ ~1,300 rows, kept in memory per catalog version) to find the bucket its first
-- film is in, and walks the filter's index (0007) from that bucket's top: at most one bucket.
-- `filter` is genre, decade (its value the first three digits of the year, as list_counts has
-- it) or rating (the MPAA rating); a film without the genre or the rating is in no such list.
create table filter_buckets (
    filter  text collate "C" not null,
    value   text collate "C" not null,
    sort    text collate "C" not null,
    bucket  double precision not null,
    n       bigint not null,
    primary key (filter, value, sort, bucket)
);

create function filter_keys(genre text, release_date text, mpaa_rating text)
    returns table (filter text, value text) immutable language sql as $$
    select f, v from (values ('genre', genre), ('decade', substr(release_date, 1, 3)), ('rating', mpaa_rating)) x (f, v)
    where v is not null
$$;

insert into filter_buckets (filter, value, sort, bucket, n)
    select f.filter, f.value, k.sort, k.bucket, count(*) from movies m
    cross join lateral filter_keys(m.genre, m.release_date, m.mpaa_rating) f
    cross join lateral sort_keys(m.release_date, m.imdb_rating, m.imdb_votes, m.worldwide_gross) k
    group by 1, 2, 3, 4 order by 1, 2, 3, 4;

-- Per statement, as 0007's counts: the rows it removed count -1, those it added +1.
create function filter_buckets_tally() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into filter_buckets (filter, value, sort, bucket, n)
            select f.filter, f.value, k.sort, k.bucket, count(*) from new_rows d
            cross join lateral filter_keys(d.genre, d.release_date, d.mpaa_rating) f
            cross join lateral sort_keys(d.release_date, d.imdb_rating, d.imdb_votes, d.worldwide_gross) k
            group by 1, 2, 3, 4
            on conflict (filter, value, sort, bucket) do update set n = filter_buckets.n + excluded.n;
    elsif tg_op = 'DELETE' then
        update filter_buckets b set n = b.n - d.n from
            (select f.filter, f.value, k.sort, k.bucket, count(*) as n from old_rows o
             cross join lateral filter_keys(o.genre, o.release_date, o.mpaa_rating) f
             cross join lateral sort_keys(o.release_date, o.imdb_rating, o.imdb_votes, o.worldwide_gross) k
             group by 1, 2, 3, 4) d
            where b.filter = d.filter and b.value = d.value and b.sort = d.sort and b.bucket = d.bucket;
    else
        insert into filter_buckets (filter, value, sort, bucket, n)
            select f.filter, f.value, k.sort, k.bucket, sum(d.k) from (
                select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, -1 as k from old_rows
                union all
                select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, 1 from new_rows
            ) d
            cross join lateral filter_keys(d.genre, d.release_date, d.mpaa_rating) f
            cross join lateral sort_keys(d.release_date, d.imdb_rating, d.imdb_votes, d.worldwide_gross) k
            group by 1, 2, 3, 4 having sum(d.k) <> 0
            on conflict (filter, value, sort, bucket) do update set n = filter_buckets.n + excluded.n;
    end if;
    return null;
end $$;
create trigger filter_buckets_insert after insert on movies
    referencing new table as new_rows for each statement execute function filter_buckets_tally();
create trigger filter_buckets_delete after delete on movies
    referencing old table as old_rows for each statement execute function filter_buckets_tally();
create trigger filter_buckets_update after update on movies
    referencing old table as old_rows new table as new_rows for each statement execute function filter_buckets_tally();
analyze filter_buckets;
