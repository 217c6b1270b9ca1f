//! The pages kept: one entry per request variant (see `name`), good under one Redis token, within
//! one byte budget that counts everything an entry holds (its name, the page and its gzipped copy).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;

/// A page as the handler answered it: the headers it set and its bytes, gzipped once at keeping.
#[derive(Debug, Clone)]
pub struct Page {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub gzipped: Bytes,
    /// The latency metric's label of the route that rendered it.
    pub route: metrics::SharedString,
}

impl Page {
    pub fn new(headers: HeaderMap, body: Bytes, route: metrics::SharedString) -> Self {
        let gzipped = gzip(&body);
        Self { headers, body, gzipped, route }
    }

    fn size(&self) -> usize {
        self.body.len()
            + self.gzipped.len()
            + self.headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum::<usize>()
    }
}

/// `body` gzipped at the default level, as the compression layer would.
fn gzip(body: &[u8]) -> Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 3), Default::default());
    // writing to memory cannot fail
    let _ = std::io::Write::write_all(&mut gz, body);
    gz.finish().map(Bytes::from).unwrap_or_default()
}

/// Request names seen answered by a page handler are remembered (as hashes) up to this many: without
/// a lease, only they are worth reading the token for before the handler runs.
const PAGES_KNOWN: usize = 1 << 16;

pub struct Store {
    budget: usize,
    ttl: Duration,
    kept: RwLock<Kept>,
    known: RwLock<HashSet<u64>>,
}

#[derive(Default)]
struct Kept {
    token: u64,
    bytes: usize,
    pages: HashMap<Box<[u8]>, (Instant, Page)>,
}

fn hash(name: &[u8]) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(name)
}

impl Store {
    /// Keeps at most `budget` bytes (0: nothing), each page at most `ttl`.
    pub fn new(budget: usize, ttl: Duration) -> Self {
        Self { budget, ttl, kept: RwLock::default(), known: RwLock::default() }
    }

    pub fn is_on(&self) -> bool {
        self.budget > 0
    }

    /// The page kept for `name` under `token`, if any.
    pub fn get(&self, token: u64, name: &[u8]) -> Option<Page> {
        let kept = self.kept.read().ok()?;
        if kept.token != token {
            return None;
        }
        kept.pages.get(name).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, page)| page.clone())
    }

    /// Keeps `page` for `name` under `token`. Pages of another token are dropped: they were
    /// rendered before a write (or this one was, and the next request puts them back). Past the
    /// budget, pages are dropped until a quarter of it is free (not all: a working set a little
    /// over the budget would be read again in full).
    pub fn put(&self, token: u64, name: Box<[u8]>, page: Page) {
        let size = name.len() + page.size();
        if size > self.budget {
            return;
        }
        let Ok(mut kept) = self.kept.write() else { return };
        if kept.token != token {
            *kept = Kept { token, ..Kept::default() };
        }
        if let Some((_, old)) = kept.pages.remove(&name) {
            kept.bytes -= name.len() + old.size();
        }
        if kept.bytes + size > self.budget {
            let goal = (self.budget / 4 * 3).saturating_sub(size);
            let mut bytes = kept.bytes;
            kept.pages.retain(|name, (_, page)| {
                let drop = bytes > goal;
                if drop {
                    bytes -= name.len() + page.size();
                }
                !drop
            });
            kept.bytes = bytes;
        }
        kept.bytes += size;
        kept.pages.insert(name, (Instant::now(), page));
    }

    /// Whether a page handler answered `name` before.
    pub fn is_known(&self, name: &[u8]) -> bool {
        self.known.read().is_ok_and(|known| known.contains(&hash(name)))
    }

    pub fn learn(&self, name: &[u8]) {
        if let Ok(mut known) = self.known.write() {
            if known.len() >= PAGES_KNOWN {
                known.clear();
            }
            known.insert(hash(name));
        }
    }

    /// Pages and bytes kept.
    pub fn size(&self) -> (usize, usize) {
        self.kept.read().map_or((0, 0), |kept| (kept.pages.len(), kept.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: u32) -> Box<[u8]> {
        format!("/movies?page={n}").into_bytes().into_boxed_slice()
    }

    fn page(n: usize) -> Page {
        Page::new(HeaderMap::new(), Bytes::from("x".repeat(n)), "/movies".into())
    }

    /// Every byte an entry holds, counted from the entries themselves.
    fn counted(store: &Store) -> usize {
        let kept = store.kept.read().unwrap();
        kept.pages.iter().map(|(name, (_, page))| name.len() + page.size()).sum()
    }

    #[test]
    fn a_page_is_kept_only_under_its_token() {
        let store = Store::new(10_000, Duration::from_secs(60));
        store.put(7, name(1), page(10));
        assert_eq!(store.get(7, &name(1)).map(|p| p.body.len()), Some(10));
        assert!(store.get(8, &name(1)).is_none(), "another token: a write came since");
        assert!(store.get(7, &name(2)).is_none());
        // a page of the new token drops every page of the old one
        store.put(8, name(2), page(10));
        assert!(store.get(7, &name(1)).is_none());
        assert!(store.get(8, &name(2)).is_some());
    }

    #[test]
    fn every_byte_kept_is_counted_and_within_the_budget() {
        let store = Store::new(2_000, Duration::from_secs(60));
        for n in 0..50 {
            store.put(1, name(n % 7), page(300));
            let (_, bytes) = store.size();
            assert_eq!(bytes, counted(&store), "after {n} puts, some of them replacing a page");
            assert!(bytes <= 2_000);
        }
        assert!(store.size().0 >= 2, "a full budget drops some pages, not all");
        // the last page put (49 % 7): just kept, so not dropped
        let gzipped = store.get(1, &name(0)).map(|p| p.gzipped.len());
        assert!(gzipped.is_some_and(|n| n > 0), "the gzipped copy is kept (and counted) too");
        store.put(1, name(99), page(5_000));
        assert!(store.get(1, &name(99)).is_none(), "a page larger than the budget is not kept");
        assert!(!Store::new(0, Duration::from_secs(60)).is_on());
    }

    #[test]
    fn a_page_lives_no_longer_than_the_ttl() {
        let store = Store::new(10_000, Duration::ZERO);
        store.put(1, name(1), page(10));
        assert!(store.get(1, &name(1)).is_none());
    }

    #[test]
    fn the_gzipped_copy_is_the_page() {
        let kept = page(1_000);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&kept.gzipped[..]), &mut text).unwrap();
        assert_eq!(text.as_bytes(), &kept.body[..]);
    }
}
