//! No write a writer was told succeeded is left stale in the cache, whatever Redis or a server
//! does: real `marquee serve` processes, a private `redis-server` each test may cut off (a TCP
//! proxy), fill up (`maxmemory`) or outlive, and a server killed between its commit and its cache
//! write. What an operator and a visitor would check: the pages, what Redis holds, `/metrics` and
//! `/readyz`.

use std::time::{Duration, Instant};

use marquee::cache::Connection;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::helpers::{Backend, TestDb, unique};
use crate::redis_server::RedisServer;
use crate::support::cluster::{PrivateCluster, is_master, master_and_replica};
use crate::support::html::Detail;
use crate::support::proxy::Proxy;
use crate::support::server::{KEPT_HITS, Server};

const ENV: &[(&str, &str)] = &[("REDIS_TIMEOUT_MS", "300")];
/// Within this long of Redis taking writes again, every page shows the write.
const CATCH_UP: Duration = Duration::from_secs(5);

/// A connection of the test's own to one Redis.
async fn single(url: &str) -> Connection {
    let client = redis::Client::open(url).expect("redis url");
    Connection::Single(redis::aio::ConnectionManager::new(client).await.expect("redis answers"))
}

/// A connection of the test's own to a Redis Cluster.
async fn cluster(seeds: Vec<String>) -> Connection {
    let client = redis::cluster::ClusterClient::new(seeds).expect("cluster seeds");
    Connection::Cluster(client.get_async_connection().await.expect("the cluster answers"))
}

async fn detail(server: &Server, slug: &str) -> Detail {
    let (status, html) = server.get_text(&format!("/movies/{slug}")).await;
    Detail::parse(status, html)
}

/// The title Redis holds for `slug` under `prefix` (None: no key, or a "gone" marker).
async fn cached_title(conn: &Connection, prefix: &str, slug: &str) -> Option<String> {
    cached_field(conn, prefix, slug, "title").await
}

async fn cached_field(conn: &Connection, prefix: &str, slug: &str, field: &str) -> Option<String> {
    let raw: Option<String> =
        redis::cmd("GET").arg(format!("{prefix}movie:{slug}")).query_async(&mut conn.clone()).await.expect("GET");
    let value: Value = serde_json::from_str(&raw?).expect("a film entry is JSON");
    value[field].as_str().map(str::to_owned)
}

/// A database of the test's own and two servers on it with `redis` (a URL, or a cluster's seeds),
/// up, under a prefix of their own.
async fn two_servers(redis: &str) -> (TestDb, String, Vec<Server>) {
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("{}:", unique("log"));
    let servers: Vec<Server> = (0..2).map(|_| Server::spawn(&db.url, redis, &prefix, ENV)).collect();
    for s in &servers {
        s.wait_up(Duration::from_secs(90)).await;
    }
    (db, prefix, servers)
}

/// A film of page 2 whose detail page has been read (so Redis holds its entry), and its title.
async fn warm_film(server: &Server, conn: &Connection, prefix: &str) -> (String, String) {
    let (_, html) = server.get_text("/movies?page=2").await;
    let slug = crate::helpers::card_slugs(&html)[3].clone();
    let title = detail(server, &slug).await.heading.expect("a heading");
    // a read writes the film back only once the stamp is there (the relay's first look sets it):
    // read again until Redis holds it, as readers would
    let cached = until(Duration::from_secs(10), || async {
        let cached = cached_title(conn, prefix, &slug).await;
        if cached.is_none() {
            detail(server, &slug).await;
        }
        cached
    })
    .await;
    assert_eq!(cached.as_deref(), Some(title.as_str()), "the film is cached before the fault");
    (slug, title)
}

/// One server on a SQLite database of its own and a private Redis, with a film of page 2 cached:
/// what the single-server tests start from.
struct OneServer {
    redis: RedisServer,
    db: TestDb,
    prefix: String,
    server: Server,
    conn: Connection,
    slug: String,
    /// The film's title before the test changes it.
    old: String,
}

async fn one_server() -> OneServer {
    let redis = RedisServer::start().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let prefix = format!("{}:", unique("log"));
    let server = Server::spawn(&db.url, &redis.url(), &prefix, ENV);
    server.wait_up(Duration::from_secs(90)).await;
    let conn = single(&redis.url()).await;
    let (slug, old) = warm_film(&server, &conn, &prefix).await;
    OneServer { redis, db, prefix, server, conn, slug, old }
}

/// Polls `f` every 100 ms until it gives `Some`, at most `limit`.
async fn until<T, F: Future<Output = Option<T>>>(limit: Duration, mut f: impl FnMut() -> F) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn retitle(server: &Server, slug: &str, title: &str) -> StatusCode {
    let r = server.admin(Method::PUT, &format!("/api/movies/{slug}")).json(&json!({ "title": title })).send().await;
    r.expect("PUT answered").status()
}

async fn readyz(server: &Server) -> Value {
    let r = server.client.get(server.url("/readyz")).send().await.expect("readyz");
    r.json().await.expect("readyz answers JSON")
}

