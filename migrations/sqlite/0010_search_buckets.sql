-- Deep search pages without a crawl. A one-word search lists its films by IMDB votes (most first,
-- films without votes last), and page 12,371 of `the` (~600,000 films) walked movies_by_votes
-- from the top, testing ~500,000 titles (5.4 s). For every prefix of every word of a folded title,
-- this table counts the films with such a word in each bucket of votes, the bucket named by the
-- highest number of votes it holds (all but the first two digits nines: 123456 is in 129999; -1
-- for films without votes, which come last). A deep page adds the counts of its word's buckets
-- (≤ ~450 rows) to find the bucket its first film is in, and walks movies_by_votes from that
-- bucket's top (`imdb_votes <= top`): at most one bucket, whatever the depth.
create table search_buckets (
    prefix  text not null,
    top     integer not null,
    n       integer not null,
    primary key (prefix, top)
) without rowid;

-- The distinct prefixes of a title's distinct words, as 0008 made them.
insert into search_buckets (prefix, top, n)
    select p, top, count(*) from (
        select distinct m.rowid as film, substr(w.value, 1, k.value) as p, case when m.imdb_votes is null then -1 else m.imdb_votes - m.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(m.imdb_votes) - 2, 0)) as integer) + cast('1' || substr('000000000000000000', 1, max(length(m.imdb_votes) - 2, 0)) as integer) - 1 end as top
        from movies m, json_each('["' || replace(m.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value)
    ) group by p, top;

create trigger search_buckets_insert after insert on movies begin
    insert into search_buckets (prefix, top, n)
        select distinct substr(w.value, 1, k.value), case when new.imdb_votes is null then -1 else new.imdb_votes - new.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) + cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) - 1 end, 1
        from json_each('["' || replace(new.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value)
        on conflict (prefix, top) do update set n = n + 1;
end;
create trigger search_buckets_delete after delete on movies begin
    update search_buckets set n = n - 1 where top = case when old.imdb_votes is null then -1 else old.imdb_votes - old.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) + cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) - 1 end and prefix in (
        select substr(w.value, 1, k.value)
        from json_each('["' || replace(old.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value));
end;
create trigger search_buckets_update after update of search_title, imdb_votes on movies
    when old.search_title is not new.search_title or old.imdb_votes is not new.imdb_votes begin
    update search_buckets set n = n - 1 where top = case when old.imdb_votes is null then -1 else old.imdb_votes - old.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) + cast('1' || substr('000000000000000000', 1, max(length(old.imdb_votes) - 2, 0)) as integer) - 1 end and prefix in (
        select substr(w.value, 1, k.value)
        from json_each('["' || replace(old.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value));
    insert into search_buckets (prefix, top, n)
        select distinct substr(w.value, 1, k.value), case when new.imdb_votes is null then -1 else new.imdb_votes - new.imdb_votes % cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) + cast('1' || substr('000000000000000000', 1, max(length(new.imdb_votes) - 2, 0)) as integer) - 1 end, 1
        from json_each('["' || replace(new.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value)
        on conflict (prefix, top) do update set n = n + 1;
end;

-- A word's films are the sum of its buckets: search_buckets replaces search_prefixes (0008), and
-- a write keeps one table of prefixes instead of two (seeding took 75% longer with both).
drop trigger search_prefixes_insert;
drop trigger search_prefixes_delete;
drop trigger search_prefixes_update;
drop table search_prefixes;
