//! Redis: the only module that sends it commands. Every call is bounded by a short timeout and
//! fails open: an error or a timeout is reported to the caller as a miss (and counted, and logged
//! once per burst), and for a moment afterwards Redis is not asked at all, so an outage costs
//! visitors nothing but the database's time.

mod entry;
mod keys;
mod scripts;

pub use entry::FilmEntry;
pub use keys::Keys;
/// The film compare-and-set script, for tools that measure it against plain writes.
pub use scripts::SET_VERSIONED;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError};

use crate::config::CacheConfig;
use crate::db::Meta;
use crate::movies::Movie;
use crate::stats::{KeyKind, Outcome, Stats};
use scripts::Scripts;

/// How long Redis is left alone after a failure before it is tried again.
const BACKOFF: Duration = Duration::from_millis(500);
/// At most one error log line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Page keys swept per SSCAN step (and per UNLINK). The set holds only page keys, so a step
/// returns about this many: a million films' 41,667 pages take about 42 steps, not 417.
const SWEEP_COUNT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache is off")]
    Off,
    #[error("cache is backing off after an error")]
    BackingOff,
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Redis(#[from] RedisError),
}

#[derive(Debug, Clone)]
struct FilmWrite {
    slug: String,
    value: String,
    version: i64,
    /// Overwrite whatever is there (an entry that did not decode).
    overwrite: bool,
    /// A "no such film" marker, kept only for the negative TTL.
    gone: bool,
}

/// A batch of writes sent in ONE pipeline, each key with its own (jittered) TTL.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    films: Vec<FilmWrite>,
    page: Option<(u32, String, i64)>,
    meta: Option<Meta>,
}

impl WriteBatch {
    pub fn film(&mut self, movie: &Movie, overwrite: bool) {
        let value = entry::encode_film(movie);
        self.films.push(FilmWrite { slug: movie.slug.clone(), value, version: movie.version, overwrite, gone: false });
    }

    /// Remembers that `slug` has no film as of catalog `version`.
    pub fn gone(&mut self, slug: &str, version: i64) {
        let value = entry::encode_gone(version);
        self.films.push(FilmWrite { slug: slug.to_owned(), value, version, overwrite: false, gone: true });
    }

    pub fn page(&mut self, n: u32, slugs: &[&str], order_version: i64) {
        self.page = Some((n, entry::encode_page(slugs), order_version));
    }

    pub fn meta(&mut self, meta: Meta) {
        self.meta = Some(meta);
    }

    pub fn is_empty(&self) -> bool {
        self.films.is_empty() && self.page.is_none() && self.meta.is_none()
    }
}

impl Outcome {
    /// A deferred write's outcome from what `Cache::write` answered.
    pub fn of<T>(result: &Result<T, CacheError>) -> Self {
        match result {
            Ok(_) => Self::Written,
            Err(CacheError::Off | CacheError::BackingOff) => Self::Skipped,
            Err(_) => Self::Failed,
        }
    }
}

/// What a batch did: how many keys were written and how many refused as older than Redis's copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub written: u64,
    pub refused: u64,
}

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Option<ConnectionManager>,
    keys: Keys,
    config: CacheConfig,
    scripts: Scripts,
    stats: Arc<Stats>,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not asked.
    quiet_until: AtomicU64,
    last_log: AtomicU64,
    suppressed: AtomicU64,
}

