-- Deep pages of a list of two or three filters, without a crawl. Such a list is a few cells of
-- list_counts (0007), walked cell by cell (0011): its middle page read half the list's entries
-- (the 1970s rated PG, ~48,000 films at 1M: 50-70 ms cold; see benches/RESULTS-cold.md). As
-- filter_buckets (0013) does for one filter, this table counts each cell's films per bucket of
-- each sort; a deep page adds the counts of the list's cells per bucket (a few thousand rows at
-- most, kept in memory per catalog version), finds the bucket its first film is in, and walks
-- each cell from that bucket's top: at most one bucket of each cell.
create table cell_buckets (
    genre       text collate "C" not null,
    decade      text collate "C" not null,
    mpaa_rating text collate "C" not null,
    sort        text collate "C" not null,
    bucket      double precision not null,
    n           bigint not null,
    -- a list's rows together: a decade and a rating (and a genre) by this key, a genre and a
    -- decade or a rating by the index below (without them the rows of one list were a scan of
    -- the table's 450,000 at 1M films: 40 ms)
    primary key (sort, decade, mpaa_rating, genre, bucket)
);
create index cell_buckets_by_genre on cell_buckets (sort, genre, decade, mpaa_rating) include (bucket, n);

insert into cell_buckets (genre, decade, mpaa_rating, sort, bucket, n)
    select coalesce(m.genre, ''), substr(m.release_date, 1, 3), coalesce(m.mpaa_rating, ''), k.sort, k.bucket, count(*)
    from movies m cross join lateral sort_keys(m.release_date, m.imdb_rating, m.imdb_votes, m.worldwide_gross) k
    group by 1, 2, 3, 4, 5 order by 4, 2, 3, 1, 5;

-- Per statement, as 0007's counts: the rows it removed count -1, those it added +1.
create function cell_buckets_tally() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into cell_buckets (genre, decade, mpaa_rating, sort, bucket, n)
            select coalesce(d.genre, ''), substr(d.release_date, 1, 3), coalesce(d.mpaa_rating, ''), k.sort, k.bucket, count(*)
            from new_rows d cross join lateral sort_keys(d.release_date, d.imdb_rating, d.imdb_votes, d.worldwide_gross) k
            group by 1, 2, 3, 4, 5
            on conflict (sort, decade, mpaa_rating, genre, bucket) do update set n = cell_buckets.n + excluded.n;
    elsif tg_op = 'DELETE' then
        update cell_buckets b set n = b.n - d.n from
            (select coalesce(o.genre, '') as genre, substr(o.release_date, 1, 3) as decade,
                    coalesce(o.mpaa_rating, '') as mpaa_rating, k.sort, k.bucket, count(*) as n
             from old_rows o cross join lateral sort_keys(o.release_date, o.imdb_rating, o.imdb_votes, o.worldwide_gross) k
             group by 1, 2, 3, 4, 5) d
            where b.genre = d.genre and b.decade = d.decade and b.mpaa_rating = d.mpaa_rating
              and b.sort = d.sort and b.bucket = d.bucket;
    else
        insert into cell_buckets (genre, decade, mpaa_rating, sort, bucket, n)
            select coalesce(d.genre, ''), substr(d.release_date, 1, 3), coalesce(d.mpaa_rating, ''), k.sort, k.bucket, sum(d.k) from (
                select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, -1 as k from old_rows
                union all
                select genre, release_date, mpaa_rating, imdb_rating, imdb_votes, worldwide_gross, 1 from new_rows
            ) d cross join lateral sort_keys(d.release_date, d.imdb_rating, d.imdb_votes, d.worldwide_gross) k
            group by 1, 2, 3, 4, 5 having sum(d.k) <> 0
            on conflict (sort, decade, mpaa_rating, genre, bucket) do update set n = cell_buckets.n + excluded.n;
    end if;
    return null;
end $$;
create trigger cell_buckets_insert after insert on movies
    referencing new table as new_rows for each statement execute function cell_buckets_tally();
create trigger cell_buckets_delete after delete on movies
    referencing old table as old_rows for each statement execute function cell_buckets_tally();
create trigger cell_buckets_update after update on movies
    referencing old table as old_rows new table as new_rows for each statement execute function cell_buckets_tally();
analyze cell_buckets;
