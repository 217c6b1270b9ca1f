//! The failure paths made exact: what each fault answers, and that it leaves nothing stuck.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Setup, spawn_app};
use crate::pages::assert_in_layout;
use crate::{both, on_each_redis};

/// `MOVIE_TTL_SECS=20` means no film entry lives longer than 20 s: jitter only shortens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttls_never_exceed_their_settings() {
    let app = Setup::new(Backend::Sqlite)
        .env("MOVIE_TTL_SECS", "20")
        .env("PAGE_TTL_SECS", "10")
        .env("NEGATIVE_TTL_SECS", "5")
        .spawn()
        .await;
    let page = app.listing(1).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(app.detail("no-such-film-1901").await.status, StatusCode::NOT_FOUND);
    app.settle().await;
    let redis = app.redis().await;
    let ttl = |key: String| {
        let mut redis = redis.clone();
        async move { redis.ttl::<_, i64>(key).await.unwrap() }
    };
    let mut film_ttls = Vec::new();
    for slug in &page.slugs {
        film_ttls.push(ttl(app.key(&format!("movie:{slug}"))).await);
    }
    assert!(film_ttls.iter().all(|t| (17..=20).contains(t)), "film TTLs within 90–100% of 20 s: {film_ttls:?}");
    let page_ttl = ttl(app.key("movies:page:1")).await;
    assert!((8..=10).contains(&page_ttl), "page TTL {page_ttl}");
    let meta_ttl = ttl(app.key("movies:stamp")).await;
    assert!((17..=20).contains(&meta_ttl), "meta TTL {meta_ttl}");
    let gone_ttl = ttl(app.key("movie:no-such-film-1901")).await;
    assert!((3..=5).contains(&gone_ttl), "negative TTL {gone_ttl}");
}

// A title and year whose every slug is taken is a conflict naming the last slug tried.
both!(a_title_whose_slugs_are_all_taken_is_a_409, |backend| async move {
    let app = spawn_app(backend).await;
    let film = json!({"title": "Same Old Story", "release_date": "1950-05-05"});
    for n in 1..=99 {
        let r = app.add_movie(&film).await;
        assert_eq!(r.status(), StatusCode::CREATED, "film {n}");
    }
    let r = app.add_movie(&film).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let answer: Value = r.json().await.unwrap();
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(error.contains("same-old-story-1950-99"), "names the slug: {answer}");
});

/// A request over REQUEST_TIMEOUT_SECS gets the site's own 503 (a page, or JSON under /api/) with
/// Retry-After, and is counted in the latency histogram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_gets_our_503_and_is_counted() {
    let app = Setup::new(Backend::Sqlite).env("REQUEST_TIMEOUT_SECS", "1").spawn().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_reads(Some(gate.clone()));
    let started = Instant::now();
    let page = app.get("/movies?page=7").await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(3), "answered at the limit, not later");
    assert_eq!(page.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert_in_layout(&page.text().await.unwrap(), "time-out page");
    let api = app.get("/api/movies/no-such-film-1902").await;
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    let answer: Value = api.json().await.unwrap();
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("too long")), "{answer}");
    app.hooks.hold_reads(None);
    gate.add_permits(1000);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let timed_out = r#"marquee_http_request_duration_seconds_count{route="/movies",status="503"}"#;
    assert!(metrics.contains(timed_out), "the time-out is in the histogram:\n{metrics}");
    // the reads held back finish and the site answers again
    assert_eq!(app.listing(7).await.status, StatusCode::OK);
}

/// A panic inside a shared database read answers its requests with a 500 page and does not
/// poison the read: the next request reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_read_is_a_500_and_the_next_request_reads_again() {
    let app = spawn_app(Backend::Sqlite).await;
    app.hooks.panic_on_reads(true);
    let requests = (0..5).map(|_| app.get("/movies?page=4"));
    for answer in futures_util::future::join_all(requests).await {
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = answer.text().await.unwrap();
        assert_in_layout(&body, "500 page");
        assert!(!body.contains("test hook"), "the cause is logged, not shown:\n{body}");
    }
    let detail = app.get("/api/movies/the-land-girls-1998").await;
    assert_eq!(detail.status(), StatusCode::INTERNAL_SERVER_ERROR);
    app.hooks.panic_on_reads(false);
    let page = app.listing(4).await;
    assert_eq!(page.status, StatusCode::OK, "the read is not poisoned");
    assert_eq!(page.slugs.len(), 24);
    assert_eq!(app.detail("the-land-girls-1998").await.status, StatusCode::OK);
}

