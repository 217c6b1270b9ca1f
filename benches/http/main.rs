//! What the cache buys, side by side: `cargo bench --bench http` (add `-- --million` for the
//! 1,000,000-film part).
//!
//! Builds the release binary (cargo does, as this bench's `CARGO_BIN_EXE_marquee`), then for each
//! of SQLite and PostgreSQL starts two marquee servers on one fresh database (the embedded 3,200
//! films): one with the cache (its own Redis key prefix), one with `REDIS_URL=off`. wrk (a second
//! process) drives the steady-state load; every comparison alternates its variants round by round
//! and reports medians. The bench's own client does what wrk cannot: each page requested exactly
//! once (cold and partial-miss sweeps), 200 simultaneous cold requests, per-request counters, timed
//! writes. A last part talks to Redis directly for the design's two open questions. One table is
//! printed and written to benches/RESULTS.md. Every server, database and key is removed at the end.
//!
//! Options (after `--`): `--million`, `--profile` (perf record of one extra warm-listing run),
//! `--quick` (short smoke run, RESULTS.md untouched), `--only sqlite|postgres`, `--secs N` (wrk
//! duration, default 5), `--rounds N` (default 3), `--films N` (size of the big part), `--no-write`.
//! Needs wrk (`apt-get install wrk`), PostgreSQL and Redis as the tests do, perf for `--profile`.

mod client;
mod design;
mod heading;
mod lab;
mod opts;
mod report;
mod servers;
mod wrk;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use marquee::cache::Keys;

use client::{Conn, Counters, Sweep};
use heading::{NOTES, heading};
use opts::Opts;
use report::{Row, Verdict, mib, ms, thousands, times};
use servers::{Backend, Janitor, Server, Spec, TOKEN};

const PAGE_SIZE: u32 = 24;
pub const CONNS: u32 = 64;

