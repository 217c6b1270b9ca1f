-- Deep pages of a list narrowed by one filter, without a crawl (as PostgreSQL's migration 0013
-- says): for each filter's value and each sort, the films in each bucket of the sort's key, as
-- sort_buckets (0007) counts them for every film. A deep page adds a list's counts to find the
-- bucket its first film is in and walks the filter's index (0007) from that bucket's top. The
-- middle page of the films rated R (~167,000 at 1M films) read ~84,000 index entries with OFFSET.
-- `filter` is genre, decade (the first three digits of the year) or rating (the MPAA rating).
create table filter_buckets (
    filter  text not null,
    value   text not null,
    sort    text not null,
    bucket  real not null,
    n       integer not null,
    primary key (filter, value, sort, bucket)
) without rowid;

insert into filter_buckets (filter, value, sort, bucket, n)
    select 'genre', m.genre, 'newest', cast(substr(m.release_date, 1, 4) || substr(m.release_date, 6, 2) as integer), count(*) from movies m where m.genre is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'genre', m.genre, 'rating', coalesce(m.imdb_rating, -1), count(*) from movies m where m.genre is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'genre', m.genre, 'votes', case when m.imdb_votes is null then -1 else m.imdb_votes - m.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(m.imdb_votes) - 2, 0)) as integer) end, count(*) from movies m where m.genre is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'genre', m.genre, 'gross', case when m.worldwide_gross is null then -1 else m.worldwide_gross - m.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(m.worldwide_gross) - 2, 0)) as integer) end, count(*) from movies m where m.genre is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'decade', substr(m.release_date, 1, 3), 'newest', cast(substr(m.release_date, 1, 4) || substr(m.release_date, 6, 2) as integer), count(*) from movies m where substr(m.release_date, 1, 3) is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'decade', substr(m.release_date, 1, 3), 'rating', coalesce(m.imdb_rating, -1), count(*) from movies m where substr(m.release_date, 1, 3) is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'decade', substr(m.release_date, 1, 3), 'votes', case when m.imdb_votes is null then -1 else m.imdb_votes - m.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(m.imdb_votes) - 2, 0)) as integer) end, count(*) from movies m where substr(m.release_date, 1, 3) is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'decade', substr(m.release_date, 1, 3), 'gross', case when m.worldwide_gross is null then -1 else m.worldwide_gross - m.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(m.worldwide_gross) - 2, 0)) as integer) end, count(*) from movies m where substr(m.release_date, 1, 3) is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'rating', m.mpaa_rating, 'newest', cast(substr(m.release_date, 1, 4) || substr(m.release_date, 6, 2) as integer), count(*) from movies m where m.mpaa_rating is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'rating', m.mpaa_rating, 'rating', coalesce(m.imdb_rating, -1), count(*) from movies m where m.mpaa_rating is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'rating', m.mpaa_rating, 'votes', case when m.imdb_votes is null then -1 else m.imdb_votes - m.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(m.imdb_votes) - 2, 0)) as integer) end, count(*) from movies m where m.mpaa_rating is not null group by 2, 4;
insert into filter_buckets (filter, value, sort, bucket, n)
    select 'rating', m.mpaa_rating, 'gross', case when m.worldwide_gross is null then -1 else m.worldwide_gross - m.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(m.worldwide_gross) - 2, 0)) as integer) end, count(*) from movies m where m.mpaa_rating is not null group by 2, 4;

