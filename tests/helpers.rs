//! What every test uses: a real app on port 0 against the real Redis and a database of its own
//! (a SQLite file, or a PostgreSQL schema), each with its own Redis key prefix.

use std::collections::HashMap;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use marquee::app::Application;
use marquee::cache::Connection;
use marquee::config::Config;
use marquee::db::Db;
use marquee::deferred::Deferred;
use marquee::hooks::Hooks;
use marquee::service::MovieService;
use marquee::stats::{Snapshot, Stats};
use redis::{AsyncCommands, ScanOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub use crate::support::html::card_slugs;
use crate::support::html::{Detail, Listing};

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS: &str = "redis://127.0.0.1:6379";
pub const TOKEN: &str = "test-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The Redis a test app caches in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redis {
    /// The machine's Redis at 127.0.0.1:6379.
    Single,
    /// The shared test cluster (see `support::cluster`).
    Cluster,
}

/// What a test runs on: a database backend and a Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub backend: Backend,
    pub redis: Redis,
}

impl From<Backend> for Target {
    fn from(backend: Backend) -> Self {
        Self { backend, redis: Redis::Single }
    }
}

impl Target {
    pub const fn new(backend: Backend, redis: Redis) -> Self {
        Self { backend, redis }
    }
}

/// Runs a cache test body on SQLite and PostgreSQL with one Redis, and on PostgreSQL with the
/// Redis Cluster: `on_each_redis!(name, |target| async move { … })`.
#[macro_export]
macro_rules! on_each_redis {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports, reason = "not every test body uses the parent module")]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::helpers::Target::new($crate::helpers::Backend::Sqlite, $crate::helpers::Redis::Single))
                    .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::helpers::Target::new(
                    $crate::helpers::Backend::Postgres,
                    $crate::helpers::Redis::Single,
                ))
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                ($body)($crate::helpers::Target::new(
                    $crate::helpers::Backend::Postgres,
                    $crate::helpers::Redis::Cluster,
                ))
                .await
            }
        }
    };
}

/// Runs a test body once per backend: `both!(name, |backend| async move { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports, reason = "not every test body uses the parent module")]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            marquee::telemetry::init_logs(false);
        }
    });
}

/// A name no other test (of this run or an earlier one) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{tag}{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), fastrand::u32(..))
}

/// A database of the test's own, removed when dropped.
pub struct TestDb {
    pub url: String,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    File(std::path::PathBuf),
    Schema(String),
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", unique("marquee_test_")));
                Self { url: format!("sqlite://{}", path.display()), cleanup: Some(Cleanup::File(path)) }
            }
            Backend::Postgres => {
                let schema = unique("t_");
                admin_sql(&format!("create schema {schema}")).await;
                Self {
                    url: format!("{PG_ADMIN}?options=-c%20search_path%3D{schema}"),
                    cleanup: Some(Cleanup::Schema(schema)),
                }
            }
        }
    }

    /// The repository on this database, migrated.
    pub async fn connect(&self) -> (Db, std::sync::Arc<Stats>) {
        self.connect_with(&Hooks::default()).await
    }

    /// `connect`, with seams the test holds.
    pub async fn connect_with(&self, hooks: &Hooks) -> (Db, std::sync::Arc<Stats>) {
        let stats = std::sync::Arc::new(Stats::default());
        let config = config(&[("DATABASE_URL", &self.url)]);
        (marquee::app::open_db(&config, stats.clone(), hooks.clone()).await.expect("database opens"), stats)
    }
}

async fn admin_sql(sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(PG_ADMIN).await.expect("PostgreSQL at 127.0.0.1:5432 (user postgres)");
    sqlx::query(sql).execute(&mut conn).await.expect("admin sql");
    let _ = conn.close().await;
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.cleanup.take() {
            Some(Cleanup::File(path)) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Some(Cleanup::Schema(schema)) => {
                // Drop runs inside the test's runtime: clean up from a thread with its own.
                let _ = std::thread::spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        rt.block_on(admin_sql(&format!("drop schema if exists {schema} cascade")));
                    }
                })
                .join();
            }
            None => {}
        }
    }
}

/// A config from the documented defaults plus `pairs`.
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let env: HashMap<&str, &str> = pairs.iter().copied().collect();
    Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).expect("valid test config")
}

/// How a test app is set up; `Setup::new(backend).spawn()`.
pub struct Setup {
    pub backend: Backend,
    pub redis: Redis,
    pub redis_url: String,
    pub page_size: u32,
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn new(target: impl Into<Target>) -> Self {
        let Target { backend, redis } = target.into();
        Self { backend, redis, redis_url: REDIS.into(), page_size: 24, env: Vec::new() }
    }

