//! The cluster part: the embedded films on PostgreSQL served through a single Redis and through a
//! Redis Cluster on loopback (3 masters on ports 7141–7143, their replicas on 7144–7146, started by
//! `.ci/redis-cluster` and stopped when the bench exits, unless it was already running), in the same run: warm listing and detail,
//! Redis commands and round trips per request, RSS, the commands and key lookups each master
//! serves under load (is the stamp key a hot key?), and three servers against one. The million-film
//! part times an order change on the cluster too (`fill_pages`, `until_swept`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::future::join_all;
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;

use crate::client::{self, Conn, Counters};
use crate::common::{CONNS, catalog, page_paths};
use crate::lab;
use crate::opts::Opts;
use crate::report::{self, Row, mib, thousands, times};
use crate::servers::{Backend, Database, Janitor, Server, Spec};
use crate::wrk;

pub const FIRST_PORT: u16 = 7141;

fn ports() -> [u16; 3] {
    [FIRST_PORT, FIRST_PORT + 1, FIRST_PORT + 2]
}

/// Starts the bench's cluster unless it is up; its `REDIS_URL` (the three seeds).
pub fn start() -> Result<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/redis-cluster");
    let status = Command::new(&script)
        .args(["start", &FIRST_PORT.to_string(), "--owner", &std::process::id().to_string()])
        .status()
        .with_context(|| format!("run {}", script.display()))?;
    if !status.success() {
        bail!("{} start {FIRST_PORT} failed", script.display());
    }
    Ok(ports().iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(","))
}

/// The bench's own connection to the cluster (the crate routes each command to its node).
pub async fn connect(url: &str) -> Result<ClusterConnection> {
    let seeds: Vec<&str> = url.split(',').collect();
    Ok(redis::cluster::ClusterClient::new(seeds)?.get_async_connection().await?)
}

/// One plain connection per master, for what each one counts.
async fn masters() -> Result<Vec<(u16, lab::Conn)>> {
    let mut out = Vec::new();
    for port in ports() {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        out.push((port, client.get_multiplexed_async_connection().await?));
    }
    Ok(out)
}

/// Per master: commands processed and keys looked up (hits + misses) so far.
async fn counts(masters: &mut [(u16, lab::Conn)]) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for (_, c) in masters.iter_mut() {
        let commands = lab::info_field(c, "stats", "total_commands_processed").await?;
        let hits = lab::info_field(c, "stats", "keyspace_hits").await?;
        let misses = lab::info_field(c, "stats", "keyspace_misses").await?;
        out.push((commands, hits + misses));
    }
    Ok(out)
}

/// The master that holds `key` (the others answer MOVED).
async fn owner(masters: &mut [(u16, lab::Conn)], key: &str) -> Option<u16> {
    for (port, c) in masters.iter_mut() {
        if redis::cmd("EXISTS").arg(key).query_async::<i64>(c).await.is_ok() {
            return Some(*port);
        }
    }
    None
}

/// Page keys 1..=pages as the server writes them (stale: order version 0), and the set of page
/// keys, on the cluster: single-key commands sent together, as no pipeline may cross slots.
pub async fn fill_pages(
    c: &mut ClusterConnection,
    keys: &marquee::cache::Keys,
    pages: u32,
    slugs: &[String],
) -> Result<()> {
    let page: Vec<&str> = slugs.iter().take(24).map(String::as_str).collect();
    let value = serde_json::json!({ "v": 0, "slugs": page }).to_string();
    let set = keys.pages();
    for chunk in (1..=pages).collect::<Vec<_>>().chunks(2000) {
        let names: Vec<String> = chunk.iter().map(|&n| keys.page(n)).collect();
        let sets = names.iter().map(|k| {
            let mut c = c.clone();
            let cmd = redis::cmd("SET").arg(k).arg(&value).arg("EX").arg(300).to_owned();
            async move { cmd.query_async::<()>(&mut c).await }
        });
        for r in join_all(sets).await {
            r?;
        }
        redis::cmd("SADD").arg(&set).arg(&names).query_async::<()>(c).await?;
        redis::cmd("EXPIRE").arg(&set).arg(600).query_async::<()>(c).await?;
    }
    Ok(())
}

