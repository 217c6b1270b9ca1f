//! The pages kept: one entry per request variant (see `name` in the parent), good under one Redis
//! token, within one byte budget that counts everything an entry holds.
//!
//! A page is kept as it is sent, gzipped (browsers ask for gzip); the rare client that refuses
//! gzip gets it decompressed. What stays is chosen by use (CLOCK, the second-chance FIFO): an
//! entry read since the hand last passed it is passed over once more, so a page readers keep
//! asking for outlives a run of pages asked for once, which a FIFO would let push it out. Its mark
//! is an atomic flag set under the read lock: a hit never takes the write lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::Read as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::web::caching;
use crate::web::gzip::gzip;

/// A page as the handler answered it: the headers it set, its bytes gzipped once at keeping, and
/// its tags (computed once, by the handler).
#[derive(Debug)]
pub struct Page {
    pub headers: HeaderMap,
    pub gzipped: Bytes,
    /// Its length as the handler made it (the gzipped copy decompressed).
    length: usize,
    pub etags: caching::Etags,
    /// The latency metric's label of the route that rendered it.
    pub route: metrics::SharedString,
}

impl Page {
    /// `gzipped`: `body` gzipped already (by `gzip`), or `None` to gzip it here.
    pub fn new(
        headers: HeaderMap,
        body: &[u8],
        gzipped: Option<Bytes>,
        etags: caching::Etags,
        route: metrics::SharedString,
    ) -> Self {
        Self { headers, gzipped: gzipped.unwrap_or_else(|| gzip(body)), length: body.len(), etags, route }
    }

    /// The page as the handler made it, for a client that refuses gzip (`None` if the kept copy
    /// does not decompress to it: the full path answers then).
    pub fn body(&self) -> Option<Bytes> {
        let mut body = Vec::with_capacity(self.length);
        flate2::read::GzDecoder::new(&self.gzipped[..]).read_to_end(&mut body).ok()?;
        (body.len() == self.length).then(|| Bytes::from(body))
    }

    /// The bytes it holds: its gzipped copy, its tags, its headers (each with the slot it takes in
    /// the map) and the route's label.
    fn size(&self) -> usize {
        let header = size_of::<HeaderName>() + size_of::<HeaderValue>() + HEADER_SLOT;
        self.gzipped.len()
            + self.etags.size()
            + self.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + header).sum::<usize>()
            + self.route.len()
    }
}

/// A header's place in a `HeaderMap` besides its name and value: its hash, its index and its
/// links to values of the same name.
const HEADER_SLOT: usize = 4 * size_of::<usize>();

/// What an entry costs besides its name and its page's bytes: its slot in the table (twice its
/// size: a table is at most 7/8 full and doubles when it grows), its place on the clock, the
/// reference counts of the name and the page, and the allocator's header on each of its blocks
/// (the name, the page, the gzipped bytes, the headers' table and its index, the tags' bytes).
const PER_ENTRY: usize = 2 * size_of::<(Arc<[u8]>, Entry)>()
    + size_of::<Arc<[u8]>>()
    + 2 * 2 * size_of::<usize>()
    + size_of::<Page>()
    + 7 * BLOCK;

/// The allocator's own bytes on each block it hands out (glibc's: a size word, rounded to 16).
const BLOCK: usize = 16;