/// Waits until the film's page on every server and Redis show `title`; how long it took.
async fn everywhere(servers: &[&Server], conn: &Connection, prefix: &str, slug: &str, title: &str) {
    let started = Instant::now();
    let seen = until(CATCH_UP, || async {
        for s in servers {
            if detail(s, slug).await.heading.as_deref() != Some(title) {
                return None;
            }
        }
        (cached_title(conn, prefix, slug).await.as_deref() == Some(title)).then_some(())
    })
    .await;
    assert!(seen.is_some(), "{title:?} not on every page and in Redis within {CATCH_UP:?}");
    eprintln!("{title:?} on every page and in Redis {:?} after this check began", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_an_outage_longer_than_the_old_retry_window_reaches_the_cache() {
    let redis = RedisServer::start().await;
    let mut proxy = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let db = TestDb::new(Backend::Sqlite).await;
    let prefix = format!("{}:", unique("log"));
    let server = Server::spawn(&db.url, &format!("redis://127.0.0.1:{}", proxy.port), &prefix, ENV);
    server.wait_up(Duration::from_secs(90)).await;
    let conn = single(&redis.url()).await;
    let (slug, old) = warm_film(&server, &conn, &prefix).await;

    // Redis unreachable from the site (the connection cut, new ones refused)
    proxy.down().await;
    assert_eq!(retitle(&server, &slug, "Written In The Dark").await, StatusCode::OK);
    assert_eq!(detail(&server, &slug).await.heading.as_deref(), Some("Written In The Dark"), "from the database");
    // longer than the 30 s the writer used to retry for
    tokio::time::sleep(Duration::from_secs(32)).await;
    assert_eq!(cached_title(&conn, &prefix, &slug).await, Some(old), "Redis still holds the old copy");
    assert!(server.metric("marquee_cache_log_pending").await >= 1.0, "/metrics shows the backlog");
    assert!(server.metric("marquee_cache_log_oldest_seconds").await >= 30.0, "/metrics shows its age");
    let ready = readyz(&server).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(ready["cache_log"]["pending"].as_i64() >= Some(1), "{ready}");
    assert!(ready["cache_log"]["oldest_seconds"].as_f64() >= Some(30.0), "{ready}");

    proxy.up().await;
    everywhere(&[&server], &conn, &prefix, &slug, "Written In The Dark").await;
    let drained = until(CATCH_UP, || async { (server.metric("marquee_cache_log_pending").await == 0.0).then_some(()) });
    assert!(drained.await.is_some(), "the backlog drains");
    assert_eq!(readyz(&server).await["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_server_cut_off_from_redis_reaches_the_others() {
    let redis = RedisServer::start().await;
    let mut proxy = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("{}:", unique("log"));
    let cut_off = Server::spawn(&db.url, &format!("redis://127.0.0.1:{}", proxy.port), &prefix, ENV);
    cut_off.wait_up(Duration::from_secs(90)).await;
    let other = Server::spawn(&db.url, &redis.url(), &prefix, ENV);
    other.wait_up(Duration::from_secs(90)).await;
    let conn = single(&redis.url()).await;
    let (slug, _) = warm_film(&other, &conn, &prefix).await;

    // a partition between one server and Redis, for as long as the test runs
    proxy.down().await;
    assert_eq!(retitle(&cut_off, &slug, "Across The Partition").await, StatusCode::OK);
    // the server that reaches Redis applies it from the database's log
    everywhere(&[&other, &cut_off], &conn, &prefix, &slug, "Across The Partition").await;
    assert!(other.metric("marquee_cache_log_applied_total").await >= 1.0, "the other server's relay applied it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_after_its_commit_leaves_nothing_stale_once_another_runs() {
    let redis = RedisServer::start().await;
    killed_after_commit(&redis.url(), single(&redis.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_after_its_commit_leaves_nothing_stale_on_a_cluster() {
    let nodes = PrivateCluster::start(7131).await;
    killed_after_commit(&nodes.seeds().join(","), cluster(nodes.seeds()).await).await;
}

/// A server stops for good between its commit and its cache write (a test hook holds it there),
/// is SIGKILLed, and another server starts on the same database and cache.
async fn killed_after_commit(redis: &str, conn: Connection) {
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("{}:", unique("log"));
    let stall = [("REDIS_TIMEOUT_MS", "300"), ("MARQUEE_TEST_STALL_AFTER_COMMIT", "1")];
    let mut writer = Server::spawn(&db.url, redis, &prefix, &stall);
    writer.wait_up(Duration::from_secs(90)).await;
    let (slug, old) = warm_film(&writer, &conn, &prefix).await;

    // the write commits, and its server stops right there: Redis is never told
    let put = writer.admin(Method::PUT, &format!("/api/movies/{slug}")).json(&json!({ "title": "Died Writing" }));
    let answer = tokio::spawn(put.send());
    let (repo, _) = db.connect().await;
    let key = marquee::movies::Slug::parse(&slug).expect("a valid slug");
    let committed = until(Duration::from_secs(10), || async {
        let (_, movie) = repo
            .movies(&[key.as_str()])
            .await
            .map(|(stamp, mut found)| (stamp, found.pop()))
            .expect("the database answers");
        movie.filter(|m| m.title == "Died Writing").map(|_| ())
    })
    .await;
    assert!(committed.is_some(), "the write was committed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cached_title(&conn, &prefix, &slug).await, Some(old), "the server died before telling Redis");
    writer.kill();
    assert!(answer.await.expect("joined").is_err(), "its client got no answer");

    // any server that runs afterwards applies it
    let next = Server::spawn(&db.url, redis, &prefix, ENV);
    next.wait_up(Duration::from_secs(90)).await;
    everywhere(&[&next], &conn, &prefix, &slug, "Died Writing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_refuses_for_memory_removes_the_old_copy_and_lands_later() {
    let OneServer { redis: _redis, db: _db, prefix, server, mut conn, slug, old: _ } = one_server().await;
    let (_, page1) = server.get_text("/movies?page=1").await;
    let first = crate::helpers::card_slugs(&page1);

    // Redis full: it answers reads, refuses every write
    let config = |k: &str, v: &str| redis::cmd("CONFIG").arg("SET").arg(k).arg(v).clone();
    let _: () = config("maxmemory-policy", "noeviction").query_async(&mut conn).await.expect("config");
    let _: () = config("maxmemory", "1").query_async(&mut conn).await.expect("config");
    let refused: redis::RedisResult<()> = redis::cmd("SET").arg("probe").arg("x").query_async(&mut conn).await;
    assert!(refused.is_err_and(|e| e.code() == Some("OOM")), "Redis refuses writes now");

    assert_eq!(retitle(&server, &slug, "Out Of Memory").await, StatusCode::OK);
    assert_eq!(cached_title(&conn, &prefix, &slug).await, None, "the old copy is gone, not left readable");
    for _ in 0..3 {
        assert_eq!(detail(&server, &slug).await.heading.as_deref(), Some("Out Of Memory"));
    }
    // an order change while full: the listing follows it at once
    let moved = first[10].clone();
    let r = server
        .admin(Method::PUT, &format!("/api/movies/{moved}"))
        .json(&json!({ "release_date": "2035-01-01" }))
        .send()
        .await
        .expect("PUT answered");
    assert_eq!(r.status(), StatusCode::OK);
    let (_, page1) = server.get_text("/movies?page=1").await;
    assert_eq!(crate::helpers::card_slugs(&page1)[0], moved, "the moved film leads page 1 while Redis is full");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(server.metric("marquee_cache_log_pending").await >= 2.0, "both writes wait in the log");

    // memory again: the log is applied
    let _: () = config("maxmemory", "0").query_async(&mut conn).await.expect("config");
    everywhere(&[&server], &conn, &prefix, &slug, "Out Of Memory").await;
    let drained = until(CATCH_UP, || async { (server.metric("marquee_cache_log_pending").await == 0.0).then_some(()) });
    assert!(drained.await.is_some(), "the backlog drains");
    let (_, page1) = server.get_text("/movies?page=1").await;
    assert_eq!(crate::helpers::card_slugs(&page1)[0], moved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_from_the_command_line_reaches_every_server_once() {
    let redis = RedisServer::start().await;
    let (db, prefix, servers) = two_servers(&redis.url()).await;
    let conn = single(&redis.url()).await;
    let (slug, title) = warm_film(&servers[0], &conn, &prefix).await;
    let _ = detail(&servers[1], &slug).await;

    // the dataset with that film's director changed, imported by the command line (no cache)
    let mut rows: Vec<Value> = serde_json::from_slice(marquee::dataset::MOVIES_JSON).expect("the dataset");
    let row = rows.iter_mut().find(|r| r["Title"].as_str() == Some(title.as_str())).expect("its row");
    row["Director"] = json!("Ima Relayed");
    let file = std::env::temp_dir().join(format!("{}.json", unique("marquee_import_")));
    std::fs::write(&file, serde_json::to_vec(&rows).expect("json")).expect("written");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_marquee"))
        .arg("import")
        .arg(&file)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis.url())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("marquee import runs");
    let _ = std::fs::remove_file(&file);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("imported 0 new, updated 1,"), "{said}");

    let seen = until(CATCH_UP, || async {
        for s in &servers {
            if detail(s, &slug).await.fact("Director") != Some("Ima Relayed") {
                return None;
            }
        }
        (cached_field(&conn, &prefix, &slug, "director").await.as_deref() == Some("Ima Relayed")).then_some(())
    })
    .await;
    assert!(seen.is_some(), "the imported change is on every server's page and in Redis within {CATCH_UP:?}");
    let mut applied = 0.0;
    for s in &servers {
        applied += s.metric("marquee_cache_log_applied_total").await;
    }
    assert_eq!(applied, 1.0, "the one row was applied once, by one of the two relays");
}

/// Reads the film's page on every server, again and again for `span`, and fails on any answer
/// that is not `title`: what a visitor sees after the writer was answered, through the fault and
/// after it ends (`meanwhile` runs once, halfway).
async fn always<F: Future<Output = ()>>(servers: &[&Server], slug: &str, title: &str, span: Duration, meanwhile: F) {
    let reads = async {
        let (started, mut reads) = (Instant::now(), 0);
        while started.elapsed() < span {
            for (i, s) in servers.iter().enumerate() {
                let seen = detail(s, slug).await.heading;
                assert_eq!(
                    seen.as_deref(),
                    Some(title),
                    "server {i}, read {reads}, {:?} after the answer",
                    started.elapsed()
                );
                reads += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reads
    };
    let halfway = async {
        tokio::time::sleep(span / 2).await;
        meanwhile.await;
    };
    let (reads, ()) = tokio::join!(reads, halfway);
    eprintln!("{reads} reads over {span:?} all showed {title:?}");
}

// Redis unreachable from the writer at the moment of its write (the others reach it): every
// server's pages show the write from the writer's answer on, kept pages included, through the
// partition and after it heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_its_server_could_not_tell_redis_is_on_every_page_at_its_answer() {
    let redis = RedisServer::start().await;
    let mut proxy = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("{}:", unique("log"));
    let cut_off = Server::spawn(&db.url, &format!("redis://127.0.0.1:{}", proxy.port), &prefix, ENV);
    let other = Server::spawn(&db.url, &redis.url(), &prefix, ENV);
    cut_off.wait_up(Duration::from_secs(90)).await;
    other.wait_up(Duration::from_secs(90)).await;
    let conn = single(&redis.url()).await;
    let (slug, _) = warm_film(&other, &conn, &prefix).await;
    // both servers keep the page in memory under the current token
    for s in [&cut_off, &other] {
        let _ = detail(s, &slug).await;
        let _ = detail(s, &slug).await;
    }

    proxy.down().await;
    let started = Instant::now();
    assert_eq!(retitle(&cut_off, &slug, "Said In The Dark").await, StatusCode::OK);
    eprintln!("the write was answered {:?} after it was sent", started.elapsed());
    always(&[&cut_off, &other], &slug, "Said In The Dark", Duration::from_secs(4), proxy.up()).await;
    everywhere(&[&cut_off, &other], &conn, &prefix, &slug, "Said In The Dark").await;
}

// Redis frozen (SIGSTOP) for every server while a write is made, then thawed with the old copy
// and the old token: nothing shows the old title after the writer's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_made_while_redis_is_frozen_is_never_undone_when_it_thaws() {
    let OneServer { redis, db: _db, prefix, server, conn, slug, old } = one_server().await;
    let _ = detail(&server, &slug).await;

    redis.pause();
    assert_eq!(retitle(&server, &slug, "Written While Frozen").await, StatusCode::OK);
    always(&[&server], &slug, "Written While Frozen", Duration::from_secs(4), async { redis.resume() }).await;
    assert_ne!(cached_title(&conn, &prefix, &slug).await, Some(old), "the relay taught Redis");
    everywhere(&[&server], &conn, &prefix, &slug, "Written While Frozen").await;
}

// An unannounced failover leaves the site on a read-only replica holding the old copy: every
// write (UNLINK too) is refused. The write is shown at once and stays shown; once the replica is
// promoted the log teaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_redis_is_not_trusted_until_it_takes_writes_again() {
    let OneServer { redis: _redis, db: _db, prefix, server, mut conn, slug, old } = one_server().await;
    let _ = detail(&server, &slug).await;

    // a replica of a master that is gone: it keeps serving what it holds, and refuses writes
    let master = crate::redis_server::free_port().to_string();
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&master).query_async(&mut conn).await.expect("replicaof");
    let refused: redis::RedisResult<()> = redis::cmd("SET").arg("probe").arg("x").query_async(&mut conn).await;
    assert!(refused.is_err_and(|e| e.code() == Some("READONLY")), "Redis refuses writes now");

    assert_eq!(retitle(&server, &slug, "Read Only Failover").await, StatusCode::OK);
    assert_eq!(cached_title(&conn, &prefix, &slug).await, Some(old), "the replica still holds the old copy");
    let promote = async {
        let _: () =
            redis::cmd("REPLICAOF").arg("NO").arg("ONE").query_async(&mut conn.clone()).await.expect("promoted");
    };
    always(&[&server], &slug, "Read Only Failover", Duration::from_secs(4), promote).await;
    everywhere(&[&server], &conn, &prefix, &slug, "Read Only Failover").await;
}

// Redis out of memory while a search is cached: a new title is found by the search at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_cached_before_a_refused_write_finds_the_new_title() {
    let OneServer { redis: _redis, db: _db, prefix: _, server, mut conn, slug, old: _ } = one_server().await;
    let found = |html: &str| crate::helpers::card_slugs(html).contains(&slug);
    for _ in 0..3 {
        let (status, html) = server.get_text("/search?q=zanzibarian").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!found(&html), "no film is called that yet");
    }
    let config = |k: &str, v: &str| redis::cmd("CONFIG").arg("SET").arg(k).arg(v).clone();
    let _: () = config("maxmemory-policy", "noeviction").query_async(&mut conn).await.expect("config");
    let _: () = config("maxmemory", "1").query_async(&mut conn).await.expect("config");

    assert_eq!(retitle(&server, &slug, "The Zanzibarian").await, StatusCode::OK);
    for _ in 0..5 {
        let (_, html) = server.get_text("/search?q=zanzibarian").await;
        assert!(found(&html), "the search finds the new title");
    }
    let _: () = config("maxmemory", "0").query_async(&mut conn).await.expect("config");
}

// Redis forgot its scripts (a restart, a failover, SCRIPT FLUSH): the write's new token is set
// after the film's new copy, never before it (a server that learnt the token in between would keep
// pages rendered from the old copy under it). Seen with MONITOR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_set_after_the_keys_when_redis_forgot_its_scripts() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let OneServer { redis, db: _db, prefix, server, mut conn, slug, old: _ } = one_server().await;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.expect("script flush");

    let stream = tokio::net::TcpStream::connect(("127.0.0.1", redis.port)).await.expect("connect");
    let (read, mut write) = stream.into_split();
    write.write_all(b"MONITOR\r\n").await.expect("monitor");
    let mut lines = tokio::io::BufReader::new(read).lines();
    assert_eq!(lines.next_line().await.expect("read").as_deref(), Some("+OK"));
    assert_eq!(retitle(&server, &slug, "Scripts Forgotten").await, StatusCode::OK);

    let (film, token) =
        (format!("\"SET\" \"{prefix}movie:{slug}\""), format!("\"HSET\" \"{prefix}movies:token\" \"token\""));
    let (mut film_at, mut token_at) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while (film_at.is_none() || token_at.is_none()) && Instant::now() < deadline {
        let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await else {
            continue;
        };
        n += 1;
        if film_at.is_none() && line.contains(&film) {
            film_at = Some(n);
        }
        if token_at.is_none() && line.contains(&token) {
            token_at = Some(n);
        }
    }
    let (film_at, token_at) = (film_at.expect("the film was written"), token_at.expect("a token was set"));
    assert!(film_at < token_at, "the token (line {token_at}) was set before the film's copy (line {film_at})");
}

/// Two servers on PostgreSQL and a private Redis that keeps snapshots: a film cached on both, a
/// snapshot taken, then the film retitled "After The Snapshot" (acknowledged, and taken by Redis).
struct Snapshotted {
    redis: RedisServer,
    db: TestDb,
    prefix: String,
    servers: Vec<Server>,
    slug: String,
    /// The title the snapshot holds.
    old: String,
}

impl Snapshotted {
    /// `filler` keys of 100 bytes in the snapshot besides the site's (for a Redis slow to load it).
    async fn start(filler: u32) -> Self {
        let redis = RedisServer::start_with_snapshots().await;
        let (db, prefix, servers) = two_servers(&redis.url()).await;
        let conn = single(&redis.url()).await;
        let (slug, old) = warm_film(&servers[0], &conn, &prefix).await;
        for s in &servers {
            let _ = detail(s, &slug).await;
            let _ = detail(s, &slug).await;
        }
        let fill = "for i = 1, ARGV[1] do redis.call('SET', 'filler:' .. i, string.rep('x', 100)) end";
        let _: () = redis::cmd("EVAL").arg(fill).arg(0).arg(filler).query_async(&mut conn.clone()).await.unwrap();
        let _: () = redis::cmd("SAVE").query_async(&mut conn.clone()).await.expect("a snapshot");
        assert_eq!(retitle(&servers[1], &slug, "After The Snapshot").await, StatusCode::OK);
        let cached = cached_title(&conn, &prefix, &slug).await;
        assert_eq!(cached.as_deref(), Some("After The Snapshot"), "Redis took it");
        Self { redis, db, prefix, servers, slug, old }
    }
}

// Redis restarted from a snapshot older than an acknowledged write (it had taken the write, then
// lost it): within 5 s every page shows the write again, and goes on showing it; Redis holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_from_an_older_snapshot_is_taught_the_writes_it_lost() {
    let Snapshotted { mut redis, db: _db, prefix, servers, slug, old } = Snapshotted::start(0).await;
    // the servers frozen meanwhile, so that what Redis came back with can be seen
    for s in &servers {
        s.freeze(true);
    }
    redis.kill();
    redis.restart().await;
    let conn = single(&redis.url()).await;
    assert_eq!(cached_title(&conn, &prefix, &slug).await, Some(old), "the snapshot's older copy is back");
    for s in &servers {
        s.freeze(false);
    }

    // the servers reconnect (their first calls after the restart fail, and are read around)
    let started = Instant::now();
    let (_, page3) = servers[0].get_text("/movies?page=3").await;
    let other = crate::helpers::card_slugs(&page3)[0].clone();
    while started.elapsed() < Duration::from_millis(300) {
        for s in &servers {
            let _ = detail(s, &other).await;
        }
    }
    let refs: Vec<&Server> = servers.iter().collect();
    let repaired = until(Duration::from_secs(5), || async {
        for s in &refs {
            if detail(s, &slug).await.heading.as_deref() != Some("After The Snapshot") {
                return None;
            }
        }
        (cached_title(&conn, &prefix, &slug).await.as_deref() == Some("After The Snapshot")).then_some(())
    })
    .await;
    assert!(repaired.is_some(), "not repaired within 5 s");
    eprintln!("repaired {:?} after Redis came back", started.elapsed());
    always(&refs, &slug, "After The Snapshot", Duration::from_secs(3), async {}).await;
}

// Redis down for a while (the servers' calls meanwhile refused or timing out, their relays looking
// at the log), then back from a snapshot older than an acknowledged write: no read from the kill
// on shows the write undone, the moment Redis answers again included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_back_from_an_older_snapshot_after_an_outage_never_shows_the_write_undone() {
    let Snapshotted { mut redis, db: _db, servers, slug, .. } = Snapshotted::start(0).await;

    let refs: Vec<&Server> = servers.iter().collect();
    // gone for 3 s (several of the relays' looks), then back, and read for 3 s more
    redis.kill();
    always(&refs, &slug, "After The Snapshot", Duration::from_secs(6), redis.restart()).await;
}

/// A Redis that keeps its snapshots and a database of `backend`, for servers with a lease of their
/// own length (`CACHE_LEASE_MS`: `lease`), short so that the tests that wait one out are quick.
struct ShortLease {
    redis: RedisServer,
    db: TestDb,
    prefix: String,
    lease: String,
}

impl ShortLease {
    async fn start(backend: Backend, lease: Duration) -> Self {
        let redis = RedisServer::start_with_snapshots().await;
        let db = TestDb::new(backend).await;
        Self { redis, db, prefix: format!("{}:", unique("log")), lease: lease.as_millis().to_string() }
    }
}

// Redis restarted from a snapshot holds the token's hash as it was then: old enough, and without
// the lease of a server that started after it. That server, its path to Redis paused (no error, so
// nothing tells it Redis restarted), keeps answering the page it kept under its lease. A write
// through the other server once Redis is back is answered only once that lease can have run out:
// from the answer on, the paused server shows the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_a_restarted_redis_forgot_is_outlasted_by_the_next_write() {
    const LEASE: Duration = Duration::from_secs(4);
    let ShortLease { mut redis, db, prefix, lease } = ShortLease::start(Backend::Postgres, LEASE).await;
    let env = [ENV[0], ("CACHE_LEASE_MS", lease.as_str())];
    let a = Server::spawn(&db.url, &redis.url(), &prefix, &env);
    a.wait_up(Duration::from_secs(90)).await;
    let conn = single(&redis.url()).await;
    let (slug, old) = warm_film(&a, &conn, &prefix).await;
    // the hash older than a lease when the snapshot is taken, so old enough for any writer after
    tokio::time::sleep(LEASE).await;
    let _: () = redis::cmd("SAVE").query_async(&mut conn.clone()).await.expect("a snapshot");

    let mut path = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let b = Server::spawn(&db.url, &format!("redis://127.0.0.1:{}", path.port), &prefix, &env);
    b.wait_up(Duration::from_secs(90)).await;
    let kept = b.metric(KEPT_HITS).await;
    for _ in 0..3 {
        assert_eq!(detail(&b, &slug).await.heading.as_deref(), Some(old.as_str()));
    }
    assert!(b.metric(KEPT_HITS).await > kept, "b answers the film's page from its memory, under its lease");

    path.pause();
    redis.kill();
    redis.restart().await;
    let asked = Instant::now();
    assert_eq!(retitle(&a, &slug, "After The Restart").await, StatusCode::OK);
    let answered = asked.elapsed();
    let shown = detail(&b, &slug).await;
    let read = asked.elapsed();
    path.resume();
    path.down().await;
    assert_eq!(
        (shown.status, shown.heading.as_deref()),
        (StatusCode::OK, Some("After The Restart")),
        "b's page right after the write was answered ({answered:?} after it was asked, read by {read:?}); \
         logs: a {}, b {}",
        a.log_path().display(),
        b.log_path().display()
    );
}

// Redis's `uptime_in_seconds` is the difference of two whole-second readings of its clock: a Redis
// started at x.9 s says "2" 1.1 s later. A writer after such a restart waits until Redis has been
// up for a whole lease, whatever the rounding says: here `marquee cache purge` (a writer that sets
// a new token and waits for the leases) run at once after Redis restarted from a snapshot whose
// token's hash is old and holds no running lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_after_a_restart_waits_a_whole_lease_whatever_the_uptime_rounds_to() {
    const LEASE: Duration = Duration::from_secs(2);
    let ShortLease { mut redis, db, prefix, lease } = ShortLease::start(Backend::Sqlite, LEASE).await;
    let env = [ENV[0], ("CACHE_LEASE_MS", lease.as_str())];
    // a server makes the token's hash (and the catalog), then is gone; its lease runs out
    let mut a = Server::spawn(&db.url, &redis.url(), &prefix, &env);
    a.wait_up(Duration::from_secs(90)).await;
    a.kill();
    tokio::time::sleep(LEASE + Duration::from_millis(500)).await;
    let conn = single(&redis.url()).await;
    let _: () = redis::cmd("SAVE").query_async(&mut conn.clone()).await.expect("a snapshot");
    redis.kill();
    // restarted in the last tenth of a wall-clock second, so that its uptime reads one more
    // second than it has been up as early as possible
    let past_a_second =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock").subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from((1900 - past_a_second()) % 1000))).await;
    let (restarted, fraction) = (Instant::now(), past_a_second());
    redis.restart().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_marquee"))
        .args(["cache", "purge", "--all"])
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis.url())
        .env("CACHE_PREFIX", &prefix)
        .env("CACHE_LEASE_MS", &lease)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("marquee runs");
    let exited = restarted.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        exited >= LEASE,
        "the purge was done {exited:?} after Redis restarted (at {fraction} ms past a second), before a \
         lease granted before the snapshot was taken could have run out: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// A write whose cache write straddles a restart of Redis from an older snapshot: its keys and token
// reached the Redis that was lost, and it was still waiting for a lease (held here by a server that
// hears no announcement) when Redis came back without them. The writer met the lost connection: it
// does not count the write taken, and the Redis that came back is taught it before the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_lost_by_a_restart_while_the_writer_waited_is_taught_again() {
    const LEASE: Duration = Duration::from_secs(2);
    let ShortLease { mut redis, db, prefix, lease } = ShortLease::start(Backend::Sqlite, LEASE).await;
    let env = [ENV[0], ("CACHE_LEASE_MS", lease.as_str())];
    let a = Server::spawn(&db.url, &redis.url(), &prefix, &env);
    a.wait_up(Duration::from_secs(90)).await;
    let conn = single(&redis.url()).await;
    let (slug, old) = warm_film(&a, &conn, &prefix).await;
    let (secs, _): (u64, u64) = redis::cmd("TIME").query_async(&mut conn.clone()).await.expect("TIME");
    let deaf = format!("{} 0", (secs + 60) * 1000);
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}movies:token"))
        .arg("lease:deaf")
        .arg(deaf)
        .query_async(&mut conn.clone())
        .await
        .expect("a lease");
    let _: () = redis::cmd("SAVE").query_async(&mut conn.clone()).await.expect("a snapshot");

    let restart = async {
        tokio::time::sleep(LEASE / 4).await;
        redis.kill();
        redis.restart().await;
    };
    let (status, ()) = tokio::join!(retitle(&a, &slug, "Written Across The Restart"), restart);
    assert_eq!(status, StatusCode::OK);
    let conn = single(&redis.url()).await;
    eprintln!(
        "the film in Redis at the answer: {:?} (the snapshot's: {old})",
        cached_title(&conn, &prefix, &slug).await
    );
    always(&[&a], &slug, "Written Across The Restart", Duration::from_secs(3), async {}).await;
    assert_eq!(cached_title(&conn, &prefix, &slug).await.as_deref(), Some("Written Across The Restart"));
}

