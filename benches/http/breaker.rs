//! The breaker under overload, with Redis healthy: warm listings offered at twice the rate the
//! server saturates at. Under that load some Redis calls pass the 50 ms timeout because the CPU is
//! busy, not because Redis is down. The breaker that opens on a sustained failure rate keeps the
//! warm pages in the cache; the old rule (open on any one failure, for 500 ms) sends every request
//! to the database each time one call is late. Both run against the same database and Redis, one
//! after the other, round by round.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::client::{self, Conn, Counters};
use crate::common::{CONNS, page_paths};
use crate::opts::Opts;
use crate::report::{Row, Verdict, thousands};
use crate::servers::{Backend, Janitor, Server, Spec};
use crate::{lab, wrk};

/// The rule before the rate breaker: any one failure leaves Redis alone for 500 ms.
const OLD_RULE: &[(&str, &str)] = &[("REDIS_BREAKER_MIN_FAILURES", "1"), ("REDIS_BREAKER_FAILURE_PCT", "0")];
/// Connections of the open-loop client (below MAX_IN_FLIGHT, 512: overload, not load shedding).
const OPEN_LOOP_CONNS: usize = 256;

/// What one overloaded run gave.
#[derive(Debug, Clone, Copy, Default)]
struct Overload {
    offered: f64,
    served: f64,
    ok: u64,
    other: u64,
    counters: Counters,
}

/// The runs of one variant added up.
fn total(runs: &[Overload]) -> Overload {
    let mut sum = Overload::default();
    for r in runs {
        sum.offered = r.offered;
        sum.ok += r.ok;
        sum.other += r.other;
        sum.counters.queries += r.counters.queries;
        sum.counters.redis_errors += r.counters.redis_errors;
    }
    sum.served = runs.iter().map(|r| r.served).sum::<f64>() / runs.len().max(1) as f64;
    sum
}

impl Overload {
    fn queries_per_thousand(&self) -> f64 {
        1000.0 * self.counters.queries / (self.ok.max(1) as f64)
    }

    fn text(&self) -> String {
        format!(
            "{:.1} per 1,000 ({:.0} queries, {} pages) · {} r/s served of {} offered · {:.0} Redis timeouts{}",
            self.queries_per_thousand(),
            self.counters.queries,
            thousands(self.ok as f64),
            thousands(self.served),
            thousands(self.offered),
            self.counters.redis_errors,
            if self.other > 0 { format!(" · {} not 200", self.other) } else { String::new() }
        )
    }
}

async fn start(
    tmp: &Path,
    j: &Janitor,
    db: &crate::servers::Database,
    name: &str,
    env: &[(&str, &str)],
) -> Result<Server> {
    let static_dir = tmp.join(format!("static-{name}"));
    std::fs::create_dir_all(&static_dir)?;
    let prefix = j.prefix(name);
    let spec =
        Spec { name, db, prefix: Some(&prefix), redis: lab::REDIS, static_dir: &static_dir, load_dataset: true, env };
    Server::start(spec, tmp).await
}

