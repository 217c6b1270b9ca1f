//! Writes: a batch of keys, each set by the compare-and-set script with its own (jittered) TTL,
//! so that an older copy never replaces a newer one. On one Redis the batch is ONE pipeline; on a
//! cluster, whose pipelines may not cross slots, its commands go out at once as single-key
//! commands on the multiplexed connection (one round trip of wall time, spread over the nodes).

use std::time::Duration;

use futures_util::future::join_all;
use redis::{Cmd, RedisError};

use super::client::Connection;
use super::keys::PageOf;
use super::{Cache, CacheError, entry, scripts};
use crate::db::Stamp;
use crate::movies::Movie;

#[derive(Debug, Clone)]
struct MovieWrite {
    slug: String,
    value: String,
    version: i64,
    /// The unreadable bytes the reader saw: replaced whatever their version says, but only while
    /// the key still holds exactly them (a newer entry written meanwhile is kept).
    replacing: Option<Vec<u8>>,
    /// A "no such film" marker, kept only for the negative TTL.
    gone: bool,
}

/// What to write at once: films, at most one page of slugs, at most one stamp.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    movies: Vec<MovieWrite>,
    /// The page, its value and its version.
    page: Option<(PageOf, String, i64)>,
    stamp: Option<Stamp>,
    /// When the rows were read (Unix ms): when the stamp was set, unless said (`read_at`).
    read_at: u64,
}

impl WriteBatch {
    /// A film to store; `replacing` the unreadable bytes its reader found in the key, if any.
    pub fn movie(&mut self, movie: &Movie, replacing: Option<Vec<u8>>) {
        let value = entry::encode_movie(movie);
        let version = movie.version;
        self.movies.push(MovieWrite { slug: movie.slug.clone(), value, version, replacing, gone: false });
    }

    /// Remembers that `slug` has no film as of catalog `version`.
    pub fn gone(&mut self, slug: &str, version: i64) {
        let value = entry::encode_gone(version);
        self.movies.push(MovieWrite { slug: slug.to_owned(), value, version, replacing: None, gone: true });
    }

    /// The page `of` holds `slugs`, read at `version`, with its `count` (see `CachedPage`).
    pub fn page(&mut self, of: PageOf, slugs: &[&str], version: i64, count: Option<i64>) {
        self.page = Some((of, entry::encode_page(slugs, version, count), version));
    }

    /// The catalog's stamp the batch's rows were read with (or written at), just read.
    pub fn stamp(&mut self, stamp: Stamp) {
        self.stamp = Some(stamp);
        self.read_at = unix_ms(std::time::SystemTime::now());
    }

    /// The read of the batch's rows began at `at`: what a film's empty key judges it by (see
    /// `Empty`).
    pub fn read_at(&mut self, at: std::time::SystemTime) {
        self.read_at = unix_ms(at);
    }

    pub fn is_empty(&self) -> bool {
        self.movies.is_empty() && self.page.is_none() && self.stamp.is_none()
    }
}

/// A TTL between 90% and 100% of the setting, so that keys written together do not expire
/// together. Jitter only shortens: the setting is the longest any entry lives.
pub(super) fn jitter(ttl: Duration) -> u64 {
    let secs = ttl.as_secs().max(1);
    fastrand::u64(secs - secs / 10..=secs)
}

/// One compare-and-set of one key, or the new token: sent as EVALSHA, or as EVAL when Redis has
/// forgotten the script (a restart, a failover, a node added to the cluster), which also teaches
/// it again.
struct Put {
    key: String,
    args: Args,
}