// Redis restarted from an older snapshot answers INFO (its new run_id) while it loads the snapshot,
// and refuses reads until it is done; a write of another film then lands at once, with a stamp as
// new as the log's: the servers that saw the restart while Redis was loading still repair what it
// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_was_loading_its_snapshot_when_the_restart_was_seen_is_still_taught() {
    let Snapshotted { mut redis, db: _db, prefix, servers, slug, old } = Snapshotted::start(4000).await;
    let (_, page3) = servers[0].get_text("/movies?page=3").await;
    let other = crate::helpers::card_slugs(&page3)[0].clone();
    redis.kill();
    // loading 4,000 keys 1 ms apart: 4 s, several looks of each relay, answering what it may (INFO)
    // every kilobyte it reads
    redis.restart_loading(&["--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024"]).await;
    let conn = single(&redis.url()).await;
    let key = format!("{prefix}movie:{slug}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis::cmd("GET").arg(&key).query_async::<Option<String>>(&mut conn.clone()).await.is_err() {
        assert!(Instant::now() < deadline, "Redis loaded its snapshot");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(retitle(&servers[0], &other, "Written After The Restart").await, StatusCode::OK);
    // (a relay that saw the restart may have repaired the film already: the snapshot's copy was
    // `old`, and the filler it held is back)
    let filler: Option<String> = redis::cmd("GET").arg("filler:1").query_async(&mut conn.clone()).await.unwrap();
    assert!(filler.is_some(), "Redis came back from the snapshot");
    eprintln!("the film in Redis once loaded: {:?} (the snapshot's: {old})", cached_title(&conn, &prefix, &slug).await);

    let refs: Vec<&Server> = servers.iter().collect();
    let repaired = until(CATCH_UP, || async {
        for s in &refs {
            if detail(s, &slug).await.heading.as_deref() != Some("After The Snapshot") {
                return None;
            }
        }
        (cached_title(&conn, &prefix, &slug).await.as_deref() == Some("After The Snapshot")).then_some(())
    })
    .await;
    assert!(repaired.is_some(), "not repaired within 5 s of Redis loading its snapshot");
    always(&refs, &slug, "After The Snapshot", Duration::from_secs(2), async {}).await;
}

