//! Writes: the database first, then, before the writer is answered, the film's key and the stamp
//! (the new stamp makes every older page a miss: one write, whatever the number of pages cached)
//! and a new token, and the wait until no server answers a page kept under the old one. The stale
//! page keys are swept after the answer. What Redis did not take, the cache log's relay applies.

use super::{MovieService, Result};
use crate::cache::{CacheError, WriteBatch};
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
    /// answer. When Redis does not take it, the rows stay in the log and the relay of whichever
    /// server reaches Redis first applies them (see `relay`).
    async fn after_write(&self, batch: WriteBatch, version: i64, changed: Changed) {
        // page reads carry films too, so both kinds of read under way are stale now
        self.inner.films.forget_all();
        self.inner.pages.forget_all();
        // a test may kill the process here: committed, logged, Redis not told
        self.inner.hooks.after_commit().await;
        if !self.inner.cache.is_enabled() {
            return;
        }
        match self.tell_cache(&batch, changed.lists).await {
            Ok(()) => {
                if let Err(e) = self.inner.db.applied(version).await {
                    tracing::warn!(version, error = %e, "cache log not marked done; its relay applies it again");
                }
                self.sweep(changed);
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "cache not refreshed after a write; the cache log's relay will");
            }
        }
    }

    /// Writes `batch`; when Redis answers but refuses it (out of memory, read-only), UNLINKs the
    /// keys it would have replaced (and the stamp when the order changed), so that reads go to
    /// the database instead of finding the older copy. Then waits until no server answers a page
    /// kept under the token before this write (see `cache::lease`). Err: the cache has not learnt
    /// it yet.
    pub(super) async fn tell_cache(&self, batch: &WriteBatch, listing_changed: bool) -> Result<(), CacheError> {
        let cache = &self.inner.cache;
        let (written, token) = cache.apply(batch).await;
        if let Err(e) = &written
            && e.is_refusal()
        {
            match cache.remove(batch, listing_changed).await {
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
        written
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
