//! Redis: the only module that sends it commands. Every call is bounded by a short timeout and
//! fails open: an error or a timeout is reported to the caller as a miss (and counted, and logged
//! once per burst), and for a moment afterwards Redis is not asked at all, so an outage costs
//! visitors nothing but the database's time.

mod admin;
mod batch;
mod breaker;
mod client;
mod decoded;
mod entry;
mod keys;
mod lease;
mod read;
mod scripts;
mod sweep;
mod token;
mod trust;

/// What `marquee cache stats` shows of the cache.
pub use admin::{CacheState, CachedStamp, LeaseState, NodeMemory, RedisIdentity, TokenState};
pub use batch::WriteBatch;
pub use breaker::BreakerConfig;
/// One Redis or a cluster, behind the same commands (for tools and tests that look at the cache).
pub use client::Connection;
/// The film entry's codec, for tools that measure the cache's own format.
pub use entry::{CachedPage, MovieEntry, decode_movie, decode_page, encode_movie};
pub use keys::{Keys, PageOf};
/// The film compare-and-set script, for tools that measure it against plain writes.
pub use scripts::SET_VERSIONED;
pub use trust::{CONFIRMED_FOR, Look};

use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;

use crate::config::CacheConfig;
use crate::hooks::Hooks;
use crate::stats::{Outcome, Stats};
use client::Client;
use scripts::Scripts;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache is off")]
    Off,
    #[error("cache is backing off after an error")]
    BackingOff,
    /// Redis may lack a write the database has (see `trust`): it is not read until the relay has
    /// applied the cache log.
    #[error("cache not trusted until the cache log is applied")]
    Unconfirmed,
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A write's keys reached the master but not every replica it had (`WAIT`): a failover now
    /// could lose them, so the cache log keeps them.
    #[error("{acked} of {replicas} replicas took the write")]
    NotReplicated { acked: u64, replicas: u64 },
    /// A connection to Redis was lost while a write was under way: Redis may have restarted in
    /// between, from a snapshot without it (see `Cache::unbroken_since`).
    #[error("a connection to redis was lost while the write was under way")]
    Lost,
    #[error(transparent)]
    Redis(#[from] RedisError),
}

impl CacheError {
    /// Redis answered, but refused the command (out of memory with `noeviction`, a read-only
    /// replica, a key of another type…): it is there and reads work, so it is no outage.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Redis(e) if client::is_refusal(e))
    }
}

impl Outcome {
    /// A deferred write's outcome from what the cache answered.
    pub fn of<T>(result: &Result<T, CacheError>) -> Self {
        match result {
            Ok(_) => Self::Written,
            Err(CacheError::Off | CacheError::BackingOff | CacheError::Unconfirmed) => Self::Skipped,
            Err(_) => Self::Failed,
        }
    }
}

/// The cache: cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    keys: Keys,
    config: CacheConfig,
    scripts: Scripts,
    stats: Arc<Stats>,
    token_reads: Arc<token::TokenReads>,
    lease: lease::Lease,
    trust: trust::Trust,
    /// What Redis was when its relay last acted on it (see `Cache::identity`).
    seen_redis: std::sync::Mutex<Option<admin::RedisIdentity>>,
    /// The fewest replicas any master had when last asked: a write's keys are taken once that
    /// many have them (`WAIT`; see `batch`).
    replicas: std::sync::atomic::AtomicU64,
    /// The tests' seams (see `hooks`): a sweep held halfway.
    hooks: Hooks,
    /// Films decoded from the copies read last (see `decoded`).
    decoded: decoded::Decoded,
}

impl Cache {
    /// Sets up the client without connecting: Redis may come up later, or never (`REDIS_URL=off`).
    pub fn new(config: CacheConfig, stats: Arc<Stats>, hooks: Hooks) -> Result<Self, RedisError> {
        let client = Client::new(&config, stats.clone())?;
        let keys = Keys::new(&config.prefix);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                keys,
                config,
                scripts: Scripts::default(),
                stats,
                token_reads: Arc::default(),
                lease: lease::Lease::default(),
                trust: trust::Trust::default(),
                seen_redis: std::sync::Mutex::default(),
                replicas: std::sync::atomic::AtomicU64::new(0),
                hooks,
                decoded: decoded::Decoded::default(),
            }),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.client.is_enabled()
    }

    /// The settings it was made with (TTLs, prefix, timeout).
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// PING, for the readiness check.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.inner
            .client
            .call(1, |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ()) })
            .await
    }
}
