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
//! Options (after `--`): `--million`, `--profile` (perf record of one extra warm-listing run; with
//! `--only mix`, of the whole machine during one extra run of the Redis tier alone at 3,200 films
//! and, with `--million`, of each big mix, to benches/PROFILE-mix-*.md),
//! `--on sqlite|postgres` (a part on one database), `--quick` (short smoke run, RESULTS.md untouched), `--only sqlite|postgres|cluster|breaker`
//! (`cluster`: the single-Redis-against-cluster part alone, with `--million` its order change too;
//! `breaker`: warm listings at twice the saturating rate, the rate breaker against the old rule,
//! written to RESULTS-breaker.md; `search`: search at 1,000,000 films on both backends, and
//! whether caching it would pay, written to RESULTS-search.md; `cold`: every kind of page with
//! nothing cached at 1,000,000 films on both backends, the slowest of each kind against 50 ms,
//! written to RESULTS-cold.md, its seeded databases kept for the next run with
//! `MARQUEE_BENCH_KEEP=DIR`: SQLite's in DIR, PostgreSQL's as the database `bench_keep_cold_N`,
//! reused when they hold N films and only current migrations, else seeded again; `mix`: the traffic readers bring, as a browser sends it, on both
//! backends, with `--million` at a million films too, written to RESULTS-mix.md), `--secs N` (wrk
//! duration, default 5), `--rounds N` (default 3), `--films N` (size of the big part), `--no-write`.
//! Needs wrk (`apt-get install wrk`), PostgreSQL and Redis as the tests do, perf for `--profile`.

mod breaker;
mod ceilings;
mod client;
mod cluster;
mod cold;
mod common;
mod design;
mod embedded;
mod fixture;
mod heading;
mod kept;
mod lab;
mod latency;
mod million;
mod mix;
mod opts;
mod report;
mod search;
mod servers;
mod steady;
mod sweeps;
mod writes;
mod wrk;

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use heading::{NOTES, heading};
use opts::Opts;
use report::{Verdict, thousands};
use servers::Janitor;

