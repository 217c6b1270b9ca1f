//! The cache log: what the cache must still learn of committed writes, kept by the database in the
//! write's own transaction, so that a write the writer was told succeeded reaches Redis even when
//! the process that made it could not tell Redis (an outage, a partition, a crash after the commit).
//!
//! A write records one row per film it changed (or one with no film when only the order moved),
//! all at the write's catalog version, which no other write shares. The writer marks its rows
//! applied once Redis took the change (`applied`); the relay every server runs claims what is left
//! (`claim`), applies it and marks it (`Claim::done`). Applied rows are kept until the longest TTL
//! has passed (`prune`), so that a Redis that lost writes it had taken can be taught them again
//! (`reopen`). On PostgreSQL a claim holds its rows
//! locked (`FOR UPDATE SKIP LOCKED`) until it is done, so relays of several servers never apply a
//! row at the same time; SQLite has one process, which claims without locks.

use std::time::Duration;

use sqlx::{Any, Row, Transaction};

use super::{Backend, Db, Result};

/// One thing the cache must learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: i64,
    /// The film whose key must be refreshed; `None` when only the order (and stamp) moved.
    pub slug: Option<String>,
    /// The catalog version of the write.
    pub version: i64,
    /// Whether a list may have changed: the listing's order or membership, or any other list's
    /// (the stamp and the pages then must follow; the relay sweeps every list's pages).
    pub order_changed: bool,
}

/// Rows younger than this are still their writer's to apply (it does so before it answers);
/// older ones are overdue: any relay applies them, and until then no server trusts Redis (see
/// `cache::trust`). A writer that could not apply its rows hands them over at once (`hand_over`).
pub const GRACE: Duration = Duration::from_secs(2);

/// How far behind the cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Rows not applied yet.
    pub pending: i64,
    /// Rows past the writer's grace (or handed over by their writer).
    pub overdue: i64,
    /// The age of the oldest of them, by the database's clock.
    pub oldest: Option<Duration>,
    /// The newest catalog version Redis took (of the rows kept).
    pub applied: Option<i64>,
}

/// Rows claimed by one relay, until it says they are done (or drops the claim: they stay).
pub struct Claim {
    pub entries: Vec<LogEntry>,
    /// PostgreSQL: the transaction holding the rows' locks.
    tx: Option<Transaction<'static, Any>>,
    db: Db,
}

/// Rows per multi-row insert: 3 values each.
const INSERT_BATCH: usize = 500;

