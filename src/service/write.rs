//! Writes: the database first, then, before the writer is answered, the film's key and the stamp
//! (the new stamp makes every older page a miss: one write, whatever the number of pages cached)
//! and a new token, and the wait until no server answers a page kept under the old one. The stale
//! page keys are swept after the answer. What Redis did not take, the cache log's relay applies,
//! and the writer is answered only once it has, or once no server trusts Redis any more (see
//! `cache::trust`).

use super::{MovieService, Result};
use crate::cache::{CONFIRMED_FOR, CacheError, WriteBatch};
use crate::db::{LIST_FIELDS, Updated};
use crate::movies::{Movie, MoviePatch, NewMovie, Slug};
use crate::stats::Outcome;

/// Which lists a write may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Changed {
    /// The listing's order (a date, a film created or deleted).
    pub order: bool,
    /// Any other list's members or order (implied by an order change).
    pub lists: bool,
}

impl Changed {
    pub const ORDER: Self = Self { order: true, lists: true };
}

impl MovieService {
    pub async fn create(&self, new: NewMovie) -> Result<Movie> {
        let (movie, stamp) = self.inner.db.create(new).await?;
        let mut batch = WriteBatch::default();
        batch.movie(&movie, None);
        batch.stamp(stamp);
        self.after_write(batch, stamp.version, Changed::ORDER).await;
        Ok(movie)
    }

    /// `None` when there is no such film.
    pub async fn update(&self, slug: &Slug, patch: &MoviePatch) -> Result<Option<Updated>> {
        let Some(updated) = self.inner.db.update(slug, patch).await? else {
            return Ok(None);
        };
        if !updated.changed.is_empty() {
            let mut batch = WriteBatch::default();
            batch.movie(&updated.movie, None);
            batch.stamp(updated.stamp);
            let changed = Changed {
                order: updated.changed.contains(&"release_date"),
                lists: updated.changed.iter().any(|f| LIST_FIELDS.contains(f)),
            };
            self.after_write(batch, updated.stamp.version, changed).await;
        }
        Ok(Some(updated))
    }

    /// `false` when there was no such film.
    pub async fn delete(&self, slug: &Slug) -> Result<bool> {
        let Some(stamp) = self.inner.db.delete(slug).await? else {
            return Ok(false);
        };
        let mut batch = WriteBatch::default();
        batch.gone(slug.as_str(), stamp.version);
        batch.stamp(stamp);
        self.after_write(batch, stamp.version, Changed::ORDER).await;
        Ok(true)
    }

    /// After a database write (committed with its rows in the cache log): forget the reads it
    /// made stale and refresh the film and stamp keys before the writer gets its answer (the new
    /// stamp makes every older page a miss: one write, whatever the number of pages cached), then
    /// mark the write's log rows done; when the order changed, sweep the stale page keys after the
    /// answer. When Redis does not take it, see `handed_over`.
    async fn after_write(&self, batch: WriteBatch, version: i64, changed: Changed) {
        // page reads carry films too, so both kinds of read under way are stale now
        self.inner.films.forget_all();
        self.inner.pages.forget_all();
        // a test may kill the process here: committed, logged, Redis not told
        self.inner.hooks.after_commit().await;
        if !self.inner.cache.is_enabled() {
            return;
        }
        match self.tell_cache(&batch).await {
            Ok(()) => {
                if let Err(e) = self.inner.db.applied(version).await {
                    tracing::warn!(version, error = %e, "cache log not marked done; its relay applies it again");
                }
                self.sweep(changed);
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "cache not refreshed after a write; handed to the cache log's relay");
                self.handed_over(version).await;
            }
        }
    }

    /// Redis did not take the write at `version` (unreachable from here, stopped, refusing writes,
    /// or only part of it written): Redis may go on answering the older copies, on every server,
    /// and under the current token their kept pages too. So this server stops trusting Redis, the
    /// write's log rows are handed to the relays at once, and the writer waits until they are
    /// applied (a relay that reaches Redis writes them, sets a new token and waits for every
    /// lease), or for `CONFIRMED_FOR`: by then every server has looked at the log since the
    /// hand-over and stopped trusting Redis until the rows are applied, or its trust has run out.
    async fn handed_over(&self, version: i64) {
        let (db, cache) = (&self.inner.db, &self.inner.cache);
        cache.distrust();
        if let Err(e) = db.hand_over(version).await {
            tracing::warn!(version, error = %e, "cache log rows not handed over; the relays take them after the grace");
        }
        let deadline = tokio::time::Instant::now() + CONFIRMED_FOR;
        while tokio::time::Instant::now() < deadline {
            if matches!(db.logged(version).await, Ok(false)) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Writes `batch`; when Redis answers but refuses it (out of memory, read-only), UNLINKs the
    /// keys it would have replaced and the stamp, so that reads go to the database instead of
    /// finding the older copy. Then waits until no server answers a page
    /// kept under the token before this write (see `cache::lease`). Err: the cache has not learnt
    /// it yet, or may have lost it (a connection lost meanwhile: Redis may have restarted from a
    /// snapshot without it), so its log rows are not to be marked applied.
    pub(super) async fn tell_cache(&self, batch: &WriteBatch) -> Result<(), CacheError> {
        let cache = &self.inner.cache;
        let before = cache.connections_lost();
        let (written, token) = cache.apply(batch).await;
        if let Err(e) = &written
            && e.is_refusal()
        {
            match cache.remove(batch).await {
                Ok(()) => {
                    tracing::warn!(error = %e, "redis refused a newer copy; the older one was removed");
                    // the token's hash went with the keys, and the leases with it
                    cache.outlast_leases().await;
                    return written;
                }
                Err(e) => tracing::warn!(error = %e, "redis refused a newer copy and could not remove the older one"),
            }
        }
        if let Some(token) = token {
            cache.await_leases(&token).await;
        }
        written.and_then(|()| cache.unbroken_since(before))
    }

    /// Gives back the memory of the page keys a change made stale, after the writer's answer: the
    /// listing's when the order changed, the other lists' when any list may have: they are already
    /// misses, since the stamp written before the answer carries the new versions.
    pub(super) fn sweep(&self, changed: Changed) {
        let cache = self.inner.cache.clone();
        if changed.order {
            let cache = cache.clone();
            self.inner.deferred.defer(Box::pin(async move { Outcome::of(&cache.drop_pages().await) }));
        }
        if changed.lists {
            self.inner.deferred.defer(Box::pin(async move { Outcome::of(&cache.drop_lists().await) }));
        }
    }
}