-- Per row, as 0007's counts: one upsert of the film's twelve (filter, sort) buckets, -1 for the
-- row a write removed, +1 for the row it added.
create trigger filter_buckets_insert after insert on movies begin
    insert into filter_buckets (filter, value, sort, bucket, n)
        select f.filter, f.value, s.sort, s.bucket, 1
        from (select 'genre' as filter, new.genre as value
                  union all select 'decade' as filter, substr(new.release_date, 1, 3) as value
                  union all select 'rating' as filter, new.mpaa_rating as value) f,
            (select 'newest' as sort, cast(substr(new.release_date, 1, 4) || substr(new.release_date, 6, 2) as integer) as bucket
                  union all select 'rating' as sort, coalesce(new.imdb_rating, -1) as bucket
                  union all select 'votes' as sort, case when new.imdb_votes is null then -1 else new.imdb_votes - new.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) end as bucket
                  union all select 'gross' as sort, case when new.worldwide_gross is null then -1 else new.worldwide_gross - new.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(new.worldwide_gross) - 2, 0)) as integer) end as bucket) s
        where f.value is not null
        on conflict (filter, value, sort, bucket) do update set n = n + excluded.n;
end;
create trigger filter_buckets_delete after delete on movies begin
    insert into filter_buckets (filter, value, sort, bucket, n)
        select f.filter, f.value, s.sort, s.bucket, -1
        from (select 'genre' as filter, old.genre as value
                  union all select 'decade' as filter, substr(old.release_date, 1, 3) as value
                  union all select 'rating' as filter, old.mpaa_rating as value) f,
            (select 'newest' as sort, cast(substr(old.release_date, 1, 4) || substr(old.release_date, 6, 2) as integer) as bucket
                  union all select 'rating' as sort, coalesce(old.imdb_rating, -1) as bucket
                  union all select 'votes' as sort, case when old.imdb_votes is null then -1 else old.imdb_votes - old.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) end as bucket
                  union all select 'gross' as sort, case when old.worldwide_gross is null then -1 else old.worldwide_gross - old.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(old.worldwide_gross) - 2, 0)) as integer) end as bucket) s
        where f.value is not null
        on conflict (filter, value, sort, bucket) do update set n = n + excluded.n;
end;
create trigger filter_buckets_update after update of genre, release_date, mpaa_rating, imdb_rating, imdb_votes,
    worldwide_gross on movies begin
    insert into filter_buckets (filter, value, sort, bucket, n)
        select f.filter, f.value, s.sort, s.bucket, -1
        from (select 'genre' as filter, old.genre as value
                  union all select 'decade' as filter, substr(old.release_date, 1, 3) as value
                  union all select 'rating' as filter, old.mpaa_rating as value) f,
            (select 'newest' as sort, cast(substr(old.release_date, 1, 4) || substr(old.release_date, 6, 2) as integer) as bucket
                  union all select 'rating' as sort, coalesce(old.imdb_rating, -1) as bucket
                  union all select 'votes' as sort, case when old.imdb_votes is null then -1 else old.imdb_votes - old.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) end as bucket
                  union all select 'gross' as sort, case when old.worldwide_gross is null then -1 else old.worldwide_gross - old.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(old.worldwide_gross) - 2, 0)) as integer) end as bucket) s
        where f.value is not null
        on conflict (filter, value, sort, bucket) do update set n = n + excluded.n;
    insert into filter_buckets (filter, value, sort, bucket, n)
        select f.filter, f.value, s.sort, s.bucket, 1
        from (select 'genre' as filter, new.genre as value
                  union all select 'decade' as filter, substr(new.release_date, 1, 3) as value
                  union all select 'rating' as filter, new.mpaa_rating as value) f,
            (select 'newest' as sort, cast(substr(new.release_date, 1, 4) || substr(new.release_date, 6, 2) as integer) as bucket
                  union all select 'rating' as sort, coalesce(new.imdb_rating, -1) as bucket
                  union all select 'votes' as sort, case when new.imdb_votes is null then -1 else new.imdb_votes - new.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) end as bucket
                  union all select 'gross' as sort, case when new.worldwide_gross is null then -1 else new.worldwide_gross - new.worldwide_gross % cast('1' || substr('000000000000000000', 1, max(length(new.worldwide_gross) - 2, 0)) as integer) end as bucket) s
        where f.value is not null
        on conflict (filter, value, sort, bucket) do update set n = n + excluded.n;
end;