    /// One Redis of the test's own.
    pub fn redis(mut self, url: &str) -> Self {
        self.redis = Redis::Single;
        self.redis_url = url.into();
        self
    }

    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n;
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub async fn spawn(mut self) -> TestApp {
        init_logs();
        if self.redis == Redis::Cluster && self.redis_url == REDIS {
            self.redis_url = crate::support::cluster::shared().await.join(",");
        }
        let redis_nodes: Vec<String> = self.redis_url.split(',').map(str::to_owned).collect();
        let db = TestDb::new(self.backend).await;
        let prefix = format!("{}:", unique("test"));
        let page_size = self.page_size.to_string();
        let mut pairs: Vec<(&str, &str)> = vec![
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("DATABASE_URL", &db.url),
            ("REDIS_URL", &self.redis_url),
            ("CACHE_PREFIX", &prefix),
            ("PAGE_SIZE", &page_size),
            ("ADMIN_TOKEN", TOKEN),
            ("DB_MAX_CONNECTIONS", "8"),
            // Tests run in parallel on a small machine with a debug build: a generous Redis timeout
            // keeps a busy moment from turning into a cache miss. Fault tests set their own.
            ("REDIS_TIMEOUT_MS", "1000"),
        ];
        pairs.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // later pairs win
        let env: HashMap<&str, &str> = pairs.into_iter().collect();
        let config = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).expect("valid test config");
        let command_env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let app = Application::build(config).await.expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let (service, hooks) = (app.service().clone(), app.hooks().clone());
        let router = app.app();
        let (stats, deferred) = (app.stats().clone(), app.deferred().clone());
        let (database, _) = db.connect().await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        let cluster = self.redis == Redis::Cluster;
        TestApp {
            base,
            client,
            router,
            service,
            hooks,
            stats,
            deferred,
            database,
            prefix,
            cluster,
            redis_nodes,
            command_env,
            test_db: db,
            stop: Some(stop),
        }
    }
}

pub async fn spawn_app(target: impl Into<Target>) -> TestApp {
    Setup::new(target).spawn().await
}