enum Args {
    /// value, version, ttl, replacing, the bytes it replaces
    Versioned(Vec<u8>, i64, u64, &'static str, Vec<u8>),
    /// a film's: the same, and what may refuse it when its key is empty
    Film(Vec<u8>, i64, u64, &'static str, Vec<u8>, Empty),
    /// the token, only if there is none
    Token(String, bool),
}

/// When a film's key is empty, it may have held something newer than the rows a batch carries (a
/// "gone" marker that expired, a newer copy evicted, while the batch's bytes sat on a stalled
/// connection): the write is refused when its rows were read before the stamp Redis holds, or
/// when Redis holds no stamp (it lost everything: nothing tells how old the read is) — one Redis:
/// the script reads the stamp too; a cluster's scripts touch one key —, or longer ago than a
/// marker is sure to live. Hosts' clocks must agree within that.
#[derive(Clone)]
struct Empty {
    /// The stamp's key, on one Redis.
    stamp: Option<String>,
    /// The catalog version the rows were read at.
    read_version: i64,
    read_at: u64,
    max_age_ms: u64,
}

impl Put {
    fn token(key: String, token: &str, only_if_none: bool) -> Self {
        Self { key, args: Args::Token(token.to_owned(), only_if_none) }
    }

    fn cmd(&self, sha_or_source: &str, eval: &str) -> Cmd {
        let mut cmd = redis::cmd(eval);
        cmd.arg(sha_or_source);
        match &self.args {
            Args::Film(.., Empty { stamp: Some(stamp), .. }) => cmd.arg(2).arg(&self.key).arg(stamp),
            _ => cmd.arg(1).arg(&self.key),
        };
        match &self.args {
            Args::Versioned(value, version, ttl, replacing, seen) => {
                cmd.arg(value).arg(version).arg(ttl).arg(*replacing).arg(seen)
            }
            Args::Film(value, version, ttl, replacing, seen, empty) => cmd
                .arg(value)
                .arg(version)
                .arg(ttl)
                .arg(*replacing)
                .arg(seen)
                .arg(empty.read_version)
                .arg(empty.read_at)
                .arg(empty.max_age_ms),
            Args::Token(token, only_if_none) => cmd.arg(token).arg(if *only_if_none { "1" } else { "0" }),
        };
        cmd
    }
}

impl Cache {
    /// Sends a batch read from the database (a read's write-back): its compare-and-set scripts,
    /// then the page's entry in the set of page keys the sweep walks (always after the page
    /// itself: see `sweep`).
    pub async fn write(&self, batch: &WriteBatch) -> Result<(), CacheError> {
        self.trusted()?;
        self.send(batch, None).await
    }

    /// Sends a write's batch (a writer's, or the cache log's), then a new token, last, so
    /// that a reader who sees the new token sees the write's keys too: every page a server keeps
    /// rendered under the old token is a miss from then on, on every server.
    ///
    /// When the batch fails (a cluster node down, a timeout), some of its keys may have been
    /// written, on nodes still up: a new token is still set on its own if it can be, so that no
    /// server goes on answering from pages rendered from the older copies. What the batch did not
    /// write is the cache log's to apply (and its relay sets a new token again).
    ///
    /// Returns what was sent, and the new token when one was set: the writer then waits for the
    /// servers' leases (`await_leases`) before it is answered.
    pub async fn apply(&self, batch: &WriteBatch) -> (Result<(), CacheError>, Option<String>) {
        let key = self.inner.keys.token();
        let token = fastrand::u64(..).to_string();
        let sent = self.send(batch, Some((key.clone(), token.clone()))).await;
        let token = match &sent {
            // the keys and the token were written, on a master a replica may not have caught up with
            Ok(()) | Err(CacheError::NotReplicated { .. }) => Some(token),
            Err(CacheError::Off | CacheError::BackingOff | CacheError::Unconfirmed) => None,
            Err(_) => {
                let token = fastrand::u64(..).to_string();
                let set = set_token(key, &token, false);
                // even if the failure just opened the breaker
                let set = self.inner.client.call_anyway(1, |mut c| async move { set.query_async::<()>(&mut c).await });
                set.await.is_ok().then_some(token)
            }
        };
        (sent, token)
    }

    async fn send(&self, batch: &WriteBatch, token: Option<(String, String)>) -> Result<(), CacheError> {
        if batch.is_empty() && token.is_none() {
            return Ok(());
        }
        let puts = self.puts(batch, token.is_some());
        let keys = &self.inner.keys;
        let listed = batch.page.as_ref().and_then(|(of, ..)| Some(self.listed(keys.listed_in(of)?, keys.page_of(of))));
        // a write's batch (it has a token) is taken once every replica has it: its cache log rows
        // are not counted applied before (see `WaitFor`)
        let wait = token.as_ref().and_then(|_| self.wait_for());
        let commands = puts.len() as u64
            + if listed.is_some() { 2 } else { 0 }
            + u64::from(token.is_some())
            + u64::from(wait.is_some());
        let token = token.map(|(key, token)| Put::token(key, &token, false));
        let sha = self.inner.scripts.set_versioned.get_hash().to_owned();
        let mut results: Vec<i64> = self
            .inner
            .client
            .call(commands, |c| async move {
                if c.is_cluster() {
                    let sent = join_all(puts.iter().map(|p| put_one(c.clone(), p, &sha))).await;
                    let results = sent.into_iter().collect::<Result<Vec<i64>, _>>()?;
                    if let Some(listed) = listed {
                        // both on the set's key: one slot, so one pipeline
                        let mut pipe = redis::pipe();
                        for cmd in listed {
                            pipe.add_command(cmd).ignore();
                        }
                        pipe.query_async::<()>(&mut c.clone()).await?;
                    }
                    // after every key of the batch has been written
                    if let Some(token) = &token {
                        put_one(c.clone(), token, &sha).await?;
                    }
                    let mut results = results;
                    if let Some(wait) = wait {
                        // to every master, on the connections the keys went by: the fewest acks
                        results.push(wait.cmd().query_async(&mut c.clone()).await?);
                    }
                    Ok(results)
                } else {
                    put_pipelined(c, &puts, listed, token.as_ref(), wait, &sha).await
                }
            })
            .await?;
        if let Some(wait) = wait {
            let acked = u64::try_from(results.pop().unwrap_or(0)).unwrap_or(0);
            if acked < wait.replicas {
                return Err(CacheError::NotReplicated { acked, replicas: wait.replicas });
            }
        }
        // refused: Redis held something newer
        let refused = results.iter().filter(|&&r| r != 1).count() as u64;
        self.inner.stats.stale_writes_refused(refused);
        Ok(())
    }

    /// What a write waits for: the replicas every master had at the relay's last look, within
    /// half the call's timeout (none without replicas: `WAIT` would only time out).
    fn wait_for(&self) -> Option<WaitFor> {
        let replicas = self.inner.replicas.load(std::sync::atomic::Ordering::Relaxed);
        let ms = u64::try_from(self.inner.config.timeout.as_millis() / 2).unwrap_or(u64::MAX).max(1);
        (replicas > 0).then_some(WaitFor { replicas, ms })
    }

    /// Whether every replica (see `wait_for`) has taken what this server sent so far: `true` with
    /// none.
    pub(super) async fn replicated(&self) -> bool {
        let Some(wait) = self.wait_for() else { return true };
        let acked =
            self.inner.client.call_coordination(|mut c| async move { wait.cmd().query_async::<u64>(&mut c).await });
        acked.await.is_ok_and(|acked| acked >= wait.replicas)
    }

    /// UNLINKs the film keys of `batch`, the stamp and the token: what a writer does when Redis
    /// refuses to take a newer copy (out of memory, read-only), so that the older copy is not read
    /// meanwhile, nor any page rendered from it. UNLINK needs no memory. Without the stamp every
    /// cached page (a list's, a search's, related films) is a miss, so a change of what a page
    /// holds is not hidden behind old pages either.
    pub async fn remove(&self, batch: &WriteBatch) -> Result<(), CacheError> {
        let keys = &self.inner.keys;
        let mut names: Vec<String> = batch.movies.iter().map(|m| keys.movie(&m.slug)).collect();
        names.push(keys.stamp());
        let unlink = |names: Vec<String>| async move {
            self.inner
                .client
                .call(1, |mut c| async move { redis::cmd("UNLINK").arg(&names).query_async::<()>(&mut c).await })
                .await
        };
        unlink(names).await?;
        // after the keys (on a cluster they may live on other nodes): a reader who finds no token
        // sets a new one and renders from what it reads next, which must not be the older copy.
        // The leases went with the hash: the writer then outlasts them (`outlast_leases`).
        unlink(vec![keys.token()]).await
    }

    /// The batch's compare-and-sets. A read's (`written` false) may refresh the stamp, never
    /// create it: a read begun before a write whose stamp Redis then lost (a `FLUSHALL`, a restart
    /// with nothing kept) would set an older one, and its film would pass for current. Only writes
    /// and the relay (which restores a missing stamp: see `service::relay`) create it.
    fn puts(&self, batch: &WriteBatch, written: bool) -> Vec<Put> {
        let super::Inner { keys, config, client, .. } = &*self.inner;
        // a marker lives at least 90% of its TTL (see `jitter`): half of that, for the clocks
        let empty = batch.stamp.map(|stamp| Empty {
            stamp: (!client.is_cluster()).then(|| keys.stamp()),
            read_version: stamp.version,
            read_at: batch.read_at,
            max_age_ms: u64::try_from(config.negative_ttl.as_millis() * 9 / 20).unwrap_or(u64::MAX),
        });
        let mut puts = Vec::with_capacity(batch.movies.len() + 2);
        if let Some(stamp) = &batch.stamp {
            let value = entry::encode_stamp(stamp).into_bytes();
            let only_over = if written { "0" } else { "2" };
            let args = Args::Versioned(value, stamp.version, jitter(config.movie_ttl), only_over, Vec::new());
            puts.push(Put { key: keys.stamp(), args });
        }
        for m in &batch.movies {
            let ttl = jitter(if m.gone { config.negative_ttl } else { config.movie_ttl });
            let replacing = if m.replacing.is_some() { "1" } else { "0" };
            let seen = m.replacing.clone().unwrap_or_default();
            let value = m.value.clone().into_bytes();
            let args = match &empty {
                Some(empty) => Args::Film(value, m.version, ttl, replacing, seen, empty.clone()),
                None => Args::Versioned(value, m.version, ttl, replacing, seen),
            };
            puts.push(Put { key: keys.movie(&m.slug), args });
        }
        if let Some((of, value, version)) = &batch.page {
            let args = Args::Versioned(value.clone().into_bytes(), *version, jitter(config.page_ttl), "0", Vec::new());
            puts.push(Put { key: keys.page_of(of), args });
        }
        puts
    }

    /// SADD of a page key to its set of page keys (the listing's, or the other lists' and
    /// searches'), and the set's TTL (twice a page's, so that it outlives every page it lists).
    fn listed(&self, set: String, page: String) -> [Cmd; 2] {
        let config = &self.inner.config;
        let mut sadd = redis::cmd("SADD");
        sadd.arg(&set).arg(page);
        let mut expire = redis::cmd("EXPIRE");
        expire.arg(&set).arg(config.page_ttl.as_secs() * 2);
        [sadd, expire]
    }
}

fn unix_ms(at: std::time::SystemTime) -> u64 {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Sets the token (`only_if_none`: unless there is one), with the hash's birth time when
/// it is new (see `lease`), on its own: sent with the script's source.
pub(super) fn set_token(key: String, token: &str, only_if_none: bool) -> Cmd {
    Put::token(key, token, only_if_none).cmd(scripts::SET_VERSIONED, "EVAL")
}

/// `WAIT`: Redis replicates asynchronously, so keys a master took are lost if it fails over to a
/// replica they had not reached. A write's rows stay in the cache log until its replicas have
/// them: sent on the connection the keys went by, it counts the replicas that acknowledged every
/// write sent on it so far.
#[derive(Clone, Copy)]
struct WaitFor {
    replicas: u64,
    ms: u64,
}

impl WaitFor {
    fn cmd(self) -> Cmd {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.replicas).arg(self.ms);
        cmd
    }
}

fn is_noscript(e: &RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}

/// One compare-and-set on the cluster, routed by its key.
async fn put_one(mut c: Connection, put: &Put, sha: &str) -> Result<i64, RedisError> {
    match put.cmd(sha, "EVALSHA").query_async(&mut c).await {
        Err(e) if is_noscript(&e) => put.cmd(scripts::SET_VERSIONED, "EVAL").query_async(&mut c).await,
        other => other,
    }
}

/// The whole batch in ONE pipeline to one Redis.
async fn put_pipelined(
    mut c: Connection,
    puts: &[Put],
    listed: Option<[Cmd; 2]>,
    token: Option<&Put>,
    wait: Option<WaitFor>,
    sha: &str,
) -> Result<Vec<i64>, RedisError> {
    let pipeline = |eval: &str, script: &str| {
        let mut pipe = redis::pipe();
        for p in puts {
            pipe.add_command(p.cmd(script, eval));
        }
        for cmd in listed.iter().flatten() {
            pipe.add_command(cmd.clone()).ignore();
        }
        // last, and by the same script as the keys: if Redis forgot it, this fails with them
        if let Some(token) = token {
            pipe.add_command(token.cmd(script, eval)).ignore();
        }
        if let Some(wait) = wait {
            pipe.add_command(wait.cmd());
        }
        pipe
    };
    match pipeline("EVALSHA", sha).query_async::<Vec<i64>>(&mut c).await {
        // Redis forgot the script: send the batch again with its source (which teaches it again)
        Err(e) if is_noscript(&e) => pipeline("EVAL", scripts::SET_VERSIONED).query_async(&mut c).await,
        other => other,
    }
}
