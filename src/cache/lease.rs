//! Leases: how a server answers its kept pages with no round trip to Redis, and still shows every
//! write the moment its writer is answered.
//!
//! The token (`movies:token`, a hash: the token, when the hash was made, and one lease per
//! server) changes whenever a write reaches the cache. A server holds a lease for `CACHE_LEASE_MS`:
//! it renews it (every quarter of that, and at once when a write is announced) with a script that
//! grants it only to a server that already knows the current token, and records the token it
//! knows. While its lease runs, the server takes the token it knows for the current one.
//!
//! A writer, after setting a new token, announces it (PUBLISH) and waits until every server whose
//! lease has not run out has renewed with that token or a newer one, or until its lease has run
//! out. A server renews only with the current token, so a lease granted before the token changed
//! cannot be extended without its server learning the new one first: after one lease length,
//! whatever happened, no server still trusts the old token. Each server ends its lease a tenth of
//! the length early on its own clock, so the two clocks need only run at the same rate. When the
//! hash itself is new (Redis restarted, or lost it), a lease granted under the lost one may still
//! run: a writer then waits until the hash is one lease length old. So it does while Redis itself
//! has been up for less than a lease length: restarted from a snapshot, it holds the hash as it was
//! then, old enough, but without the leases granted since, which may still run.
//!
//! On a Redis with replicas a renewal counts only once they have it (`WAIT`): one promoted after
//! a failover knows every lease a server relies on.
//!
//! Pub/sub only makes it quick: a lost announcement costs a writer at most one renewal period.
//! Correctness rests on the scripts, which touch the one key (one slot on a cluster).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::Cmd;
use tokio::sync::Notify;

use super::client::Connection;
use super::{Cache, CacheError};
use crate::config::RedisTarget;

/// KEYS[1] the token's hash; ARGV server id, the token it knows, lease ms, a fresh token (set when
/// there is none). Returns {current token, 1} when the lease is granted, {current token, 0} when
/// the server must learn the current token first.
fn renew_script() -> String {
    concat!(include_str!("lua/now.lua"), include_str!("lua/born.lua"), include_str!("lua/renew.lua")).to_owned()
}

/// KEYS[1] the token's hash; ARGV the token a writer set, lease ms. Returns 1 when no server can
/// still trust an older token (every unexpired lease renewed with that token or the current one,
/// and the hash and Redis itself up for longer than a lease), 0 when some may, -1 when the hash is
/// gone (then nobody can tell: the writer waits a whole lease). Drops leases a minute past their end.
fn check_script() -> String {
    concat!(include_str!("lua/now.lua"), include_str!("lua/check.lua")).to_owned()
}

/// This server's lease: the token it knows and until when it may trust it.
pub(super) struct Lease {
    id: String,
    renew: String,
    check: String,
    held: Mutex<Held>,
    /// One renewal at a time (the task's, and a writer's for its own server).
    renewing: tokio::sync::Mutex<()>,
    wake: Notify,
    /// Whether this process holds a lease (runs `hold_lease`): only then does a writer renew its
    /// own. A process that holds none (a command-line tool, a server that keeps no pages) would
    /// otherwise leave a lease that nothing renews, knowing a token the next write replaces, and
    /// every writer after it would wait for that lease to run out.
    holding: std::sync::atomic::AtomicBool,
}

#[derive(Clone, Copy, Default)]
struct Held {
    known: Option<u64>,
    until: Option<Instant>,
}

