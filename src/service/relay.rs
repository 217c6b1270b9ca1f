//! The cache log's relay, which every server runs: what a write committed but Redis did not learn
//! (an outage, a partition between its server and Redis, a crash between the commit and the cache
//! write, a bulk import by the command line) is applied from the database's own record, at start
//! and then twice a second, until Redis takes it.
//!
//! A pass claims the oldest overdue rows (those past the writer's own grace, or handed over by a
//! writer that could not apply them), reads the films they name as they are NOW, and writes them
//! with the same compare-and-set as every write, so a pass that runs late never puts an older copy
//! over a newer one; then it deletes the rows. When Redis refuses the write (out of memory,
//! read-only), the older copies are removed and the rows stay for the next pass.
//!
//! Each tick is also this server's look at the log (see `cache::trust`): one that finds nothing
//! overdue, or applies all of it, lets the server trust Redis for a while; one that finds rows it
//! cannot apply withdraws that trust until they are applied.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;

use super::MovieService;
use crate::cache::WriteBatch;

/// How often each server's relay looks at the cache log: a few times per `CONFIRMED_FOR`, so
/// that a slow tick does not let this server's trust in Redis run out.
pub const EVERY: Duration = Duration::from_millis(500);
/// Rows applied per pass (one database read and one Redis batch).
const PER_PASS: usize = 500;
/// Passes per tick at most, so a large backlog (a bulk import) drains at once, not a pass a second.
const PASSES_PER_TICK: usize = 20;

/// What a tick's check of Redis found.
enum Check {
    Answered {
        went_back: bool,
    },
    /// Redis did not answer (down, loading its snapshot, timed out, or no Redis at all).
    Unanswered,
}

impl MovieService {
    /// Runs the relay until the task is dropped: a tick at once, then every `EVERY`.
    pub async fn relay(self) {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error = None::<String>;
        loop {
            ticks.tick().await;
            self.inner.hooks.before_relay_tick().await;
            match self.relay_tick().await {
                Ok(0) => {}
                Ok(applied) => tracing::info!(applied, "cache log: applied what Redis had not learnt"),
                Err(e) => {
                    // one line per kind of failure, not one a second through an outage
                    let text = e.to_string();
                    if last_error.as_ref() != Some(&text) {
                        tracing::warn!(error = %text, "cache log: not applied yet; trying again");
                    }
                    last_error = Some(text);
                    continue;
                }
            }
            last_error = None;
        }
    }

    /// One tick: the backlog measured (for `/metrics` and `/readyz`), rows past every TTL pruned,
    /// then passes until nothing overdue is left; then this server trusts Redis again (see
    /// `cache::trust`). Returns the rows applied.
    pub async fn relay_tick(&self) -> Result<usize> {
        let (db, cache) = (&self.inner.db, &self.inner.cache);
        let look = cache.look();
        let mut backlog = db.backlog().await?;
        self.inner.stats.cache_log(backlog);
        // a row older than the longest TTL can fix nothing: every key it names has expired since
        let config = cache.config();
        let expired = config.movie_ttl.max(config.page_ttl) + crate::db::GRACE;
        db.prune(expired).await?;
        // a look confirms only what Redis itself answered: a check that timed out or met a Redis
        // still loading its snapshot says nothing of what it came back with
        let answered = match self.went_back_in_time(backlog).await? {
            Check::Answered { went_back: true } => {
                backlog = db.backlog().await?;
                true
            }
            Check::Answered { went_back: false } => true,
            Check::Unanswered => false,
        };
        if backlog.overdue == 0 {
            if answered {
                cache.confirm(look);
            }
            return Ok(0);
        }
        // Redis may lack what these rows teach it: nothing is read from it until they are applied
        cache.distrust();
        // a server that cannot reach Redis claims nothing: a claim held while its writes time out
        // would keep the rows from the relays of the servers that can
        cache.ping().await.map_err(|e| anyhow::anyhow!("redis unreachable from this server: {e}"))?;
        let mut applied = 0;
        for _ in 0..PASSES_PER_TICK {
            let n = self.relay_pass().await?;
            applied += n;
            if n < PER_PASS {
                break;
            }
        }
        // (a connection lost during the passes may be a restart the check above did not see)
        let look = cache.look_on(look);
        let backlog = db.backlog().await?;
        self.inner.stats.cache_log(backlog);
        // rows another server's relay holds are not applied yet: trust waits for them
        if backlog.overdue == 0 && answered {
            cache.confirm(look);
        }
        Ok(applied)
    }

