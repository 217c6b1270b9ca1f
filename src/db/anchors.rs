//! Deep pages without a crawl. `OFFSET n` walks n index entries, so page 40,000 of a million films
//! would read 960,000 of them. Instead we remember the listing key of every `STEP`-th film (an
//! anchor), built by one index scan, and start a deep page at the anchor before it: a page then
//! reads at most `STEP` + page size entries, whatever its depth. The anchors belong to one
//! `order_version` of the catalog; a page query returns the current one with its rows, so anchors
//! made stale by a write on any app server are noticed and rebuilt.

use std::sync::{Arc, RwLock};

/// Films between two anchors.
pub const STEP: u64 = 256;

/// The listing key (release date, slug) of the film at offset `i * STEP`.
#[derive(Debug, Clone)]
pub struct Set {
    pub order_version: i64,
    pub keys: Vec<(String, String)>,
}

impl Set {
    /// The anchor at or before `offset` (never the zeroth: offsets under `STEP` need none), and the
    /// rows to skip after it.
    pub fn locate(&self, offset: u64) -> Option<(&(String, String), u64)> {
        let i = usize::try_from(offset / STEP).ok()?;
        if i == 0 {
            return None;
        }
        // Past the last anchor the page is past the end too (or within the last step).
        let i = i.min(self.keys.len().checked_sub(1)?);
        let key = self.keys.get(i)?;
        Some((key, offset - (i as u64) * STEP))
    }
}

#[derive(Default)]
pub struct Anchors {
    current: RwLock<Option<Arc<Set>>>,
    /// Held while rebuilding, so that concurrent deep pages wait for one scan instead of each running one.
    pub rebuild: tokio::sync::Mutex<()>,
}

impl Anchors {
    pub fn get(&self) -> Option<Arc<Set>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    pub fn set(&self, set: Set) {
        if let Ok(mut g) = self.current.write() {
            *g = Some(Arc::new(set));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> Set {
        Set { order_version: 1, keys: (0..n).map(|i| (format!("d{i}"), format!("s{i}"))).collect() }
    }

    #[test]
    fn shallow_offsets_need_no_anchor() {
        assert!(set(10).locate(0).is_none());
        assert!(set(10).locate(STEP - 1).is_none());
    }

    #[test]
    fn deep_offsets_start_at_the_anchor_before() {
        let s = set(10);
        let (key, skip) = s.locate(3 * STEP + 5).map(|(k, n)| (k.1.clone(), n)).unwrap_or_default();
        assert_eq!((key.as_str(), skip), ("s3", 5));
        let (key, skip) = s.locate(12 * STEP).map(|(k, n)| (k.1.clone(), n)).unwrap_or_default();
        assert_eq!((key.as_str(), skip), ("s9", 3 * STEP));
    }
}
