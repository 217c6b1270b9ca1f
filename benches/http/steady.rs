//! The steady state, driven by wrk: warm listing, htmx fragment and detail, each with the cache
//! and without, and the warm listing against a static file of its size (the ceiling). The
//! variants alternate round by round; the rows give the medians.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::client::{self, Counters};
use crate::common::{CONNS, HX};
use crate::fixture::Fixture;
use crate::opts::Opts;
use crate::report::{self, Row, Verdict, ms, thousands, times};
use crate::servers::{Backend, Server};
use crate::wrk;

/// One steady-state variant: the server, the wrk script, and its paths and headers (for `unstick`).
type Variant<'a> = (&'a Server, &'a PathBuf, &'a [String], &'a [(&'a str, &'a str)]);

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

/// The steady-state rows; `profile` gets the perf report if asked for (first backend only).
/// Returns the requests that met a stranded read after a wrk run (see `unstick`).
pub async fn rows(o: &Opts, f: &Fixture, tmp: &Path, rows: &mut Vec<Row>, profile: &mut String) -> Result<usize> {
    let Fixture { backend, short, on, off, static_dir, listing, details, .. } = f;
    let (backend, short, scope) = (*backend, *short, f.scope.as_str());
    // the ceiling: a static file of the warm listing page's size, served by the cache-on server
    let warm40 = client::sweep(on.addr, listing, &[], 64).await?;
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
    let s_listing = wrk::script(&dir, "listing", listing, &[])?;
    let s_fragment = wrk::script(&dir, "fragment", listing, HX)?;
    let s_detail = wrk::script(&dir, "detail", details, &[])?;
    let s_static = wrk::script(&dir, "static", &["/static/ceiling.html".to_owned()], &[])?;
    let statics = vec!["/static/ceiling.html".to_owned()];
    let variants: [Variant; 7] = [
        (on, &s_listing, listing, &[]),
        (off, &s_listing, listing, &[]),
        (on, &s_static, &statics, &[]),
        (on, &s_fragment, listing, HX),
        (off, &s_fragment, listing, HX),
        (on, &s_detail, details, &[]),
        (off, &s_detail, details, &[]),
    ];
    let mut runs: Vec<Vec<wrk::Wrk>> = vec![Vec::new(); variants.len()];
    let mut stranded = 0;
    for round in 0..o.rounds {
        eprintln!("  wrk round {}/{}", round + 1, o.rounds);
        for (i, (server, script, paths, headers)) in variants.iter().enumerate() {
            let before = Counters::read(server.addr).await?;
            let mut w = wrk::run(server.addr, script, o.secs, CONNS).await?;
            w.redis_errors = client::count(Counters::read(server.addr).await?.since(before).redis_errors);
            runs[i].push(w);
            stranded += unstick(server, paths, headers).await?;
        }
    }
    if o.profile && profile.is_empty() {
        eprintln!("  profiling the warm listing (perf)");
        *profile = perf(on, &s_listing, o.secs.max(5), tmp).await?;
        unstick(on, listing, &[]).await?;
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
    Ok(stranded)
}
