//! A recorded history under a random nemesis, and a checker (after Jepsen): three `marquee serve`
//! processes on one PostgreSQL database and one private Redis (each server behind a TCP path the
//! nemesis can cut) or a private Redis Cluster with a replica per master, a writer retitling a few
//! films through any server, readers asking every server for every film's page and its JSON, while
//! a seeded nemesis freezes a server or kills it (SIGKILL) and starts another in its place, and, on
//! one Redis, freezes Redis, kills it and restarts it from its last snapshot, flushes it, fills it
//! (out of memory), turns it into a read-only replica, makes it forget its scripts, cuts one server
//! off from it or pauses its path (nothing dropped, nothing carried); on the cluster, kills a master (its replica is promoted; it comes back empty),
//! freezes a master or a replica (a replica that misses writes), flushes every node, fills them,
//! makes them forget their scripts. The checker fails on any read begun after a write was acknowledged that shows an older
//! title, on any 5xx, and on a final state (faults healed) where a server or Redis holds anything
//! older than the database.
//!
//! `cargo test history -- --nocapture` prints the seed, the faults and the figures; a run of
//! another length or seed: `MARQUEE_HISTORY_SECONDS=300 MARQUEE_HISTORY_SEED=7 cargo test history`
//! (add `_on_a_cluster` or `random_nemesis$ -- --exact`-style filters for one of the two), and
//! `MARQUEE_HISTORY_FAULTS="restart redis from its snapshot,snapshot"` for those faults alone.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use marquee::cache::Connection;

use crate::helpers::{Backend, TestDb, unique};
use crate::redis_server::RedisServer;
use crate::support::cluster::PrivateCluster;
use crate::support::html::Detail;
use crate::support::proxy::Proxy;
use crate::support::server::Server;

const SERVERS: usize = 3;

/// A server's place: the nemesis may replace the server in it.
type Slot = RwLock<Arc<Server>>;
const FILMS: usize = 3;

#[derive(Debug, Clone)]
struct Write {
    film: usize,
    n: u64,
    acked: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Read {
    film: usize,
    server: usize,
    view: &'static str,
    began: Instant,
    /// The sequence number of the title seen (0: the film's title before the run).
    seen: u64,
}

#[derive(Default)]
struct History {
    writes: Vec<Write>,
    reads: Vec<Read>,
    /// (when, what) of every 5xx and failed request.
    errors: Vec<(Instant, String)>,
    faults: Vec<(Instant, String)>,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The title of write `n` to film `film`, and back.
fn title(film: usize, n: u64) -> String {
    format!("History {film} Take {n}")
}

fn take(film: usize, title: &str) -> Option<u64> {
    title.strip_prefix(&format!("History {film} Take ")).and_then(|n| n.parse().ok()).or(Some(0))
}

/// The cache under the nemesis: one Redis, each server reaching it by a path that can be cut; or
/// a Redis Cluster with a replica per master.
enum Cache {
    One { redis: RedisServer, paths: Vec<Proxy> },
    Cluster(PrivateCluster),
}

impl Cache {
    async fn one() -> Self {
        let redis = RedisServer::start_with_snapshots().await;
        let mut paths = Vec::new();
        for _ in 0..SERVERS {
            paths.push(Proxy::start(([127, 0, 0, 1], redis.port).into()).await);
        }
        Self::One { redis, paths }
    }

    /// Server `i`'s `REDIS_URL`.
    fn url(&self, i: usize) -> String {
        match self {
            Self::One { paths, .. } => format!("redis://127.0.0.1:{}", paths[i].port),
            Self::Cluster(nodes) => nodes.seeds().join(","),
        }
    }

    /// The test's own connection, for the final check.
    async fn connection(&self) -> Connection {
        match self {
            Self::One { redis, .. } => {
                let client = redis::Client::open(redis.url()).expect("redis url");
                Connection::Single(redis::aio::ConnectionManager::new(client).await.expect("redis answers"))
            }
            Self::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::new(nodes.seeds()).expect("cluster seeds");
                Connection::Cluster(client.get_async_connection().await.expect("the cluster answers"))
            }
        }
    }

    /// What the nemesis may do to this cache (besides what it does to servers).
    fn faults(&self) -> &'static [&'static str] {
        match self {
            Self::One { .. } => &[
                "freeze redis",
                "restart redis from its snapshot",
                "flushall",
                "redis out of memory",
                "redis read-only",
                "script flush",
                "cut a server off",
                "pause a server's path",
                "snapshot",
            ],
            Self::Cluster(_) => &[
                "kill a master",
                "freeze a replica",
                "freeze a master",
                "flushall",
                "redis out of memory",
                "script flush",
            ],
        }
    }