// A Redis Cluster fails over onto a replica that had not received an acknowledged write (stopped
// while its master took it, then the master killed): the write is on every page throughout, on
// the servers started before the failover and on one started after it, and the promoted replica
// holds it within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_onto_a_replica_that_missed_a_write_loses_nothing() {
    const TITLE: &str = "Written Before The Failover";
    let nodes = PrivateCluster::start(7151).await;
    let seeds = nodes.seeds().join(",");
    let (db, prefix, mut servers) = two_servers(&seeds).await;
    let conn = cluster(nodes.seeds()).await;
    let (slug, _) = warm_film(&servers[0], &conn, &prefix).await;
    for s in &servers {
        let _ = detail(s, &slug).await;
        let _ = detail(s, &slug).await;
    }
    let key = format!("{prefix}movie:{slug}");
    let (master, replica) = master_and_replica(nodes.first, &key).await;

    // the replica stopped, and the kernel's buffers on its link filled (else it reads the write
    // from them when it goes on): the write stays in its master's output buffer
    nodes.pause(replica);
    let mut on_master = crate::helpers::redis_conn(&format!("redis://127.0.0.1:{master}")).await;
    let filler = vec![b'x'; 1 << 20];
    for i in 0..48 {
        // the film key as hash tag: the same slot, so the same master
        let _: () = redis::cmd("SET")
            .arg(format!("{{{key}}}filler:{i}"))
            .arg(&filler)
            .query_async(&mut on_master)
            .await
            .unwrap();
    }
    let asked = Instant::now();
    assert_eq!(retitle(&servers[1], &slug, TITLE).await, StatusCode::OK);
    eprintln!("the write answered in {:?} with the replica stopped", asked.elapsed());
    let refs: Vec<&Server> = servers.iter().collect();
    let failover = async {
        nodes.kill(master);
        nodes.resume(replica);
        let promoted = until(Duration::from_secs(20), || async { is_master(replica).await.then_some(()) }).await;
        assert!(promoted.is_some(), "the replica on {replica} is promoted");
    };
    always(&refs, &slug, TITLE, Duration::from_secs(12), failover).await;

    // a server that never knew the old master
    servers.push(Server::spawn(&db.url, &seeds, &prefix, ENV));
    servers[2].wait_up(Duration::from_secs(90)).await;
    let refs: Vec<&Server> = servers.iter().collect();
    let repaired = until(Duration::from_secs(10), || async {
        (cached_title(&conn, &prefix, &slug).await.as_deref() == Some(TITLE)).then_some(())
    })
    .await;
    assert!(repaired.is_some(), "the promoted replica is taught the write within 10 s");
    always(&refs, &slug, TITLE, Duration::from_secs(2), async {}).await;
}

