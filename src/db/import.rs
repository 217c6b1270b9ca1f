//! Bulk writes: importing a dataset (idempotent, one transaction) and seeding synthetic films.

use std::collections::HashMap;

use sqlx::{Any, Transaction};

use super::rows::{self, COLUMNS};
use super::{Db, Result};
use crate::movies::Movie;

/// Rows per multi-row insert, a value per column each: well under both databases' parameter limits.
const BATCH: usize = 500;

// SQLite's limit on a statement's parameters is the lower one (PostgreSQL's is 65,535).
const _: () = assert!(BATCH * rows::COLUMN_COUNT <= 32_766);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
}

fn same_content(a: &Movie, b: &Movie) -> bool {
    Movie { version: 0, ..a.clone() } == Movie { version: 0, ..b.clone() }
}

impl Db {
    /// Inserts the films that are new (by slug) and rewrites those whose content differs, all in one
    /// transaction: on any error nothing is written. Importing the same films again changes nothing.
    pub async fn import(&self, movies: Vec<Movie>) -> Result<ImportSummary> {
        let mut tx = self.pool.begin().await?;
        let stamp = self.bump(&mut tx, 0, 0).await?;
        let mut existing: HashMap<String, Movie> = HashMap::new();
        for chunk in movies.chunks(BATCH) {
            let sql = format!("select {COLUMNS} from movies where slug in ({})", rows::list(1, chunk.len()));
            let mut q = sqlx::query(&sql);
            for m in chunk {
                q = q.bind(m.slug.as_str());
            }
            self.counted();
            for row in q.fetch_all(&mut *tx).await? {
                if let Some(m) = rows::movie(&row)? {
                    existing.insert(m.slug.clone(), m);
                }
            }
        }
        let mut summary = ImportSummary::default();
        let mut fresh = Vec::new();
        let mut changed: Vec<String> = Vec::new();
        let (mut reordered, mut relisted) = (false, false);
        for mut movie in movies {
            movie.version = stamp.version;
            match existing.get(&movie.slug) {
                None => fresh.push(movie),
                Some(old) if same_content(old, &movie) => summary.unchanged += 1,
                Some(old) => {
                    reordered |= old.release_date != movie.release_date;
                    relisted |= rows::moves_in_lists(old, &movie);
                    self.rewrite(&mut tx, &movie).await?;
                    changed.push(movie.slug);
                    summary.updated += 1;
                }
            }
        }
        summary.imported = self.insert_new(&mut tx, &fresh).await?;
        if summary.imported + summary.updated == 0 {
            tx.rollback().await?;
            return Ok(summary);
        }
        let reordered = reordered || summary.imported > 0;
        let relisted = relisted || reordered;
        self.grow(&mut tx, summary.imported, reordered, relisted).await?;
        changed.extend(fresh.into_iter().map(|m| m.slug));
        let slugs: Vec<&str> = changed.iter().map(String::as_str).collect();
        self.log_write(&mut tx, &slugs, stamp.version, relisted).await?;
        tx.commit().await?;
        Ok(summary)
    }

