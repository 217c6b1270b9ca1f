//! The cached movie service: the one way pages and films are read and written. It composes the
//! cache and the repository; nothing else talks to either on a request's behalf.
//!
//! Reads (`read`, `pages`): every page of slugs — a list's, a search's, a film's related films —
//! is read the same way: warm, its key's GET and ONE MGET of the stamp and its films; a miss is
//! ONE database read shared by concurrent requests (`coalesce`), written back after the response.
//! Writes (`write`): the database first, then the cache before the writer is answered.

mod coalesce;
mod pages;
pub mod purge;
mod read;
mod relay;
mod write;

pub use pages::{Detail, Found, Listing, Page, RELATED};

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, PageOf};
use crate::db::{Backlog, Db, DbError};
use crate::deferred::Deferred;
use crate::hooks::Hooks;
use crate::stats::Stats;
use coalesce::Coalesce;
use read::{Films, Rows};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("a film with slug {0:?} already exists")]
    SlugTaken(String),
    #[error("{0}")]
    NoFreeSlug(String),
    #[error("the database failed: {0}")]
    Db(Arc<DbError>),
    /// A shared database read panicked: a bug of ours, answered as a 500 to every request that
    /// waited for it (the read is not reused).
    #[error("a shared database read panicked")]
    Panicked,
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::SlugTaken(slug) => Self::SlugTaken(slug),
            e @ DbError::NoSlug { .. } => Self::NoFreeSlug(e.to_string()),
            other => Self::Db(Arc::new(other)),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// What the readiness check reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub database: bool,
    pub cache: CacheHealth,
    /// What the cache has not learnt yet (`None`: no cache, or the database did not say).
    pub log: Option<Backlog>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHealth {
    /// `REDIS_URL=off`.
    Off,
    Up,
    Down,
}

#[derive(Clone)]
pub struct MovieService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    cache: Cache,
    deferred: Deferred,
    stats: Arc<Stats>,
    page_size: u32,
    /// Database reads of pages of slugs under way.
    pages: Coalesce<PageOf, Rows>,
    /// Database reads of films by slug under way, keyed by the slugs read, comma-joined.
    films: Coalesce<String, Films>,
    /// The tests' seams (see `hooks`): a read held or panicking, a write stopped after its commit.
    hooks: Hooks,
}

impl MovieService {
    pub fn new(db: Db, cache: Cache, deferred: Deferred, stats: Arc<Stats>, page_size: u32, hooks: Hooks) -> Self {
        let pages = Coalesce::new(cache.clone(), deferred.clone(), stats.clone());
        let films = Coalesce::new(cache.clone(), deferred.clone(), stats.clone());
        Self { inner: Arc::new(Inner { db, cache, deferred, stats, page_size, pages, films, hooks }) }
    }

    /// The cache's token (see `Cache::token`): `None` without one, or without Redis.
    pub async fn token(&self) -> Option<u64> {
        self.inner.cache.token().await
    }

    /// The token this server knows, while its lease runs (no round trip; see `cache::lease`).
    pub fn leased_token(&self) -> Option<u64> {
        self.inner.cache.leased_token()
    }

    /// Whether this server reads from Redis now: a look at the cache log confirmed it lately
    /// (see `cache::trust`).
    pub fn trusts_cache(&self) -> bool {
        self.inner.cache.is_trusted()
    }

    /// Takes this server's cache lease, before it serves (see `cache::lease`).
    pub async fn take_lease(&self) {
        self.inner.cache.take_lease().await;
    }

    /// Holds this server's cache lease until the task is dropped (see `cache::lease`).
    pub fn hold_lease(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.cache.clone().hold_lease()
    }

    /// Gives up the lease (at shutdown), so that writers stop waiting for this server.
    pub async fn leave(&self) {
        self.inner.cache.leave().await;
    }

    /// Whether the database answers (within 2 s) and how the cache is.
    pub async fn health(&self) -> Health {
        let db = tokio::time::timeout(Duration::from_secs(2), self.inner.db.ping()).await;
        let cache = if !self.inner.cache.is_enabled() {
            CacheHealth::Off
        } else if self.inner.cache.ping().await.is_ok() {
            CacheHealth::Up
        } else {
            CacheHealth::Down
        };
        let database = matches!(db, Ok(Ok(())));
        let log = if database && cache != CacheHealth::Off {
            tokio::time::timeout(Duration::from_secs(2), self.inner.db.backlog()).await.ok().and_then(Result::ok)
        } else {
            None
        };
        Health { database, cache, log }
    }

    /// Whether there is a cache to keep (false with `REDIS_URL=off`).
    pub fn caches(&self) -> bool {
        self.inner.cache.is_enabled()
    }

    /// Closes the database pool (at shutdown, after the last request).
    pub async fn close(&self) {
        self.inner.db.close().await;
    }
}
