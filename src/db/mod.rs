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
pub use log::{Backlog, Claim, GRACE, LogEntry};
pub use related::RelatedSlugs;
pub use repo::{Stamp, Updated};
pub use rows::LIST_FIELDS;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow, install_default_drivers};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Executor};

use crate::hooks::Hooks;
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
    /// A heavy read refused: its budget had no connection for it within its wait, or it ran past
    /// the statement timeout (see `HeavyBudget`).
    #[error("too many heavy reads at once: this one was refused")]
    Shed,
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// The heavy reads' budget. A read whose cost grows with the catalog — a search, a narrowed list,
/// a deep page of the listing read by offset — runs on a small pool of its own, so that however
/// many of them are slow at once, the main pool keeps its connections for what every reader
/// asks first and is cheap at any size: the listing's pages (anchored), films, related films,
/// writes. A heavy read waits at most `wait` for a connection of its budget and, on PostgreSQL,
/// runs at most `statement_timeout`; past either it is shed (`DbError::Shed`), which the site
/// answers as a 503 with `Retry-After` naming the heavy page, not a pool exhausted by it. SQLite
/// has no statement timeout (its statements cannot be stopped from sqlx's `Any` driver): there
/// the budget alone bounds how many run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyBudget {
    pub connections: u32,
    pub wait: Duration,
    pub statement_timeout: Duration,
}

impl Default for HeavyBudget {
    fn default() -> Self {
        Self { connections: 4, wait: Duration::from_millis(1000), statement_timeout: Duration::from_millis(2000) }
    }
}

/// The connections of PostgreSQL's pool for reads by key (see `Db::by_key`).
const BY_KEY_CONNECTIONS: u32 = 8;

/// How PostgreSQL plans a pool's statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plans {
    /// With each run's values (pages: see `pool_options`).
    EachRun,
    /// Once, without the values: reads by key, each written so that one plan serves every value
    /// (PostgreSQL's own rule, `auto`, kept a page's plan made with the values forever: a plan
    /// made without them, guessing a tenth of the films past an `offset $1`, looks dearer).
    Kept,
}

/// A pool's options; `statement_timeout` is set on each PostgreSQL connection when given.
fn pool_options(
    backend: Backend,
    max_connections: u32,
    acquire: Duration,
    statement_timeout: Option<Duration>,
    plans: Plans,
) -> AnyPoolOptions {
    AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(acquire).after_connect(move |conn, _| {
        Box::pin(async move {
            match backend {
                // Each connection's page cache is memory of its own (SQLite's default, 2 MiB): under
                // the mix at 3,200 films a full pool held ~30 MiB of copies of one 4 MiB file, which
                // the OS keeps once anyway. 256 KiB each holds what a query reads twice; the rest is
                // a read from the OS's cache.
                Backend::Sqlite => {
                    conn.execute(
                        "pragma journal_mode = wal; pragma synchronous = normal; pragma busy_timeout = 5000; \
                         pragma cache_size = -256;",
                    )
                    .await?;
                }
                // Every statement is prepared once per connection, and after five runs
                // PostgreSQL may keep a generic plan, made without the values: a page's
                // `limit $1 offset $2` is then guessed at 10,000 rows, and the page's films
                // were joined by hashing all 1,000,000 (0.5–1 s a deep page, at 1M films).
                // So pages are planned with each run's values (~1 ms a deep page); reads by
                // key are not, since planning among the films' two dozen indexes was most of their
                // cost (pgbench, 8 films by slug at 1M films: 2,000 runs a second planned each
                // time, 5,500 planned once). Nor do page queries run long enough for JIT
                // compilation or parallel workers to pay: the misplanned ones spent 170–210 ms
                // compiling, and starting workers for a branch of a deep search page that reads
                // nothing took 26–38 ms.
                Backend::Postgres => {
                    let timeout = statement_timeout
                        .map(|t| format!(" set statement_timeout = {};", t.as_millis().max(1)))
                        .unwrap_or_default();
                    let plans = match plans {
                        Plans::EachRun => "force_custom_plan",
                        Plans::Kept => "force_generic_plan",
                    };
                    conn.execute(
                        format!(
                            "set plan_cache_mode = {plans}; set jit = off; \
                                 set max_parallel_workers_per_gather = 0;{timeout}"
                        )
                        .as_str(),
                    )
                    .await?;
                }
            }
            Ok(())
        })
    })
}

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

