-- How many films each search word finds, without finding them: for every prefix of every word of
-- a folded title (`search_title`), the number of films with a word starting with it, kept by the
-- triggers below. A one-word search's size is one row, instead of counting the index's matches
-- (`the`: ~600,000 films; the count alone took more than the 50 ms a page may take).
create table search_prefixes (
    prefix  text primary key not null,
    n       integer not null
) without rowid;

-- The distinct prefixes of a title's distinct words: its words from a JSON array, each cut at
-- 1..100 characters (titles are at most that long).
insert into search_prefixes (prefix, n)
    select p, count(*) from (
        select distinct m.rowid as film, substr(w.value, 1, k.value) as p
        from movies m, json_each('["' || replace(m.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value)
    ) group by p;

create trigger search_prefixes_insert after insert on movies begin
    insert into search_prefixes (prefix, n)
        select distinct substr(w.value, 1, k.value), 1
        from json_each('["' || replace(new.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value)
        on conflict (prefix) do update set n = n + 1;
end;
create trigger search_prefixes_delete after delete on movies begin
    update search_prefixes set n = n - 1 where prefix in (
        select substr(w.value, 1, k.value)
        from json_each('["' || replace(old.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value));
end;
create trigger search_prefixes_update after update of search_title on movies
    when old.search_title is not new.search_title begin
    update search_prefixes set n = n - 1 where prefix in (
        select substr(w.value, 1, k.value)
        from json_each('["' || replace(old.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value));
    insert into search_prefixes (prefix, n)
        select distinct substr(w.value, 1, k.value), 1
        from json_each('["' || replace(new.search_title, ' ', '","') || '"]') w, json_each('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]') k
        where w.value <> '' and k.value <= length(w.value)
        on conflict (prefix) do update set n = n + 1;
end;
