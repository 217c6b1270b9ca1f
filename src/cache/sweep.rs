//! Invalidation of the listing: every page key written is recorded in one set, and a sweep walks
//! that set instead of the whole keyspace.
//!
//! A page written while a sweep runs is never left alive outside the set: a writer sets the page
//! and only then adds it to the set, and a sweep removes keys from the set and only then unlinks
//! them. So a page key that survives a sweep was set after its UNLINK, and added to the set after
//! that, after the SREM. Keeping that order is what the two need, on one Redis or on a cluster,
//! where the set and the pages sit in different slots and no script or MULTI can hold them all.

use super::{Cache, CacheError};

/// Page keys swept per SSCAN step (and per UNLINK). The set holds only page keys, so a step
/// returns about this many: a million films' 41,667 pages take about 42 steps, not 417.
const SWEEP_COUNT: usize = 1000;

impl Cache {
    /// Drops every listing page key: SSCAN over the set of written page keys, each step's keys
    /// removed from the set (SREM), then unlinked (UNLINK; split by slot on a cluster). The cost depends on the number of pages cached, not on the
    /// number of keys in Redis. Returns the number of keys swept.
    pub async fn drop_pages(&self) -> Result<u64, CacheError> {
        let set = self.inner.keys.pages();
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
                let set_key = set.clone();
                let n = members.len() as u64;
                self.inner
                    .client
                    .call(2, |mut c| async move {
                        let mut srem = redis::cmd("SREM");
                        srem.arg(&set_key).arg(&members);
                        let mut unlink = redis::cmd("UNLINK");
                        unlink.arg(&members);
                        if c.is_cluster() {
                            srem.query_async::<()>(&mut c).await?;
                            unlink.query_async::<()>(&mut c).await
                        } else {
                            redis::pipe()
                                .add_command(srem)
                                .ignore()
                                .add_command(unlink)
                                .ignore()
                                .query_async(&mut c)
                                .await
                        }
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
}
