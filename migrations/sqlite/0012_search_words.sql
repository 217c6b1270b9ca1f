-- Searches of several words, counted and ranked from one index, as PostgreSQL's 0012 does. Such a
-- search found the films with the rarest word in the index of words (0005) and tested their
-- titles for the others; each candidate was a row of movies read from the table, a page of its
-- own: `the crimson` read 15,419 of them at 1M films (41–47 ms with the file in the OS's cache,
-- 56 ms cold in benches/RESULTS-cold.md, any page: the count and the order need them all).
-- Here each word of each folded title is a row, in this table's own order by word, votes and
-- slug, holding the film's folded title: a word's films (and every word it begins) are one range
-- of it, read in order and tested there for the other words; no row of movies is read until the
-- page's own (times: see benches/RESULTS-cold.md). One-word searches keep their walks (0010):
-- they need no test.
create table search_words (
    word          text not null,
    -- imdb_votes, -1 for a film without votes (they come last)
    votes         integer not null,
    slug          text not null,
    search_title  text not null,
    primary key (word, votes desc, slug)
) without rowid;

-- A folded title's words (lower-case letters and digits, one space between: movies::search_text)
-- as a JSON array, as search_buckets (0010) reads them.
insert into search_words (word, votes, slug, search_title)
    select distinct w.value, coalesce(m.imdb_votes, -1), m.slug, m.search_title
    from movies m, json_each('["' || replace(m.search_title, ' ', '","') || '"]') w
    where w.value <> ''
    order by 1, 2 desc, 3;

create trigger search_words_insert after insert on movies begin
    insert or ignore into search_words (word, votes, slug, search_title)
        select distinct w.value, coalesce(new.imdb_votes, -1), new.slug, new.search_title
        from json_each('["' || replace(new.search_title, ' ', '","') || '"]') w
        where w.value <> '';
end;
create trigger search_words_delete after delete on movies begin
    delete from search_words where slug = old.slug and votes = coalesce(old.imdb_votes, -1) and word in
        (select w.value from json_each('["' || replace(old.search_title, ' ', '","') || '"]') w);
end;
create trigger search_words_update after update of search_title, imdb_votes, slug on movies
    when old.search_title is not new.search_title or old.imdb_votes is not new.imdb_votes
        or old.slug is not new.slug begin
    delete from search_words where slug = old.slug and votes = coalesce(old.imdb_votes, -1) and word in
        (select w.value from json_each('["' || replace(old.search_title, ' ', '","') || '"]') w);
    insert or ignore into search_words (word, votes, slug, search_title)
        select distinct w.value, coalesce(new.imdb_votes, -1), new.slug, new.search_title
        from json_each('["' || replace(new.search_title, ' ', '","') || '"]') w
        where w.value <> '';
end;