impl Default for Lease {
    fn default() -> Self {
        Self {
            id: format!("{:016x}", fastrand::u64(..)),
            renew: renew_script(),
            check: check_script(),
            held: Mutex::default(),
            renewing: tokio::sync::Mutex::default(),
            wake: Notify::new(),
            holding: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Lease {
    /// The token this server knows, when its lease runs.
    pub(super) fn current(&self) -> Option<u64> {
        let held = *self.held.lock().ok()?;
        held.until.filter(|until| Instant::now() < *until).and(held.known)
    }

    fn known(&self) -> Option<u64> {
        self.held.lock().ok().and_then(|h| h.known)
    }

    /// Granted until `until`, knowing `token`.
    fn grant(&self, token: u64, until: Instant) {
        if let Ok(mut held) = self.held.lock() {
            *held = Held { known: Some(token), until: Some(until) };
        }
    }

    /// The current token is `token` (the pages kept under the one known before are misses from
    /// now on); an unreadable one ends the lease.
    fn learn(&self, token: Option<u64>) {
        if let Ok(mut held) = self.held.lock() {
            held.known = token;
            if token.is_none() {
                held.until = None;
            }
        }
    }

    fn end(&self) {
        if let Ok(mut held) = self.held.lock() {
            held.until = None;
        }
    }
}

impl Cache {
    /// The token this server knows, while its lease runs (and Redis is trusted: see `trust`).
    pub fn leased_token(&self) -> Option<u64> {
        if !self.is_trusted() {
            return None;
        }
        self.inner.lease.current()
    }

    /// This process's lease id: its field in the token's hash is `lease:{id}`.
    pub fn lease_id(&self) -> &str {
        &self.inner.lease.id
    }

    fn lease_length(&self) -> Duration {
        self.inner.config.lease
    }

    /// Takes this server's lease now (before it serves: the first requests then know the token),
    /// for `hold_lease` to renew.
    pub async fn take_lease(&self) {
        if self.lease_length().is_zero() || !self.is_enabled() {
            return;
        }
        self.inner.lease.holding.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.renew_lease().await;
    }

    /// Holds this server's lease until the task is dropped: renewals every quarter of its length,
    /// and at once when a writer announces a new token.
    pub async fn hold_lease(self) {
        let length = self.lease_length();
        if length.is_zero() || !self.is_enabled() {
            return;
        }
        self.inner.lease.holding.store(true, std::sync::atomic::Ordering::Relaxed);
        let listen = self.listen();
        let renew = async {
            loop {
                let held = matches!(self.renew_lease().await, Ok(true));
                self.inner.stats.lease_held(held && self.inner.lease.current().is_some());
                tokio::select! {
                    () = tokio::time::sleep(length / 4) => {}
                    () = self.inner.lease.wake.notified() => {}
                }
            }
        };
        tokio::join!(listen, renew);
    }

    /// Ends this server's lease (at shutdown), so that writers stop waiting for it.
    pub async fn leave(&self) {
        self.inner.lease.end();
        self.inner.stats.lease_held(false);
        let (key, field) = (self.inner.keys.token(), format!("lease:{}", self.inner.lease.id));
        let _ = self
            .inner
            .client
            .call_coordination(|mut c| async move { Cmd::hdel(key, field).query_async::<()>(&mut c).await })
            .await;
    }

    /// Renews the lease; on the way, learns the current token (from then on, the pages kept under
    /// the older one are misses). `Ok(true)` when granted.
    async fn renew_lease(&self) -> Result<bool, CacheError> {
        let lease = &self.inner.lease;
        let _one = lease.renewing.lock().await;
        for _ in 0..3 {
            let known = lease.known().map(|t| t.to_string()).unwrap_or_default();
            let sent = Instant::now();
            let cmd = {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(&lease.renew).arg(1).arg(self.inner.keys.token()).arg(&lease.id).arg(known);
                cmd.arg(self.lease_length().as_millis().to_string()).arg(fastrand::u64(..).to_string());
                cmd
            };
            let (current, granted): (String, i64) =
                self.inner.client.call_coordination(|mut c| async move { cmd.query_async(&mut c).await }).await?;
            let current = current.parse::<u64>().ok();
            if granted == 1
                && let Some(token) = current
            {
                // a replica promoted without this renewal would not make writers wait for it
                if !self.replicated().await {
                    return Ok(false);
                }
                let length = self.lease_length();
                lease.grant(token, sent + length - length / 10);
                return Ok(true);
            }
            lease.learn(current);
        }
        Ok(false)
    }

    /// After a writer set a new token: announces it, and returns once no server can still
    /// trust an older one (see the module's comment). At most one lease length.
    pub async fn await_leases(&self, token: &str) {
        let length = self.lease_length();
        if length.is_zero() {
            return;
        }
        // every lease granted before the token changed has ended by then
        let deadline = tokio::time::Instant::now() + length;
        self.announce(token).await;
        if self.inner.lease.holding.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = self.renew_lease().await;
        }
        let mut pause = Duration::from_millis(1);
        loop {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(&self.inner.lease.check).arg(1).arg(self.inner.keys.token()).arg(token);
            cmd.arg(length.as_millis().to_string());
            match self.inner.client.call_coordination(|mut c| async move { cmd.query_async::<i64>(&mut c).await }).await
            {
                Ok(1) => return,
                Ok(0) if tokio::time::Instant::now() + pause < deadline => {}
                _ => {
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// After the token's hash was removed, leases with it: nobody can tell which servers still
    /// trust the old token, so the writer waits one lease length (announcing it first, so that
    /// the servers learn a new token at once).
    pub async fn outlast_leases(&self) {
        let length = self.lease_length();
        if !length.is_zero() {
            self.announce("").await;
            tokio::time::sleep(length).await;
        }
    }

    /// Tells the servers a new token was set (they renew at once), on the channel named as the key.
    async fn announce(&self, token: &str) {
        let (channel, message) = (self.inner.keys.token(), token.to_owned());
        let publish = |mut c: Connection| async move { Cmd::publish(channel, message).query_async::<()>(&mut c).await };
        let _ = self.inner.client.call_coordination(publish).await;
    }

    /// Listens for writers' announcements and renews at once on each. Reconnects after a pause
    /// when the subscription breaks (meanwhile, writers wait for the periodic renewals).
    async fn listen(&self) {
        let urls: Vec<String> = match &self.inner.config.redis {
            Some(RedisTarget::Single(url)) => vec![url.clone()],
            Some(RedisTarget::Cluster(seeds)) => seeds.clone(),
            None => return,
        };
        // on a cluster a PUBLISH reaches every node: one subscription, to any of them, hears all
        for url in urls.iter().cycle() {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(Ok(mut pubsub)) =
                    tokio::time::timeout(Duration::from_secs(1), client.get_async_pubsub()).await
                && pubsub.subscribe(self.inner.keys.token()).await.is_ok()
            {
                // what was announced while it was not listening
                self.inner.lease.wake.notify_one();
                let mut messages = pubsub.on_message();
                while messages.next().await.is_some() {
                    self.inner.lease.wake.notify_one();
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