/// A panic in a handler itself (here in an update's read of its row) is a 500 in our own words,
/// never a dropped connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_handler_is_a_500_not_a_dropped_connection() {
    let app = spawn_app(Backend::Sqlite).await;
    app.hooks.panic_on_reads(true);
    let r = app.retitle("the-land-girls-1998", "Never Written").await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let answer: Value = r.json().await.unwrap();
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("went wrong")), "{answer}");
    app.hooks.panic_on_reads(false);
    assert_eq!(app.detail("the-land-girls-1998").await.heading.as_deref(), Some("The Land Girls"));
}

// A film entry that does not decode is repaired by the reader that found it, but only while the
// key still holds the bytes that reader saw: a newer entry written meanwhile (here by an editor's
// write, which replaces an entry with no readable version) survives the repair.
on_each_redis!(a_repair_of_an_unreadable_entry_keeps_a_newer_write, |target| async move {
    let app = spawn_app(target).await;
    let slug = "the-land-girls-1998";
    let key = app.key(&format!("movie:{slug}"));
    let mut redis = app.redis().await;
    let _: () = redis.set_ex(&key, "{not json", 60).await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_reads(Some(gate.clone()));
    let before = app.stats().db_queries;
    let (client, url) = (app.client.clone(), app.url(&format!("/movies/{slug}")));
    let reader = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    assert!(app.queries_reach(before + 1).await, "the reader's query reached the database");
    let r = app.retitle(slug, "The Land Girls, Retitled").await;
    assert_eq!(r.status(), StatusCode::OK);
    let written: Value = r.json().await.unwrap();
    app.hooks.hold_reads(None);
    gate.add_permits(100);
    assert_eq!(reader.await.unwrap(), StatusCode::OK);
    app.settle().await;
    let cached: String = redis.get(&key).await.unwrap();
    let cached: Value = serde_json::from_str(&cached).unwrap();
    assert_eq!(cached["title"], "The Land Girls, Retitled", "the repair put the older row back: {cached}");
    assert_eq!(cached["v"], written["version"]);
    assert_eq!(app.detail(slug).await.heading.as_deref(), Some("The Land Girls, Retitled"));
});

/// Past MAX_IN_FLIGHT requests at once, new ones get a fast 503 with Retry-After in the site's
/// own words, instead of waiting behind the others; the operators' endpoints still answer; and
/// the requests in flight finish normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_bound_requests_are_refused_fast() {
    let app = Setup::new(Backend::Sqlite).env("MAX_IN_FLIGHT", "2").spawn().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_reads(Some(gate.clone()));
    let before = app.stats().db_queries;
    let held: Vec<_> = [3, 4]
        .into_iter()
        .map(|n| {
            let (client, url) = (app.client.clone(), app.url(&format!("/movies?page={n}")));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    assert!(app.queries_reach(before + 2).await, "both requests are in flight");
    let started = Instant::now();
    let page = app.get("/movies?page=5").await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(500), "refused at once, not queued");
    assert_eq!(page.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert_in_layout(&page.text().await.unwrap(), "overload page");
    let api = app.get("/api/movies/the-land-girls-1998").await;
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    let answer: Value = api.json().await.unwrap();
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("busy")), "{answer}");
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK, "liveness is outside the bound");
    app.hooks.hold_reads(None);
    gate.add_permits(100);
    for request in held {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(app.listing(5).await.status, StatusCode::OK, "served again once there is room");
}