impl Db {
    /// The database's clock in Unix milliseconds, as SQL.
    fn now_ms(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "cast((julianday('now') - 2440587.5) * 86400000 as integer)",
            Backend::Postgres => "(extract(epoch from clock_timestamp()) * 1000)::bigint",
        }
    }

    /// Whether writes are recorded (not when there is no cache to tell, nor while the embedded
    /// dataset is loaded into an empty catalog at setup).
    pub fn set_cache_log(&self, on: bool) {
        self.log_writes.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn logging(&self) -> bool {
        self.log_writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records, in the write's transaction, that the cache must learn of `slugs` (none: the order
    /// alone) at catalog `version`.
    pub(super) async fn log_write(
        &self,
        tx: &mut Transaction<'_, Any>,
        slugs: &[&str],
        version: i64,
        order_changed: bool,
    ) -> Result<()> {
        if !self.logging() {
            return Ok(());
        }
        let none: [Option<&str>; 1] = [None];
        let slugs: Vec<Option<&str>> =
            if slugs.is_empty() { none.to_vec() } else { slugs.iter().map(|s| Some(*s)).collect() };
        for chunk in slugs.chunks(INSERT_BATCH) {
            let values = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("insert into cache_log (slug, version, order_changed) values {values}");
            let mut q = sqlx::query(&sql);
            for slug in chunk {
                q = q.bind(*slug).bind(version).bind(i64::from(order_changed));
            }
            self.counted();
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The writer's rows for the write at catalog `version` are done: Redis took them.
    pub async fn applied(&self, version: i64) -> Result<()> {
        if !self.logging() {
            return Ok(());
        }
        self.counted();
        let sql =
            format!("update cache_log set applied_at = {} where version = $1 and applied_at is null", self.now_ms());
        sqlx::query(&sql).bind(version).execute(&self.pool).await?;
        Ok(())
    }

    /// How many rows wait, and the age of the oldest. Not counted as a query of the site's: every
    /// server polls it about once a second.
    pub async fn backlog(&self) -> Result<Backlog> {
        let now = self.now_ms();
        let sql = format!(
            "select (select count(*) from cache_log where applied_at is null) as n, \
             (select count(*) from cache_log where applied_at is null and created_at <= {now} - $1) as overdue, \
             (select min(created_at) from cache_log where applied_at is null) as oldest, \
             (select max(version) from cache_log where applied_at is not null) as applied, {now} as now"
        );
        let grace = i64::try_from(GRACE.as_millis()).unwrap_or(i64::MAX);
        let row = sqlx::query(&sql).bind(grace).fetch_one(&self.pool).await?;
        let pending: i64 = row.try_get("n")?;
        let overdue: i64 = row.try_get("overdue")?;
        let applied: Option<i64> = row.try_get("applied")?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        let now: i64 = row.try_get("now")?;
        let oldest = oldest.map(|t| Duration::from_millis(u64::try_from(now - t).unwrap_or(0)));
        Ok(Backlog { pending, overdue, oldest, applied })
    }

    /// The writer of the write at catalog `version` could not apply its rows: they are overdue from
    /// now on (backdated past the grace), for the relays of every server to apply at once.
    pub async fn hand_over(&self, version: i64) -> Result<()> {
        let grace = i64::try_from(GRACE.as_millis()).unwrap_or(i64::MAX);
        self.counted();
        sqlx::query("update cache_log set created_at = created_at - $1 where version = $2 and applied_at is null")
            .bind(grace)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether rows of the write at catalog `version` are still to be applied.
    pub async fn logged(&self, version: i64) -> Result<bool> {
        let row = sqlx::query("select count(*) as n from cache_log where version = $1 and applied_at is null")
            .bind(version)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Claims up to `limit` overdue rows (see `GRACE`), oldest first. Rows another relay holds
    /// are skipped.
    pub async fn claim(&self, limit: usize) -> Result<Claim> {
        let grace = GRACE;
        let lock = if self.backend == Backend::Postgres { "for update skip locked" } else { "" };
        let sql = format!(
            "select id, slug, version, order_changed from cache_log \
             where applied_at is null and created_at <= {} - $1 order by id limit $2 {lock}",
            self.now_ms()
        );
        let grace = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let q = sqlx::query(&sql).bind(grace).bind(limit);
        let (rows, tx) = match self.backend {
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                (q.fetch_all(&mut *tx).await?, Some(tx))
            }
            Backend::Sqlite => (q.fetch_all(&self.pool).await?, None),
        };
        let entries = rows
            .iter()
            .map(|row| {
                Ok(LogEntry {
                    id: row.try_get("id")?,
                    slug: row.try_get("slug")?,
                    version: row.try_get("version")?,
                    order_changed: row.try_get::<i64, _>("order_changed")? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Claim { entries, tx, db: self.clone() })
    }

    /// Redis lost writes it had taken: every row is to be applied again, at once (overdue), the
    /// kept ones and those still to apply. On PostgreSQL the rows a relay holds claimed are waited
    /// for and reopened once it marks them: its pass may have written them to the Redis that was
    /// lost. Returns how many.
    pub async fn reopen(&self) -> Result<u64> {
        let grace = i64::try_from(GRACE.as_millis()).unwrap_or(i64::MAX);
        let sql = "update cache_log set applied_at = null, created_at = created_at - $1";
        Ok(sqlx::query(sql).bind(grace).execute(&self.pool).await?.rows_affected())
    }

    /// Deletes rows older than `age`, applied or not: every key they could have fixed has expired
    /// since (their age is past the longest TTL), so the log stays small through any outage.
    pub async fn prune(&self, age: Duration) -> Result<u64> {
        let sql = format!("delete from cache_log where created_at < {} - $1", self.now_ms());
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        Ok(sqlx::query(&sql).bind(age).execute(&self.pool).await?.rows_affected())
    }
}

impl Claim {
    /// The claimed rows stay for a later pass (on PostgreSQL their locks are released now, not
    /// whenever the pool next uses the connection).
    pub async fn release(self) -> Result<()> {
        if let Some(tx) = self.tx {
            tx.rollback().await?;
        }
        Ok(())
    }

    /// The claimed rows were applied: marks them (and releases their locks).
    pub async fn done(self) -> Result<()> {
        let Self { entries, tx, db } = self;
        if entries.is_empty() {
            if let Some(tx) = tx {
                tx.commit().await?;
            }
            return Ok(());
        }
        let sql = format!(
            "update cache_log set applied_at = {} where id in ({})",
            db.now_ms(),
            super::rows::list(1, entries.len())
        );
        let mut q = sqlx::query(&sql);
        for e in &entries {
            q = q.bind(e.id);
        }
        match tx {
            Some(mut tx) => {
                q.execute(&mut *tx).await?;
                tx.commit().await?;
            }
            None => {
                q.execute(&db.pool).await?;
            }
        }
        Ok(())
    }
}
