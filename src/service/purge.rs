//! The operator's cache commands: `marquee cache purge` invalidates every tier on every server
//! (Redis's keys, then each server's kept pages through a new token and the wait for the
//! leases), and `marquee cache stats` says what the cache holds beside what the database says.
//!
//! A purge is for what reached the database without marquee (SQL by hand), which the cache log
//! never heard of: writes through the API or `marquee import` need none.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::MovieService;
use crate::cache::{CacheError, CacheState, WriteBatch};
use crate::db::{Backlog, Stamp};
use crate::movies::Slug;

/// Films read from the database per batch of a whole purge (twice as many keys, two UNLINKs).
const SLUG_BATCH: u32 = 1000;

/// What to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// One film's key and its related films' key.
    Film(Slug),
    /// Every film's keys (the films the database lists) and the stamp.
    All,
}

/// What a purge did.
#[derive(Debug, Clone, Default)]
pub struct Purged {
    /// Films whose keys were UNLINKed.
    pub films: u64,
    /// For one film: whether the database has it (a slug with no film still has its keys removed:
    /// the film may have been deleted by hand).
    pub in_database: Option<bool>,
    /// Keys that were in Redis and are gone (film keys and related films' keys).
    pub keys_removed: u64,
    /// Page keys swept from `movies:pages` and from `movies:lists`.
    pub listing_pages: u64,
    pub other_pages: u64,
    /// `--all`: whether the stamp was there (and is gone).
    pub stamp_removed: Option<bool>,
    pub kept_pages: KeptPages,
}

/// How the servers' kept pages were made misses.
#[derive(Debug, Clone, Default)]
pub struct KeptPages {
    /// The leases running when the new token was set: the servers waited for.
    pub servers: usize,
    /// Of those, the ones that renewed with the new token (the others' leases ran out).
    pub renewed: usize,
    /// From the new token to the last server's answer (at most `CACHE_LEASE_MS`).
    pub waited: Duration,
    /// Redis refused the new token (out of memory, read-only): the token's hash was removed
    /// instead, and the wait was a whole lease.
    pub hash_removed: bool,
}

/// What `marquee cache stats` shows.
#[derive(Debug, Clone)]
pub struct CacheReport {
    /// `Err`: why Redis did not answer (`None`: `REDIS_URL=off`).
    pub redis: Option<Result<Redis, String>>,
    /// The database's stamp and the cache log's backlog, or why they could not be read.
    pub database: Result<Stamp, String>,
    pub backlog: Result<Backlog, String>,
    /// `CACHE_LEASE_MS`: the longest a purge waits for the servers.
    pub lease_length: Duration,
}

/// Redis, when it answers.
#[derive(Debug, Clone)]
pub struct Redis {
    /// A PING's round trip.
    pub ping: Duration,
    pub state: CacheState,
}

impl MovieService {
    /// Removes `what` from Redis, sweeps every page key, and sets a new token, then waits until no
    /// server answers a page it kept before (see `cache::lease`). `progress` is told the number of
    /// films done after each batch of a whole purge.
    pub async fn purge(&self, what: &Purge, mut progress: impl FnMut(u64)) -> Result<Purged> {
        let (db, cache) = (&self.inner.db, &self.inner.cache);
        let mut purged = Purged::default();
        match what {
            Purge::Film(slug) => {
                purged.in_database = Some(!db.movies(&[slug.as_str()]).await?.1.is_empty());
                purged.keys_removed = cache.unlink_films(&[slug.to_string()]).await?;
                purged.films = 1;
            }
            Purge::All => {
                let mut after = String::new();
                loop {
                    let slugs = db.slugs_after(&after, SLUG_BATCH).await?;
                    let Some(last) = slugs.last().cloned() else { break };
                    purged.keys_removed += cache.unlink_films(&slugs).await?;
                    purged.films += slugs.len() as u64;
                    progress(purged.films);
                    after = last;
                }
            }
        }
        purged.listing_pages = cache.drop_pages().await?;
        purged.other_pages = cache.drop_lists().await?;
        if *what == Purge::All {
            purged.stamp_removed = Some(cache.unlink_stamp().await?);
        }
        purged.kept_pages = self.retire_kept_pages().await?;
        Ok(purged)
    }

    /// A new token, set as a write sets one (after its keys), and the wait for every server's
    /// lease: from its end on, no server answers a page kept under an older token.
    async fn retire_kept_pages(&self) -> Result<KeptPages> {
        let cache = &self.inner.cache;
        let servers = cache.token_state().await.map(|t| t.running().count()).unwrap_or(0);
        let started = Instant::now();
        let (set, token) = cache.apply(&WriteBatch::default()).await;
        let hash_removed = match (token, set) {
            (Some(token), _) => {
                cache.await_leases(&token).await;
                false
            }
            // as a writer does: without the hash, no server trusts a token it knew
            (None, Err(e)) if e.is_refusal() => {
                cache.remove(&WriteBatch::default()).await?;
                cache.outlast_leases().await;
                true
            }
            (None, Err(e)) => return Err(e.into()),
            (None, Ok(())) => return Err(CacheError::Off.into()),
        };
        let waited = started.elapsed();
        let after = cache.token_state().await.unwrap_or_default();
        let renewed = after.running().filter(|l| l.knows_current).count();
        Ok(KeptPages { servers, renewed: renewed.min(servers), waited, hash_removed })
    }

    /// What the cache holds (when Redis answers) beside the database's stamp and cache log.
    pub async fn cache_stats(&self) -> CacheReport {
        let (db, cache) = (&self.inner.db, &self.inner.cache);
        let redis = if cache.is_enabled() {
            let started = Instant::now();
            let state = match cache.ping().await {
                Ok(()) => {
                    let ping = started.elapsed();
                    cache.state().await.map(|state| Redis { ping, state })
                }
                Err(e) => Err(e),
            };
            Some(state.map_err(|e| e.to_string()))
        } else {
            None
        };
        CacheReport {
            redis,
            database: db.stamp().await.map_err(|e| e.to_string()),
            backlog: db.backlog().await.map_err(|e| e.to_string()),
            lease_length: cache.config().lease,
        }
    }

    /// This server's lease id, as `marquee cache stats` names it.
    pub fn lease_id(&self) -> &str {
        self.inner.cache.lease_id()
    }
}