/// The pools plus what the repository keeps beside it (the deep pages' bucket counts, the query counter).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// The heavy reads' own connections (see `HeavyBudget`).
    heavy: AnyPool,
    /// Reads by key whose plans PostgreSQL may keep, being the same whatever the values: films by
    /// slug, the films related to one (each relation from an index led by its keys, migration
    /// 0015), and the whole listing's pages from its top or from a bucket's bound (see
    /// `page_at`). On PostgreSQL `BY_KEY_CONNECTIONS` of their own, on SQLite the main pool.
    by_key: AnyPool,
    url: String,
    backend: Backend,
    anchors: Arc<anchors::Anchors>,
    stats: Arc<Stats>,
    /// Whether writes are recorded in the cache log (see `log`).
    log_writes: Arc<std::sync::atomic::AtomicBool>,
    /// The tests' seams (see `hooks`): a deep page read while the order keeps moving, a write
    /// whose read of its row panics.
    hooks: Hooks,
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
    /// Opens the pools: the main one, and the heavy reads' (see `HeavyBudget`), opened lazily. A
    /// SQLite file is created when missing.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        heavy: HeavyBudget,
        stats: Arc<Stats>,
        hooks: Hooks,
    ) -> Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let pool =
            pool_options(backend, max_connections, Duration::from_secs(2), None, Plans::EachRun).connect(&url).await?;
        let heavy_pool =
            pool_options(backend, heavy.connections, heavy.wait, Some(heavy.statement_timeout), Plans::EachRun)
                .connect_lazy(&url)?;
        let by_key = match backend {
            Backend::Sqlite => pool.clone(),
            // opened now, as the main pool is: a reader's first page does not wait for a
            // connection's start (a new PostgreSQL backend loading the films' indexes)
            Backend::Postgres => {
                pool_options(backend, BY_KEY_CONNECTIONS, Duration::from_secs(2), None, Plans::Kept)
                    .connect(&url)
                    .await?
            }
        };
        Ok(Self {
            pool,
            heavy: heavy_pool,
            by_key,
            url,
            backend,
            anchors: Arc::default(),
            stats,
            log_writes: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            hooks,
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
        self.by_key.close().await;
        self.heavy.close().await;
        self.pool.close().await;
    }

    /// The rows of `query`, a heavy read, on a connection of the heavy budget: `Shed` when none is
    /// free within its wait, or when PostgreSQL stopped the statement at its timeout.
    async fn fetch_heavy<'q>(&self, query: Query<'q, Any, AnyArguments<'q>>) -> Result<Vec<AnyRow>> {
        self.stats.db_query();
        let shed = |e: sqlx::Error| match e {
            sqlx::Error::PoolTimedOut => DbError::Shed,
            // query_canceled: the heavy connections' statement_timeout
            sqlx::Error::Database(d) if d.code().as_deref() == Some("57014") => DbError::Shed,
            e => DbError::Sqlx(e),
        };
        let read = async {
            let mut conn = self.heavy.acquire().await.map_err(shed)?;
            self.hooks.in_heavy_read().await;
            query.fetch_all(&mut *conn).await.map_err(shed)
        };
        let rows = read.await;
        if matches!(rows, Err(DbError::Shed)) {
            self.stats.db_heavy_shed();
        }
        rows
    }

    fn counted(&self) {
        self.counted_in(&self.pool);
    }

    /// A query on `pool`, counted.
    fn counted_in(&self, pool: &AnyPool) {
        self.stats.db_query();
        // every connection in use: this query waits for one to come back (a connection being
        // opened, with room in the pool, is not a wait for another query)
        if pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections() {
            self.stats.db_pool_wait();
        }
    }

    /// Where a page query is followed by an order change when a test asks; nothing at all
    /// without the test hooks.
    async fn reorder_if_asked(&self) -> Result<()> {
        if self.hooks.reorders() {
            sqlx::query("update catalog set order_version = order_version + 1 where id = 1")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}