/// A flood of wrong admin tokens from one address is refused with 429 and Retry-After once it
/// passes BAD_TOKENS_PER_MINUTE; the right token is never held up, and reads are not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_is_refused_and_the_right_one_is_not() {
    let app = Setup::new(Backend::Sqlite).env("BAD_TOKENS_PER_MINUTE", "5").spawn().await;
    let url = app.url("/api/movies/the-land-girls-1998");
    let body = json!({"title": "Guessed"});
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = app.client.put(&url).bearer_auth("guess").json(&body).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "Retry-After {wait}");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    let good = app.retitle("the-land-girls-1998", "The Land Girls").await;
    assert_eq!(good.status(), StatusCode::OK, "the right token is not slowed");
    assert_eq!(app.detail("the-land-girls-1998").await.status, StatusCode::OK);
    let answer: Value =
        app.client.put(&url).bearer_auth("guess").json(&body).send().await.unwrap().json().await.unwrap();
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("too many wrong admin tokens")), "{answer}");
}

// Heavy reads have connections of their own (DB_HEAVY_CONNECTIONS): while a slow search holds the
// only one, with a main pool of one connection, the listing's first and deep pages, a film's page
// and the API's film are served as usual; a second heavy read waits DB_HEAVY_WAIT_MS at most, then
// gets a 503 with Retry-After in the site's words (counted as shed, not as the pool's wait); and
// the slow search, once through, answers 200. On one pool the held search kept the film page
// waiting until the pool's 2 s acquire timeout, a 503.
both!(a_slow_heavy_read_keeps_no_page_or_film_from_a_connection, |backend| async move {
    let app = Setup::new(backend)
        .env("DB_MAX_CONNECTIONS", "1")
        .env("DB_HEAVY_CONNECTIONS", "1")
        .env("DB_HEAVY_WAIT_MS", "300")
        .env("RENDERED_CACHE_KB", "0")
        .spawn()
        .await;
    let slug = app.listing(2).await.slugs[0].clone();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    app.hooks.hold_heavy_reads(Some(gate.clone()));
    let slow = {
        let (client, url) = (app.client.clone(), app.url("/search?q=love"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    };
    let held = Instant::now();
    while app.hooks.heavy_reads_held() == 0 {
        assert!(held.elapsed() < Duration::from_secs(10), "the search reaches its connection");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for path in
        ["/movies".to_owned(), "/movies?page=40".into(), format!("/movies/{slug}"), format!("/api/movies/{slug}")]
    {
        let started = Instant::now();
        assert_eq!(app.get(&path).await.status(), StatusCode::OK, "{path} beside a held search");
        assert!(started.elapsed() < Duration::from_secs(1), "{path}: no wait for a connection");
    }
    let started = Instant::now();
    let shed = app.get("/movies?genre=drama&sort=rating").await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(1500), "refused after its budget's wait, not the pool's");
    assert_eq!(shed.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let text = shed.text().await.unwrap();
    assert_in_layout(&text, "shed page");
    assert!(text.contains("searches and narrowed lists"), "says why: {text}");
    assert_eq!(app.stats().db_heavy_shed, 1);
    app.hooks.hold_heavy_reads(None);
    gate.add_permits(100);
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    assert_eq!(app.get("/movies?genre=drama&sort=rating").await.status(), StatusCode::OK, "served once there is room");
});

/// PostgreSQL stops a heavy read at DB_STATEMENT_TIMEOUT_MS: a search that waits for films held
/// locked by someone else is answered with the shed read's 503 and Retry-After, counted, well
/// before the request's own time limit; once the lock is gone the same search is a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_read_past_the_statement_timeout_is_shed() {
    let app = Setup::new(Backend::Postgres).env("DB_STATEMENT_TIMEOUT_MS", "300").spawn().await;
    let lock = app.lock_films().await;
    let started = Instant::now();
    let shed = app.get("/search?q=love").await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(3), "stopped at its timeout: {:?}", started.elapsed());
    assert_eq!(shed.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert_eq!(app.stats().db_heavy_shed, 1);
    drop(lock);
    assert_eq!(app.get("/search?q=love").await.status(), StatusCode::OK);
}