// A relay's pass that began before Redis restarted from an older snapshot (its check of what Redis
// is made before the restart) applies its rows to the new Redis: that confirms nothing of what
// the new Redis lost. No read after the restart shows a write the snapshot is older than undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_pass_begun_before_a_restart_does_not_vouch_for_the_redis_after_it() {
    let mut redis = RedisServer::start_with_snapshots().await;
    let app =
        crate::helpers::Setup::new(Backend::Postgres).redis(&redis.url()).env("REDIS_TIMEOUT_MS", "300").spawn().await;
    let (_, html) = app.get_text("/movies?page=2").await;
    let slugs = crate::helpers::card_slugs(&html);
    let (lost, handed) = (slugs[3].clone(), slugs[4].clone());
    for _ in 0..2 {
        let _ = app.detail(&lost).await;
    }
    let conn = single(&redis.url()).await;
    let _: () = redis::cmd("SAVE").query_async(&mut conn.clone()).await.expect("a snapshot");
    assert_eq!(app.retitle(&lost, "Taken Then Lost").await.status(), StatusCode::OK);
    assert_eq!(cached_title(&conn, &app.prefix, &lost).await.as_deref(), Some("Taken Then Lost"));

    // the relay's ticks held, and then one let through, held at its pass: a write Redis refuses
    // (read-only) is handed to it
    let (ticks, passes) = (std::sync::Arc::new(Semaphore::new(0)), std::sync::Arc::new(Semaphore::new(0)));
    app.hooks.hold_relay_ticks(Some(ticks.clone()));
    app.hooks.hold_relay_passes(Some(passes.clone()));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let nowhere = crate::redis_server::free_port().to_string();
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&nowhere).query_async(&mut conn.clone()).await.unwrap();
    let writer = {
        let (client, url) = (app.client.clone(), app.url(&format!("/api/movies/{handed}")));
        tokio::spawn(async move {
            let put = client.put(url).bearer_auth(crate::helpers::TOKEN).json(&json!({ "title": "Handed Over" }));
            put.send().await.map(|r| r.status())
        })
    };
    // one tick at a time, until one finds the handed-over row
    let held = until(Duration::from_secs(5), || async {
        if app.hooks.relay_passes_held() == 0 && ticks.available_permits() == 0 {
            ticks.add_permits(1);
        }
        (app.hooks.relay_passes_held() > 0).then_some(())
    })
    .await;
    assert!(held.is_some(), "the relay's pass reached the hold");

    // Redis back from the snapshot (older than "Taken Then Lost"), taking writes; the app's lease
    // renewals find their connection gone meanwhile
    redis.kill();
    redis.restart().await;
    let conn = single(&redis.url()).await;
    assert_ne!(cached_title(&conn, &app.prefix, &lost).await.as_deref(), Some("Taken Then Lost"), "the write is lost");
    tokio::time::sleep(Duration::from_millis(600)).await;

    // the held pass applies the handed-over write to the new Redis, and its tick ends (the next
    // one held): no read of the lost write shows it undone, until the next tick and after it
    passes.add_permits(1000);
    let applied = until(Duration::from_secs(5), || async {
        (cached_title(&conn, &app.prefix, &handed).await.as_deref() == Some("Handed Over")).then_some(())
    })
    .await;
    assert!(applied.is_some(), "the held pass applied the handed-over write");
    let mut reads = 0;
    for held in [true, false] {
        if !held {
            app.hooks.hold_relay_ticks(None);
            ticks.add_permits(1000);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            let shown = app.detail(&lost).await.heading;
            assert_eq!(shown.as_deref(), Some("Taken Then Lost"), "read {reads} (next tick held: {held})");
            reads += 1;
        }
    }
    assert_eq!(writer.await.unwrap().ok(), Some(StatusCode::OK), "the handed-over write was answered");
    let repaired = until(CATCH_UP, || async {
        (cached_title(&conn, &app.prefix, &lost).await.as_deref() == Some("Taken Then Lost")).then_some(())
    })
    .await;
    assert!(repaired.is_some(), "Redis was taught the write it lost");
    eprintln!("{reads} reads after the pass went on, every one with the write");
}
