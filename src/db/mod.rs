//! The database: one pool for SQLite or PostgreSQL (chosen by the URL), the migrations, and the
//! repository, the only code in marquee that speaks SQL.

mod anchors;
mod import;
mod log;
mod related;
mod repo;
mod rows;
mod search;

pub use import::ImportSummary;
pub use log::{Backlog, Claim, LogEntry};
pub use related::RelatedSlugs;
pub use repo::{Stamp, Updated};
pub use rows::LIST_FIELDS;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::stats::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("a film with slug {0:?} already exists")]
    SlugTaken(String),
    #[error("every slug for {title:?} is taken, up to {last:?}")]
    NoSlug { title: String, last: String },
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

impl DbError {
    /// The database could not be reached or is refusing work for now (a 503), as opposed to a
    /// fault of ours (a 500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Sqlx(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_),
            ) => true,
            // PostgreSQL: connection exceptions (08…), insufficient resources (53…), operator
            // intervention (57…: shutting down); SQLite: busy (5) and locked (6)
            Self::Sqlx(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| ["08", "53", "57"].iter().any(|p| c.starts_with(p)) || c == "5" || c == "6")
            }
            _ => false,
        }
    }
}

/// The pool plus what the repository keeps beside it (the deep-page anchors, the query counter).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    url: String,
    backend: Backend,
    anchors: Arc<anchors::Anchors>,
    stats: Arc<Stats>,
    /// Whether writes are recorded in the cache log (see `log`).
    log_writes: Arc<std::sync::atomic::AtomicBool>,
    #[cfg(feature = "test-hooks")]
    hold: Arc<std::sync::RwLock<Option<Arc<tokio::sync::Semaphore>>>>,
    #[cfg(feature = "test-hooks")]
    panic_on_reads: Arc<std::sync::atomic::AtomicBool>,
    #[cfg(feature = "test-hooks")]
    reorder_on_reads: Arc<std::sync::atomic::AtomicBool>,
}

const SETUP_LOCK: &str = "select pg_advisory_lock(hashtext(current_schema() || ':marquee setup'))";
const SETUP_UNLOCK: &str = "select pg_advisory_unlock(hashtext(current_schema() || ':marquee setup'))";

/// The setup lock, held until released.
pub struct SetupLock(Option<sqlx::AnyConnection>);

impl SetupLock {
    pub async fn release(self) -> Result<()> {
        use sqlx::Connection;
        if let Some(mut conn) = self.0 {
            sqlx::query(SETUP_UNLOCK).execute(&mut conn).await?;
            conn.close().await?;
        }
        Ok(())
    }
}

impl Db {
    /// Opens the pool. A SQLite file is created when missing.
    pub async fn connect(url: &str, max_connections: u32, stats: Arc<Stats>) -> Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(2))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Self {
            pool,
            url,
            backend,
            anchors: Arc::default(),
            stats,
            log_writes: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            #[cfg(feature = "test-hooks")]
            hold: Arc::default(),
            #[cfg(feature = "test-hooks")]
            panic_on_reads: Arc::default(),
            #[cfg(feature = "test-hooks")]
            reorder_on_reads: Arc::default(),
        })
    }

    /// Runs the migrations that have not run yet; running them again changes nothing.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await?,
        }
        let filled = self.fill_search_titles().await?;
        if filled > 0 {
            tracing::info!(filled, "search titles filled for films stored before search");
        }
        Ok(())
    }

    /// Holds the database's setup lock until the guard is released (or this process ends): servers
    /// that start together on an empty PostgreSQL database migrate it and load the dataset one at a
    /// time, so exactly once. The lock is PostgreSQL's session advisory lock, keyed by the schema,
    /// on a connection of its own outside the pool; SQLite needs none (its one process does it).
    pub async fn setup_lock(&self) -> Result<SetupLock> {
        if self.backend == Backend::Sqlite {
            return Ok(SetupLock(None));
        }
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
        sqlx::query(SETUP_LOCK).execute(&mut conn).await?;
        Ok(SetupLock(Some(conn)))
    }

    /// Cheap check that the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.counted();
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn counted(&self) {
        self.stats.db_query();
    }

    /// Test hook: holds every read of pages and films after it returns, until `gate` gives a
    /// permit (`None` lets reads through again).
    #[cfg(feature = "test-hooks")]
    pub fn hold_reads(&self, gate: Option<Arc<tokio::sync::Semaphore>>) {
        if let Ok(mut hold) = self.hold.write() {
            *hold = gate;
        }
    }

    /// Test hook: every read of pages and films (and an update's read of its row) panics while
    /// `on`, as a bug of ours would.
    #[cfg(feature = "test-hooks")]
    pub fn panic_on_reads(&self, on: bool) {
        self.panic_on_reads.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Test hook: after every listing page query, the order version moves on, as if writers
    /// reordered the catalog while each page is read.
    #[cfg(feature = "test-hooks")]
    pub fn reorder_on_reads(&self, on: bool) {
        self.reorder_on_reads.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Where a page query is followed by an order change when a test asks; nothing at all
    /// without the test hooks.
    async fn reorder_if_asked(&self) -> Result<()> {
        #[cfg(feature = "test-hooks")]
        if self.reorder_on_reads.load(std::sync::atomic::Ordering::Relaxed) {
            sqlx::query("update catalog set order_version = order_version + 1 where id = 1")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Where a read panics when a test asks; nothing at all without the test hooks.
    fn panic_if_asked(&self) {
        #[cfg(feature = "test-hooks")]
        {
            #[expect(clippy::panic, reason = "the test hook stands for a bug of ours")]
            if self.panic_on_reads.load(std::sync::atomic::Ordering::Relaxed) {
                panic!("test hook: this read panics");
            }
        }
    }

    /// Where a held read waits (or a read panics); nothing at all without the test hooks.
    async fn after_read(&self) {
        self.panic_if_asked();
        #[cfg(feature = "test-hooks")]
        {
            let gate = self.hold.read().ok().and_then(|g| g.clone());
            if let Some(gate) = gate {
                let _ = gate.acquire().await.map(tokio::sync::SemaphorePermit::forget);
            }
        }
    }
}