/// Requests `paths` in turn at `rate` a second for `secs`, whatever the answers' pace: each
/// connection takes the next due request as soon as it is free, and requests fall due on the
/// clock. Requests still due at the end are not sent.
async fn open_loop(addr: SocketAddr, paths: &[String], rate: f64, secs: u32) -> Result<(u64, u64, Duration)> {
    let paths = Arc::new(paths.to_vec());
    let issued = Arc::new(AtomicU64::new(0));
    let (ok, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs.into());
    let mut tasks = Vec::with_capacity(OPEN_LOOP_CONNS);
    for _ in 0..OPEN_LOOP_CONNS {
        let mut conn = Conn::open(addr).await?;
        let (paths, issued, ok, other) = (paths.clone(), issued.clone(), ok.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = issued.fetch_add(1, Relaxed);
                let due = start + Duration::from_secs_f64(n as f64 / rate);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let path = &paths[usize::try_from(n).unwrap_or(0) % paths.len()];
                match conn.get(path).await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Relaxed),
                    Ok(_) => other.fetch_add(1, Relaxed),
                    Err(_) => {
                        other.fetch_add(1, Relaxed);
                        let Ok(fresh) = Conn::open(addr).await else { break };
                        conn = fresh;
                        0
                    }
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok((ok.load(Relaxed), other.load(Relaxed), start.elapsed()))
}

pub async fn phase(o: &Opts, j: &Janitor, tmp: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let scope = "Breaker · PG · 3k";
    let db = j.database(Backend::Postgres, tmp, "brk").await?;
    let rate_rule = start(tmp, j, &db, "breaker-rate", &[]).await?;
    let old_rule = start(tmp, j, &db, "breaker-old", OLD_RULE).await?;
    let listing = page_paths(1..=40);
    for s in [&rate_rule, &old_rule] {
        client::sweep(s.addr, &listing, &[], 64).await?;
        client::settle(s.addr).await?;
    }
    let dir = tmp.join("lua-breaker");
    std::fs::create_dir_all(&dir)?;
    let script = wrk::script(&dir, "listing", &listing, &[])?;
    // the saturating rate: the most warm listings the server answers, closed loop
    let saturated = wrk::run(rate_rule.addr, &script, o.secs, CONNS).await?;
    let rate = 2.0 * saturated.rps;
    // MAX_IN_FLIGHT's default against it: how long the last of 512 requests in flight waits
    let queue_ms = 512.0 / saturated.rps * 1e3;
    rows.push(
        Row::new(scope, "MAX_IN_FLIGHT (512) against the saturating rate of warm listings")
            .ours(format!("512 in flight wait ≈ {queue_ms:.0} ms at {} r/s", thousands(saturated.rps)))
            .other(format!("saturation, 64 connections: {}", crate::report::wrk(&saturated)))
            .target("≈ 100 ms of queue at the bound", Verdict::Info),
    );
    eprintln!("  saturation {} r/s; offering {} r/s", thousands(saturated.rps), thousands(rate));
    let mut runs: [Vec<Overload>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        eprintln!("  breaker at 2× saturation, round {}/{}", round + 1, o.rounds);
        for (i, s) in [&rate_rule, &old_rule].into_iter().enumerate() {
            let before = Counters::read(s.addr).await?;
            let (ok, other, took) = open_loop(s.addr, &listing, rate, o.secs).await?;
            let counters = Counters::read(s.addr).await?.since(before);
            let served = ok as f64 / took.as_secs_f64();
            runs[i].push(Overload { offered: rate, served, ok, other, counters });
            client::settle(s.addr).await?;
        }
    }
    // sums over the rounds: a Redis timeout under overload is a matter of scheduling luck, so
    // one round may see none and the next hundreds
    let (new, old) = (total(&runs[0]), total(&runs[1]));
    rows.push(
        Row::new(scope, "warm listing offered at 2× saturation, Redis healthy: database queries per 1,000 pages")
            .ours(format!("rate breaker: {}", new.text()))
            .other(format!("old rule (any failure): {}", old.text()))
            .ratio_text(format!("{:.1} vs {:.1}", new.queries_per_thousand(), old.queries_per_thousand()))
            .target("< 5 per 1,000", Verdict::of(new.queries_per_thousand() < 5.0)),
    );
    let per_timeout = |o: &Overload| o.counters.queries / o.counters.redis_errors.max(1.0);
    rows.push(
        Row::new(scope, "the same: database queries per Redis timeout")
            .ours(format!("rate breaker: {:.1} ({:.0} timeouts)", per_timeout(&new), new.counters.redis_errors))
            .other(format!("old rule: {:.1} ({:.0} timeouts)", per_timeout(&old), old.counters.redis_errors))
            .target("≤ 1: a late call costs at most its own request", Verdict::Info),
    );
    Ok(())
}
