//! The fail-open client: one Redis exchange at a time under the timeout and the back-off rule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::CacheError;
use crate::config::CacheConfig;
use crate::stats::Stats;

/// How long Redis is left alone after a failure before it is tried again.
const BACKOFF: Duration = Duration::from_millis(500);
/// At most one error log line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Client {
    conn: Option<ConnectionManager>,
    timeout: Duration,
    stats: Arc<Stats>,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not asked.
    quiet_until: AtomicU64,
    last_log: AtomicU64,
    suppressed: AtomicU64,
}

impl Client {
    pub fn new(config: &CacheConfig, stats: Arc<Stats>) -> Result<Self, RedisError> {
        let conn = match &config.url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url.as_str())?;
                let floor = config.timeout.max(Duration::from_millis(200));
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(floor))
                    .set_response_timeout(Some(floor))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Some(ConnectionManager::new_lazy_with_config(client, cfg)?)
            }
        };
        Ok(Self {
            conn,
            timeout: config.timeout,
            stats,
            started: Instant::now(),
            quiet_until: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.conn.is_some()
    }

    fn now_ms(&self) -> u64 {
        millis(self.started.elapsed())
    }

    /// Runs one Redis exchange of `commands` commands under the timeout and the back-off rule.
    pub async fn call<T, F>(&self, commands: u64, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let Some(conn) = self.conn.clone() else {
            return Err(CacheError::Off);
        };
        if self.now_ms() < self.quiet_until.load(Relaxed) {
            return Err(CacheError::BackingOff);
        }
        self.stats.redis_call(commands);
        let result = match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(value)) => return Ok(value),
            // Redis answered: a key of the wrong type is a bad entry, not an outage
            Ok(Err(e)) if is_wrong_type(&e) => return Err(CacheError::Redis(e)),
            Ok(Err(e)) => CacheError::Redis(e),
            Err(_) => CacheError::Timeout(self.timeout),
        };
        self.failed(&result);
        Err(result)
    }

    fn failed(&self, error: &CacheError) {
        let now = self.now_ms();
        self.quiet_until.store(now + millis(BACKOFF), Relaxed);
        self.stats.redis_error();
        let last = self.last_log.load(Relaxed);
        if (last == 0 || now >= last + millis(LOG_EVERY))
            && self.last_log.compare_exchange(last, now.max(1), Relaxed, Relaxed).is_ok()
        {
            let suppressed = self.suppressed.swap(0, Relaxed);
            tracing::warn!(error = %error, suppressed, "redis unavailable; serving from the database");
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