    /// Inflicts `fault` for `lasting`, then heals it.
    async fn inflict(&mut self, fault: &str, victim: usize, lasting: Duration, rng: &mut fastrand::Rng) {
        let config = |k: &str, v: &str| redis::cmd("CONFIG").arg("SET").arg(k).arg(v).clone();
        let ports: Vec<u16> = match self {
            Self::One { redis, .. } => vec![redis.port],
            Self::Cluster(nodes) => (nodes.first..nodes.first + 6).collect(),
        };
        let every = |cmd: redis::Cmd| every_node(ports.clone(), cmd);
        match (fault, &mut *self) {
            ("flushall", _) => every(redis::cmd("FLUSHALL")).await,
            ("script flush", _) => every(redis::cmd("SCRIPT").arg("FLUSH").clone()).await,
            ("redis out of memory", _) => {
                every(config("maxmemory-policy", "noeviction")).await;
                every(config("maxmemory", "1")).await;
                tokio::time::sleep(lasting).await;
                every(config("maxmemory", "0")).await;
            }
            ("freeze redis", Self::One { redis, .. }) => {
                redis.pause();
                tokio::time::sleep(lasting).await;
                redis.resume();
            }
            ("restart redis from its snapshot", Self::One { redis, .. }) => {
                redis.kill();
                redis.restart().await;
            }
            ("redis read-only", Self::One { .. }) => {
                let nowhere = crate::redis_server::free_port().to_string();
                every(redis::cmd("REPLICAOF").arg("127.0.0.1").arg(&nowhere).clone()).await;
                tokio::time::sleep(lasting).await;
                every(redis::cmd("REPLICAOF").arg("NO").arg("ONE").clone()).await;
            }
            ("cut a server off", Self::One { paths, .. }) => {
                paths[victim].down().await;
                tokio::time::sleep(lasting).await;
                paths[victim].up().await;
            }
            ("pause a server's path", Self::One { paths, redis }) => {
                // a partition that drops nothing: its calls time out, and what Redis does meanwhile
                // (a restart from its snapshot, half the time) reaches it only when the path is back
                paths[victim].pause();
                let restart = rng.bool();
                // (soon, while the server's lease may still run)
                let before = Duration::from_millis(rng.u64(0..200)).min(lasting);
                tokio::time::sleep(before).await;
                if restart {
                    redis.kill();
                    redis.restart().await;
                }
                tokio::time::sleep(lasting - before).await;
                paths[victim].resume();
            }
            ("snapshot", _) => every(redis::cmd("SAVE")).await,
            ("kill a master", Self::Cluster(nodes)) => {
                // its replica is promoted after the node timeout; it comes back (empty: nothing is
                // persisted) as a replica, or, if back before that, as an empty master
                let masters = nodes.masters().await;
                // (none answers as one for a moment after a failover: nothing to kill then)
                let Some(&port) = masters.get(rng.usize(..masters.len().max(1))) else { return };
                nodes.kill(port);
                tokio::time::sleep(lasting.max(Duration::from_millis(1500))).await;
                nodes.revive(port);
            }
            ("freeze a replica", Self::Cluster(nodes)) => {
                let replicas = nodes.replicas().await;
                let Some(&port) = replicas.get(rng.usize(..replicas.len().max(1))) else { return };
                nodes.pause(port);
                tokio::time::sleep(lasting).await;
                nodes.resume(port);
            }
            ("freeze a master", Self::Cluster(nodes)) => {
                let masters = nodes.masters().await;
                let Some(&port) = masters.get(rng.usize(..masters.len().max(1))) else { return };
                nodes.pause(port);
                tokio::time::sleep(lasting).await;
                nodes.resume(port);
            }
            (fault, _) => panic!("no such fault here: {fault}"),
        }
    }
}

