//! The fail-open client: one Redis exchange at a time under the timeout and the back-off rule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::CacheError;
use super::breaker::{Admit, Breaker};
use crate::config::{CacheConfig, RedisTarget};
use crate::stats::Stats;

/// At most one error log line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// One Redis or a Redis Cluster, behind the same commands. Both reconnect by themselves; the
/// cluster connection also follows the cluster's topology (MOVED/ASK redirects, slot refreshes)
/// and splits a multi-key read such as MGET by slot, reassembling the answer in key order.
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

pub struct Client {
    conn: Option<std::sync::RwLock<Connection>>,
    /// What builds a cluster connection again (see `renew`).
    cluster: Option<(ClusterClient, ClusterConfig)>,
    /// When the cluster connection was last built again (ms since `started`).
    renewed: AtomicU64,
    timeout: Duration,
    stats: Arc<Stats>,
    started: Instant,
    /// When Redis is left alone (times in milliseconds since `started`).
    breaker: Breaker,
    last_log: AtomicU64,
    suppressed: AtomicU64,
    /// Connections lost so far (refused, reset, dropped): Redis may have restarted (see `trust`).
    lost: AtomicU64,
}

impl Client {
    pub fn new(config: &CacheConfig, stats: Arc<Stats>) -> Result<Self, RedisError> {
        // The connection's own limits sit above the per-call timeout, which is what visitors feel:
        // a reconnect may take a little longer than one call without failing the calls after it.
        let floor = config.timeout.max(Duration::from_millis(200));
        let mut cluster = None;
        let conn = match &config.redis {
            None => None,
            Some(RedisTarget::Single(url)) => {
                let client = redis::Client::open(url.as_str())?;
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(floor))
                    .set_response_timeout(Some(floor))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Some(Connection::Single(ConnectionManager::new_lazy_with_config(client, cfg)?))
            }
            Some(RedisTarget::Cluster(seeds)) => {
                let client = ClusterClient::builder(seeds.iter().map(String::as_str))
                    .connection_timeout(floor)
                    .response_timeout(floor)
                    .retries(1)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .build()?;
                // Connects in the background: the cluster may come up after the site does.
                let cfg = ClusterConfig::new().set_connection_timeout(floor).set_response_timeout(floor);
                let conn = Connection::Cluster(client.get_pending_async_connection_with_config(cfg.clone()));
                cluster = Some((client, cfg));
                Some(conn)
            }
        };
        Ok(Self {
            conn: conn.map(std::sync::RwLock::new),
            cluster,
            renewed: AtomicU64::new(0),
            timeout: config.timeout,
            stats,
            started: Instant::now(),
            breaker: Breaker::new(config.breaker),
            last_log: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.conn.is_some()
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// How many times a connection to Redis was lost (refused, reset, dropped).
    pub fn lost(&self) -> u64 {
        self.lost.load(Relaxed)
    }

    fn connection(&self) -> Option<Connection> {
        self.conn.as_ref().map(|c| c.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    /// A cluster node that was down answers again, but the cluster connection may go on failing
    /// for its slots: it redirects a MOVED reply at once, before its own slot refresh, and gives up
    /// when the node's connection is not back; its reconnection to a node killed under load can
    /// hang, every call to that node's slots timing out. A new connection reads the slots afresh
    /// and connects to every node: built on such failures, at most once every `RENEW_EVERY`.
    fn renew(&self) {
        const RENEW_EVERY: u64 = 2_000;
        let Some((client, cfg)) = &self.cluster else { return };
        let (now, last) = (self.now_ms(), self.renewed.load(Relaxed));
        if (last != 0 && now < last + RENEW_EVERY)
            || self.renewed.compare_exchange(last, now.max(1), Relaxed, Relaxed).is_err()
        {
            return;
        }
        if let Some(conn) = &self.conn {
            let fresh = Connection::Cluster(client.get_pending_async_connection_with_config(cfg.clone()));
            *conn.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            tracing::info!("redis cluster: calls failing; connecting afresh");
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    /// Runs one Redis exchange of `commands` commands under the timeout and the back-off rule.
    pub async fn call<T, F>(&self, commands: u64, f: impl FnOnce(Connection) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        self.exchange(Some(commands), self.timeout, f).await
    }

    /// `call` for the servers' coordination (leases, a writer waiting for them): counted apart
    /// from the round trips of requests and their cache writes (`Stats::lease_call`).
    pub async fn call_coordination<T, F>(&self, f: impl FnOnce(Connection) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        self.exchange(None, self.timeout, f).await
    }

    /// `call_coordination` with no visitor waiting on it (the relay's check of what Redis is):
    /// allowed `PATIENT` at least, so that a busy moment does not leave the check unanswered.
    pub async fn call_patient<T, F>(&self, f: impl FnOnce(Connection) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        const PATIENT: Duration = Duration::from_secs(1);
        self.exchange(None, self.timeout.max(PATIENT), f).await
    }

    async fn exchange<T, F>(
        &self,
        commands: Option<u64>,
        timeout: Duration,
        f: impl FnOnce(Connection) -> F,
    ) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let Some(conn) = self.connection() else {
            return Err(CacheError::Off);
        };
        let probe = match self.breaker.admit(self.now_ms()) {
            Admit::Skip => return Err(CacheError::BackingOff),
            Admit::Probe => true,
            Admit::Call => false,
        };
        match commands {
            Some(n) => self.stats.redis_call(n),
            None => self.stats.lease_call(),
        }
        let result = match tokio::time::timeout(timeout, f(conn)).await {
            Ok(Ok(value)) => {
                self.breaker.record(self.now_ms(), true, probe);
                return Ok(value);
            }
            // Redis answered: a key of the wrong type is a bad entry, a refused write is Redis
            // out of memory or read-only; neither is an outage
            Ok(Err(e)) if is_refusal(&e) => {
                self.breaker.record(self.now_ms(), true, probe);
                return Err(CacheError::Redis(e));
            }
            Ok(Err(e)) => {
                self.note_loss(&e);
                CacheError::Redis(e)
            }
            Err(_) => CacheError::Timeout(timeout),
        };
        self.failed(&result, probe);
        Err(result)
    }

    /// One exchange under the timeout, sent even while the breaker leaves Redis alone: for the
    /// rare call that must be tried whatever the calls before it met (a writer's new token).
    /// Its outcome is not counted by the breaker.
    pub async fn call_anyway<T, F>(&self, commands: u64, f: impl FnOnce(Connection) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let Some(conn) = self.connection() else {
            return Err(CacheError::Off);
        };
        self.stats.redis_call(commands);
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.note_loss(&e);
                Err(CacheError::Redis(e))
            }
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        }
    }

    /// Counts `e` when it is a lost connection. Every reconnection follows an error some call
    /// saw, so counting every call's keeps the count true: the next call may reach a Redis that
    /// restarted meanwhile (see `trust`).
    fn note_loss(&self, e: &RedisError) {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            let lost = self.lost.fetch_add(1, Relaxed) + 1;
            tracing::debug!(lost, error = %e, "redis connection lost");
        }
    }

    fn failed(&self, error: &CacheError, probe: bool) {
        self.renew();
        let now = self.now_ms();
        let opened = self.breaker.record(now, false, probe);
        self.stats.redis_error();
        let last = self.last_log.load(Relaxed);
        if (last == 0 || now >= last + millis(LOG_EVERY))
            && self.last_log.compare_exchange(last, now.max(1), Relaxed, Relaxed).is_ok()
        {
            let suppressed = self.suppressed.swap(0, Relaxed);
            tracing::warn!(error = %error, suppressed, opened, "redis unavailable; serving from the database");
        } else {
            self.suppressed.fetch_add(1, Relaxed);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// WRONGTYPE: the key holds a hash, list, … where a string was expected.
pub fn is_wrong_type(e: &RedisError) -> bool {
    e.code() == Some("WRONGTYPE")
}

/// An error reply from a Redis that is up and answering reads: a key of the wrong type, a write
/// refused for memory (`maxmemory` with `noeviction`) or by a read-only replica. A script's write
/// refused for memory comes back as an OOM error naming the script; a pipeline's, as the list of
/// its commands' errors, each of which must be a refusal.
pub fn is_refusal(e: &RedisError) -> bool {
    let refuses = |code: &str| matches!(code, "WRONGTYPE" | "OOM" | "READONLY");
    match e.clone().into_server_errors() {
        Some(errors) => !errors.is_empty() && errors.iter().all(|(_, error)| refuses(error.code())),
        None => e.code().is_some_and(refuses),
    }
}
