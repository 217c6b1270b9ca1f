-- Search: the title folded to lower-case ASCII words (written by the application with every title:
-- `movies::search_text`), indexed as words with PostgreSQL's full-text search ('simple': no
-- stemming, no stop words, so every word of a title can be found by its start).
alter table movies add column search_title text not null default '';
create index movies_search on movies using gin (to_tsvector('simple', search_title));
-- an exact title first
create index movies_by_search_title on movies (search_title);
