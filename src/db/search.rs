//! Search by title: the full-text index of each database (SQLite's FTS5, PostgreSQL's text search)
//! over `search_title`, the title folded as `movies::search_text` folds it.

use sqlx::Row;

use super::repo::{STAMP, stamp_and_movies};
use super::rows::{self, COLUMNS};
use super::{Backend, Db, Result, Stamp};
use crate::movies::{Movie, PageNumber, SearchQuery, search_text};

impl Db {
    /// Page `page` of the films whose title has, for each word of the query, a word starting with
    /// it; an exact title first, then by IMDB votes (most first), ties by slug. Returns the catalog
    /// stamp the read saw, the number of films found in all, and the page's films.
    pub async fn search(&self, query: &SearchQuery, page: PageNumber, size: u32) -> Result<(Stamp, i64, Vec<Movie>)> {
        if query.is_empty() {
            return Ok((self.stamp().await?, 0, Vec::new()));
        }
        // the words are letters and digits only: nothing in them is the index's syntax
        let (filter, terms) = match self.backend {
            Backend::Sqlite => (
                "rowid in (select rowid from movies_search where movies_search match $1)",
                query.words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" "),
            ),
            Backend::Postgres => (
                "to_tsvector('simple', search_title) @@ to_tsquery('simple', $1)",
                query.words.iter().map(|w| format!("{w}:*")).collect::<Vec<_>>().join(" & "),
            ),
        };
        let order =
            |alias: &str| format!("({alias}search_title = $2) desc, {alias}imdb_votes desc nulls last, {alias}slug");
        let sql = format!(
            "select {STAMP}, f.total as f_total, {cols} from catalog c left join \
             (select {COLUMNS}, count(*) over () as total from movies where {filter} \
             order by {inner} limit $3 offset $4) f on 1 = 1 order by {outer}",
            cols = rows::columns_of("f"),
            inner = order(""),
            outer = order("f."),
        );
        let offset = i64::try_from(page.offset(size)).unwrap_or(i64::MAX);
        self.counted();
        let found = sqlx::query(&sql)
            .bind(terms)
            .bind(query.phrase())
            .bind(i64::from(size))
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
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