/// What keeping `page` under `name` costs.
fn cost(name: &[u8], page: &Page) -> usize {
    name.len() + page.size() + PER_ENTRY
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

struct Entry {
    page: Arc<Page>,
    at: Instant,
    /// What it was counted as (see `cost`).
    cost: usize,
    /// Read since the clock's hand last passed it.
    used: AtomicBool,
}

#[derive(Default)]
struct Kept {
    token: u64,
    bytes: usize,
    pages: HashMap<Arc<[u8]>, Entry>,
    /// The kept names in the order the hand meets them, the next one first. A name whose page
    /// was put again is here twice: the copy that is not the table's own key is passed over.
    clock: VecDeque<Arc<[u8]>>,
}

impl Kept {
    /// Drops pages until `size` more bytes fit in `budget`: the first the hand meets that was not
    /// read since it last passed (or has expired); one that was is passed over, its mark cleared.
    /// Marks are set under the read lock only, so each entry is passed over at most once: this ends.
    fn make_room(&mut self, size: usize, budget: usize, ttl: Duration) {
        while self.bytes + size > budget {
            let Some(name) = self.clock.pop_front() else { return };
            let Some((key, entry)) = self.pages.get_key_value(&name) else { continue };
            if !Arc::ptr_eq(key, &name) {
                continue;
            }
            if entry.used.swap(false, Ordering::Relaxed) && entry.at.elapsed() < ttl {
                self.clock.push_back(name);
            } else if let Some(entry) = self.pages.remove(&name) {
                self.bytes -= entry.cost;
            }
        }
    }

    /// Drops the clock's copies of names put again, once they outnumber the pages.
    fn tidy(&mut self) {
        if self.clock.len() > 2 * self.pages.len() + 64 {
            let pages = &self.pages;
            self.clock.retain(|name| pages.get_key_value(name).is_some_and(|(key, _)| Arc::ptr_eq(key, name)));
        }
    }
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

    /// The page kept for `name` under `token`, if any. Asked under another token than the pages'
    /// own, it drops them all: a token is never current again once replaced — unless Redis went
    /// back in time (a restart from an older snapshot brings an older token back), and then pages
    /// kept under it must not come back with it.
    pub fn get(&self, token: u64, name: &[u8]) -> Option<Arc<Page>> {
        {
            let kept = self.kept.read().ok()?;
            if kept.token == token {
                let entry = kept.pages.get(name).filter(|entry| entry.at.elapsed() < self.ttl)?;
                // a mark already set is not written again: readers of one page share its line
                if !entry.used.load(Ordering::Relaxed) {
                    entry.used.store(true, Ordering::Relaxed);
                }
                return Some(entry.page.clone());
            }
        }
        if let Ok(mut kept) = self.kept.write()
            && kept.token != token
        {
            *kept = Kept { token, ..Kept::default() };
        }
        None
    }

    /// Keeps `page` for `name` under `token`. Pages of another token are dropped: they were
    /// rendered before a write (or this one was, and the next request puts them back). Past the
    /// budget, pages are dropped by use until it fits (see `Kept::make_room`).
    pub fn put(&self, token: u64, name: Box<[u8]>, page: Page) {
        let cost = cost(&name, &page);
        if cost > self.budget {
            return;
        }
        let Ok(mut kept) = self.kept.write() else { return };
        if kept.token != token {
            *kept = Kept { token, ..Kept::default() };
        }
        // a page put again (it expired, or two requests rendered it at once) keeps its mark
        let used = kept.pages.remove(&name[..]).is_some_and(|old| {
            kept.bytes -= old.cost;
            old.used.into_inner()
        });
        kept.make_room(cost, self.budget, self.ttl);
        let name: Arc<[u8]> = name.into();
        let entry = Entry { page: Arc::new(page), at: Instant::now(), cost, used: AtomicBool::new(used) };
        kept.pages.insert(name.clone(), entry);
        kept.clock.push_back(name);
        kept.bytes += cost;
        kept.tidy();
    }

    /// Whether a page handler answered `name` before.
    pub fn is_known(&self, name: &[u8]) -> bool {
        self.known.read().is_ok_and(|known| known.contains(&hash(name)))
    }

    pub fn learn(&self, name: &[u8]) {
        // a name learnt before (the usual case) takes no write lock: every page answer comes here
        if self.is_known(name) {
            return;
        }
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

    /// The budget, in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: u32) -> Box<[u8]> {
        format!("/movies?page={n}").into_bytes().into_boxed_slice()
    }

    /// A page of `n` bytes that gzip cannot shrink much (a run of one byte would be a few bytes).
    fn page(n: usize) -> Page {
        let mut rng = fastrand::Rng::with_seed(n as u64);
        let body: String = (0..n).map(|_| rng.alphanumeric()).collect();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
        let etags = caching::Etags::of(body.as_bytes(), &headers);
        Page::new(headers, body.as_bytes(), None, etags, "/movies".into())
    }

    /// Every byte an entry holds, counted again from the entries themselves.
    fn counted(store: &Store) -> usize {
        let kept = store.kept.read().unwrap();
        kept.pages.iter().map(|(name, entry)| cost(name, &entry.page)).sum()
    }

    fn kept(store: &Store, token: u64, n: u32) -> bool {
        store.get(token, &name(n)).is_some()
    }

    #[test]
    fn a_page_is_kept_only_under_its_token() {
        let store = Store::new(100_000, Duration::from_secs(60));
        store.put(7, name(1), page(10));
        assert_eq!(store.get(7, &name(1)).and_then(|p| p.body()).map(|b| b.len()), Some(10));
        assert!(store.get(8, &name(1)).is_none(), "another token: a write came since");
        assert!(store.get(7, &name(2)).is_none());
        // a page of the new token drops every page of the old one
        store.put(8, name(2), page(10));
        assert!(kept(&store, 8, 2));
        assert!(!kept(&store, 7, 1));
    }

    #[test]
    fn pages_of_a_replaced_token_never_come_back_with_it() {
        let store = Store::new(1 << 20, Duration::from_secs(60));
        store.put(1, name(1), page(100));
        assert!(kept(&store, 1, 1));
        // a write: the token is 2 now, and nothing is kept under it yet
        assert!(!kept(&store, 2, 1));
        // Redis back from a snapshot taken under token 1
        assert!(!kept(&store, 1, 1), "a page kept before the write is not served again");
        assert_eq!(counted(&store), 0);
    }

    #[test]
    fn every_byte_kept_is_counted_and_within_the_budget() {
        let full = page(3_000);
        let one = cost(&name(0), &full);
        assert!(full.gzipped.len() > 2_000, "random letters: gzip cannot shrink them much");
        let header = "content-type".len() + "text/html; charset=utf-8".len();
        let held = name(0).len() + full.gzipped.len() + header + full.etags.size() + "/movies".len();
        assert!(one >= held + PER_ENTRY, "the name, the gzipped page, its header, tags and route, the entry ({one})");
        let budget = 4 * one;
        let store = Store::new(budget, Duration::from_secs(60));
        for n in 0..50 {
            store.put(1, name(n % 7), page(3_000));
            let (pages, bytes) = store.size();
            assert_eq!(bytes, counted(&store), "after {n} puts, some of them replacing a page");
            assert!(bytes <= budget, "after {n} puts: {bytes} > {budget}");
            assert!(pages >= (n as usize + 1).min(4), "a full budget drops what it must, not all: {pages}");
        }
        // a page as large as the budget is not kept, and the pages that fit stay
        store.put(1, name(99), page(20_000));
        assert!(!kept(&store, 1, 99), "a page larger than the budget is not kept");
        assert_eq!(store.size().0, 4);
        assert!(!Store::new(0, Duration::from_secs(60)).is_on());
    }

    #[test]
    fn only_the_gzipped_copy_is_kept_and_it_decompresses_to_the_page() {
        let body = "<li>a card</li>".repeat(1_000);
        let kept =
            Page::new(HeaderMap::new(), body.as_bytes(), None, caching::Etags::of(b"", &HeaderMap::new()), "/".into());
        assert!(kept.size() < body.len() / 10, "a page of repeated cards is kept in a few hundred bytes");
        assert_eq!(kept.body().as_deref(), Some(body.as_bytes()));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&kept.gzipped[..]).read_to_string(&mut text).unwrap();
        assert_eq!(text, body, "what a browser gets is the page");
    }

    #[test]
    fn a_page_lives_no_longer_than_the_ttl() {
        let store = Store::new(100_000, Duration::ZERO);
        store.put(1, name(1), page(10));
        assert!(!kept(&store, 1, 1));
    }

    // A page readers keep asking for, among pages each asked for once (a crawler, the tail of the
    // films): a FIFO drops it once as many pages as the budget holds came after it; by use, it
    // stays for as long as it is read between two passes of the hand.
    #[test]
    fn a_page_read_often_outlives_pages_read_once() {
        let one = cost(&name(1_000), &page(1_000));
        let store = Store::new(10 * one + one / 2, Duration::from_secs(60));
        store.put(1, name(0), page(1_000));
        for n in 1..=100 {
            store.put(1, name(n), page(1_000));
            if n % 5 == 0 {
                assert!(kept(&store, 1, 0), "the popular page, read after {n} others");
            }
        }
        assert!(!kept(&store, 1, 1) && !kept(&store, 1, 50), "pages read once made way");
        assert!(kept(&store, 1, 100), "the last page came in");
        assert!(store.size().1 <= 10 * one + one / 2);

        // a FIFO, the same pages in the same order: the popular page went with the first ten
        let fifo = Store::new(10 * one + one / 2, Duration::from_secs(60));
        fifo.put(1, name(0), page(1_000));
        for n in 1..=100 {
            fifo.put(1, name(n), page(1_000));
        }
        assert!(!kept(&fifo, 1, 0), "unread, it is dropped in its turn");
    }

    #[test]
    fn a_page_put_again_is_counted_once() {
        let one = cost(&name(1), &page(500));
        let store = Store::new(100 * one, Duration::from_secs(60));
        for _ in 0..1_000 {
            store.put(1, name(1), page(500));
        }
        assert_eq!(store.size(), (1, one));
        assert!(store.kept.read().unwrap().clock.len() <= 66, "the clock's stale names are dropped");
    }
}
