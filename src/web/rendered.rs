//! Rendered pages kept in this server's memory, in front of Redis. A warm listing or film page is
//! answered with the bytes rendered for it before, as long as Redis's epoch token is the one they
//! were rendered under: every write that reaches the cache (a writer's, or the cache log's)
//! changes the token after its keys, so one GET of the token per request tells every server at
//! once, with no window, whether what it kept is still right.
//!
//! Only pages read wholly from Redis, after the token was read, are kept: a database read shared
//! with a request that began earlier may predate a write the token already names. An entry also
//! lives no longer than the page keys' TTL, as the cache does. The memory is bounded: when the
//! pages kept would pass the budget, pages are dropped (whichever the map holds first) until a
//! quarter of it is free.
//!
//! Pages are also kept by the request that asked for them (its path and query and the headers a
//! page depends on), so that the front (`web::front`) can answer a request it saw before without
//! routing it; a page found or kept by a handler is carried on its response as `KeptPage` for that.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::movies::MovieList;
use crate::stats::Stats;

/// What a page is kept by: every input of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PageKey {
    /// Page `page` of `list`, as the whole document, the section or the next cards (0, 1, 2).
    List { list: MovieList, page: u32, view: u8 },
    /// Page `page` of a search for `text` (as typed: the page shows it), as the whole document,
    /// the section or the next cards, and whether its history header replaces the address.
    Search { text: String, page: u32, view: u8, replace: bool },
    /// A film's page, with the way back it shows (from the `Referer`).
    Film { slug: String, back: Option<(String, &'static str)> },
}

/// A rendered page: its bytes, and the headers that go with them.
#[derive(Debug, Clone)]
pub struct Html {
    pub body: Bytes,
    /// The htmx history header of a list's fragment (`HX-Push-Url`, `HX-Replace-Url`).
    pub history: Option<(HeaderName, HeaderValue)>,
    /// Lists and search answer differently to htmx: `Vary: HX-Request, HX-Target`.
    pub vary: bool,
    /// The body gzipped, made the first time a client that accepts gzip is answered by the front
    /// (shared by the copies of a kept page).
    gzipped: Arc<OnceLock<Bytes>>,
}

impl Html {
    pub fn page(body: String) -> Self {
        Self { body: Bytes::from(body), history: None, vary: false, gzipped: Arc::default() }
    }

    /// The body gzipped (at the default level, as the compression layer does).
    pub fn gzipped(&self) -> Bytes {
        self.gzipped
            .get_or_init(|| {
                let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(self.body.len() / 3), Default::default());
                // writing to memory cannot fail
                let _ = std::io::Write::write_all(&mut gz, &self.body);
                gz.finish().map(Bytes::from).unwrap_or_default()
            })
            .clone()
    }
}

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::OK, Body::from(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        if let Some((name, value)) = self.history {
            headers.insert(name, value);
        }
        if self.vary {
            headers.insert(header::VARY, HeaderValue::from_static("HX-Request, HX-Target"));
        }
        response
    }
}

struct Kept {
    epoch: u64,
    bytes: usize,
    pages: HashMap<PageKey, (Instant, Html)>,
    /// The same pages by the request that asked for them (see `web::front`), with the route's
    /// name; its bytes counted apart (a page may outlive its entry above here).
    requests: HashMap<Box<[u8]>, (Instant, Html, &'static str)>,
    request_bytes: usize,
}

/// A page the handler answered from, or kept, under the token `epoch`: carried on its response
/// so that the front can keep it by request too.
#[derive(Clone)]
pub struct KeptPage {
    pub epoch: u64,
    /// When it was kept: it lives no longer than the TTL from then, however it is found.
    pub at: Instant,
    pub html: Html,
}

pub struct Rendered {
    stats: Arc<Stats>,
    budget: usize,
    ttl: Duration,
    kept: RwLock<Kept>,
}

impl Rendered {
    /// Keeps at most `budget` bytes of pages (0: none), each at most `ttl`.
    pub fn new(budget: usize, ttl: Duration, stats: Arc<Stats>) -> Self {
        let kept = Kept { epoch: 0, bytes: 0, pages: HashMap::new(), requests: HashMap::new(), request_bytes: 0 };
        Self { stats, budget, ttl, kept: RwLock::new(kept) }
    }

    pub fn is_on(&self) -> bool {
        self.budget > 0
    }

    /// The page kept for `key` under token `epoch`, if any.
    pub fn get(&self, epoch: u64, key: &PageKey) -> Option<KeptPage> {
        let kept = self.kept.read().ok()?;
        let found = (kept.epoch == epoch)
            .then(|| kept.pages.get(key))
            .flatten()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(at, html)| KeptPage { epoch, at: *at, html: html.clone() });
        self.stats.rendered(found.is_some());
        found
    }