/// Sends `cmd` to every node that answers on `ports`, whatever it replies.
async fn every_node(ports: Vec<u16>, cmd: redis::Cmd) {
    for port in ports {
        if let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            && let Ok(mut c) = client.get_multiplexed_async_connection().await
        {
            let _: redis::RedisResult<redis::Value> = cmd.query_async(&mut c).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_after_an_acknowledged_write_is_older_under_a_random_nemesis() {
    history(Cache::one().await, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_after_an_acknowledged_write_is_older_under_a_random_nemesis_on_a_cluster() {
    history(Cache::Cluster(PrivateCluster::start(7171).await), 26).await;
}

async fn history(mut cache: Cache, default_seed: u64) {
    let seconds = setting("MARQUEE_HISTORY_SECONDS", 40);
    let seed = setting("MARQUEE_HISTORY_SEED", default_seed);
    eprintln!("history: seed {seed}, {seconds} s");
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("{}:", unique("history"));
    // `MARQUEE_HISTORY_LOG=marquee=trace` logs what each server read from where, in logs kept
    // after the run (named in the report)
    let log = std::env::var("MARQUEE_HISTORY_LOG").unwrap_or_else(|_| "marquee=info".into());
    let env = [("REDIS_TIMEOUT_MS", "300"), ("RUST_LOG", log.as_str())];
    let keep_logs = std::env::var("MARQUEE_HISTORY_LOG").is_ok();
    let spawn = |redis: String| {
        let server = Server::spawn(&db.url, &redis, &prefix, &env);
        if keep_logs {
            server.keep_log();
        }
        server
    };
    let servers: Vec<Server> = (0..SERVERS).map(|i| spawn(cache.url(i))).collect();
    let mut logs: Vec<String> =
        servers.iter().enumerate().map(|(i, s)| format!("server {i}: {}", s.log_path().display())).collect();
    for s in &servers {
        s.wait_up(Duration::from_secs(90)).await;
    }
    let (_, page) = servers[0].get_text("/movies?page=1").await;
    let films: Vec<String> = crate::helpers::card_slugs(&page).into_iter().take(FILMS).collect();
    // every film cached and kept on every server before the run
    for s in &servers {
        for f in &films {
            for _ in 0..2 {
                let _ = s.get_text(&format!("/movies/{f}")).await;
            }
        }
    }

    let servers: Arc<Vec<Slot>> = Arc::new(servers.into_iter().map(|s| RwLock::new(Arc::new(s))).collect());
    let films = Arc::new(films);
    let history = Arc::new(Mutex::new(History::default()));
    let start = Instant::now();
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    eprintln!("history: started at {:.3} s after the Unix epoch", wall.as_secs_f64());
    let end = start + Duration::from_secs(seconds);

    let writer = {
        let (servers, films, history) = (servers.clone(), films.clone(), history.clone());
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed + 1);
            let mut next = [0u64; FILMS];
            while Instant::now() < end {
                let (film, server) = (rng.usize(..FILMS), rng.usize(..SERVERS));
                next[film] += 1;
                let n = next[film];
                let path = format!("/api/movies/{}", films[film]);
                let to = servers[server].read().unwrap().clone();
                let answer = to.admin(Method::PUT, &path).json(&json!({ "title": title(film, n) })).send().await;
                {
                    let mut h = history.lock().unwrap();
                    let failed = match answer {
                        Ok(r) if r.status() == StatusCode::OK => None,
                        Ok(r) => Some(r.status().to_string()),
                        Err(e) => Some(e.to_string()),
                    };
                    let acked = failed.is_none().then(Instant::now);
                    if let Some(failed) = failed {
                        h.errors.push((Instant::now(), format!("PUT {path} via {server}: {failed}")));
                    }
                    h.writes.push(Write { film, n, acked });
                }
                tokio::time::sleep(Duration::from_millis(rng.u64(20..200))).await;
            }
        })
    };

    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (servers, films, history) = (servers.clone(), films.clone(), history.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(seed + 10 + r);
                while Instant::now() < end {
                    let (film, server) = (rng.usize(..FILMS), rng.usize(..SERVERS));
                    let api = rng.bool();
                    let path =
                        if api { format!("/api/movies/{}", films[film]) } else { format!("/movies/{}", films[film]) };
                    let began = Instant::now();
                    let to = servers[server].read().unwrap().clone();
                    let answer = to.client.get(to.url(&path)).send().await;
                    let shown = match answer {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let body = r.text().await.unwrap_or_default();
                            if api {
                                serde_json::from_str::<serde_json::Value>(&body)
                                    .ok()
                                    .and_then(|v| v["title"].as_str().map(str::to_owned))
                            } else {
                                Detail::parse(StatusCode::OK, body).heading
                            }
                        }
                        Ok(r) => {
                            history
                                .lock()
                                .unwrap()
                                .errors
                                .push((began, format!("GET {path} on {server}: {}", r.status())));
                            None
                        }
                        Err(e) => {
                            history.lock().unwrap().errors.push((began, format!("GET {path} on {server}: {e}")));
                            None
                        }
                    };
                    if let Some(seen) = shown.as_deref().and_then(|t| take(film, t)) {
                        let view = if api { "api" } else { "page" };
                        history.lock().unwrap().reads.push(Read { film, server, view, began, seen });
                    }
                }
            })
        })
        .collect();

    // the nemesis: one fault at a time, healed before the next
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut faults: Vec<&str> = cache.faults().to_vec();
    faults.extend(["freeze a server", "replace a server"]);
    // `MARQUEE_HISTORY_FAULTS=a,b` keeps only the faults named (to dwell on one window)
    if let Ok(only) = std::env::var("MARQUEE_HISTORY_FAULTS") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        faults.retain(|f| only.contains(f));
        assert!(!faults.is_empty(), "MARQUEE_HISTORY_FAULTS names none of {:?}", cache.faults());
    }
    while Instant::now() + Duration::from_secs(3) < end {
        tokio::time::sleep(Duration::from_millis(rng.u64(300..1500))).await;
        let lasting = Duration::from_millis(rng.u64(300..2000));
        let (fault, victim) = (faults[rng.usize(..faults.len())], rng.usize(..SERVERS));
        history.lock().unwrap().faults.push((Instant::now(), format!("{fault} ({victim}, {lasting:?})")));
        match fault {
            "freeze a server" => {
                let s = servers[victim].read().unwrap().clone();
                s.freeze(true);
                tokio::time::sleep(lasting.min(Duration::from_millis(1200))).await;
                s.freeze(false);
            }
            "replace a server" => {
                // SIGKILL, whatever it was doing (a write committed and not yet told to Redis, a
                // lease held), and a new server in its place
                servers[victim].read().unwrap().crash();
                let fresh = spawn(cache.url(victim));
                logs.push(format!("server {victim} from {:?}: {}", start.elapsed(), fresh.log_path().display()));
                fresh.wait_up(Duration::from_secs(90)).await;
                *servers[victim].write().unwrap() = Arc::new(fresh);
            }
            fault => cache.inflict(fault, victim, lasting, &mut rng).await,
        }
    }
    writer.await.unwrap();
    for r in readers {
        r.await.unwrap();
    }

    // every fault healed: within 5 s every server and Redis hold the database's title
    let (repo, _) = db.connect().await;
    let conn = cache.connection().await;
    let servers: Vec<Arc<Server>> = servers.iter().map(|s| s.read().unwrap().clone()).collect();
    let check_end = async {
        for _ in 0..50 {
            let mut all = true;
            for slug in films.iter() {
                let (_, mut found) = repo.movies(&[slug.as_str()]).await.unwrap();
                let want = found.pop().map(|m| m.title).unwrap_or_default();
                for s in servers.iter() {
                    let (_, html) = s.get_text(&format!("/movies/{slug}")).await;
                    all &= Detail::parse(StatusCode::OK, html).heading.as_deref() == Some(want.as_str());
                }
                let cached: Option<String> = redis::cmd("GET")
                    .arg(format!("{prefix}movie:{slug}"))
                    .query_async(&mut conn.clone())
                    .await
                    .unwrap_or(None);
                all &= cached.is_none_or(|c| c.contains(&format!("\"title\":\"{want}\"")));
            }
            if all {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    let settled = check_end.await;

    let h = history.lock().unwrap();
    let stale: Vec<String> = h
        .reads
        .iter()
        .filter_map(|r| {
            let acked = h
                .writes
                .iter()
                .filter(|w| w.film == r.film && w.acked.is_some_and(|a| a < r.began))
                .map(|w| w.n)
                .max()
                .unwrap_or(0);
            (r.seen < acked).then(|| {
                format!(
                    "{:?}: server {} {} of film {} showed take {} after take {} was acknowledged",
                    r.began - start,
                    r.server,
                    r.view,
                    r.film,
                    r.seen,
                    acked
                )
            })
        })
        .collect();
    let server_errors: Vec<String> =
        h.errors.iter().filter(|(_, e)| e.contains(": 5")).map(|(at, e)| format!("{:?}: {e}", *at - start)).collect();
    let faults: Vec<String> = h.faults.iter().map(|(at, f)| format!("{:?}: {f}", *at - start)).collect();
    let acked = h.writes.iter().filter(|w| w.acked.is_some()).count();
    eprintln!("history: faults:\n  {}", faults.join("\n  "));
    eprintln!(
        "history: seed {seed}: {} reads, {} writes ({acked} acknowledged), {} faults, {} stale, {} 5xx, {} other errors",
        h.reads.len(),
        h.writes.len(),
        h.faults.len(),
        stale.len(),
        server_errors.len(),
        h.errors.len() - server_errors.len()
    );
    let report = format!(
        "seed {seed}\nservers' logs:\n  {}\nfaults:\n  {}\nstale reads:\n  {}\n5xx:\n  {}",
        logs.join("\n  "),
        faults.join("\n  "),
        stale.iter().take(20).cloned().collect::<Vec<_>>().join("\n  "),
        server_errors.iter().take(20).cloned().collect::<Vec<_>>().join("\n  ")
    );
    // a write under a fault may take 3 s (see `cache::trust`): one every 4 s at least
    assert!(h.reads.len() > 100 && acked as u64 >= seconds / 4, "too little happened to judge: {report}");
    assert!(stale.is_empty() && server_errors.is_empty(), "{report}");
    assert!(settled, "after the faults, a server or Redis still holds an older title than the database: {report}");
}