fn main() -> ExitCode {
    let opts = match Opts::parse() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let janitor = Janitor::default();
    let result = rt.block_on(async {
        tokio::select! {
            r = run(&opts, &janitor) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    if result.is_err() {
        eprintln!("{}", janitor.log_tails());
    }
    // the servers are stopped by now (dropped with `run`); their databases and keys go next
    rt.block_on(janitor.clean());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn preflight() -> Result<()> {
    Command::new("wrk").arg("-v").output().context("wrk is not installed (apt-get install wrk)")?;
    let mut c = lab::connect().await?;
    redis::cmd("PING").query_async::<String>(&mut c).await.context("Redis at 127.0.0.1:6379")?;
    servers::admin_sql("select 1").await.context("PostgreSQL at postgres://postgres@127.0.0.1:5432/test")?;
    Ok(())
}

async fn run(opts: &Opts, janitor: &Janitor) -> Result<()> {
    preflight().await?;
    let heading = heading(opts);
    let started = Instant::now();
    let tmp = std::env::temp_dir().join(format!("marquee-bench-{}-{}", std::process::id(), fastrand::u32(..)));
    std::fs::create_dir_all(&tmp)?;
    janitor.dir(&tmp);
    let mut rows = Vec::new();
    let mut profile = String::new();
    for backend in opts.backends() {
        eprintln!("[{:>5.0} s] {}: the embedded films", started.elapsed().as_secs_f64(), backend.name());
        backend_phase(opts, janitor, &tmp, backend, &mut rows, &mut profile).await?;
    }
    eprintln!("[{:>5.0} s] Redis: the design's open questions", started.elapsed().as_secs_f64());
    design::rows(opts, janitor, &mut rows).await?;
    if opts.million {
        for backend in opts.backends() {
            eprintln!(
                "[{:>5.0} s] {}: {} films",
                started.elapsed().as_secs_f64(),
                backend.name(),
                thousands(opts.big as f64)
            );
            million_phase(opts, janitor, &tmp, backend, &mut rows).await?;
        }
    }
    let passed = rows.iter().filter(|r| r.verdict == Verdict::Pass).count();
    let missed = rows.iter().filter(|r| r.verdict == Verdict::Miss).count();
    let took = started.elapsed().as_secs_f64();
    let table = report::table(&rows);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let summary = format!(
        "targets: {passed} PASS, {missed} MISS; the run took {took:.0} s; load average at the end {}",
        load.join(" ")
    );
    println!("\n{heading}\n\n{table}\n{summary}\n\n{NOTES}\n{profile}");
    if opts.write && !opts.quick {
        let command = if opts.million { "cargo bench --bench http -- --million" } else { "cargo bench --bench http" };
        let md = format!(
            "# Benchmark results\n\nThe table of the last run of `{command}` (see benches/http/main.rs). \
             Re-run it to replace this file.\n\n```text\n{heading}\n```\n\n{table}\n{summary}\n\n{NOTES}\n{profile}"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
        std::fs::write(&path, md).with_context(|| format!("write {}", path.display()))?;
        eprintln!("written to {}", path.display());
    }
    Ok(())
}

fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

async fn page_html(addr: SocketAddr, n: u32) -> Result<String> {
    let r = client::get(addr, &format!("/movies?page={n}")).await?;
    if r.status != 200 {
        bail!("page {n}: status {}", r.status);
    }
    Ok(r.text())
}

/// The catalog's size (the cards' aria-setsize) and at least `want` slugs from the first pages.
async fn catalog(addr: SocketAddr, want: usize) -> Result<(u64, Vec<String>)> {
    let first = page_html(addr, 1).await?;
    let total: u64 = attr_values(&first, "aria-setsize")
        .first()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no aria-setsize on page 1"))?;
    let mut slugs: Vec<String> = attr_values(&first, "data-slug").into_iter().map(str::to_owned).collect();
    let mut n = 2;
    while slugs.len() < want && u64::from(n - 1) * u64::from(PAGE_SIZE) < total {
        slugs.extend(attr_values(&page_html(addr, n).await?, "data-slug").into_iter().map(str::to_owned));
        n += 1;
    }
    slugs.truncate(want);
    Ok((total, slugs))
}

fn page_paths(pages: impl Iterator<Item = u32>) -> Vec<String> {
    pages.map(|n| format!("/movies?page={n}")).collect()
}

const HX: &[(&str, &str)] = &[("HX-Request", "true")];

/// One steady-state variant: the server, the wrk script, and its paths and headers (for `unstick`).
type Variant<'a> = (&'a Server, &'a PathBuf, &'a [String], &'a [(&'a str, &'a str)]);

/// Counters per request over `paths` requested one after another on one connection.
struct PerRequest {
    per: Counters,
    redis: String,
}

async fn per_request(
    server: &Server,
    redis: &mut lab::Conn,
    prefix: &str,
    paths: &[String],
    headers: &[(&str, &str)],
) -> Result<PerRequest> {
    client::settle(server.addr).await?;
    let before = Counters::read(server.addr).await?;
    let monitor = lab::Monitor::start(prefix).await?;
    let mut conn = Conn::open(server.addr).await?;
    for p in paths {
        let r = conn.send("GET", p, headers, &[]).await?;
        if r.status != 200 {
            bail!("{p}: status {}", r.status);
        }
    }
    client::settle(server.addr).await?;
    let (top, lua) = monitor.finish(redis).await?;
    let after = Counters::read(server.addr).await?;
    let d = after.since(before);
    let n = paths.len() as f64;
    Ok(PerRequest {
        per: Counters {
            queries: d.queries / n,
            commands: d.commands / n,
            round_trips: d.round_trips / n,
            coalesced: d.coalesced / n,
            redis_errors: d.redis_errors,
        },
        redis: format!("{:.2} commands (+{:.2} inside scripts)", top as f64 / n, lua as f64 / n),
    })
}

fn per_request_row(scope: &str, what: &str, p: &PerRequest, target: Option<(f64, f64)>) -> Row {
    let c = p.per;
    let row = Row::new(scope, format!("per request: {what}"))
        .ours(format!("{:.2} commands · {:.2} round trips · {:.2} queries", c.commands, c.round_trips, c.queries))
        .other(format!(
            "Redis MONITOR: {}{}",
            p.redis,
            if c.redis_errors > 0.0 { format!(" ({:.0} Redis timeouts!)", c.redis_errors) } else { String::new() }
        ));
    match target {
        Some((cmds, queries)) => row.target(
            format!("{cmds} commands · {queries} queries"),
            Verdict::of((c.commands - cmds).abs() < 0.005 && (c.queries - queries).abs() < 0.005),
        ),
        None => row,
    }
}

/// Removes a third of each cached page's film keys (every third slug), leaving the page keys.
async fn remove_a_third(redis: &mut lab::Conn, keys: &Keys, pages: u32) -> Result<usize> {
    let mut pipe = redis::pipe();
    for n in 1..=pages {
        pipe.cmd("GET").arg(keys.page(n));
    }
    let raw: Vec<Option<String>> = pipe.query_async(redis).await?;
    let mut gone = Vec::new();
    for page in raw.into_iter().flatten() {
        let slugs: Vec<String> = serde_json::from_str(&page)?;
        gone.extend(slugs.iter().step_by(3).map(|s| keys.film(s)));
    }
    if !gone.is_empty() {
        redis::cmd("UNLINK").arg(&gone).query_async::<()>(redis).await?;
    }
    Ok(gone.len())
}

/// `n` requests for one page, sent at once over connections opened beforehand.
struct Stampede {
    queries: f64,
    coalesced: f64,
    ok: usize,
    took: Duration,
}

async fn stampede(server: &Server, path: &str, n: usize) -> Result<Stampede> {
    client::settle(server.addr).await?;
    let before = Counters::read(server.addr).await?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(server.addr).await?);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for mut conn in conns {
        let (barrier, path) = (barrier.clone(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            conn.write("GET", &path, &[], &[]).await?;
            anyhow::Ok(conn.read().await?.status)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await?? == 200);
    }
    let took = start.elapsed();
    client::settle(server.addr).await?;
    let d = Counters::read(server.addr).await?.since(before);
    Ok(Stampede { queries: d.queries, coalesced: d.coalesced, ok, took })
}

/// wrk ends by closing connections with requests in flight. A database read that every waiting
/// request abandoned is left unpolled in its flight, holding its pool slot, until someone asks for
/// the same key again (see the abandoned-requests row): request every path of the run again, until
/// all answer 200, so the next run starts clean. Returns the requests that were not answered 200.
async fn unstick(server: &Server, paths: &[String], headers: &[(&str, &str)]) -> Result<usize> {
    let mut failed = 0;
    for _ in 0..10 {
        let s = client::sweep(server.addr, paths, headers, 64).await?;
        if s.failed == 0 {
            return Ok(failed);
        }
        failed += s.failed;
    }
    bail!("{}: requests still failing after the load stopped", server.name)
}

/// Three times, 64 clients send requests for 64 different pages and hang up at once; then one
/// request for another page is timed.
async fn abandoned(server: &Server, pages: u32) -> Result<(u16, Duration)> {
    client::settle(server.addr).await?;
    for burst in 0..3 {
        let mut conns = Vec::new();
        for i in 0..64 {
            let n = 1 + (burst * 64 + i) % (pages - 1);
            let mut c = Conn::open(server.addr).await?;
            c.write("GET", &format!("/movies?page={n}"), &[], &[]).await?;
            conns.push(c);
        }
        drop(conns);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    let r = client::get(server.addr, &format!("/movies?page={pages}")).await?;
    Ok((r.status, start.elapsed()))
}

/// `perf record` (cpu-clock, user and kernel, no call graphs) of `server` during a wrk run of
/// `script`; the top of `perf report` by self time.
async fn perf(server: &Server, script: &Path, secs: u32, tmp: &Path) -> Result<String> {
    let data = tmp.join("perf.data");
    let mut rec = Command::new("perf");
    rec.args(["record", "-e", "cpu-clock", "-F", "999", "-o"])
        .arg(&data)
        .args(["-p", &server.pid.to_string(), "--", "sleep", &secs.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let recording = tokio::task::spawn_blocking(move || rec.status());
    let w = wrk::run(server.addr, script, secs + 1, CONNS).await?;
    recording.await?.context("perf record (is perf installed?)")?;
    let out = Command::new("perf")
        .args(["report", "--no-children", "--sort", "dso,symbol", "--stdio", "-g", "none", "-i"])
        .arg(&data)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let top: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(25)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(140).collect())
        .collect();
    Ok(format!(
        "\nprofile of the cache-on server, warm listing ({} r/s under perf), self time:\n```text\n{}\n```\n",
        thousands(w.rps),
        top.join("\n")
    ))
}

/// A sweep, with the Redis calls the server gave up on meanwhile (its deferred writes included).
async fn counted(server: &Server, sweep: impl Future<Output = Result<Sweep>>) -> Result<Sweep> {
    client::settle(server.addr).await?;
    let before = Counters::read(server.addr).await?;
    let mut s = sweep.await?;
    client::settle(server.addr).await?;
    s.redis_errors = Counters::read(server.addr).await?.since(before).redis_errors as u64;
    Ok(s)
}

/// Deferred writes done, and past the cache's back-off (500 ms after a Redis timeout), so that a
/// timed write meets a cache that is being asked.
async fn quiet(addr: SocketAddr) -> Result<()> {
    client::settle(addr).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    Ok(())
}

fn unswept_note(n: usize) -> String {
    if n == 0 { String::new() } else { format!("; {n} PUT(s) returned before the sweep (Redis timed out)") }
}

/// A PUT on a fresh connection (the server closes idle ones after 10 s); only the request is timed.
async fn put_date(addr: SocketAddr, slug: &str, date: &str) -> Result<Duration> {
    let mut conn = Conn::open(addr).await?;
    let body = format!(r#"{{"release_date":"{date}"}}"#);
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let start = Instant::now();
    let r = conn.send("PUT", &format!("/api/movies/{slug}"), &headers, body.as_bytes()).await?;
    let took = start.elapsed();
    if r.status != 200 {
        bail!("PUT {slug}: status {}: {}", r.status, r.text());
    }
    Ok(took)
}

/// A GET on a fresh connection; only the request is timed.
async fn timed_get(addr: SocketAddr, path: &str) -> Result<f64> {
    let mut conn = Conn::open(addr).await?;
    let start = Instant::now();
    let r = conn.get(path).await?;
    if r.status != 200 {
        bail!("{path}: status {}", r.status);
    }
    Ok(secs_ms(start.elapsed()))
}

async fn release_date(addr: SocketAddr, slug: &str) -> Result<String> {
    let r = client::get(addr, &format!("/api/movies/{slug}")).await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    v.get("release_date").and_then(|d| d.as_str()).map(str::to_owned).ok_or_else(|| anyhow!("no release_date"))
}

async fn scard(redis: &mut lab::Conn, key: &str) -> Result<u64> {
    Ok(redis::cmd("SCARD").arg(key).query_async(redis).await?)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    client::percentile(&v, 50.0)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn secs_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A server with the cache on, its own Redis prefix and static folder, on `db`.
async fn cached_server(
    j: &Janitor,
    tmp: &Path,
    short: &str,
    db: &servers::Database,
    load_dataset: bool,
) -> Result<(String, Keys, PathBuf, Server)> {
    let prefix = j.prefix(short);
    let keys = Keys::new(&prefix);
    let static_dir = tmp.join(format!("static-{short}"));
    std::fs::create_dir_all(&static_dir)?;
    let spec =
        Spec { name: &format!("{short}-cache-on"), db, prefix: Some(&prefix), static_dir: &static_dir, load_dataset };
    let server = Server::start(spec, tmp).await?;
    Ok((prefix, keys, static_dir, server))
}

async fn backend_phase(
    o: &Opts,
    j: &Janitor,
    tmp: &Path,
    backend: Backend,
    rows: &mut Vec<Row>,
    profile: &mut String,
) -> Result<()> {
    let short = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "pg",
    };
    let scope = format!("{} · 3k", backend.name());
    let scope = scope.as_str();
    let db = j.database(backend, tmp, short).await?;
    let (prefix, keys, static_dir, on) = cached_server(j, tmp, short, &db, true).await?;
    let off = Server::start(
        Spec {
            name: &format!("{short}-cache-off"),
            db: &db,
            prefix: None,
            static_dir: &static_dir,
            load_dataset: false,
        },
        tmp,
    )
    .await?;
    let mut redis = lab::connect().await?;

    let (total, slugs) = catalog(on.addr, 200).await?;
    let pages = u32::try_from(total.div_ceil(u64::from(PAGE_SIZE)))?;
    let listing = page_paths(1..=40);
    let all_pages = page_paths(1..=pages);
    let details: Vec<String> = slugs.iter().map(|s| format!("/movies/{s}")).collect();
    rows.push(
        Row::new(scope, "catalog").ours(format!("{} films, {pages} pages of {PAGE_SIZE}", thousands(total as f64))),
    );

    // warm both servers (cache, pools, the deep-page anchors)
    for (server, warm_all) in [(&on, true), (&off, false)] {
        let list = if warm_all { &all_pages } else { &listing };
        client::sweep(server.addr, list, &[], 64).await?;
        client::sweep(server.addr, list, HX, 64).await?;
        client::sweep(server.addr, &details, &[], 64).await?;
        client::settle(server.addr).await?;
    }
    let warm40 = client::sweep(on.addr, &listing, &[], 64).await?;
    let page_bytes = warm40.bytes / listing.len();
    let mut filler = String::from("<!doctype html>\n");
    while filler.len() < page_bytes {
        filler.push_str("<p class=\"filler\">marquee static ceiling</p>\n");
    }
    filler.truncate(page_bytes);
    std::fs::write(static_dir.join("ceiling.html"), &filler)?;
    let check = client::get(on.addr, "/static/ceiling.html").await?;
    if check.status != 200 || check.body.len() != page_bytes {
        bail!("the static file is not served ({} {} bytes)", check.status, check.body.len());
    }

    // steady state, wrk, the variants alternating round by round
    let dir = tmp.join(format!("lua-{short}"));
    std::fs::create_dir_all(&dir)?;
    let s_listing = wrk::script(&dir, "listing", &listing, &[])?;
    let s_fragment = wrk::script(&dir, "fragment", &listing, HX)?;
    let s_detail = wrk::script(&dir, "detail", &details, &[])?;
    let s_static = wrk::script(&dir, "static", &["/static/ceiling.html".to_owned()], &[])?;
    let statics = vec!["/static/ceiling.html".to_owned()];
    let variants: [Variant; 7] = [
        (&on, &s_listing, &listing, &[]),
        (&off, &s_listing, &listing, &[]),
        (&on, &s_static, &statics, &[]),
        (&on, &s_fragment, &listing, HX),
        (&off, &s_fragment, &listing, HX),
        (&on, &s_detail, &details, &[]),
        (&off, &s_detail, &details, &[]),
    ];
    let mut runs: Vec<Vec<wrk::Wrk>> = vec![Vec::new(); variants.len()];
    let mut stranded = 0;
    for round in 0..o.rounds {
        eprintln!("  wrk round {}/{}", round + 1, o.rounds);
        for (i, (server, script, paths, headers)) in variants.iter().enumerate() {
            let before = Counters::read(server.addr).await?;
            let mut w = wrk::run(server.addr, script, o.secs, CONNS).await?;
            w.redis_errors = Counters::read(server.addr).await?.since(before).redis_errors as u64;
            runs[i].push(w);
            stranded += unstick(server, paths, headers).await?;
        }
    }
    if o.profile && profile.is_empty() {
        eprintln!("  profiling the warm listing (perf)");
        *profile = perf(&on, &s_listing, o.secs.max(5), tmp).await?;
        unstick(&on, &listing, &[]).await?;
    }
    let m: Vec<wrk::Wrk> = runs.iter().map(|r| wrk::median(r)).collect();
    let [l_on, l_off, stat, f_on, f_off, d_on, d_off] = [m[0], m[1], m[2], m[3], m[4], m[5], m[6]];
    let pg = backend == Backend::Postgres;
    rows.push(
        Row::new(scope, "warm listing (pages 1–40), cache on vs off")
            .ours(report::wrk(&l_on))
            .other(format!("off: {}", report::wrk(&l_off)))
            .ratio(l_on.rps / l_off.rps)
            .target(
                if pg { "≥ 2× cache off" } else { "(≥ 2× is PostgreSQL's)" },
                if pg { Verdict::of(l_on.rps >= 2.0 * l_off.rps) } else { Verdict::Info },
            ),
    );
    rows.push(
        Row::new(scope, format!("warm listing vs static file of {} bytes", thousands(page_bytes as f64)))
            .ours(report::wrk(&l_on))
            .other(format!("static: {}", report::wrk(&stat)))
            .ratio(l_on.rps / stat.rps)
            .target("≥ 0.5× static", Verdict::of(l_on.rps >= 0.5 * stat.rps)),
    );
    rows.push(
        Row::new(scope, "warm listing tail at 64 connections")
            .ours(format!("p99 {} / p50 {}", ms(l_on.p99_ms), ms(l_on.p50_ms)))
            .other(format!("cache off: p99/p50 {}", times(l_off.p99_ms / l_off.p50_ms)))
            .ratio(l_on.p99_ms / l_on.p50_ms)
            .target("p99 < 4× p50", Verdict::of(l_on.p99_ms < 4.0 * l_on.p50_ms)),
    );
    rows.push(
        Row::new(scope, "warm htmx fragment, cache on vs off")
            .ours(report::wrk(&f_on))
            .other(format!("off: {}", report::wrk(&f_off)))
            .ratio(f_on.rps / f_off.rps),
    );
    rows.push(
        Row::new(scope, "warm detail (200 films), cache on vs off")
            .ours(report::wrk(&d_on))
            .other(format!("off: {}", report::wrk(&d_off)))
            .ratio(d_on.rps / d_off.rps),
    );

    // cold and partial sweeps, same client for every variant
    eprintln!("  cold and partial-miss sweeps");
    let (mut cold, mut partial, mut warm, mut offs) =
        (Sweep::default(), Sweep::default(), Sweep::default(), Sweep::default());
    let mut removed = 0;
    for _ in 0..o.reps(5) {
        client::settle(on.addr).await?;
        lab::unlink_prefix(&mut redis, &prefix).await?;
        cold.add(counted(&on, client::sweep(on.addr, &all_pages, &[], 64)).await?);
        client::settle(on.addr).await?;
        offs.add(client::sweep(off.addr, &all_pages, &[], 64).await?);
        removed = remove_a_third(&mut redis, &keys, pages).await?;
        partial.add(counted(&on, client::sweep(on.addr, &all_pages, &[], 64)).await?);
        client::settle(on.addr).await?;
        warm.add(counted(&on, client::sweep(on.addr, &all_pages, &[], 64)).await?);
    }
    rows.push(
        Row::new(scope, format!("cold listing: each of the {pages} pages once, cache emptied, vs warm"))
            .ours(report::sweep(&cold))
            .other(format!("warm: {}", report::sweep(&warm)))
            .ratio(cold.rps() / warm.rps()),
    );
    rows.push(
        Row::new(scope, "cold listing vs cache off (same sweep)")
            .ours(report::sweep(&cold))
            .other(format!("off: {}", report::sweep(&offs)))
            .ratio(cold.rps() / offs.rps()),
    );
    rows.push(
        Row::new(scope, format!("partial miss: a third of the film keys gone ({removed} of {total}), vs warm"))
            .ours(report::sweep(&partial))
            .other(format!("warm: {}", report::sweep(&warm)))
            .ratio(partial.rps() / warm.rps()),
    );

    // per request: the server's counters, and Redis's
    eprintln!("  per-request counts");
    let rotating: Vec<String> = listing.iter().cycle().take(200).cloned().collect();
    client::sweep(on.addr, &all_pages, &[], 64).await?;
    client::sweep(on.addr, &listing, HX, 64).await?;
    client::sweep(on.addr, &details, &[], 64).await?;
    let p = per_request(&on, &mut redis, &prefix, &rotating, &[]).await?;
    rows.push(per_request_row(scope, "warm listing", &p, Some((2.0, 0.0))));
    let p = per_request(&on, &mut redis, &prefix, &rotating, HX).await?;
    rows.push(per_request_row(scope, "warm htmx fragment", &p, Some((2.0, 0.0))));
    let p = per_request(&on, &mut redis, &prefix, &details, &[]).await?;
    rows.push(per_request_row(scope, "warm detail", &p, Some((1.0, 0.0))));
    lab::unlink_prefix(&mut redis, &prefix).await?;
    let p = per_request(&on, &mut redis, &prefix, &all_pages, &[]).await?;
    rows.push(per_request_row(scope, "cold listing (incl. its deferred write-back)", &p, None));
    remove_a_third(&mut redis, &keys, pages).await?;
    let p = per_request(&on, &mut redis, &prefix, &all_pages, &[]).await?;
    rows.push(per_request_row(scope, "partial miss (8 of 24 films)", &p, None));
    let p = per_request(&off, &mut redis, &prefix, &rotating, &[]).await?;
    rows.push(per_request_row(scope, "cache off listing", &p, None));
    let p = per_request(&off, &mut redis, &prefix, &details, &[]).await?;
    rows.push(per_request_row(scope, "cache off detail", &p, None));

    // 200 simultaneous cold requests for one page
    eprintln!("  200 simultaneous cold requests");
    let mut worst = 0.0f64;
    let mut seen = Vec::new();
    for page in [7, 8, 9].iter().take(o.reps(3)) {
        lab::unlink_prefix(&mut redis, &prefix).await?;
        let s = stampede(&on, &format!("/movies?page={page}"), 200).await?;
        if s.ok != 200 {
            bail!("200 cold requests: only {} answered 200", s.ok);
        }
        worst = worst.max(s.queries);
        seen.push(format!("{:.0} ({:.0} waited, {})", s.queries, s.coalesced, ms(secs_ms(s.took))));
    }
    let s_off = stampede(&off, "/movies?page=7", 200).await?;
    rows.push(
        Row::new(scope, "200 simultaneous cold requests for one page: database queries")
            .ours(format!("{worst:.0} (tries: {})", seen.join("; ")))
            .other(format!("cache off: {:.0} ({:.0} waited)", s_off.queries, s_off.coalesced))
            .target("1 query", Verdict::of(worst <= 1.0)),
    );

    // invalidation: a PUT that changes release_date sweeps the page keys
    eprintln!("  invalidation");
    let slug = slugs.first().cloned().ok_or_else(|| anyhow!("no slug"))?;
    let original = release_date(on.addr, &slug).await?;
    let (mut puts, mut cached, mut unswept) = (Vec::new(), 0, 0);
    for rep in 0..o.reps(7) {
        client::sweep(on.addr, &all_pages, &[], 64).await?;
        quiet(on.addr).await?;
        cached = scard(&mut redis, &keys.pages()).await?;
        puts.push(secs_ms(put_date(on.addr, &slug, if rep % 2 == 0 { "2001-01-01" } else { "2001-01-02" }).await?));
        unswept += usize::from(scard(&mut redis, &keys.pages()).await? != 0);
    }
    let (mut set_t, mut scan_t) = (Vec::new(), Vec::new());
    let keyspace = lab::dbsize(&mut redis).await?;
    for _ in 0..o.reps(7) {
        client::sweep(on.addr, &all_pages, &[], 64).await?;
        client::settle(on.addr).await?;
        set_t.push(secs_ms(lab::sweep_set(&mut redis, &keys.pages()).await?.0));
        client::sweep(on.addr, &all_pages, &[], 64).await?;
        client::settle(on.addr).await?;
        scan_t.push(secs_ms(lab::sweep_scan(&mut redis, &format!("{prefix}movies:page:*")).await?.0));
        redis::cmd("DEL").arg(keys.pages()).query_async::<()>(&mut redis).await?;
    }
    put_date(on.addr, &slug, &original).await?;
    rows.push(
        Row::new(scope, format!("invalidation: PUT release_date, {cached} page keys + {total} films cached"))
            .ours(format!("{} median (max {}){}", ms(median(&puts)), ms(max(&puts)), unswept_note(unswept)))
            .other(format!(
                "sweep alone, from the bench: set {} vs plain SCAN {} ({} keys in Redis)",
                ms(median(&set_t)),
                ms(median(&scan_t)),
                thousands(keyspace as f64)
            ))
            .ratio_text(format!("plain/set {}", times(median(&scan_t) / median(&set_t))))
            .target("< 50 ms at 1M (see below)", Verdict::Info),
    );

    let errors = Counters::read(on.addr).await?.redis_errors;
    rows.push(
        Row::new(scope, "Redis calls that failed (50 ms timeout) on the cache-on server so far")
            .ours(format!("{errors:.0}"))
            .other("each one: a miss, then 500 ms without the cache"),
    );
    // memory
    let rss_on = on.peak_rss().unwrap_or(0) as f64;
    let rss_off = off.peak_rss().unwrap_or(0) as f64;
    rows.push(
        Row::new(scope, "server peak RSS (VmHWM) after all of the above")
            .ours(format!("cache on: {}", mib(rss_on)))
            .other(format!("cache off: {}", mib(rss_off)))
            .ratio(rss_on / rss_off),
    );
    // (re)fill the keys measured; a Redis timeout just before would have left some unwritten
    for _ in 0..5 {
        quiet(on.addr).await?;
        client::sweep(on.addr, &listing, &[], 64).await?;
        client::sweep(on.addr, &details, &[], 64).await?;
        client::settle(on.addr).await?;
        let present: u64 = redis::cmd("EXISTS").arg(keys.page(1)).arg(keys.page(40)).query_async(&mut redis).await?;
        if present == 2 {
            break;
        }
    }
    let film_keys: Vec<String> = slugs.iter().map(|s| keys.film(s)).collect();
    let page_keys: Vec<String> = (1..=40).map(|n| keys.page(n)).collect();
    let film_bytes = lab::memory_usage(&mut redis, &film_keys).await?;
    let page_key_bytes = lab::memory_usage(&mut redis, &page_keys).await?;
    rows.push(
        Row::new(scope, "Redis bytes per cached film (MEMORY USAGE, 200 film keys)")
            .ours(format!("{film_bytes:.0} B per film"))
            .other(format!("page key: {page_key_bytes:.0} B ({:.0} B per film listed)", page_key_bytes / 24.0)),
    );

    // last, as it may leave the servers unable to read: clients that hang up mid-request
    eprintln!("  abandoned requests");
    lab::unlink_prefix(&mut redis, &prefix).await?;
    let (on_status, on_took) = abandoned(&on, pages).await?;
    let (off_status, off_took) = abandoned(&off, pages).await?;
    let fine = |status: u16, took: Duration| status == 200 && took < Duration::from_secs(1);
    rows.push(
        Row::new(scope, "3 × 64 clients hang up mid-request (cold pages), then one request for another page")
            .ours(format!("cache on, cold: {on_status} in {}", ms(secs_ms(on_took))))
            .other(format!(
                "cache off: {off_status} in {} · after the wrk runs: {stranded} requests met a stranded read",
                ms(secs_ms(off_took))
            ))
            .target("200, unaffected", Verdict::of(fine(on_status, on_took) && fine(off_status, off_took))),
    );
    drop(on);
    drop(off);
    lab::unlink_prefix(&mut redis, &prefix).await?;
    Ok(())
}

async fn million_phase(o: &Opts, j: &Janitor, tmp: &Path, backend: Backend, rows: &mut Vec<Row>) -> Result<()> {
    let short = match backend {
        Backend::Sqlite => "sqlite1m",
        Backend::Postgres => "pg1m",
    };
    let big = o.big;
    let scope =
        if big == 1_000_000 { format!("{} · 1M", backend.name()) } else { format!("{} · {big}", backend.name()) };
    let scope = scope.as_str();
    let db = j.database(backend, tmp, short).await?;
    eprintln!("  seeding (marquee seed --count {big})");
    let seeded = servers::seed(&db, big).await?;
    rows.push(
        Row::new(scope, format!("seed {} films (marquee seed --count {big})", thousands(big as f64)))
            .ours(format!("{:.1} s", seeded.as_secs_f64()))
            .other(format!("{} films/s", thousands(big as f64 / seeded.as_secs_f64()))),
    );
    let (prefix, keys, _, on) = cached_server(j, tmp, short, &db, false).await?;
    let mut redis = lab::connect().await?;
    let (total, slugs) = catalog(on.addr, 24).await?;
    let last = u32::try_from(total.div_ceil(u64::from(PAGE_SIZE)))?;
    let deep = 40_000.min(last);
    let deep_path = format!("/movies?page={deep}");
    eprintln!("  page 1 vs page {deep}");
    let first_deep = timed_get(on.addr, &deep_path).await?;
    let (mut p1, mut pd) = (Vec::new(), Vec::new());
    for _ in 0..o.reps(7) {
        for (n, out) in [(1, &mut p1), (deep, &mut pd)] {
            client::settle(on.addr).await?;
            redis::cmd("UNLINK").arg(keys.page(n)).query_async::<()>(&mut redis).await?;
            out.push(timed_get(on.addr, &format!("/movies?page={n}")).await?);
        }
    }
    rows.push(
        Row::new(scope, format!("cold page {deep} vs cold page 1 (page key removed, alternating)"))
            .ours(format!("page {deep}: {}", ms(median(&pd))))
            .other(format!("page 1: {} · first deep page, building the anchors: {}", ms(median(&p1)), ms(first_deep)))
            .ratio(median(&pd) / median(&p1)),
    );

    eprintln!("  filling Redis with {big} film keys");
    client::settle(on.addr).await?;
    let mem0 = lab::used_memory(&mut redis).await?;
    let (fill, n) = lab::fill_films(&mut redis, &prefix, marquee::dataset::synthetic(1, big)).await?;
    let mem1 = lab::used_memory(&mut redis).await?;
    let sample: Vec<String> =
        marquee::dataset::synthetic(1, big).step_by((big / 200).max(1) as usize).map(|m| keys.film(&m.slug)).collect();
    let sampled = lab::memory_usage(&mut redis, &sample).await?;
    rows.push(
        Row::new(scope, format!("Redis with {} film keys", thousands(n as f64)))
            .ours(format!("{:.0} B per film (used_memory delta)", (mem1 - mem0) / n as f64))
            .other(format!("MEMORY USAGE of {}: {sampled:.0} B · filled in {:.1} s", sample.len(), fill.as_secs_f64())),
    );

    eprintln!("  invalidation with {big} films cached");
    let slug = slugs.first().cloned().ok_or_else(|| anyhow!("no slug"))?;
    let original = release_date(on.addr, &slug).await?;
    let visited = page_paths(1..=40);
    for (label, all) in [("pages 1–40 cached", false), ("every page cached", true)] {
        let (mut puts, mut cached, mut unswept) = (Vec::new(), 0, 0);
        for rep in 0..o.reps(if all { 3 } else { 5 }) {
            if all {
                lab::fill_pages(&mut redis, &keys, last, &slugs).await?;
            } else {
                client::sweep(on.addr, &visited, &[], 64).await?;
            }
            quiet(on.addr).await?;
            cached = scard(&mut redis, &keys.pages()).await?;
            puts.push(secs_ms(put_date(on.addr, &slug, if rep % 2 == 0 { "2001-01-01" } else { "2001-01-02" }).await?));
            unswept += usize::from(scard(&mut redis, &keys.pages()).await? != 0);
        }
        let (mut set_t, mut scan_t) = (Vec::new(), Vec::new());
        for _ in 0..o.reps(if all { 2 } else { 3 }) {
            for plain in [false, true] {
                if all {
                    lab::fill_pages(&mut redis, &keys, last, &slugs).await?;
                } else {
                    client::sweep(on.addr, &visited, &[], 64).await?;
                }
                client::settle(on.addr).await?;
                if plain {
                    scan_t.push(secs_ms(lab::sweep_scan(&mut redis, &format!("{prefix}movies:page:*")).await?.0));
                    redis::cmd("DEL").arg(keys.pages()).query_async::<()>(&mut redis).await?;
                } else {
                    set_t.push(secs_ms(lab::sweep_set(&mut redis, &keys.pages()).await?.0));
                }
            }
        }
        let keyspace = lab::dbsize(&mut redis).await?;
        rows.push(
            Row::new(
                scope,
                format!("invalidation: PUT release_date, {label} ({} page keys)", thousands(cached as f64)),
            )
            .ours(format!("{} median (max {}){}", ms(median(&puts)), ms(max(&puts)), unswept_note(unswept)))
            .other(format!(
                "sweep alone, from the bench: set {} vs plain SCAN {} ({} keys in Redis)",
                ms(median(&set_t)),
                ms(median(&scan_t)),
                thousands(keyspace as f64)
            ))
            .ratio_text(format!("plain/set {}", times(median(&scan_t) / median(&set_t))))
            .target("< 50 ms", Verdict::of(median(&puts) < 50.0 && unswept == 0)),
        );
    }
    // the order changed: the next deep page rebuilds the anchors
    client::settle(on.addr).await?;
    let after_write = timed_get(on.addr, &deep_path).await?;
    client::settle(on.addr).await?;
    let again = timed_get(on.addr, &format!("/movies?page={}", deep - 1)).await?;
    rows.push(
        Row::new(scope, format!("first cold deep page after a date change (page {deep})"))
            .ours(ms(after_write))
            .other(format!("next cold deep page: {}", ms(again)))
            .ratio(after_write / again),
    );
    put_date(on.addr, &slug, &original).await?;
    rows.push(Row::new(scope, "server peak RSS (VmHWM)").ours(mib(on.peak_rss().unwrap_or(0) as f64)));
    drop(on);
    lab::unlink_prefix(&mut redis, &prefix).await?;
    Ok(())
}