fn main() -> ExitCode {
    // the bare ceiling server (see ceilings.rs): this binary, started again by the bench
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, dir, port] = args.as_slice()
        && flag == "--bare-server"
    {
        let served = port.parse().map_err(anyhow::Error::from).and_then(|p| ceilings::serve_bare(Path::new(dir), p));
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
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

async fn preflight(opts: &Opts) -> Result<()> {
    // the cold and writes parts time single requests with the bench's own client: no load
    // generator, no nginx
    if !opts.cold_only && !opts.writes_only {
        Command::new("wrk").arg("-v").output().context("wrk is not installed (apt-get install wrk)")?;
        Command::new("nginx").arg("-v").output().context("nginx is not installed (apt-get install nginx-light)")?;
    }
    let mut c = lab::connect().await?;
    redis::cmd("PING").query_async::<String>(&mut c).await.context("Redis at 127.0.0.1:6379")?;
    servers::admin_sql("select 1").await.context("PostgreSQL at postgres://postgres@127.0.0.1:5432/test")?;
    Ok(())
}

async fn run(opts: &Opts, janitor: &Janitor) -> Result<()> {
    preflight(opts).await?;
    let heading = heading(opts);
    let started = Instant::now();
    let tmp = std::env::temp_dir().join(format!("marquee-bench-{}-{}", std::process::id(), fastrand::u32(..)));
    std::fs::create_dir_all(&tmp)?;
    janitor.dir(&tmp);
    let mut rows = Vec::new();
    let mut profile = String::new();
    let part_only = opts.cluster_only
        || opts.breaker_only
        || opts.search_only
        || opts.cold_only
        || opts.writes_only
        || opts.mix_only;
    if !part_only {
        for backend in opts.backends() {
            eprintln!("[{:>5.0} s] {}: the embedded films", started.elapsed().as_secs_f64(), backend.name());
            embedded::phase(opts, janitor, &tmp, backend, &mut rows, &mut profile).await?;
        }
        if !opts.steady_only {
            eprintln!("[{:>5.0} s] Redis: the design's open questions", started.elapsed().as_secs_f64());
            design::rows(opts, janitor, &mut rows).await?;
        }
    }
    if opts.cold_only {
        for backend in opts.backends() {
            eprintln!(
                "[{:>5.0} s] {}: every page cold at {} films",
                started.elapsed().as_secs_f64(),
                backend.name(),
                thousands(opts.big as f64)
            );
            cold::phase(opts, janitor, &tmp, backend, &mut rows).await?;
        }
    }
    if opts.mix_only {
        mix::part(opts, janitor, &tmp, started, &mut rows).await?;
    }
    if opts.writes_only {
        eprintln!("[{:>5.0} s] PostgreSQL: a write's latency", started.elapsed().as_secs_f64());
        latency::phase(opts, janitor, &tmp, &mut rows).await?;
    }
    if opts.backends().contains(&servers::Backend::Postgres)
        && !opts.breaker_only
        && !opts.search_only
        && !opts.steady_only
        && !opts.cold_only
        && !opts.writes_only
        && !opts.mix_only
    {
        eprintln!("[{:>5.0} s] PostgreSQL: single Redis against a Redis Cluster", started.elapsed().as_secs_f64());
        cluster::phase(opts, janitor, &tmp, &mut rows).await?;
    }
    if opts.backends().contains(&servers::Backend::Postgres)
        && !opts.cluster_only
        && !opts.search_only
        && !opts.cold_only
        && !opts.writes_only
        && !opts.mix_only
    {
        eprintln!("[{:>5.0} s] PostgreSQL: the breaker at twice the saturating rate", started.elapsed().as_secs_f64());
        breaker::phase(opts, janitor, &tmp, &mut rows).await?;
    }
    if (opts.million || opts.search_only)
        && !opts.breaker_only
        && !opts.cold_only
        && !opts.writes_only
        && !opts.mix_only
    {
        for backend in opts.backends() {
            eprintln!(
                "[{:>5.0} s] {}: {} films",
                started.elapsed().as_secs_f64(),
                backend.name(),
                thousands(opts.big as f64)
            );
            million::phase(opts, janitor, &tmp, backend, &mut rows).await?;
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
        let command = match (opts.cluster_only, opts.breaker_only, opts.search_only, opts.million) {
            _ if opts.steady_only => "cargo bench --bench http -- --only steady",
            _ if opts.cold_only => "cargo bench --bench http -- --only cold",
            _ if opts.writes_only => "cargo bench --bench http -- --only writes",
            _ if opts.mix_only && opts.million => "cargo bench --bench http -- --only mix --million",
            _ if opts.mix_only => "cargo bench --bench http -- --only mix",
            (true, _, _, true) => "cargo bench --bench http -- --only cluster --million",
            (true, _, _, false) => "cargo bench --bench http -- --only cluster",
            (false, true, _, _) => "cargo bench --bench http -- --only breaker",
            (false, false, true, _) => "cargo bench --bench http -- --only search",
            (false, false, false, true) => "cargo bench --bench http -- --million",
            (false, false, false, false) => "cargo bench --bench http",
        };
        let md = format!(
            "# Benchmark results\n\nThe table of the last run of `{command}` (see benches/http/main.rs). \
             Re-run it to replace this file.\n\n```text\n{heading}\n```\n\n{table}\n{summary}\n\n{NOTES}\n{profile}"
        );
        let file = if opts.cold_only {
            "benches/RESULTS-cold.md"
        } else if opts.writes_only {
            "benches/RESULTS-writes.md"
        } else if opts.mix_only {
            "benches/RESULTS-mix.md"
        } else if opts.cluster_only {
            "benches/RESULTS-cluster.md"
        } else if opts.breaker_only {
            "benches/RESULTS-breaker.md"
        } else if opts.search_only {
            "benches/RESULTS-search.md"
        } else if opts.steady_only {
            "benches/RESULTS-steady.md"
        } else {
            "benches/RESULTS.md"
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        std::fs::write(&path, md).with_context(|| format!("write {}", path.display()))?;
        eprintln!("written to {}", path.display());
    }
    Ok(())
}
