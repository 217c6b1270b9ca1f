//! The service's own counters. Each app instance counts for itself (so tests can read exact
//! figures per request); `/metrics` publishes them through the `metrics` recorder.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Which kind of Redis key a hit or miss was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Page,
    Movie,
    /// A film's related films (`movies:related:{slug}`).
    Related,
}

/// How a deferred cache write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// Not sent: Redis is off, or backing off after an error (not a failure of its own).
    Skipped,
    Failed,
}

#[derive(Debug, Default)]
pub struct Stats {
    db_queries: AtomicU64,
    page_hits: AtomicU64,
    page_misses: AtomicU64,
    movie_hits: AtomicU64,
    movie_misses: AtomicU64,
    related_hits: AtomicU64,
    related_misses: AtomicU64,
    coalesced_waits: AtomicU64,
    stale_writes_refused: AtomicU64,
    deferred_pending: AtomicI64,
    deferred_done: AtomicU64,
    deferred_failed: AtomicU64,
    deferred_skipped: AtomicU64,
    redis_errors: AtomicU64,
    redis_round_trips: AtomicU64,
    redis_commands: AtomicU64,
    corrupt_entries: AtomicU64,
    kept_hits: AtomicU64,
    kept_misses: AtomicU64,
    cache_log_pending: AtomicI64,
    /// Milliseconds; -1 when the log is empty.
    cache_log_oldest_ms: AtomicI64,
    cache_log_applied: AtomicU64,
    lease_calls: AtomicU64,
    lease_held: AtomicU64,
    pages_from_redis: AtomicU64,
    pages_from_database: AtomicU64,
    db_pool_waits: AtomicU64,
    db_heavy_shed: AtomicU64,
}

/// A copy of every counter at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Snapshot {
    pub db_queries: u64,
    pub page_hits: u64,
    pub page_misses: u64,
    pub movie_hits: u64,
    pub movie_misses: u64,
    pub related_hits: u64,
    pub related_misses: u64,
    pub coalesced_waits: u64,
    pub stale_writes_refused: u64,
    pub deferred_pending: i64,
    pub deferred_done: u64,
    pub deferred_failed: u64,
    pub deferred_skipped: u64,
    pub redis_errors: u64,
    /// Exchanges with Redis (a pipeline is one).
    pub redis_round_trips: u64,
    /// Commands sent to Redis (a pipeline counts each of its commands).
    pub redis_commands: u64,
    pub corrupt_entries: u64,
    /// Pages answered from the rendered pages kept in memory (the page tier), and pages rendered
    /// because none was kept for them.
    pub kept_hits: u64,
    pub kept_misses: u64,
    /// Rows of the cache log not applied yet, at the relay's last look.
    pub cache_log_pending: i64,
    /// The age of the oldest of them in milliseconds (-1: none).
    pub cache_log_oldest_ms: i64,
    /// Rows the relay applied (the writers' own are not counted).
    pub cache_log_applied: u64,
    /// Round trips of the servers' coordination: lease renewals, writers waiting for them.
    pub lease_calls: u64,
    /// Whether this server holds a lease: its kept pages are answered with no round trip.
    pub lease_held: bool,
    /// Pages rendered by a page handler, by where their data came from: wholly from Redis, or
    /// with at least one database read (its own, or one it shared). With `kept_hits`, every page
    /// answered 200, by the tier that answered it.
    pub pages_from_redis: u64,
    pub pages_from_database: u64,
    /// Database queries that began with every connection of the pool in use (each waits for one).
    pub db_pool_waits: u64,
    /// Heavy reads refused: no connection of their own budget within its wait, or stopped by the
    /// statement timeout (see `db::HeavyBudget`); each is a 503 with `Retry-After`.
    pub db_heavy_shed: u64,
}

impl Stats {
    pub fn db_query(&self) {
        self.db_queries.fetch_add(1, Relaxed);
    }

    pub fn hits(&self, kind: KeyKind, n: u64) {
        match kind {
            KeyKind::Page => self.page_hits.fetch_add(n, Relaxed),
            KeyKind::Movie => self.movie_hits.fetch_add(n, Relaxed),
            KeyKind::Related => self.related_hits.fetch_add(n, Relaxed),
        };
    }

