//! Invalidation of the listing: every page key written is recorded in one set, and a sweep walks
//! that set instead of the whole keyspace.
//!
//! A page written while a sweep runs is never left alive outside the set. On one Redis a batch's
//! SREM and UNLINK run together, in one MULTI. A cluster cannot hold them together (the set and
//! the pages sit in different slots), so there the order does it: a writer sets the page and only
//! then adds it to the set, and a sweep removes keys from the set and only then unlinks them. So a
//! page key that survives a sweep was set after its UNLINK, and added to the set after that, after
//! the SREM.

use super::{Cache, CacheError};

/// Page keys swept per SSCAN step (and per UNLINK). The set holds only page keys, so a step
/// returns about this many: a million films' 41,667 pages take about 42 steps, not 417.
const SWEEP_COUNT: usize = 1000;

impl Cache {
    /// Drops every listing page key: SSCAN over the set of written page keys, each step's keys
    /// removed from the set and unlinked (`remove_pages`). The cost depends on the number of pages
    /// cached, not on the number of keys in Redis. Returns the number of keys swept.
    pub async fn drop_pages(&self) -> Result<u64, CacheError> {
        self.sweep(self.inner.keys.pages()).await
    }

    /// Drops the page keys of every list other than the listing, the same way.
    pub async fn drop_lists(&self) -> Result<u64, CacheError> {
        self.sweep(self.inner.keys.lists()).await
    }

    async fn sweep(&self, set: String) -> Result<u64, CacheError> {
        let mut cursor = 0u64;
        let mut swept = 0u64;
        loop {
            let set_key = set.clone();
            let (next, members): (u64, Vec<String>) = self
                .inner
                .client
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
                let n = members.len() as u64;
                self.remove_pages(&set, members).await?;
                swept += n;
            }
            if next == 0 {
                return Ok(swept);
            }
            cursor = next;
        }
    }

    /// One batch: SREM from the set, UNLINK of the keys; in one MULTI on one Redis, in that order
    /// on a cluster (split by slot by the client).
    async fn remove_pages(&self, set: &str, members: Vec<String>) -> Result<(), CacheError> {
        let mut srem = redis::cmd("SREM");
        srem.arg(set).arg(&members);
        let mut unlink = redis::cmd("UNLINK");
        unlink.arg(&members);
        let client = &self.inner.client;
        if client.is_cluster() {
            client.call(1, |mut c| async move { srem.query_async::<()>(&mut c).await }).await?;
            self.inner.hooks.in_sweep().await;
            client.call(1, |mut c| async move { unlink.query_async::<()>(&mut c).await }).await
        } else {
            self.inner.hooks.in_sweep().await;
            let mut multi = redis::pipe();
            multi.atomic().add_command(srem).ignore().add_command(unlink).ignore();
            client.call(2, |mut c| async move { multi.query_async::<()>(&mut c).await }).await
        }
    }
}
