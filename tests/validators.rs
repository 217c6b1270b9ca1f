//! Validators: every page, fragment and API read carries a strong `ETag` and `Cache-Control:
//! no-cache`; a conditional GET that names the tag is answered `304 Not Modified` with the same tag
//! and no body, from memory when the page is kept (no Redis command, no query) and by the full path
//! otherwise; gzip and identity have different tags, the same from either path; a write changes
//! the tags of the pages that show it, and the next conditional GET gets the whole page.

use std::time::{Duration, Instant};

use marquee::stats::Snapshot;
use reqwest::StatusCode;

use crate::both;
use crate::helpers::{Backend, TestApp, redis_tier_app, spawn_app};

/// One answer, as a cache sees it.
struct Answer {
    status: StatusCode,
    etag: Option<String>,
    cache_control: Option<String>,
    vary: Vec<String>,
    encoding: Option<String>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { status, etag, cache_control, vary, encoding, body } = self;
        write!(f, "{status} etag {etag:?} cache-control {cache_control:?} vary {vary:?} encoding {encoding:?}")?;
        write!(f, ", {} bytes", body.len())
    }
}

impl Answer {
    fn etag(&self) -> &str {
        self.etag.as_deref().unwrap_or_else(|| panic!("an ETag: {self:?}"))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method path` with `headers`, as a browser or a cache sends it.
async fn send(app: &TestApp, method: reqwest::Method, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = app.client.request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().expect("text").to_owned());
    let (etag, cache_control, encoding) = (header("etag"), header("cache-control"), header("content-encoding"));
    let vary = response.headers().get_all("vary").iter().map(|v| v.to_str().expect("text").to_owned()).collect();
    let status = response.status();
    let body = response.bytes().await.expect("body").to_vec();
    Answer { status, etag, cache_control, vary, encoding, body }
}

async fn ask(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(app, reqwest::Method::GET, path, headers).await
}

/// The same request again, naming the tag it got (as a browser revalidates what it stored).
async fn ask_again(app: &TestApp, path: &str, headers: &[(&str, &str)], etag: &str) -> Answer {
    let mut conditional = headers.to_vec();
    conditional.push(("If-None-Match", etag));
    ask(app, path, &conditional).await
}

/// Whether `answer` is the 304 for `full`: no body, the same tag, policy and `Vary`.
fn assert_not_modified(answer: &Answer, full: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{what}: {answer:?}");
    assert!(answer.body.is_empty(), "{what}: a 304 has no body");
    assert_eq!(answer.etag, full.etag, "{what}: the same tag");
    assert_eq!(answer.cache_control.as_deref(), Some("no-cache"), "{what}");
    assert_eq!(answer.vary, full.vary, "{what}: the same Vary");
}

/// What a step cost: Redis commands and database queries.
fn cost(before: Snapshot, after: Snapshot) -> (u64, u64) {
    (after.redis_commands - before.redis_commands, after.db_queries - before.db_queries)
}

async fn until_the_lease_is_held(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.stats().lease_held {
        assert!(Instant::now() < deadline, "the server holds a lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kinds of page a reader opens, each as a browser asks for it: a listing page, its htmx
/// fragment, a list's section, a film's page (opened from a list), a search, and gzipped.
async fn pages(app: &TestApp) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let listing = app.listing(2).await;
    assert_eq!(listing.status, StatusCode::OK);
    let film = format!("/movies/{}", listing.slugs[0]);
    vec![
        ("/movies?page=2".into(), vec![]),
        ("/movies?page=2".into(), vec![("HX-Request", "true"), ("HX-Target", "feed")]),
        ("/movies?genre=drama&sort=votes".into(), vec![("HX-Request", "true"), ("HX-Target", "listing")]),
        (film.clone(), vec![]),
        (film, vec![("Referer", "http://127.0.0.1/movies?genre=drama")]),
        ("/search?q=godf".into(), vec![]),
        ("/movies?page=3".into(), vec![("Accept-Encoding", "gzip, deflate, br")]),
        ("/search?q=godf".into(), vec![("Accept-Encoding", "gzip")]),
    ]
}

// A page kept in memory answers a conditional GET that names its tag with a 304 itself: no Redis
// command while the lease runs, no query. A client that got the page from the full path gets
// it too: the tags are the same from either path.
both!(a_kept_page_is_revalidated_from_memory, |backend| async move {
    let app = spawn_app(backend).await;
    until_the_lease_is_held(&app).await;
    for (path, headers) in pages(&app).await {
        let what = format!("{path} {headers:?}");
        // from the database, then from Redis and kept, then from memory
        let cold = ask(&app, &path, &headers).await;
        app.settle().await;
        let warm = ask(&app, &path, &headers).await;
        let before = app.stats();
        let kept = ask(&app, &path, &headers).await;
        assert_eq!(app.stats().kept_hits - before.kept_hits, 1, "{what}: from memory");
        assert_eq!(kept.status, StatusCode::OK, "{what}");
        assert_eq!(kept.cache_control.as_deref(), Some("no-cache"), "{what}");
        assert!(kept.etag().starts_with('"') && !kept.etag().starts_with("W/"), "{what}: a strong tag");
        assert_eq!((&cold.etag, &warm.etag), (&kept.etag, &kept.etag), "{what}: one tag from either path");

        let before = app.stats();
        let again = ask_again(&app, &path, &headers, kept.etag()).await;
        assert_not_modified(&again, &kept, &what);
        assert_eq!(app.stats().kept_hits - before.kept_hits, 1, "{what}: answered from memory");
        assert_eq!(cost(before, app.stats()), (0, 0), "{what}: no Redis command, no query");
    }
});

// With no page kept in memory, the full path answers the same: a 304 for a GET or a HEAD naming
// the tag (alone, in a list, or weak: If-None-Match compares weakly), `*` too; the whole page for
// any other tag. The API's reads too.
both!(the_full_path_answers_304, |backend| async move {
    let app = redis_tier_app(backend).await;
    let mut asks = pages(&app).await;
    let listing = app.listing(1).await;
    asks.push((format!("/api/movies/{}", listing.slugs[0]), vec![]));
    asks.push(("/api/movies?genre=comedy&page=2".into(), vec![]));
    asks.push(("/api/movies?page=1".into(), vec![("Accept-Encoding", "gzip")]));
    for (path, headers) in asks {
        let what = format!("{path} {headers:?}");
        let full = ask(&app, &path, &headers).await;
        assert_eq!(full.status, StatusCode::OK, "{what}");
        assert_eq!(full.cache_control.as_deref(), Some("no-cache"), "{what}");
        let etag = full.etag().to_owned();
        let weak = format!("W/{etag}");
        let listed = format!("\"elsewhere\", {etag}");
        for named in [etag.as_str(), &weak, &listed, "*"] {
            let again = ask_again(&app, &path, &headers, named).await;
            assert_not_modified(&again, &full, &format!("{what} If-None-Match: {named}"));
        }
        let mut conditional: Vec<(&str, &str)> = headers.clone();
        conditional.push(("If-None-Match", &etag));
        let head = send(&app, reqwest::Method::HEAD, &path, &conditional).await;
        assert_not_modified(&head, &full, &format!("HEAD {what}"));
        let other = ask_again(&app, &path, &headers, "\"0000000000000000\"").await;
        assert_eq!(other.status, StatusCode::OK, "{what}: another tag gets the page");
        assert_eq!((&other.etag, &other.body), (&full.etag, &full.body), "{what}");
    }
});

// gzip and identity are two representations: their tags differ, and the one names not the other.
// Each is the same whichever path answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_identity_have_their_own_tags() {
    let app = spawn_app(Backend::Sqlite).await;
    until_the_lease_is_held(&app).await;
    let plain: &[(&str, &str)] = &[];
    let gzip: &[(&str, &str)] = &[("Accept-Encoding", "gzip")];
    for path in ["/movies?page=2", "/search?q=godf", "/movies/the-godfather-1972"] {
        // from the database, then from Redis (and kept), then from memory
        let (cold_plain, cold_gzip) = (ask(&app, path, plain).await, ask(&app, path, gzip).await);
        app.settle().await;
        let (full_plain, full_gzip) = (ask(&app, path, plain).await, ask(&app, path, gzip).await);
        let before = app.stats();
        let (kept_plain, kept_gzip) = (ask(&app, path, plain).await, ask(&app, path, gzip).await);
        assert_eq!(app.stats().kept_hits - before.kept_hits, 2, "{path}: from memory");
        assert_eq!((kept_plain.encoding.as_deref(), kept_gzip.encoding.as_deref()), (None, Some("gzip")));
        assert_ne!(kept_plain.etag(), kept_gzip.etag(), "{path}: two representations, two tags");
        for (full, kept) in
            [(&cold_plain, &kept_plain), (&full_plain, &kept_plain), (&cold_gzip, &kept_gzip), (&full_gzip, &kept_gzip)]
        {
            assert_eq!(full.encoding, kept.encoding, "{path}");
            assert_eq!(full.etag, kept.etag, "{path}: one tag from either path");
            assert!(full.body == kept.body, "{path}: a strong tag names the same bytes from either path");
        }
        // the tag of one names not the other
        let crossed = ask_again(&app, path, gzip, kept_plain.etag()).await;
        assert_eq!((crossed.status, crossed.encoding.as_deref()), (StatusCode::OK, Some("gzip")), "{path}");
        assert_eq!(crossed.etag, kept_gzip.etag);
        let crossed = ask_again(&app, path, plain, kept_gzip.etag()).await;
        assert_eq!((crossed.status, crossed.body.len()), (StatusCode::OK, kept_plain.body.len()), "{path}");
        assert_eq!(crossed.etag, kept_plain.etag);
        // and each names its own, from memory
        let before = app.stats();
        assert_not_modified(&ask_again(&app, path, gzip, kept_gzip.etag()).await, &kept_gzip, path);
        assert_not_modified(&ask_again(&app, path, plain, kept_plain.etag()).await, &kept_plain, path);
        assert_eq!(app.stats().kept_hits - before.kept_hits, 2, "{path}: from memory");
    }
}

// After a write (an editor retitles a film), the tags of the pages that show it change: a
// conditional GET naming the old one gets the whole page with the new title, from memory or not.
both!(a_write_changes_the_tags_of_the_pages_that_show_it, |backend| async move {
    for app in [spawn_app(backend).await, redis_tier_app(backend).await] {
        let slug = app.listing(1).await.slugs[2].clone();
        let shown = [
            ("/movies?page=1".to_owned(), vec![]),
            ("/movies?page=1".to_owned(), vec![("HX-Request", "true"), ("HX-Target", "feed")]),
            (format!("/movies/{slug}"), vec![]),
            (format!("/api/movies/{slug}"), vec![]),
            ("/api/movies?page=1".to_owned(), vec![]),
            ("/movies?page=1".to_owned(), vec![("Accept-Encoding", "gzip")]),
        ];
        let mut before = Vec::new();
        for (path, headers) in &shown {
            ask(&app, path, headers).await;
            app.settle().await;
            let warm = ask(&app, path, headers).await;
            let again = ask_again(&app, path, headers, warm.etag()).await;
            assert_not_modified(&again, &warm, &format!("{path} {headers:?} before the write"));
            before.push(warm);
        }
        assert_eq!(app.retitle(&slug, "Tagged Anew").await.status(), StatusCode::OK);
        for ((path, headers), old) in shown.iter().zip(&before) {
            let what = format!("{path} {headers:?} after the write");
            let now = ask_again(&app, path, headers, old.etag()).await;
            assert_eq!(now.status, StatusCode::OK, "{what}: the whole page");
            assert_ne!(now.etag(), old.etag(), "{what}: a new tag");
            let text = if now.encoding.is_some() {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&now.body[..]), &mut text).unwrap();
                text
            } else {
                now.text()
            };
            assert!(text.contains("Tagged Anew"), "{what}: the new title");
            let again = ask_again(&app, path, headers, now.etag()).await;
            assert_not_modified(&again, &now, &format!("{what}, revalidated"));
        }
    }
});

// The policy per kind of answer: static files keep theirs (immutable, no tag), a 404 page is
// revalidated with no tag, the operators' endpoints and the answers to writes are not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_answer_has_its_cache_policy() {
    let app = spawn_app(Backend::Sqlite).await;
    let missing = ask(&app, "/movies/no-such-film-1900", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!((missing.cache_control.as_deref(), missing.etag.as_deref()), (Some("no-cache"), None));
    let missing = ask_again(&app, "/movies/no-such-film-1900", &[], "*").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "only a 200 is answered 304");
    let api_missing = ask(&app, "/api/movies/no-such-film-1900", &[]).await;
    assert_eq!((api_missing.status, api_missing.cache_control.as_deref()), (StatusCode::NOT_FOUND, Some("no-cache")));
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = ask(&app, path, &[]).await;
        assert_eq!((answer.cache_control.as_deref(), answer.etag.as_deref()), (Some("no-store"), None), "{path}");
    }
    let html = ask(&app, "/", &[]).await.text();
    let css = html.split('"').find(|s| s.starts_with("/static/app.css")).expect("a stylesheet");
    let asset = ask(&app, css, &[]).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.cache_control.as_deref(), Some("public, max-age=31536000, immutable"));
    let slug = app.listing(1).await.slugs[0].clone();
    let write = app.retitle(&slug, "Not Stored").await;
    assert_eq!(write.status(), StatusCode::OK);
    assert_eq!(write.headers()["cache-control"], "no-store");
    assert!(!write.headers().contains_key("etag"));
    let bad = ask(&app, "/movies?page=0", &[]).await;
    assert_eq!((bad.status, bad.cache_control.as_deref()), (StatusCode::BAD_REQUEST, Some("no-cache")));
}