impl Cache {
    /// Sets up the client without connecting: Redis may come up later, or never (`REDIS_URL=off`).
    pub fn new(config: CacheConfig, stats: Arc<Stats>) -> Result<Self, RedisError> {
        let conn = match &config.url {
            None => None,
            Some(url) => {
                let client = redis::Client::open(url.as_str())?;
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(200))))
                    .set_response_timeout(Some(config.timeout.max(Duration::from_millis(200))))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Some(ConnectionManager::new_lazy_with_config(client, cfg)?)
            }
        };
        let keys = Keys::new(&config.prefix);
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                keys,
                config,
                scripts: Scripts::default(),
                stats,
                started: Instant::now(),
                quiet_until: AtomicU64::new(0),
                last_log: AtomicU64::new(0),
                suppressed: AtomicU64::new(0),
            }),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.conn.is_some()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs one Redis exchange of `commands` commands under the timeout and the back-off rule.
    async fn call<T, F>(&self, commands: u64, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let Some(conn) = self.inner.conn.clone() else {
            return Err(CacheError::Off);
        };
        if self.now_ms() < self.inner.quiet_until.load(Relaxed) {
            return Err(CacheError::BackingOff);
        }
        self.inner.stats.redis_call(commands);
        let timeout = self.inner.config.timeout;
        let result = match tokio::time::timeout(timeout, f(conn)).await {
            Ok(Ok(value)) => return Ok(value),
            // Redis answered: a key of the wrong type is a bad entry, not an outage
            Ok(Err(e)) if is_wrong_type(&e) => return Err(CacheError::Redis(e)),
            Ok(Err(e)) => CacheError::Redis(e),
            Err(_) => CacheError::Timeout(timeout),
        };
        self.failed(&result);
        Err(result)
    }

    fn failed(&self, error: &CacheError) {
        let now = self.now_ms();
        self.inner.quiet_until.store(now + u64::try_from(BACKOFF.as_millis()).unwrap_or(0), Relaxed);
        self.inner.stats.redis_error();
        let last = self.inner.last_log.load(Relaxed);
        let every = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(0);
        if (last == 0 || now >= last + every)
            && self.inner.last_log.compare_exchange(last, now.max(1), Relaxed, Relaxed).is_ok()
        {
            let suppressed = self.inner.suppressed.swap(0, Relaxed);
            tracing::warn!(error = %error, suppressed, "redis unavailable; serving from the database");
        } else {
            self.inner.suppressed.fetch_add(1, Relaxed);
        }
    }

    /// GET of one page key. `Ok(None)` on a miss; a value that is not an array of slugs (or a key
    /// of another type) is a miss too.
    pub async fn page(&self, n: u32) -> Result<Option<Vec<String>>, CacheError> {
        let key = self.inner.keys.page(n);
        let decoded =
            match self.call(1, |mut c| async move { Cmd::get(key).query_async::<Option<Vec<u8>>>(&mut c).await }).await
            {
                Ok(raw) => entry::decode_page(raw.as_deref()),
                Err(CacheError::Redis(e)) if is_wrong_type(&e) => Some(Err(())),
                Err(e) => return Err(e),
            };
        if matches!(decoded, Some(Err(()))) {
            self.inner.stats.corrupt_entries(1);
        }
        let hit = matches!(decoded, Some(Ok(_)));
        self.count(KeyKind::Page, hit);
        Ok(decoded.and_then(Result::ok))
    }

    /// ONE MGET of the meta key (when asked) and the films' keys.
    pub async fn films(&self, slugs: &[String], with_meta: bool) -> Result<(Option<Meta>, Vec<FilmEntry>), CacheError> {
        let mut keys = Vec::with_capacity(slugs.len() + 1);
        if with_meta {
            keys.push(self.inner.keys.meta());
        }
        keys.extend(slugs.iter().map(|s| self.inner.keys.film(s)));
        if keys.is_empty() {
            return Ok((None, Vec::new()));
        }
        let raw: Vec<Option<Vec<u8>>> =
            self.call(1, |mut c| async move { Cmd::mget(keys).query_async(&mut c).await }).await?;
        let mut raw = raw.into_iter();
        let meta = if with_meta { raw.next().flatten().and_then(|m| entry::decode_meta(Some(&m))) } else { None };
        let films: Vec<FilmEntry> = raw.map(|r| entry::decode_film(r.as_deref())).collect();
        self.tally(&films);
        Ok((meta, films))
    }

    /// GET of one film key (a key of another type reads as a corrupt entry, to be overwritten).
    pub async fn film(&self, slug: &str) -> Result<FilmEntry, CacheError> {
        let key = self.inner.keys.film(slug);
        let entry =
            match self.call(1, |mut c| async move { Cmd::get(key).query_async::<Option<Vec<u8>>>(&mut c).await }).await
            {
                Ok(raw) => entry::decode_film(raw.as_deref()),
                Err(CacheError::Redis(e)) if is_wrong_type(&e) => FilmEntry::Missing { corrupt: true },
                Err(e) => return Err(e),
            };
        self.tally(std::slice::from_ref(&entry));
        Ok(entry)
    }

    fn tally(&self, films: &[FilmEntry]) {
        let misses = films.iter().filter(|f| matches!(f, FilmEntry::Missing { .. })).count() as u64;
        let corrupt = films.iter().filter(|f| matches!(f, FilmEntry::Missing { corrupt: true })).count() as u64;
        self.inner.stats.corrupt_entries(corrupt);
        self.inner.stats.hits(KeyKind::Film, films.len() as u64 - misses);
        self.inner.stats.misses(KeyKind::Film, misses);
    }

    fn count(&self, kind: KeyKind, hit: bool) {
        if hit { self.inner.stats.hits(kind, 1) } else { self.inner.stats.misses(kind, 1) }
    }

    /// A TTL with ±10% jitter, so that keys written together do not expire together.
    fn jitter(ttl: Duration) -> u64 {
        let secs = ttl.as_secs().max(1);
        let spread = secs / 10;
        if spread == 0 { secs } else { fastrand::u64(secs - spread..=secs + spread) }
    }

    /// Sends a batch in ONE pipeline of compare-and-set scripts.
    pub async fn write(&self, batch: WriteBatch) -> Result<Written, CacheError> {
        if batch.is_empty() {
            return Ok(Written::default());
        }
        let pipe = self.pipeline(&batch);
        let load = scripts::ALL.map(|source| {
            let mut cmd = redis::cmd("SCRIPT");
            cmd.arg("LOAD").arg(source);
            cmd
        });
        let commands = batch.films.len() as u64 + u64::from(batch.page.is_some()) + u64::from(batch.meta.is_some());
        let results: Vec<i64> = self
            .call(commands, |mut c| async move {
                match pipe.query_async(&mut c).await {
                    Err(e) if e.code() == Some("NOSCRIPT") => {
                        // Redis restarted and forgot the scripts: load them and send the batch again.
                        for cmd in load {
                            let _: String = cmd.query_async(&mut c).await?;
                        }
                        pipe.query_async(&mut c).await
                    }
                    other => other,
                }
            })
            .await?;
        let written = results.iter().filter(|&&r| r == 1).count() as u64;
        let refused = results.len() as u64 - written;
        self.inner.stats.stale_writes_refused(refused);
        Ok(Written { written, refused })
    }

    fn pipeline(&self, batch: &WriteBatch) -> Pipeline {
        let Inner { keys, config, scripts, .. } = &*self.inner;
        let mut pipe = redis::pipe();
        if let Some(meta) = &batch.meta {
            let ttl = Self::jitter(config.movie_ttl);
            evalsha(&mut pipe, &scripts.set_versioned, &[keys.meta()])
                .arg(entry::encode_meta(meta))
                .arg(meta.version)
                .arg(ttl)
                .arg("0");
        }
        for f in &batch.films {
            let ttl = Self::jitter(if f.gone { config.negative_ttl } else { config.movie_ttl });
            evalsha(&mut pipe, &scripts.set_versioned, &[keys.film(&f.slug)])
                .arg(&f.value)
                .arg(f.version)
                .arg(ttl)
                .arg(if f.overwrite { "1" } else { "0" });
        }
        if let Some((n, value, order_version)) = &batch.page {
            let ttl = Self::jitter(config.page_ttl);
            evalsha(&mut pipe, &scripts.set_page, &[keys.page(*n), keys.meta(), keys.pages()])
                .arg(value)
                .arg(*order_version)
                .arg(ttl)
                .arg(config.page_ttl.as_secs() * 2);
        }
        pipe
    }

    /// Drops every listing page key: SSCAN over the set of written page keys, each
    /// step's keys removed with UNLINK and SREM (COUNT 1000). The cost depends on the number of pages cached,
    /// not on the number of keys in Redis. Returns the number of keys swept.
    pub async fn drop_pages(&self) -> Result<u64, CacheError> {
        let set = self.inner.keys.pages();
        let mut cursor = 0u64;
        let mut swept = 0u64;
        loop {
            let set_key = set.clone();
            let (next, members): (u64, Vec<String>) = self
                .call(1, |mut c| async move {
                    redis::cmd("SSCAN")
                        .arg(&set_key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SWEEP_COUNT)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !members.is_empty() {
                let set_key = set.clone();
                let n = members.len() as u64;
                self.call(2, |mut c| async move {
                    let mut pipe = redis::pipe();
                    pipe.cmd("UNLINK").arg(&members).ignore();
                    pipe.cmd("SREM").arg(&set_key).arg(&members).ignore();
                    pipe.query_async::<()>(&mut c).await
                })
                .await?;
                swept += n;
            }
            if next == 0 {
                return Ok(swept);
            }
            cursor = next;
        }
    }

    /// PING, for the readiness check.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.call(1, |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ()) }).await
    }
}

/// WRONGTYPE: the key holds a hash, list, … where a string was expected.
fn is_wrong_type(e: &RedisError) -> bool {
    e.code() == Some("WRONGTYPE")
}

fn evalsha<'a>(pipe: &'a mut Pipeline, script: &redis::Script, keys: &[String]) -> &'a mut Pipeline {
    pipe.cmd("EVALSHA").arg(script.get_hash()).arg(keys.len()).arg(keys)
}