    pub fn misses(&self, kind: KeyKind, n: u64) {
        match kind {
            KeyKind::Page => self.page_misses.fetch_add(n, Relaxed),
            KeyKind::Movie => self.movie_misses.fetch_add(n, Relaxed),
            KeyKind::Related => self.related_misses.fetch_add(n, Relaxed),
        };
    }

    pub fn coalesced_wait(&self) {
        self.coalesced_waits.fetch_add(1, Relaxed);
    }

    pub fn stale_writes_refused(&self, n: u64) {
        self.stale_writes_refused.fetch_add(n, Relaxed);
    }

    pub fn deferred_started(&self) {
        self.deferred_pending.fetch_add(1, Relaxed);
    }

    pub fn deferred_finished(&self, outcome: Outcome) {
        self.deferred_pending.fetch_sub(1, Relaxed);
        match outcome {
            Outcome::Written => &self.deferred_done,
            Outcome::Skipped => &self.deferred_skipped,
            Outcome::Failed => &self.deferred_failed,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn redis_error(&self) {
        self.redis_errors.fetch_add(1, Relaxed);
    }

    pub fn redis_call(&self, commands: u64) {
        self.redis_round_trips.fetch_add(1, Relaxed);
        self.redis_commands.fetch_add(commands, Relaxed);
    }

    /// A round trip of the servers' coordination (see `cache::lease`), not of a request.
    pub fn lease_call(&self) {
        self.lease_calls.fetch_add(1, Relaxed);
    }

    pub fn lease_held(&self, held: bool) {
        self.lease_held.store(u64::from(held), Relaxed);
    }

    pub fn corrupt_entries(&self, n: u64) {
        self.corrupt_entries.fetch_add(n, Relaxed);
    }

    /// A page a handler rendered: `from_redis` when its data came wholly from Redis.
    pub fn page_rendered(&self, from_redis: bool) {
        if from_redis { &self.pages_from_redis } else { &self.pages_from_database }.fetch_add(1, Relaxed);
    }

    pub fn db_pool_wait(&self) {
        self.db_pool_waits.fetch_add(1, Relaxed);
    }

    pub fn db_heavy_shed(&self) {
        self.db_heavy_shed.fetch_add(1, Relaxed);
    }

    pub fn kept(&self, hit: bool) {
        if hit { &self.kept_hits } else { &self.kept_misses }.fetch_add(1, Relaxed);
    }

    pub fn cache_log(&self, backlog: crate::db::Backlog) {
        self.cache_log_pending.store(backlog.pending, Relaxed);
        let oldest = backlog.oldest.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.cache_log_oldest_ms.store(oldest, Relaxed);
    }

    pub fn cache_log_applied(&self, n: u64) {
        self.cache_log_applied.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            db_queries: self.db_queries.load(Relaxed),
            page_hits: self.page_hits.load(Relaxed),
            page_misses: self.page_misses.load(Relaxed),
            movie_hits: self.movie_hits.load(Relaxed),
            movie_misses: self.movie_misses.load(Relaxed),
            related_hits: self.related_hits.load(Relaxed),
            related_misses: self.related_misses.load(Relaxed),
            coalesced_waits: self.coalesced_waits.load(Relaxed),
            stale_writes_refused: self.stale_writes_refused.load(Relaxed),
            deferred_pending: self.deferred_pending.load(Relaxed),
            deferred_done: self.deferred_done.load(Relaxed),
            deferred_failed: self.deferred_failed.load(Relaxed),
            deferred_skipped: self.deferred_skipped.load(Relaxed),
            redis_errors: self.redis_errors.load(Relaxed),
            redis_round_trips: self.redis_round_trips.load(Relaxed),
            redis_commands: self.redis_commands.load(Relaxed),
            corrupt_entries: self.corrupt_entries.load(Relaxed),
            kept_hits: self.kept_hits.load(Relaxed),
            kept_misses: self.kept_misses.load(Relaxed),
            cache_log_pending: self.cache_log_pending.load(Relaxed),
            cache_log_oldest_ms: self.cache_log_oldest_ms.load(Relaxed),
            cache_log_applied: self.cache_log_applied.load(Relaxed),
            lease_calls: self.lease_calls.load(Relaxed),
            lease_held: self.lease_held.load(Relaxed) == 1,
            pages_from_redis: self.pages_from_redis.load(Relaxed),
            pages_from_database: self.pages_from_database.load(Relaxed),
            db_pool_waits: self.db_pool_waits.load(Relaxed),
            db_heavy_shed: self.db_heavy_shed.load(Relaxed),
        }
    }

    /// Hands the current values to the `metrics` recorder, just before it renders them.
    pub fn publish(&self) {
        let s = self.snapshot();
        metrics::counter!("marquee_db_queries_total").absolute(s.db_queries);
        metrics::counter!("marquee_db_pool_waits_total").absolute(s.db_pool_waits);
        metrics::counter!("marquee_db_heavy_shed_total").absolute(s.db_heavy_shed);
        // pages rendered, by where their data came from (the page tier's own answers are its hits)
        metrics::counter!("marquee_pages_rendered_total", "from" => "redis").absolute(s.pages_from_redis);
        metrics::counter!("marquee_pages_rendered_total", "from" => "database").absolute(s.pages_from_database);
        // the tiers: rendered pages in this server's memory, then keys in Redis
        metrics::counter!("marquee_cache_hits_total", "tier" => "memory", "kind" => "page").absolute(s.kept_hits);
        metrics::counter!("marquee_cache_misses_total", "tier" => "memory", "kind" => "page").absolute(s.kept_misses);
        metrics::counter!("marquee_cache_hits_total", "tier" => "redis", "kind" => "page").absolute(s.page_hits);
        metrics::counter!("marquee_cache_hits_total", "tier" => "redis", "kind" => "movie").absolute(s.movie_hits);
        metrics::counter!("marquee_cache_hits_total", "tier" => "redis", "kind" => "related").absolute(s.related_hits);
        metrics::counter!("marquee_cache_misses_total", "tier" => "redis", "kind" => "page").absolute(s.page_misses);
        metrics::counter!("marquee_cache_misses_total", "tier" => "redis", "kind" => "movie").absolute(s.movie_misses);
        metrics::counter!("marquee_cache_misses_total", "tier" => "redis", "kind" => "related")
            .absolute(s.related_misses);
        metrics::counter!("marquee_coalesced_waits_total").absolute(s.coalesced_waits);
        metrics::counter!("marquee_stale_writes_refused_total").absolute(s.stale_writes_refused);
        metrics::gauge!("marquee_deferred_writes_pending").set(s.deferred_pending as f64);
        metrics::counter!("marquee_deferred_writes_total", "outcome" => "ok").absolute(s.deferred_done);
        metrics::counter!("marquee_deferred_writes_total", "outcome" => "failed").absolute(s.deferred_failed);
        metrics::counter!("marquee_deferred_writes_total", "outcome" => "skipped").absolute(s.deferred_skipped);
        metrics::counter!("marquee_redis_errors_total").absolute(s.redis_errors);
        metrics::counter!("marquee_redis_round_trips_total").absolute(s.redis_round_trips);
        metrics::counter!("marquee_redis_commands_total").absolute(s.redis_commands);
        metrics::counter!("marquee_cache_corrupt_entries_total").absolute(s.corrupt_entries);
        metrics::gauge!("marquee_cache_log_pending").set(s.cache_log_pending as f64);
        let oldest = if s.cache_log_oldest_ms < 0 { 0.0 } else { s.cache_log_oldest_ms as f64 / 1000.0 };
        metrics::gauge!("marquee_cache_log_oldest_seconds").set(oldest);
        metrics::counter!("marquee_cache_log_applied_total").absolute(s.cache_log_applied);
        metrics::counter!("marquee_cache_lease_round_trips_total").absolute(s.lease_calls);
        metrics::gauge!("marquee_cache_lease_held").set(if s.lease_held { 1.0 } else { 0.0 });
    }
}
