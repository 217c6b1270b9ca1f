-- Searches of several words, counted and ranked from one index. Such a search finds the films
-- with the rarest word in the index of words (0005) and tests their titles for the others; each
-- candidate was a row of movies read from the table, one page of it each: `the crimson` read
-- ~15,600 of them cold (206 ms at 1M films, any page: the count and the order need them all).
-- Here each word of each folded title is a row, in an index by word holding the film's votes,
-- slug and folded title: a word's films (and every word it begins) are one range of that index,
-- walked without reading a table, and tested there for the other words (~190 index pages for
-- `crimson` instead of ~15,600 table pages). EXPLAIN (ANALYZE, BUFFERS) and times: see
-- benches/RESULTS-cold.md. One-word searches keep their walks (0010): they need no test.
create table search_words (
    word          text collate "C" not null,
    -- imdb_votes, -1 for a film without votes (they come last)
    votes         bigint not null,
    slug          text collate "C" not null,
    search_title  text not null
);

create function title_words(search_title text) returns setof text immutable language sql as $$
    select distinct w from regexp_split_to_table(search_title, ' ') w where w <> ''
$$;

insert into search_words (word, votes, slug, search_title)
    select w, coalesce(imdb_votes, -1), slug, search_title
    from movies cross join lateral title_words(search_title) w
    order by 1, 2 desc, 3;
create index search_words_by_word on search_words (word, votes desc, slug) include (search_title);

-- Per statement, as the counts of 0007 and 0010: an update removes the rows of the titles and votes
-- it changed and adds the new ones (an update of other columns changes nothing here).
create function search_words_tally() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into search_words (word, votes, slug, search_title)
            select w, coalesce(imdb_votes, -1), slug, search_title
            from new_rows cross join lateral title_words(search_title) w;
    elsif tg_op = 'DELETE' then
        delete from search_words s using
            (select w, coalesce(imdb_votes, -1) as votes, slug from old_rows cross join lateral title_words(search_title) w) d
            where s.word = d.w and s.votes = d.votes and s.slug = d.slug;
    else
        delete from search_words s using (
            select w, coalesce(imdb_votes, -1) as votes, slug, search_title
                from old_rows cross join lateral title_words(search_title) w
            except
            select w, coalesce(imdb_votes, -1), slug, search_title
                from new_rows cross join lateral title_words(search_title) w
        ) d where s.word = d.w and s.votes = d.votes and s.slug = d.slug;
        insert into search_words (word, votes, slug, search_title)
            select w, coalesce(imdb_votes, -1), slug, search_title
                from new_rows cross join lateral title_words(search_title) w
            except
            select w, coalesce(imdb_votes, -1), slug, search_title
                from old_rows cross join lateral title_words(search_title) w;
    end if;
    return null;
end $$;
create trigger search_words_insert after insert on movies
    referencing new table as new_rows for each statement execute function search_words_tally();
create trigger search_words_delete after delete on movies
    referencing old table as old_rows for each statement execute function search_words_tally();
create trigger search_words_update after update on movies
    referencing old table as old_rows new table as new_rows for each statement execute function search_words_tally();
analyze search_words;
