-- Search: the title folded to lower-case ASCII words (written by the application with every title:
-- `movies::search_text`), indexed by FTS5 as the movies table's external content. Triggers keep
-- the index in step with every insert, update and delete, whoever writes. (The index follows the
-- table's rowid: after a VACUUM, rebuild it with insert into movies_search(movies_search) values('rebuild').)
alter table movies add column search_title text not null default '';
create virtual table movies_search using fts5(
    search_title, content = 'movies', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2'
);
create trigger movies_search_insert after insert on movies begin
    insert into movies_search (rowid, search_title) values (new.rowid, new.search_title);
end;
create trigger movies_search_delete after delete on movies begin
    insert into movies_search (movies_search, rowid, search_title) values ('delete', old.rowid, old.search_title);
end;
create trigger movies_search_update after update of search_title on movies begin
    insert into movies_search (movies_search, rowid, search_title) values ('delete', old.rowid, old.search_title);
    insert into movies_search (rowid, search_title) values (new.rowid, new.search_title);
end;
-- an exact title first
create index movies_by_search_title on movies (search_title);