    /// Whether Redis may have lost writes it had taken: its stamp is older than the newest write
    /// the log says it took, or gone, or it restarted or failed over since the last tick (an older
    /// snapshot, a replica that had not received every write). A missing stamp is set again. Then every kept row is to be applied again,
    /// and Redis is not trusted until it is.
    async fn went_back_in_time(&self, backlog: crate::db::Backlog) -> Result<Check> {
        let cache = &self.inner.cache;
        let Ok(now) = cache.identity().await else { return Ok(Check::Unanswered) };
        let replaced = cache.is_replaced(&now);
        // a replaced Redis is repaired whatever its stamp says (it may not answer reads while it
        // loads its snapshot); otherwise the stamp tells whether it lost writes it had taken: it
        // is older than the newest of them, or gone with them (a FLUSHALL)
        let (older, stamp) = if replaced {
            (false, None)
        } else {
            let Ok(stamp) = cache.stamp().await else { return Ok(Check::Unanswered) };
            let stamp = stamp.map(|s| s.version);
            if stamp.is_none() && backlog.applied.is_none() {
                // nothing to repair, but reads do not create the stamp (see `cache::WriteBatch`):
                // it is set here, from the database
                self.apply_latest(Vec::new()).await?;
            }
            (backlog.applied.is_some_and(|applied| stamp.is_none_or(|v| v < applied)), stamp)
        };
        if !older && !replaced {
            cache.remember(now);
            return Ok(Check::Answered { went_back: false });
        }
        cache.distrust();
        // remembered only once the rows are reopened: a check cut short here sees the change again
        let reopened = self.inner.db.reopen().await?;
        cache.remember(now);
        tracing::warn!(
            stamp,
            taken = backlog.applied,
            replaced,
            reopened,
            "redis may have lost writes it had taken; applying the cache log's kept rows again"
        );
        Ok(Check::Answered { went_back: true })
    }

    /// Claims, applies and marks up to `PER_PASS` rows. On an error the rows stay, released
    /// for the next pass of any server.
    async fn relay_pass(&self) -> Result<usize> {
        self.inner.hooks.before_relay_pass().await;
        let db = &self.inner.db;
        let claim = db.claim(PER_PASS).await?;
        let n = claim.entries.len();
        if n == 0 {
            claim.done().await?;
            return Ok(0);
        }
        let order_changed = claim.entries.iter().any(|e| e.order_changed);
        let slugs: BTreeSet<&str> = claim.entries.iter().filter_map(|e| e.slug.as_deref()).collect();
        if let Err(e) = self.apply_latest(slugs.into_iter().collect()).await {
            if let Err(release) = claim.release().await {
                tracing::warn!(error = %release, "cache log: a claim was not released");
            }
            return Err(e);
        }
        claim.done().await?;
        self.inner.stats.cache_log_applied(n as u64);
        // the log keeps one flag: a list may have changed (the listing's order among them)
        if order_changed {
            self.sweep(super::write::Changed::ORDER);
        }
        Ok(n)
    }

    /// Writes the films `slugs` name as they are now (a "gone" marker for those with none), and
    /// the stamp, with the compare-and-set of every write.
    async fn apply_latest(&self, slugs: Vec<&str>) -> Result<()> {
        let (stamp, movies) = self.inner.db.movies(&slugs).await?;
        let mut batch = WriteBatch::default();
        for slug in &slugs {
            match movies.iter().find(|m| m.slug == *slug) {
                Some(movie) => batch.movie(movie, None),
                None => batch.gone(slug, stamp.version),
            }
        }
        batch.stamp(stamp);
        self.tell_cache(&batch).await?;
        Ok(())
    }
}