/// Waits for the deferred sweep to empty the set of page keys; the time since `since`.
pub async fn until_swept(c: &mut impl ConnectionLike, set: &str, since: Instant) -> Result<Duration> {
    let deadline = since + Duration::from_secs(60);
    loop {
        let n: u64 = redis::cmd("SCARD").arg(set).query_async(c).await?;
        if n == 0 {
            return Ok(since.elapsed());
        }
        if Instant::now() > deadline {
            bail!("{n} page keys still in {set} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Per request over `paths`, one after another on one connection: the server's own counters.
async fn per_request(addr: SocketAddr, paths: &[String]) -> Result<Counters> {
    client::settle(addr).await?;
    let before = Counters::read(addr).await?;
    let mut conn = Conn::open(addr).await?;
    for p in paths {
        let r = conn.get(p).await?;
        if r.status != 200 {
            bail!("{p}: status {}", r.status);
        }
    }
    client::settle(addr).await?;
    let d = Counters::read(addr).await?.since(before);
    let n = paths.len() as f64;
    Ok(Counters { queries: d.queries / n, commands: d.commands / n, round_trips: d.round_trips / n, ..d })
}

fn per(c: &Counters) -> String {
    format!("{:.2} commands · {:.2} round trips · {:.2} queries", c.commands, c.round_trips, c.queries)
}

async fn server(tmp: &Path, db: &Database, name: &str, prefix: &str, redis: &str, load: bool) -> Result<Server> {
    let static_dir = tmp.join(format!("static-{name}"));
    std::fs::create_dir_all(&static_dir)?;
    Server::start(
        Spec { name, db, prefix: Some(prefix), redis, static_dir: &static_dir, load_dataset: load, env: &[] },
        tmp,
    )
    .await
}

pub async fn phase(o: &Opts, j: &Janitor, tmp: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let url = start()?;
    let scope = "Cluster · PG · 3k";
    let db = j.database(Backend::Postgres, tmp, "pgcl").await?;
    let single = server(tmp, &db, "pg-single-redis", &j.prefix("pgsingle"), lab::REDIS, true).await?;
    let prefix = j.prefix("pgcluster");
    let mut cluster = vec![server(tmp, &db, "pg-cluster-1", &prefix, &url, false).await?];
    let (_, slugs) = catalog(single.addr, 200).await?;
    let listing = page_paths(1..=40);
    let details: Vec<String> = slugs.iter().map(|s| format!("/movies/{s}")).collect();
    for s in [&single, &cluster[0]] {
        client::sweep(s.addr, &listing, &[], 64).await?;
        client::sweep(s.addr, &details, &[], 64).await?;
        client::settle(s.addr).await?;
    }

    // warm listing and detail, single Redis against the cluster, alternating round by round
    let dir = tmp.join("lua-cluster");
    std::fs::create_dir_all(&dir)?;
    let s_listing = wrk::script(&dir, "listing", &listing, &[])?;
    let s_detail = wrk::script(&dir, "detail", &details, &[])?;
    let variants = [(&single, &s_listing), (&cluster[0], &s_listing), (&single, &s_detail), (&cluster[0], &s_detail)];
    let mut runs: Vec<Vec<wrk::Wrk>> = vec![Vec::new(); variants.len()];
    for round in 0..o.rounds {
        eprintln!("  single vs cluster, wrk round {}/{}", round + 1, o.rounds);
        for (i, (s, script)) in variants.iter().enumerate() {
            let before = Counters::read(s.addr).await?;
            let mut w = wrk::run(s.addr, script, o.secs, CONNS).await?;
            w.redis_errors = client::count(Counters::read(s.addr).await?.since(before).redis_errors);
            runs[i].push(w);
            client::settle(s.addr).await?;
        }
    }
    let m: Vec<wrk::Wrk> = runs.iter().map(|r| wrk::median(r)).collect();
    for (what, one, many) in [("warm listing (pages 1–40)", m[0], m[1]), ("warm detail (200 films)", m[2], m[3])] {
        rows.push(
            Row::new(scope, format!("{what}, cluster vs single Redis"))
                .ours(format!("cluster: {}", report::wrk(&many)))
                .other(format!("single: {}", report::wrk(&one)))
                .ratio(many.rps / one.rps),
        );
    }
    for (what, paths) in [("warm listing", &listing), ("warm detail", &details)] {
        let one = per_request(single.addr, paths).await?;
        let many = per_request(cluster[0].addr, paths).await?;
        rows.push(
            Row::new(scope, format!("per request: {what}, cluster vs single"))
                .ours(format!("cluster: {}", per(&many)))
                .other(format!("single: {}", per(&one)))
                .ratio(many.round_trips / one.round_trips),
        );
    }
    rows.push(
        Row::new(scope, "server peak RSS (VmHWM), cluster vs single")
            .ours(mib(cluster[0].peak_rss().unwrap_or(0) as f64))
            .other(format!("single: {}", mib(single.peak_rss().unwrap_or(0) as f64))),
    );

    // what each master serves under the warm listing's load: is the stamp key a hot key?
    let mut nodes = masters().await?;
    let meta = owner(&mut nodes, &format!("{prefix}movies:stamp")).await;
    // 8 connections: below saturation, so that every listing reaches Redis (no timeouts, no back-off)
    let before = counts(&mut nodes).await?;
    let errors_before = Counters::read(cluster[0].addr).await?;
    let w = wrk::run(cluster[0].addr, &s_listing, o.secs, 8).await?;
    let after = counts(&mut nodes).await?;
    let timeouts = Counters::read(cluster[0].addr).await?.since(errors_before).redis_errors;
    let deltas: Vec<(f64, f64)> = before.iter().zip(&after).map(|(b, a)| (a.0 - b.0, a.1 - b.1)).collect();
    let (commands, lookups): (f64, f64) = deltas.iter().fold((0.0, 0.0), |s, d| (s.0 + d.0, s.1 + d.1));
    let shares: Vec<String> = nodes
        .iter()
        .zip(&deltas)
        .map(|((port, _), d)| {
            format!(
                "{port}{}: {:.0}% of commands, {:.0}% of key lookups",
                if Some(*port) == meta { " (meta)" } else { "" },
                100.0 * d.0 / commands,
                100.0 * d.1 / lookups
            )
        })
        .collect();
    let busiest = deltas.iter().map(|d| d.0).fold(0.0, f64::max);
    rows.push(
        Row::new(scope, "each master under the warm listing, 8 connections (stamp key's node marked)")
            .ours(shares.join(" · "))
            .other(format!(
                "{:.2} commands, {:.1} key lookups per listing ({} r/s, {timeouts:.0} Redis timeouts)",
                commands / w.requests as f64,
                lookups / w.requests as f64,
                thousands(w.rps)
            ))
            .ratio_text(format!("busiest / mean {}", times(busiest / (commands / 3.0)))),
    );

    // three servers on the cluster against one, the same load split over them
    for n in 2..=3 {
        cluster.push(server(tmp, &db, &format!("pg-cluster-{n}"), &prefix, &url, false).await?);
    }
    for s in &cluster[1..] {
        client::sweep(s.addr, &listing, &[], 64).await?;
        client::settle(s.addr).await?;
    }
    let (mut ones, mut threes) = (Vec::new(), Vec::new());
    for round in 0..o.rounds {
        eprintln!("  three servers vs one, round {}/{}", round + 1, o.rounds);
        ones.push(wrk::run(cluster[0].addr, &s_listing, o.secs, CONNS).await?);
        let all = join_all(cluster.iter().map(|s| wrk::run(s.addr, &s_listing, o.secs, CONNS / 3))).await;
        let mut sum = wrk::Wrk::default();
        for w in all {
            let w = w?;
            sum.rps += w.rps;
            sum.requests += w.requests;
            sum.errors += w.errors;
            sum.p50_ms = sum.p50_ms.max(w.p50_ms);
            sum.p99_ms = sum.p99_ms.max(w.p99_ms);
        }
        threes.push(sum);
    }
    let (one, three) = (wrk::median(&ones), wrk::median(&threes));
    rows.push(
        Row::new(scope, "warm listing: three servers vs one, on the cluster (64 connections in all)")
            .ours(format!("three: {} r/s in all, worst p99 {}", thousands(three.rps), report::ms(three.p99_ms)))
            .other(format!("one: {}", report::wrk(&one)))
            .ratio(three.rps / one.rps),
    );
    Ok(())
}
