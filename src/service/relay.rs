//! The cache log's relay, which every server runs: what a write committed but Redis did not learn
//! (an outage, a partition between its server and Redis, a crash between the commit and the cache
//! write, a bulk import by the command line) is applied from the database's own record, at start
//! and then about once a second, until Redis takes it.
//!
//! A pass claims the oldest rows (those past the writer's own grace), reads the films they name
//! as they are NOW, and writes them with the same compare-and-set as every write, so a pass that
//! runs late never puts an older copy over a newer one; then it deletes the rows. When Redis
//! refuses the write (out of memory, read-only), the older copies are removed and the rows stay
//! for the next pass.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;

use super::MovieService;
use crate::cache::WriteBatch;

/// Rows younger than this are still their writer's to apply (it does so before it answers).
const GRACE: Duration = Duration::from_secs(2);
/// Rows applied per pass (one database read and one Redis batch).
const PER_PASS: usize = 500;
/// Passes per tick at most, so a large backlog (a bulk import) drains at once, not a pass a second.
const PASSES_PER_TICK: usize = 20;

impl MovieService {
    /// Runs the relay until the task is dropped: a tick at once, then every `every`.
    pub async fn relay(self, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error = None::<String>;
        loop {
            ticks.tick().await;
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
    /// then passes until nothing old enough is left. Returns the rows applied.
    pub async fn relay_tick(&self) -> Result<usize> {
        let db = &self.inner.db;
        let backlog = db.backlog().await?;
        self.inner.stats.cache_log(backlog);
        if backlog.pending == 0 {
            return Ok(0);
        }
        // a row older than the longest TTL can fix nothing: every key it names has expired since
        let config = self.inner.cache.config();
        let expired = config.movie_ttl.max(config.page_ttl) + GRACE;
        if backlog.oldest.is_some_and(|age| age > expired) {
            let pruned = db.prune(expired).await?;
            tracing::info!(pruned, "cache log: dropped rows older than every TTL");
        }
        // a server that cannot reach Redis claims nothing: a claim held while its writes time out
        // would keep the rows from the relays of the servers that can
        self.inner.cache.ping().await.map_err(|e| anyhow::anyhow!("redis unreachable from this server: {e}"))?;
        let mut applied = 0;
        for _ in 0..PASSES_PER_TICK {
            let n = self.relay_pass().await?;
            applied += n;
            if n < PER_PASS {
                break;
            }
        }
        self.inner.stats.cache_log(db.backlog().await?);
        Ok(applied)
    }

    /// Claims, applies and deletes up to `PER_PASS` rows. On an error the rows stay, released
    /// for the next pass of any server.
    async fn relay_pass(&self) -> Result<usize> {
        let db = &self.inner.db;
        let claim = db.claim(GRACE, PER_PASS).await?;
        let n = claim.entries.len();
        if n == 0 {
            claim.done().await?;
            return Ok(0);
        }
        let order_changed = claim.entries.iter().any(|e| e.order_changed);
        let slugs: BTreeSet<&str> = claim.entries.iter().filter_map(|e| e.slug.as_deref()).collect();
        if let Err(e) = self.apply_latest(slugs.into_iter().collect(), order_changed).await {
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
    async fn apply_latest(&self, slugs: Vec<&str>, order_changed: bool) -> Result<()> {
        let (stamp, movies) = self.inner.db.movies(&slugs).await?;
        let mut batch = WriteBatch::default();
        for slug in &slugs {
            match movies.iter().find(|m| m.slug == *slug) {
                Some(movie) => batch.movie(movie, None),
                None => batch.gone(slug, stamp.version),
            }
        }
        batch.stamp(stamp);
        self.tell_cache(&batch, order_changed).await?;
        Ok(())
    }
}
