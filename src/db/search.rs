//! Search by title, over `search_title` (the title folded as `movies::search_text` folds it): one
//! word from the full-text index of each database (SQLite's FTS5, PostgreSQL's text search) or a
//! walk of the films by votes; several words from `search_words` (migration 0012 of each database).

use sqlx::Row;

use super::anchors;
use super::repo::{STAMP, stamp_and_movies};
use super::rows;
use super::{Backend, Db, Result, Stamp};
use crate::movies::{Movie, PageNumber, SearchQuery, Sort, search_text};

impl Db {
    /// Page `page` of the films whose title has, for each word of the query, a word starting with
    /// it; an exact title first, then by IMDB votes (most first), ties by slug. Returns the catalog
    /// stamp the read saw, the number of films found in all, and the page's films.
    pub async fn search(&self, query: &SearchQuery, page: PageNumber, size: u32) -> Result<(Stamp, i64, Vec<Movie>)> {
        if query.is_empty() {
            return Ok((self.stamp().await?, 0, Vec::new()));
        }
        let words = &query.words;
        if let [word] = words.as_slice()
            && page.offset(size) >= anchors::STEP
        {
            return self.deep_search(word, page, size).await;
        }
        let mut binds: Vec<String> = Vec::new();
        let mut param = |v: String| {
            binds.push(v);
            format!("${}", binds.len())
        };
        let phrase = param(query.phrase());
        let k = words.len();
        // one word: its term in the index of words (letters and digits only: nothing in them is
        // the index's syntax, nor LIKE's); several go to search_words instead (below)
        let term = match (k, self.backend) {
            (1, Backend::Sqlite) => param(format!("\"{}\"*", words[0])),
            (1, Backend::Postgres) => param(format!("{}:*", words[0])),
            _ => String::new(),
        };
        let likes: Vec<String> =
            words.iter().map(|w| format!("(' ' || search_title) like {}", param(format!("% {w}%")))).collect();
        let counts: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                format!(
                    "(select cast(coalesce(sum(n), 0) as bigint) from search_buckets where prefix = {}) as n{i}",
                    param(w.clone())
                )
            })
            .collect();
        // each word's range of search_words: the words it begins (several words only: SQLite
        // refuses a value bound to no parameter)
        let ranges: Vec<(String, String)> =
            if k > 1 { words.iter().map(|w| (param(w.clone()), param(past_prefix(w)))).collect() } else { Vec::new() };
        let (limit, offset, reach) = (param(size.to_string()), param(String::new()), param(String::new()));
        // the word fewest films have (the first of equals): the range of search_words walked
        let lead = rarest(k);
        let all_likes = likes.join(" and ");
        let order = |alias: &str| format!("{alias}rank, {alias}imdb_votes desc nulls last, {alias}slug");
        let head = format!(
            "with w as materialized (select {counts}), \
             d as materialized (select w.*, case {lead} end as lead from w), {q}",
            counts = counts.join(", "),
            q = if k == 1 { format!("q as materialized (select {term} as text), ") } else { String::new() },
        );
        // the page is cut from the candidates' own votes; only its films are read whole
        let tail = format!(
            ") u where {offset} < (select total from t) \
              order by u.rank, u.imdb_votes desc nulls last, u.slug limit {limit} offset {offset}) p \
             cross join movies m where m.slug = p.slug) f on 1 = 1 \
             order by {outer}",
            outer = order("f."),
        );
        let select = format!(
            "select {STAMP}, t.total as f_total, {cols} from catalog c cross join t left join \
             (select p.rank, {mcols} from (select u.rank, u.slug, u.imdb_votes from (",
            cols = rows::columns_of("f"),
            mcols = rows::columns_of("m"),
        );
        let sql = if k == 1 {
            // One word: its count is the size. A common one walks movies_by_votes, testing each
            // title, and stops after the page (about reach × films / found titles read); a rare
            // one reads the index of words, then sorts its few films.
            let walk = "(select walk from t)";
            // The walk's guard: PostgreSQL checks a condition of no row once, before the walk; SQLite
            // reads it for every row (of a million, when the walk is not wanted): a LIMIT of 0 there.
            let (walked, walk_limit) = match self.backend {
                Backend::Sqlite => (String::new(), format!("(select case when walk then {reach} else 0 end from t)")),
                Backend::Postgres => (format!("{walk} and "), reach.clone()),
            };
            // SQLite's index of words does its work before a false condition is seen: when the
            // walk answers, it is asked for nothing ("" matches no film)
            let unwalked = match self.backend {
                Backend::Sqlite => {
                    "rowid in (select rowid from movies_search where movies_search match \
                    (select case when t.walk then '\"\"' else q.text end from q, t))"
                }
                Backend::Postgres => {
                    "to_tsvector('simple', search_title) @@ to_tsquery('simple', (select text from q))"
                }
            };
            format!(
                "{head} t as materialized (select n0 as total, \
                   {reach} * (select movie_count from catalog) < n0 * n0 as walk from d) \
                 {select} \
                    select 0 as rank, slug, imdb_votes from movies where search_title = {phrase} and {all_likes} \
                    union all \
                    select 1 as rank, slug, imdb_votes from (select slug, imdb_votes from movies where {walked}{all_likes} \
                      and search_title <> {phrase} order by imdb_votes desc nulls last, slug limit {walk_limit}) o \
                    union all \
                    select 1 as rank, slug, imdb_votes from (select slug, imdb_votes from movies \
                      where not {walk} and {unwalked} \
                      and search_title <> {phrase} order by imdb_votes + 0 desc nulls last, slug limit {reach}) s \
                 {tail}"
            )
        } else {
            // More words: the rarest word's range of search_words (migration 0012), its titles
            // tested there for every word, counted and sorted once: no row of movies is read until
            // the page's own. The range's ends are the lead's, chosen once (each database walks
            // the index from them: EXPLAIN of `the crimson` at 1M films).
            let bound = |end: fn(&(String, String)) -> &String| {
                let arms: String =
                    ranges.iter().enumerate().map(|(i, r)| format!(" when {i} then {}", end(r))).collect();
                format!("(select case lead{arms} end from d)")
            };
            let hits = format!(
                "select distinct slug, nullif(votes, -1) as imdb_votes, search_title from search_words \
                 where word >= {} and word < {} and {all_likes}",
                bound(|r| &r.0),
                bound(|r| &r.1),
            );
            format!(
                "{head} hits as materialized ({hits}), \
                 t as materialized (select count(*) as total from hits) \
                 {select} \
                    select 0 as rank, slug, imdb_votes from hits where search_title = {phrase} \
                    union all \
                    select 1 as rank, slug, imdb_votes from (select slug, imdb_votes from hits \
                      where search_title <> {phrase} \
                      order by imdb_votes desc nulls last, slug limit {reach}) s \
                 {tail}"
            )
        };
        let start = i64::try_from(page.offset(size)).unwrap_or(i64::MAX);
        let mut q = sqlx::query(&sql);
        let numbers = [(limit, i64::from(size)), (offset, start), (reach, start.saturating_add(i64::from(size)))];
        for (i, v) in binds.into_iter().enumerate() {
            let name = format!("${}", i + 1);
            q = match numbers.iter().find(|(p, _)| *p == name) {
                Some((_, n)) => q.bind(*n),
                None => q.bind(v),
            };
        }
        let found = self.fetch_heavy(q).await?;
        let total: Option<i64> = found.first().map(|r| r.try_get("f_total")).transpose()?.flatten();
        let (stamp, movies) = stamp_and_movies(&found)?;
        Ok((stamp, total.unwrap_or(0), movies))
    }

    /// A deep page of a one-word search (see migration 0010). A common word finds the bucket of
    /// votes its page starts in from `search_buckets` and walks movies_by_votes from that bucket's
    /// top, testing titles; a rare one reads the index of words and sorts its few films, as page
    /// 1 does. Films titled exactly the word come first; the buckets count them too, so the walk
    /// skips those among the films before it (the walk itself leaves them out).
    async fn deep_search(&self, word: &str, page: PageNumber, size: u32) -> Result<(Stamp, i64, Vec<Movie>)> {
        // $1 the word (and the exact title), $2 its index query, $3 its LIKE pattern, $4 the page
        // size, $5 the offset
        let like = "(' ' || search_title) like $3";
        // The walk's guard, as on page 1: a condition of no row on PostgreSQL, a LIMIT of 0 on
        // SQLite (which tests a condition on every row), and nothing asked of SQLite's index of
        // words when the walk answers.
        let (walked, rare, limit): (&str, String, fn(&str) -> String) = match self.backend {
            Backend::Postgres => (
                "(select walk from t) and ",
                "not (select walk from t) and to_tsvector('simple', search_title) @@ to_tsquery('simple', $2)"
                    .to_owned(),
                |n: &str| n.to_owned(),
            ),
            Backend::Sqlite => (
                "",
                "rowid in (select rowid from movies_search where movies_search match \
                 (select case when walk then '\"\"' else $2 end from t))"
                    .to_owned(),
                |n: &str| format!("(select case when walk then {n} else 0 end from t)"),
            ),
        };
        let sql = format!(
            "with e as materialized (select count(*) as exact, count(imdb_votes) as exact_valued \
               from movies where search_title = $1), \
             b as materialized (select top, n, cast(sum(n) over (order by top desc) as bigint) as upto \
               from search_buckets where prefix = $1 and n > 0), \
             w as materialized (select cast(coalesce(sum(n), 0) as bigint) as total from b), \
             t as materialized (select w.total, w.total - e.exact as inexact, \
               case when $5 > e.exact then $5 - e.exact else 0 end as at, \
               (select cast(coalesce(sum(n), 0) as bigint) from b where top <> -1) - e.exact_valued as valued, \
               $4 * (select movie_count from catalog) < w.total * w.total as walk from w cross join e), \
             s0 as materialized (select b.top, t.at - (b.upto - b.n) as skip from b cross join t \
               where b.upto > t.at order by b.top desc limit 1), \
             s as materialized (select top, skip + (select count(*) from movies \
               where search_title = $1 and imdb_votes > s0.top) as skip from s0) \
             select {STAMP}, t.total as f_total, {cols} from catalog c cross join t left join \
             (select p.rank, {mcols} from (select u.rank, u.slug, u.imdb_votes from ( \
                select 0 as rank, slug, imdb_votes from (select slug, imdb_votes from movies where search_title = $1 \
                  order by imdb_votes desc nulls last, slug limit $4 offset $5) x \
                union all \
                select 1 as rank, slug, imdb_votes from (select slug, imdb_votes from movies \
                  where {walked}imdb_votes <= (select top from s) \
                  and {like} and search_title <> $1 order by imdb_votes desc nulls last, slug \
                  limit {valued_limit} offset (select coalesce(max(skip), 0) from s)) v \
                union all \
                select 1 as rank, slug, imdb_votes from (select slug, imdb_votes from movies{nulls_index} \
                  where {walked}imdb_votes is null \
                  and {like} and search_title <> $1 order by imdb_votes desc nulls last, slug \
                  limit {nulls_limit} \
                  offset (select case when at > valued then at - valued else 0 end from t)) z \
                union all \
                select 1 as rank, slug, imdb_votes from (select slug, imdb_votes from movies \
                  where {rare} and search_title <> $1 \
                  order by imdb_votes + 0 desc nulls last, slug limit $4 offset (select at from t)) r \
              ) u order by u.rank, u.imdb_votes desc nulls last, u.slug limit $4) p \
              cross join movies m where m.slug = p.slug) f on 1 = 1 \
             order by f.rank, f.imdb_votes desc nulls last, f.slug",
            cols = rows::columns_of("f"),
            mcols = rows::columns_of("m"),
            valued_limit = limit("$4"),
            nulls_index = self.nulls_index(Sort::Votes),
            nulls_limit = limit("(select case when at + $4 > valued and at < inexact then $4 else 0 end from t)"),
        );
        let term = match self.backend {
            Backend::Sqlite => format!("\"{word}\"*"),
            Backend::Postgres => format!("{word}:*"),
        };
        let offset = i64::try_from(page.offset(size)).unwrap_or(i64::MAX);
        let query =
            sqlx::query(&sql).bind(word).bind(term).bind(format!("% {word}%")).bind(i64::from(size)).bind(offset);
        let found = self.fetch_heavy(query).await?;
        let total: Option<i64> = found.first().map(|r| r.try_get("f_total")).transpose()?.flatten();
        let (stamp, movies) = stamp_and_movies(&found)?;
        Ok((stamp, total.unwrap_or(0), movies))
    }

    /// Fills `search_title` for films stored before there was search (the migration adds the
    /// column empty), a thousand at a time. Returns how many it filled.
    pub(super) async fn fill_search_titles(&self) -> Result<u64> {
        let mut after = String::new();
        let mut filled = 0;
        loop {
            self.counted();
            let batch: Vec<(String, String)> = sqlx::query(
                "select slug, title from movies where search_title = '' and slug > $1 order by slug limit 1000",
            )
            .bind(after.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("slug")?, r.try_get("title")?)))
            .collect::<Result<_, sqlx::Error>>()?;
            let Some((last, _)) = batch.last() else { return Ok(filled) };
            after = last.clone();
            let mut tx = self.pool.begin().await?;
            for (slug, title) in &batch {
                self.counted();
                sqlx::query("update movies set search_title = $1 where slug = $2")
                    .bind(search_text(title))
                    .bind(slug.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            filled += batch.len() as u64;
        }
    }
}

/// The `case` arms naming the word of `k` fewest films have (`n{i}`), the first of equals.
fn rarest(k: usize) -> String {
    (0..k)
        .map(|i| {
            let fewest: Vec<String> =
                (0..k).filter(|j| *j != i).map(|j| format!("n{i} {} n{j}", if j < i { "<" } else { "<=" })).collect();
            let fewest = if fewest.is_empty() { "1 = 1".to_owned() } else { fewest.join(" and ") };
            format!("when {fewest} then {i}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first text after every word that begins with `word` (its last byte raised): `word` and
/// this bound are a range of a "C"-collated index. Words are lower-case ASCII letters and digits.
fn past_prefix(word: &str) -> String {
    let mut bytes = word.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last = last.saturating_add(1);
    }
    String::from_utf8(bytes).unwrap_or_else(|_| format!("{word}\u{10ffff}"))
}