/// An app that keeps no rendered page in memory (`RENDERED_CACHE_KB=0`): every page is read from
/// Redis, for the tests that count or spoil what the Redis tier reads.
pub async fn redis_tier_app(target: impl Into<Target>) -> TestApp {
    Setup::new(target).env("RENDERED_CACHE_KB", "0").env("CACHE_LEASE_MS", "0").spawn().await
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The same application as it is served, for requests that need no socket.
    router: marquee::web::App,
    pub service: MovieService,
    /// The app's seams: hold its database reads or sweeps, make its reads panic.
    pub hooks: Hooks,
    stats: std::sync::Arc<Stats>,
    deferred: Deferred,
    /// A pool of the test's own on the app's database: what another server would see and write.
    database: Db,
    pub prefix: String,
    /// Whether the app caches in a Redis Cluster, and the nodes it was given.
    pub cluster: bool,
    redis_nodes: Vec<String>,
    /// The settings the app runs with, for the command line to run with the same.
    command_env: Vec<(String, String)>,
    /// Owned by the app so that it is removed when the app is dropped.
    test_db: TestDb,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// GET, returning the status and the body as text.
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let r = self.get(path).await;
        let status = r.status();
        (status, r.text().await.expect("body"))
    }

    /// GET as htmx's infinite scroll does it (the feed is its target).
    pub async fn get_fragment(&self, path: &str) -> (StatusCode, String) {
        let r = self.client.get(self.url(path)).header("HX-Request", "true").header("HX-Target", "feed");
        let r = r.send().await.expect("request");
        let status = r.status();
        (status, r.text().await.expect("body"))
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(TOKEN)
    }

    /// Sends `request` straight to the application (no socket, no HTTP server loop).
    pub async fn oneshot(&self, request: axum::http::Request<axum::body::Body>) -> axum::response::Response {
        use tower::ServiceExt;
        self.router.clone().oneshot(request).await.expect("the router answers")
    }

    /// Listing page `n`, as a visitor opens it.
    pub async fn listing(&self, n: u32) -> Listing {
        let (status, html) = self.get_text(&format!("/movies?page={n}")).await;
        Listing::parse(status, html)
    }

    /// Listing page `n` as htmx loads it while the reader scrolls.
    pub async fn scroll_to(&self, n: u32) -> Listing {
        let (status, html) = self.get_fragment(&format!("/movies?page={n}")).await;
        Listing::parse(status, html)
    }

    /// A film's page.
    pub async fn detail(&self, slug: &str) -> Detail {
        let (status, html) = self.get_text(&format!("/movies/{slug}")).await;
        Detail::parse(status, html)
    }

    /// An editor adds a film (`POST /api/movies` with the admin token).
    pub async fn add_movie(&self, movie: &Value) -> reqwest::Response {
        self.admin(reqwest::Method::POST, "/api/movies").json(movie).send().await.expect("POST answered")
    }

    /// An editor changes some fields of a film (`PUT /api/movies/{slug}`).
    pub async fn edit(&self, slug: &str, change: &Value) -> reqwest::Response {
        self.admin(reqwest::Method::PUT, &format!("/api/movies/{slug}"))
            .json(change)
            .send()
            .await
            .expect("PUT answered")
    }

    /// An editor gives a film a new title.
    pub async fn retitle(&self, slug: &str, title: &str) -> reqwest::Response {
        self.edit(slug, &json!({ "title": title })).await
    }

    /// An editor moves a film's release date (which reorders the listing).
    pub async fn redate(&self, slug: &str, date: &str) -> reqwest::Response {
        self.edit(slug, &json!({ "release_date": date })).await
    }

    /// An editor deletes a film.
    pub async fn remove(&self, slug: &str) -> reqwest::Response {
        self.admin(reqwest::Method::DELETE, &format!("/api/movies/{slug}")).send().await.expect("DELETE answered")
    }

    /// Waits (up to 3 s) until the app has sent at least `n` database queries in all, and says
    /// whether it has: how a test knows that held-back reads have reached the database.
    pub async fn queries_reach(&self, n: u64) -> bool {
        for _ in 0..300 {
            if self.stats.snapshot().db_queries >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Waits until every deferred cache write spawned so far has finished.
    pub async fn settle(&self) {
        self.deferred.drain(Duration::from_secs(30)).await;
    }

    pub fn stats(&self) -> Snapshot {
        self.stats.snapshot()
    }

    /// The app's database, reached as another server would (not through the app's cache).
    pub fn database(&self) -> &Db {
        &self.database
    }

    /// Another server's service on the app's database and cache (no requests of its own): its
    /// writes reach the database and Redis as any server's do, but not this app's memory.
    pub async fn another_server(&self) -> MovieService {
        let env: HashMap<&str, &str> = self.command_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let config = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).expect("valid test config");
        marquee::app::open_service(&config).await.expect("another server's service")
    }

    /// An operator runs `marquee ARGS` beside the app: the same database, cache and settings.
    pub async fn run_marquee(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_marquee"));
        cmd.args(args).envs(self.command_env.iter().map(|(k, v)| (k, v))).env("RUST_LOG", "warn");
        cmd.output().await.expect("marquee runs")
    }

    /// PostgreSQL: a connection of the test's own that holds every film locked (`access
    /// exclusive`) until it is dropped: any statement reading them waits meanwhile.
    pub async fn lock_films(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.test_db.url).await.expect("the database answers");
        for sql in ["begin", "lock table movies in access exclusive mode"] {
            sqlx::query(sql).execute(&mut conn).await.expect("the lock is taken");
        }
        conn
    }

    /// An operator changes a film's title with SQL, behind the cache's back: no version, no
    /// cache log, no new token.
    pub async fn retitle_by_hand(&self, slug: &str, title: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&self.test_db.url).await.expect("the database answers");
        let done = sqlx::query("update movies set title = $1 where slug = $2")
            .bind(title)
            .bind(slug)
            .execute(&mut conn)
            .await
            .expect("update");
        assert_eq!(done.rows_affected(), 1, "{slug} is in the database");
        let _ = conn.close().await;
    }

    /// A key of this app's prefix.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// A connection of the test's own to the app's Redis (a cluster connection on a cluster), to
    /// look at or tamper with the cache.
    pub async fn redis(&self) -> Connection {
        if self.cluster {
            let client = redis::cluster::ClusterClient::new(self.redis_nodes.clone()).expect("cluster seeds");
            Connection::Cluster(client.get_async_connection().await.expect("the cluster answers"))
        } else {
            let client = redis::Client::open(self.redis_nodes[0].as_str()).expect("redis url");
            Connection::Single(redis::aio::ConnectionManager::new(client).await.expect("redis answers"))
        }
    }

    /// The keys under this app's prefix, on every node.
    pub async fn cached_keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for node in &self.redis_nodes {
            keys.extend(scan(&mut redis_conn(node).await, &format!("{}{pattern}", self.prefix)).await);
        }
        keys.sort();
        keys
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let prefix = self.prefix.clone();
        // the app's own nodes, and the machine's Redis, which some tests write to directly
        let mut nodes = self.redis_nodes.clone();
        if !nodes.iter().any(|n| n == REDIS) {
            nodes.push(REDIS.to_owned());
        }
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move {
                    for node in nodes {
                        let Ok(client) = redis::Client::open(node) else { continue };
                        let Ok(mut conn) = client.get_multiplexed_async_connection().await else { continue };
                        let Ok(keys) = try_scan(&mut conn, &format!("{prefix}*")).await else { continue };
                        // one key per command: on a cluster node, the keys may sit in many slots
                        for chunk in keys.chunks(1000) {
                            let mut pipe = redis::pipe();
                            for key in chunk {
                                pipe.cmd("UNLINK").arg(key).ignore();
                            }
                            let _: Result<(), _> = pipe.query_async(&mut conn).await;
                        }
                    }
                });
            }
        })
        .join();
    }
}

/// Every key matching the SCAN pattern, sorted.
pub async fn scan(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys = try_scan(conn, pattern).await.expect("scan");
    keys.sort();
    keys
}

/// Every key matching the SCAN pattern (COUNT 1000), in SCAN's order.
async fn try_scan(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> redis::RedisResult<Vec<String>> {
    let options = ScanOptions::default().with_pattern(pattern).with_count(1000);
    let mut iter = conn.scan_options::<String>(options).await?;
    let mut keys = Vec::new();
    while let Some(key) = iter.next_item().await {
        keys.push(key?);
    }
    Ok(keys)
}

pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).expect("redis url").get_multiplexed_async_connection().await.expect("redis answers")
}