    /// Keeps `html` for `key` under token `epoch`. Pages of another token are dropped: they
    /// were rendered before a write, or this one was (then the next request puts them back).
    pub fn put(&self, epoch: u64, key: PageKey, html: Html) -> Option<KeptPage> {
        let size = html.body.len();
        if size > self.budget {
            return None;
        }
        let Ok(mut kept) = self.kept.write() else { return None };
        if kept.epoch != epoch {
            kept.pages.clear();
            kept.bytes = 0;
            kept.requests.clear();
            kept.request_bytes = 0;
            kept.epoch = epoch;
        }
        if kept.bytes + size > self.budget {
            // not all of them: a working set a little over the budget would be read again in full
            let goal = (self.budget / 4 * 3).saturating_sub(size);
            let mut bytes = kept.bytes;
            kept.pages.retain(|_, (_, html)| {
                let drop = bytes > goal;
                if drop {
                    bytes -= html.body.len();
                }
                !drop
            });
            kept.bytes = bytes;
        }
        let at = Instant::now();
        if let Some((_, old)) = kept.pages.insert(key, (at, html.clone())) {
            kept.bytes -= old.body.len();
        }
        kept.bytes += size;
        Some(KeptPage { epoch, at, html })
    }
}

impl Rendered {
    /// The page kept for the request `key` (see `web::front`) under token `epoch`, with its
    /// route's name.
    pub fn by_request(&self, epoch: u64, key: &[u8]) -> Option<(Html, &'static str)> {
        let kept = self.kept.read().ok()?;
        let found = (kept.epoch == epoch)
            .then(|| kept.requests.get(key))
            .flatten()
            .filter(|(at, ..)| at.elapsed() < self.ttl)
            .map(|(_, html, route)| (html.clone(), *route));
        if found.is_some() {
            self.stats.rendered_by_request();
        }
        found
    }

    /// Keeps `page` for the request `key` too, if its token is still the one pages are kept
    /// under. Past the budget, the requests kept so far are forgotten (their pages stay).
    pub fn put_request(&self, key: Box<[u8]>, route: &'static str, page: &KeptPage) {
        let size = key.len() + page.html.body.len();
        let Ok(mut kept) = self.kept.write() else { return };
        if kept.epoch != page.epoch || size > self.budget {
            return;
        }
        if kept.request_bytes + size > self.budget {
            kept.requests.clear();
            kept.request_bytes = 0;
        }
        if let Some((_, old, _)) = kept.requests.insert(key, (page.at, page.html.clone(), route)) {
            kept.request_bytes -= old.body.len();
        }
        kept.request_bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(page: u32) -> PageKey {
        PageKey::List { list: MovieList::default(), page, view: 0 }
    }

    fn html(n: usize) -> Html {
        Html::page("x".repeat(n))
    }

    #[test]
    fn a_page_is_kept_only_under_its_token() {
        let r = Rendered::new(1000, Duration::from_secs(60), Arc::default());
        r.put(7, key(1), html(10));
        assert_eq!(r.get(7, &key(1)).map(|k| k.html.body.len()), Some(10));
        assert!(r.get(8, &key(1)).is_none(), "another token: a write came since");
        assert!(r.get(7, &key(2)).is_none());
        // a page of the new token drops every page of the old one
        r.put(8, key(2), html(10));
        assert!(r.get(7, &key(1)).is_none());
        assert!(r.get(8, &key(2)).is_some());
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let r = Rendered::new(100, Duration::from_secs(60), Arc::default());
        for n in 0..50 {
            r.put(1, key(n), html(30));
            let kept = r.kept.read().unwrap();
            assert!(kept.bytes <= 100 && kept.pages.values().map(|(_, h)| h.body.len()).sum::<usize>() == kept.bytes);
        }
        let kept = r.kept.read().unwrap().pages.len();
        assert!(kept >= 2, "a full budget drops some pages, not all ({kept} kept)");
        r.put(1, key(99), html(101));
        assert!(r.get(1, &key(99)).is_none(), "a page larger than the budget is not kept");
        assert!(!Rendered::new(0, Duration::from_secs(60), Arc::default()).is_on());
    }

    #[test]
    fn a_page_lives_no_longer_than_the_ttl() {
        let r = Rendered::new(1000, Duration::ZERO, Arc::default());
        r.put(1, key(1), html(10));
        assert!(r.get(1, &key(1)).is_none());
    }
}
