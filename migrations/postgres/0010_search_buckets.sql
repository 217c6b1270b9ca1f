-- Deep search pages without a crawl. A one-word search lists its films by IMDB votes (most first,
-- films without votes last), and page 12,371 of `the` (~600,000 films) walked movies_by_votes
-- from the top, testing ~500,000 titles (7.6 s). For every prefix of every word of a folded title,
-- this table counts the films with such a word in each bucket of votes, the bucket named by the
-- highest number of votes it holds (all but the first two digits nines: 123456 is in 129999; -1
-- for films without votes, which come last). A deep page adds the counts of its word's buckets
-- (≤ ~450 rows) to find the bucket its first film is in, and walks movies_by_votes from that
-- bucket's top (`imdb_votes <= top`): at most one bucket, whatever the depth.
create function votes_bucket_top(v bigint) returns bigint immutable language sql as $$
    select case when v is null then -1
        else v - v % p + p - 1 end
    from (select ('1' || repeat('0', greatest(length(v::text) - 2, 0)))::bigint as p) d
$$;

-- A word's rows are read together (its films are their sum), so they are kept in prefix order:
-- written in it here, and put back in it after a seed (`Db::seed`), which writes each prefix's
-- buckets as they first appear, all over the table (a word's ~450 rows on ~380 pages took 2-8 ms
-- to sum; in order 0.2-0.5 ms). A count's update leaves room on its page (HOT) and stays there.
create table search_buckets (
    prefix  text collate "C" not null,
    top     bigint not null,
    n       bigint not null,
    primary key (prefix, top)
) with (fillfactor = 70);

insert into search_buckets (prefix, top, n)
    select p, votes_bucket_top(m.imdb_votes), count(*)
    from movies m cross join lateral search_prefixes_of(m.search_title) p group by 1, 2 order by 1, 2;

-- Per statement: the rows it removed count -1, those it added +1.
create function search_buckets_tally() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into search_buckets (prefix, top, n)
            select p, votes_bucket_top(imdb_votes), count(*)
            from new_rows cross join lateral search_prefixes_of(search_title) p group by 1, 2
            on conflict (prefix, top) do update set n = search_buckets.n + excluded.n;
    elsif tg_op = 'DELETE' then
        update search_buckets s set n = s.n - d.n from
            (select p, votes_bucket_top(imdb_votes) as top, count(*) as n
             from old_rows cross join lateral search_prefixes_of(search_title) p group by 1, 2) d
            where s.prefix = d.p and s.top = d.top;
    else
        insert into search_buckets (prefix, top, n)
            select p, votes_bucket_top(imdb_votes), sum(k) from (
                select search_title, imdb_votes, -1 as k from old_rows
                union all select search_title, imdb_votes, 1 from new_rows
            ) t cross join lateral search_prefixes_of(t.search_title) p group by 1, 2 having sum(k) <> 0
            on conflict (prefix, top) do update set n = search_buckets.n + excluded.n;
    end if;
    return null;
end $$;
create trigger search_buckets_insert after insert on movies
    referencing new table as new_rows for each statement execute function search_buckets_tally();
create trigger search_buckets_delete after delete on movies
    referencing old table as old_rows for each statement execute function search_buckets_tally();
create trigger search_buckets_update after update on movies
    referencing old table as old_rows new table as new_rows for each statement execute function search_buckets_tally();

-- The walk tests each title with `(' ' || search_title) like '% word%'`. Without figures for that
-- expression PostgreSQL took the test to keep 1 title in 7,000 (`paris` keeps 1 in 43), thought
-- the walk would read most of the index, and sorted every film instead (page 489 of `paris`:
-- a parallel scan of 1,000,000 films, 240 ms; with these figures, the walk: 10 ms).
create statistics movies_search_words on ((' ' || search_title)) from movies;
analyze movies;

-- A word's films are the sum of its buckets: search_buckets replaces search_prefixes (0008), and
-- a write keeps one table of prefixes instead of two (seeding SQLite took 75% longer with both).
drop trigger search_prefixes_insert on movies;
drop trigger search_prefixes_delete on movies;
drop trigger search_prefixes_update on movies;
drop function search_prefixes_tally();
drop table search_prefixes;
