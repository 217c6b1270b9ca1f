//! Faults, with real processes: a private `redis-server` per test that is killed, paused and
//! restarted; PostgreSQL cut off behind a TCP proxy the test runs; the real binary sent SIGTERM
//! under load; writes racing reads. What an operator would check: status codes, latencies, what
//! Redis holds afterwards, and that the app recovers by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::net::TcpStream;

use crate::helpers::{Backend, REDIS, Redis, Setup, TOKEN, Target, TestApp, TestDb, card_slugs, redis_conn, unique};
use crate::redis_server::{RedisServer, free_port, signal};
use crate::support::html::Listing;
use crate::support::load::{Load, Target as LoadTarget, targets};
use crate::support::proxy::Proxy;
use crate::{both, on_each_redis};

/// Polls `check` every 50 ms until it holds; false when `limit` passes first.
async fn eventually<F: Future<Output = bool>>(limit: Duration, mut check: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn readyz(app: &TestApp) -> (StatusCode, serde_json::Value) {
    let r = app.get("/readyz").await;
    let status = r.status();
    (status, r.json().await.expect("readyz answers JSON"))
}

/// Runs a command on a test's own connection.
async fn run(conn: &mut impl redis::aio::ConnectionLike, cmd: &redis::Cmd) -> redis::Value {
    cmd.query_async(conn).await.unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// An error page in the site's layout (header, main, footer), not a bare message.
fn assert_site_layout(html: &str, what: &str) {
    for part in ["<header class=\"site-header\"", "<main id=\"main\"", "<footer class=\"site-footer\"", "Error 503"] {
        assert!(html.contains(part), "{what}: the 503 page lacks {part:?}:\n{html}");
    }
}

both!(redis_absent_at_start, |backend| async move {
    // nothing listens on this port
    let url = format!("redis://127.0.0.1:{}", free_port());
    let app = Setup::new(backend).redis(&url).env("REDIS_TIMEOUT_MS", "50").spawn().await;
    let targets = targets(&app, 3).await;
    let started = Instant::now();
    let tally = {
        let load = Load::start(&app.base, &targets, 4);
        tokio::time::sleep(Duration::from_secs(1)).await;
        load.finish().await
    };
    tally.assert_all_ok_within(Duration::from_secs(1));
    assert!(tally.requests >= targets.len() as u64, "only {} requests in {:?}", tally.requests, started.elapsed());
    let (_, html) = app.get_text("/movies?page=2").await;
    assert_eq!(card_slugs(&html).len(), 24, "page 2 from the database has a full page of cards");
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["database"].as_str(), body["cache"].as_str()), (Some("up"), Some("down")), "{body}");
    assert_eq!(body["status"], "degraded");
    let stats = app.stats();
    assert_eq!(
        stats.page_hits + stats.movie_hits + stats.related_hits,
        0,
        "nothing can have come from a cache that is not there"
    );
    assert!(stats.redis_errors > 0, "the failed attempts are counted: {stats:?}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_and_restarted() {
    let mut redis = RedisServer::start().await;
    let app = Setup::new(Backend::Postgres).redis(&redis.url()).env("REDIS_TIMEOUT_MS", "50").spawn().await;
    let targets = targets(&app, 4).await;
    app.settle().await;
    assert!(redis.keys(&app.prefix).await.len() > 90, "the pages and films are cached before the fault");

    // A key the site never writes: its absence after the restart shows the restart lost everything,
    // while the site's own keys may already be written back by the load in the moment before we look.
    let marker = format!("{}test:before-the-kill", app.prefix);
    let () = redis::cmd("SET").arg(&marker).arg(1).query_async(&mut redis.conn().await).await.unwrap();
    let load = Load::start(&app.base, &targets, 16);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = app.stats();
    redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = app.stats();
    assert!(during.redis_errors > before_kill.redis_errors, "the outage was felt: {during:?}");
    redis.restart().await;
    let back = Instant::now();
    let exists: bool = redis::cmd("EXISTS").arg(&marker).query_async(&mut redis.conn().await).await.unwrap();
    assert!(!exists, "a restarted server starts empty");
    let resumed = eventually(Duration::from_secs(10), || {
        let (redis, app) = (&redis, &app);
        async move {
            let keys = redis.keys(&app.prefix).await;
            let pages = keys.iter().filter(|k| k.contains("movies:page:")).count();
            let movies = keys.iter().filter(|k| k.contains(":movie:")).count();
            let now = app.stats();
            let hits = |s: &marquee::stats::Snapshot| s.page_hits + s.movie_hits + s.related_hits;
            pages >= 4 && movies >= 96 && hits(&now) > hits(&during) + 100
        }
    })
    .await;
    let resumed_after = back.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tally = load.finish().await;
    eprintln!(
        "redis killed under load: {} requests, slowest {:?} ({}), caching resumed {:?} after the restart",
        tally.requests, tally.max_latency, tally.slowest, resumed_after
    );
    assert!(resumed, "caching did not resume within 10 s of Redis coming back: {:?}", app.stats());
    tally.assert_all_ok_within(Duration::from_secs(1));
    assert!(tally.requests > 500, "the load was too light to mean anything: {} requests", tally.requests);
}

#[derive(Debug, Clone, Copy)]
enum Stall {
    /// SIGSTOP: the process holds its sockets and answers nothing.
    Sigstop,
    /// `CLIENT PAUSE ms ALL`: connections are accepted, commands wait.
    ClientPause,
}

async fn redis_slow(stall: Stall) {
    let redis = RedisServer::start().await;
    let app = Setup::new(Backend::Sqlite).redis(&redis.url()).env("REDIS_TIMEOUT_MS", "50").spawn().await;
    let targets = targets(&app, 3).await;
    app.settle().await;
    // every target once more, from the cache
    for t in &targets {
        assert_eq!(app.get(&t.path).await.status(), StatusCode::OK);
    }
    let clients_before = redis.clients().await;
    let before = app.stats();
    let pause_for = Duration::from_millis(2500);
    match stall {
        Stall::Sigstop => redis.pause(),
        Stall::ClientPause => {
            let mut conn = redis.conn().await;
            run(
                &mut conn,
                redis::cmd("CLIENT").arg("PAUSE").arg(u64::try_from(pause_for.as_millis()).unwrap()).arg("ALL"),
            )
            .await;
        }
    }
    let load = Load::start(&app.base, &targets, 8);
    tokio::time::sleep(pause_for - Duration::from_millis(300)).await;
    let tally = load.finish().await;
    let during = app.stats();
    if let Stall::Sigstop = stall {
        redis.resume();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let clients_after = redis.clients().await;
    let round_trips = during.redis_round_trips - before.redis_round_trips;
    eprintln!(
        "redis slow ({stall:?}): {} requests, slowest {:?}, {round_trips} redis round trips, {} errors, \
         clients {clients_before} -> {clients_after}",
        tally.requests,
        tally.max_latency,
        during.redis_errors - before.redis_errors
    );
    tally.assert_all_ok_within(Duration::from_millis(500));
    assert!(tally.requests > 100, "the load was too light to mean anything: {} requests", tally.requests);
    assert!(during.redis_errors > before.redis_errors, "the stall was felt");
    // Backing off: most requests did not wait on Redis at all. Without it, every request would
    // make at least one round trip (and wait out the timeout on each).
    assert!(
        round_trips * 4 < tally.requests,
        "{round_trips} redis round trips for {} requests: the app does not back off",
        tally.requests
    );
    // no pile-up: the app still talks to Redis over the connection(s) it had
    assert!(
        clients_after <= clients_before + 1,
        "CLIENT LIST grew from {clients_before} to {clients_after} connections after the stall"
    );
    // and it uses Redis again
    // (a page kept in memory is answered after a GET of the token: Redis used too)
    let hits = during.page_hits + during.movie_hits + during.related_hits + during.kept_hits;
    assert!(
        eventually(Duration::from_secs(5), || {
            let app = &app;
            async move {
                let _ = app.get("/movies?page=2").await;
                let now = app.stats();
                now.page_hits + now.movie_hits + now.related_hits + now.kept_hits > hits
            }
        })
        .await,
        "no cache hits after the stall ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_with_sigstop() {
    redis_slow(Stall::Sigstop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_with_client_pause() {
    redis_slow(Stall::ClientPause).await;
}

/// How an entry is spoiled.
#[derive(Debug, Clone, Copy)]
enum Spoil {
    MovieBadJson,
    MovieHash,
    PageNotArray,
    PageGarbage,
    PageList,
}

const SPOILS: [Spoil; 5] =
    [Spoil::MovieBadJson, Spoil::MovieHash, Spoil::PageNotArray, Spoil::PageGarbage, Spoil::PageList];

// The Redis tier alone (no page kept in memory, which would answer without reading the spoiled
// key: rightly, it holds what the key held before it was spoiled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_entries_are_read_around_and_rewritten() {
    for spoil in SPOILS {
        let redis = RedisServer::start().await;
        let app = Setup::new(Backend::Sqlite)
            .redis(&redis.url())
            .env("REDIS_TIMEOUT_MS", "50")
            .env("RENDERED_CACHE_KB", "0")
            .spawn()
            .await;
        corrupted_entry(&app, spoil).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_entries_are_read_around_and_rewritten_on_a_cluster() {
    for spoil in SPOILS {
        let app =
            Setup::new(Target::new(Backend::Postgres, Redis::Cluster)).env("RENDERED_CACHE_KB", "0").spawn().await;
        corrupted_entry(&app, spoil).await;
    }
}

async fn corrupted_entry(app: &TestApp, spoil: Spoil) {
    let (_, listing) = app.get_text("/movies?page=2").await;
    let slug = card_slugs(&listing)[3].clone();
    let detail_path = format!("/movies/{slug}");
    let (_, detail) = app.get_text(&detail_path).await;
    app.settle().await;
    // the same answers from the cache
    assert_eq!(app.get_text("/movies?page=2").await.1, listing);
    assert_eq!(app.get_text(&detail_path).await.1, detail);

    let mut conn = app.redis().await;
    let movie_key = app.key(&format!("movie:{slug}"));
    let page_key = app.key("movies:page:2");
    let spoiled = match spoil {
        Spoil::MovieBadJson => {
            run(&mut conn, redis::cmd("SET").arg(&movie_key).arg("{\"v\":99999999,\"title\":")).await;
            &movie_key
        }
        Spoil::MovieHash => {
            run(&mut conn, redis::cmd("DEL").arg(&movie_key)).await;
            run(&mut conn, redis::cmd("HSET").arg(&movie_key).arg("title").arg("x")).await;
            &movie_key
        }
        Spoil::PageNotArray => {
            run(&mut conn, redis::cmd("SET").arg(&page_key).arg("{\"slugs\":[\"a\"]}")).await;
            &page_key
        }
        Spoil::PageGarbage => {
            run(&mut conn, redis::cmd("SET").arg(&page_key).arg(&b"\xff\x00garbage"[..])).await;
            &page_key
        }
        Spoil::PageList => {
            run(&mut conn, redis::cmd("DEL").arg(&page_key)).await;
            run(&mut conn, redis::cmd("RPUSH").arg(&page_key).arg(&slug)).await;
            &page_key
        }
    };
    let before = app.stats();
    // the page that reads the spoiled key on its own first (a detail page reads one film key, a
    // listing reads its page key), then the other
    let movie_first = spoiled == &movie_key;
    for step in 0..2 {
        if (step == 0) == movie_first {
            let (status, detail_now) = app.get_text(&detail_path).await;
            assert_eq!(status, StatusCode::OK, "{spoil:?}: detail");
            assert_eq!(detail_now, detail, "{spoil:?}: the detail page is the same");
        } else {
            let (status, page_now) = app.get_text("/movies?page=2").await;
            assert_eq!(status, StatusCode::OK, "{spoil:?}: listing");
            assert_eq!(card_slugs(&page_now), card_slugs(&listing), "{spoil:?}: the listing shows the same cards");
            assert_eq!(page_now, listing, "{spoil:?}: the listing is the same page");
        }
    }
    app.settle().await;
    let corrupt = app.stats().corrupt_entries - before.corrupt_entries;
    assert!(corrupt >= 1, "{spoil:?}: the bad entry is counted (marquee_cache_corrupt_entries_total)");

    // the spoiled entry has been replaced by a good one
    let kind: String = redis::cmd("TYPE").arg(spoiled).query_async(&mut conn).await.unwrap();
    assert_eq!(kind, "string", "{spoil:?}: {spoiled} was not rewritten");
    let value: String = redis::cmd("GET").arg(spoiled).query_async(&mut conn).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&value).unwrap_or_else(|e| panic!("{spoil:?}: {value}: {e}"));
    if spoiled == &movie_key {
        let (_, movie) = app
            .database()
            .movies(&[marquee::movies::Slug::parse(&slug).unwrap().as_str()])
            .await
            .map(|(stamp, mut found)| (stamp, found.pop()))
            .unwrap();
        let movie = movie.expect("the film exists");
        assert_eq!(json["slug"], slug.as_str(), "{spoil:?}: {value}");
        assert_eq!(json["title"], movie.title.as_str(), "{spoil:?}: {value}");
        assert_eq!(json["v"], movie.version, "{spoil:?}: the database's version, not the spoiled one: {value}");
    } else {
        let slugs: Vec<String> = serde_json::from_value(json["slugs"].clone()).unwrap_or_default();
        assert_eq!(slugs, card_slugs(&listing), "{spoil:?}: {value}");
    }
    // and read from the cache again, with no Redis error along the way
    let after_settle = app.stats();
    assert_eq!(app.get_text("/movies?page=2").await.1, listing);
    assert_eq!(app.get_text(&detail_path).await.1, detail);
    let now = app.stats();
    assert_eq!(now.db_queries, after_settle.db_queries, "{spoil:?}: the rewritten entries are served from Redis");
    assert_eq!(now.redis_errors, before.redis_errors, "{spoil:?}: a bad entry is not a Redis outage: {now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_while_serving() {
    let mut proxy = Proxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(url, db.url);
    let app = Setup::new(Backend::Postgres).env("DATABASE_URL", &url).spawn().await;
    let (status, warm_listing) = app.get_text("/").await;
    assert_eq!(status, StatusCode::OK);
    let warm = card_slugs(&warm_listing);
    let mut warm_details = Vec::new();
    for slug in &warm[..5] {
        let (status, html) = app.get_text(&format!("/movies/{slug}")).await;
        assert_eq!(status, StatusCode::OK);
        warm_details.push((format!("/movies/{slug}"), html));
    }
    assert_eq!(app.get("/movies/no-such-film-1900").await.status(), StatusCode::NOT_FOUND);
    let (_, page3) = app.get_text("/movies?page=3").await;
    let cold_slug = card_slugs(&page3)[0].clone();
    // forget page 3 and one of its films, so that they are read from the database next time
    let mut conn = redis_conn(REDIS).await;
    app.settle().await;
    run(&mut conn, redis::cmd("DEL").arg(app.key("movies:page:3")).arg(app.key(&format!("movie:{cold_slug}")))).await;
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    proxy.down().await;
    let cut = Instant::now();
    // whatever Redis holds is still served
    let (status, html) = app.get_text("/").await;
    assert_eq!(status, StatusCode::OK, "the cached first page while the database is away");
    assert_eq!(html, warm_listing);
    for (path, before) in &warm_details {
        let (status, html) = app.get_text(path).await;
        assert_eq!((status, &html), (StatusCode::OK, before), "{path}: cached detail while the database is away");
    }
    assert_eq!(app.get("/movies/no-such-film-1900").await.status(), StatusCode::NOT_FOUND, "a remembered 404");
    // the rest is a 503 page in the site's layout (asked at once: each waits out the pool's
    // acquire timeout)
    let cold = ["/movies?page=3".to_owned(), format!("/movies/{cold_slug}"), "/movies?page=40".to_owned()];
    let app_ref = &app;
    let answers = futures_util::future::join_all(cold.iter().map(|path| async move {
        let started = Instant::now();
        let (status, html) = app_ref.get_text(path).await;
        (path, status, html, started.elapsed())
    }));
    let api = async {
        let r = app.get(&format!("/api/movies/{cold_slug}")).await;
        (r.status(), r.json::<serde_json::Value>().await.expect("a JSON error"))
    };
    let (answers, (api_status, api_body), (ready_status, ready_body)) = tokio::join!(answers, api, readyz(&app));
    for (path, status, html, took) in answers {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_site_layout(&html, path);
        assert!(html.contains("The catalog is resting"), "{path}: {html}");
        assert!(took < Duration::from_secs(6), "{path}: the 503 took {took:?}");
        eprintln!("postgres away: {path} answered 503 in {took:?}");
    }
    assert_eq!(api_status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(api_body["error"].as_str().is_some_and(|e| e.contains("unavailable")), "{api_body}");
    assert_eq!(ready_status, StatusCode::SERVICE_UNAVAILABLE, "{ready_body}");
    assert_eq!(ready_body["database"], "down", "{ready_body}");
    eprintln!("postgres away for {:?}", cut.elapsed());

    proxy.up().await;
    let back = Instant::now();
    let recovered = eventually(Duration::from_secs(10), || {
        let (app, cold_slug) = (&app, &cold_slug);
        async move {
            readyz(app).await.0 == StatusCode::OK
                && app.get("/movies?page=3").await.status() == StatusCode::OK
                && app.get(&format!("/movies/{cold_slug}")).await.status() == StatusCode::OK
        }
    })
    .await;
    assert!(recovered, "the app did not recover within 10 s of the database coming back");
    eprintln!("postgres back: recovered in {:?}", back.elapsed());
    let (_, page3_now) = app.get_text("/movies?page=3").await;
    assert_eq!(card_slugs(&page3_now), card_slugs(&page3));
    drop(app);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_finishes_requests_and_cache_writes() {
    let redis = RedisServer::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db_path = std::env::temp_dir().join(format!("{}.db", unique("marquee_sigterm_")));
    let db_url = format!("sqlite://{}", db_path.display());
    let log_path = std::env::temp_dir().join(format!("{}.log", unique("marquee_sigterm_")));
    let prefix = format!("{}:", unique("sigterm"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_marquee"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &db_url)
        .env("REDIS_URL", redis.url())
        .env("CACHE_PREFIX", &prefix)
        // long enough that the requests below are still waiting on Redis when SIGTERM comes
        .env("REDIS_TIMEOUT_MS", "3000")
        .env("SHUTDOWN_TIMEOUT_SECS", "5")
        .env("ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "marquee=info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("the binary starts");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let up = eventually(Duration::from_secs(60), || {
        let (client, base) = (&client, &base);
        async move { client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) }
    })
    .await;
    assert!(up, "the binary did not come up:\n{}", log());
    let ready: serde_json::Value =
        client.get(format!("{base}/readyz")).send().await.unwrap().json().await.expect("readyz JSON");
    assert_eq!(ready["cache"], "up", "{ready}");

    // films of page 30, read straight from the database file, for cold detail pages
    let stats = Arc::new(marquee::stats::Stats::default());
    let db = marquee::db::Db::connect(&db_url, 1, Default::default(), stats, Default::default())
        .await
        .expect("the database file opens");
    let (_, movies) = db.page(marquee::movies::PageNumber::new(30).expect("page"), 24).await.expect("page 30");
    db.close().await;
    let details: Vec<String> = movies.iter().take(12).map(|f| f.slug.clone()).collect();
    let mut paths: Vec<String> = (2..=13).map(|n| format!("/movies?page={n}")).collect();
    paths.extend(details.iter().map(|s| format!("/movies/{s}")));

    redis.pause();
    let requests: Vec<_> = paths
        .iter()
        .map(|path| {
            let (client, url, path) = (client.clone(), format!("{base}{path}"), path.clone());
            tokio::spawn(async move {
                let r = client.get(url).send().await.map_err(|e| format!("{path}: {e}"))?;
                let status = r.status();
                let body = r.text().await.map_err(|e| format!("{path}: {e}"))?;
                Ok::<_, String>((path, status, body))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(requests.iter().all(|r| !r.is_finished()), "the requests are in flight, waiting on the paused Redis");
    signal(child.id(), "TERM");
    let term_sent = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err(), "no new connections after SIGTERM");
    assert!(child.try_wait().expect("wait").is_none(), "the server waits for the requests in flight");
    redis.resume();

    for r in requests {
        let (path, status, body) = r.await.expect("task").unwrap_or_else(|e| panic!("{e}\n{}", log()));
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.contains("</html>"), "{path}: a whole page");
    }
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(term_sent.elapsed() < Duration::from_secs(6), "still running 6 s after SIGTERM:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = term_sent.elapsed();
    assert!(status.success(), "exit status {status}:\n{}", log());
    eprintln!("SIGTERM: exited 0 after {took:?}");
    assert!(log().contains("pending cache writes finished"), "{}", log());

    // what those requests read was written to Redis before the process ended
    let keys = redis.keys(&prefix).await;
    for n in 2..=13 {
        assert!(keys.contains(&format!("{prefix}movies:page:{n}")), "page {n} is not cached: {keys:?}");
    }
    let mut conn = redis.conn().await;
    for n in 2..=13 {
        let page: String =
            redis::cmd("GET").arg(format!("{prefix}movies:page:{n}")).query_async(&mut conn).await.unwrap();
        let page: serde_json::Value = serde_json::from_str(&page).expect("a page key holds JSON");
        let slugs: Vec<String> = serde_json::from_value(page["slugs"].clone()).expect("a page key holds slugs");
        assert_eq!(slugs.len(), 24);
        for slug in slugs {
            assert!(keys.contains(&format!("{prefix}movie:{slug}")), "film {slug} of page {n} is not cached");
        }
    }
    for slug in &details {
        assert!(keys.contains(&format!("{prefix}movie:{slug}")), "film {slug} is not cached");
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let _ = std::fs::remove_file(&log_path);
}

on_each_redis!(writes_racing_reads, |target| async move {
    let app = Setup::new(target).spawn().await;
    let (_, html) = app.get_text("/").await;
    let slug = card_slugs(&html)[0].clone();
    let detail = format!("/movies/{slug}");
    let targets = vec![
        LoadTarget { path: "/".into(), fragment: false },
        LoadTarget { path: "/movies?page=1".into(), fragment: true },
        LoadTarget { path: detail.clone(), fragment: false },
        LoadTarget { path: format!("/api/movies/{slug}"), fragment: false },
    ];
    let load = Load::start(&app.base, &targets, 16);
    let last: i64 = 99;
    for i in 0..=last {
        // a new title each time, and a release date that moves (so the listing order changes and
        // the page keys are swept) but keeps the film first
        let body = serde_json::json!({
            "title": format!("Race {i}"),
            "imdb_votes": i,
            "release_date": format!("2100-{:02}-01", 1 + i % 12),
        });
        let r = app.edit(&slug, &body).await;
        assert_eq!(r.status(), StatusCode::OK, "update {i}");
    }
    let tally = load.finish().await;
    eprintln!("writes racing reads: {} reads during 100 writes", tally.requests);
    assert!(tally.requests > 200, "the reads hardly overlapped the writes: {} reads", tally.requests);
    assert!(tally.server_errors().is_empty(), "5xx under racing writes: {:?}", tally.server_errors());
    tally.assert_all_ok_within(Duration::from_secs(5));
    app.settle().await;

    let want_title = format!("Race {last}");
    let want_date = format!("2100-{:02}-01", 1 + last % 12);
    // the database
    let (db_meta, db_movie) = app
        .database()
        .movies(&[marquee::movies::Slug::parse(&slug).unwrap().as_str()])
        .await
        .map(|(stamp, mut found)| (stamp, found.pop()))
        .expect("database read");
    let db_movie = db_movie.expect("the film exists");
    assert_eq!((db_movie.title.as_str(), db_movie.release_date.to_string()), (want_title.as_str(), want_date.clone()));
    // Redis
    let mut conn = app.redis().await;
    let cached: Option<String> =
        redis::cmd("GET").arg(app.key(&format!("movie:{slug}"))).query_async(&mut conn).await.unwrap();
    let cached: serde_json::Value = serde_json::from_str(&cached.expect("the film is cached")).unwrap();
    assert_eq!(cached["title"], want_title.as_str(), "{cached}");
    assert_eq!(cached["release_date"], want_date.as_str(), "{cached}");
    assert_eq!(cached["imdb_votes"], last, "{cached}");
    assert_eq!(cached["v"], db_movie.version, "{cached}");
    assert!(db_meta.version >= db_movie.version);
    // every page, read twice (the second from the cache)
    for _ in 0..2 {
        let (_, html) = app.get_text(&detail).await;
        assert!(html.contains(&want_title), "detail page: {html}");
        assert!(!html.contains(&format!("Race {}<", last - 1)), "the detail page shows an older write");
        for (path, fragment) in [("/", false), ("/movies?page=1", true), ("/movies?page=1", false)] {
            let (status, html) = if fragment { app.get_fragment(path).await } else { app.get_text(path).await };
            let page = Listing::parse(status, html);
            assert_eq!(page.status, StatusCode::OK);
            assert_eq!(page.slugs.first(), Some(&slug), "{path}: the film is first");
            assert_eq!(page.titles.first(), Some(&want_title), "{path}: the first card shows the last title");
        }
        let api: serde_json::Value = app.get(&format!("/api/movies/{slug}")).await.json().await.unwrap();
        assert_eq!((api["title"].as_str(), api["imdb_votes"].as_i64()), (Some(want_title.as_str()), Some(last)));
    }
});