    /// Inserts films whose slug is free, in batched transactions; returns how many were new.
    /// `movies` is consumed lazily, so a million films never sit in memory at once.
    pub async fn seed(&self, movies: impl Iterator<Item = Movie>, mut progress: impl FnMut(u64)) -> Result<u64> {
        const PER_TRANSACTION: usize = 100 * BATCH;
        let mut movies = movies.peekable();
        let mut total = 0;
        while movies.peek().is_some() {
            let mut tx = self.pool.begin().await?;
            let stamp = self.bump(&mut tx, 0, 0).await?;
            let chunk: Vec<Movie> =
                movies.by_ref().take(PER_TRANSACTION).map(|m| Movie { version: stamp.version, ..m }).collect();
            let added = self.insert_new(&mut tx, &chunk).await?;
            self.grow(&mut tx, added, added > 0, added > 0).await?;
            if added > 0 {
                // the order and the count, not each film: a million rows would be no small log
                self.log_write(&mut tx, &[], stamp.version, true).await?;
            }
            tx.commit().await?;
            total += added;
            progress(total);
        }
        if total > 0 {
            // the planner's statistics, so that each list's query walks the index that suits it
            // (SQLite has none until asked; PostgreSQL's autovacuum would get to it later), and on
            // PostgreSQL the visibility map: until a VACUUM sets it, an index-only walk also reads
            // the table for every entry (the lists' deep pages measured 0.3–1.1 s instead of
            // ~30 ms; search_words' index is walked alone too, see migration 0012); the counts the
            // triggers kept, rewritten in their keys' order: every upsert left a dead row, and a
            // VACUUM only frees their room (a seed of a million films left sort_buckets' 2,197
            // rows in 87 MB, and the first deep page after a start read them all: 65–140 ms; the
            // 5,863 rows of one list's cell_buckets lay on 3,958 pages of 397 MB: 28 ms, 3 ms
            // rewritten); PostgreSQL's search_buckets likewise, which a seed scatters (see
            // migration 0010; SQLite's tables are their primary keys' order already)
            let statements: &[&str] = match self.backend {
                super::Backend::Sqlite => &["analyze"],
                super::Backend::Postgres => &[
                    "vacuum (analyze) movies",
                    "vacuum (analyze) search_words",
                    "cluster list_counts using list_counts_pkey",
                    "cluster sort_buckets using sort_buckets_pkey",
                    "cluster filter_buckets using filter_buckets_pkey",
                    "cluster cell_buckets using cell_buckets_pkey",
                    "cluster search_buckets using search_buckets_pkey",
                    "vacuum (analyze) list_counts, sort_buckets, filter_buckets, cell_buckets, search_buckets",
                ],
            };
            for sql in statements {
                self.counted();
                sqlx::query(sql).execute(&self.pool).await?;
            }
        }
        Ok(total)
    }

    async fn insert_new(&self, tx: &mut Transaction<'_, Any>, movies: &[Movie]) -> Result<u64> {
        let mut added = 0;
        for batch in movies.chunks(BATCH) {
            // On SQLite, binding a `$N` parameter looks its name up in a list of every parameter of
            // the statement, so binding a batch's `BATCH * COLUMN_COUNT` costs their square (87% of a
            // seed's time): anonymous `?` parameters, bound in order, are not looked up.
            let values = match self.backend {
                super::Backend::Sqlite => rows::anonymous_placeholders(batch.len()),
                super::Backend::Postgres => rows::placeholders(batch.len()),
            };
            let sql = format!("insert into movies ({COLUMNS}) values {values} on conflict (slug) do nothing");
            let mut q = sqlx::query(&sql);
            for m in batch {
                q = rows::bind(q, m);
            }
            self.counted();
            added += q.execute(&mut **tx).await?.rows_affected();
        }
        Ok(added)
    }

    /// Writes every column of an existing film.
    pub(super) async fn rewrite(&self, tx: &mut Transaction<'_, Any>, movie: &Movie) -> Result<()> {
        let sets = COLUMNS.split(", ").skip(1).enumerate().map(|(i, c)| format!("{c} = ${}", i + 2));
        let sql = format!("update movies set {} where slug = $1", sets.collect::<Vec<_>>().join(", "));
        self.counted();
        rows::bind(sqlx::query(&sql), movie).execute(&mut **tx).await?;
        Ok(())
    }

    /// Adds `added` to the count; raises the listing's order version when `reordered`, the other
    /// lists' when `relisted`.
    async fn grow(&self, tx: &mut Transaction<'_, Any>, added: u64, reordered: bool, relisted: bool) -> Result<()> {
        self.counted();
        sqlx::query(
            "update catalog set movie_count = movie_count + $1, order_version = order_version + $2, \
             list_version = list_version + $3 where id = 1",
        )
        .bind(i64::try_from(added).unwrap_or(i64::MAX))
        .bind(i64::from(reordered))
        .bind(i64::from(relisted))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
