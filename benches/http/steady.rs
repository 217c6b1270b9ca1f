//! The steady state, driven by wrk: warm listing, htmx fragment and detail, each with the cache
//! and without, and the warm listing against a static file of its size (the ceiling). The
//! variants alternate round by round; the rows give the medians.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::client::{self, Counters};
use crate::common::{CONNS, HX};
use crate::fixture::Fixture;
use crate::opts::Opts;
use crate::report::{self, Row, Verdict, ms, thousands, times};
use crate::servers::{Backend, Server};
use crate::{ceilings, wrk};

/// One steady-state variant: where wrk sends its script; the marquee server (for its counters and
/// `unstick`) unless it is a ceiling; the paths and headers the script requests.
struct Variant<'a> {
    addr: SocketAddr,
    server: Option<&'a Server>,
    script: &'a PathBuf,
    paths: &'a [String],
    headers: &'a [(&'a str, &'a str)],
}

impl<'a> Variant<'a> {
    fn marquee(
        server: &'a Server,
        script: &'a PathBuf,
        paths: &'a [String],
        headers: &'a [(&'a str, &'a str)],
    ) -> Self {
        Self { addr: server.addr, server: Some(server), script, paths, headers }
    }

    fn ceiling(c: &'a ceilings::Ceiling, script: &'a PathBuf, paths: &'a [String]) -> Self {
        Self { addr: c.addr, server: None, script, paths, headers: &[] }
    }
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
    let Fixture { backend, short, on, off, static_dir, listing, filtered, details, .. } = f;
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

    // the ceilings: the warm pages' very bytes, served by nginx and by a bare axum server
    let saved_listing = ceilings::save(on.addr, listing).await?;
    let saved_details = ceilings::save(on.addr, details).await?;
    let saved: Vec<ceilings::Saved> = saved_listing.into_iter().chain(saved_details).collect();
    let nginx = ceilings::nginx(&tmp.join(format!("nginx-{short}")), &saved).await?;
    let bare = ceilings::bare(&tmp.join(format!("bare-{short}")), &saved).await?;

    // steady state, wrk, the variants alternating round by round
    let dir = tmp.join(format!("lua-{short}"));
    std::fs::create_dir_all(&dir)?;
    let s_listing = wrk::script(&dir, "listing", listing, &[])?;
    let s_filtered = wrk::script(&dir, "filtered", filtered, &[])?;
    let s_fragment = wrk::script(&dir, "fragment", listing, HX)?;
    let s_detail = wrk::script(&dir, "detail", details, &[])?;
    let s_static = wrk::script(&dir, "static", &["/static/ceiling.html".to_owned()], &[])?;
    // a browser revalidating the warm listing it stored: each page's tag, answered 304 from memory
    let s_revalidate = wrk::revalidating(&dir, "revalidate", listing, &client::etags(on.addr, listing).await?)?;
    let statics = vec!["/static/ceiling.html".to_owned()];
    let marquee = Variant::marquee;
    let ceiling = Variant::ceiling;
    let variants = [
        marquee(on, &s_listing, listing, &[]),
        marquee(off, &s_listing, listing, &[]),
        marquee(on, &s_filtered, filtered, &[]),
        marquee(on, &s_static, &statics, &[]),
        marquee(on, &s_fragment, listing, HX),
        marquee(off, &s_fragment, listing, HX),
        marquee(on, &s_detail, details, &[]),
        marquee(off, &s_detail, details, &[]),
        ceiling(&nginx, &s_listing, listing),
        ceiling(&bare, &s_listing, listing),
        ceiling(&nginx, &s_detail, details),
        ceiling(&bare, &s_detail, details),
        marquee(on, &s_revalidate, listing, &[]),
    ];
    let mut runs: Vec<Vec<wrk::Wrk>> = vec![Vec::new(); variants.len()];
    let mut stranded = 0;
    for round in 0..o.rounds {
        eprintln!("  wrk round {}/{}", round + 1, o.rounds);
        for (i, v) in variants.iter().enumerate() {
            let before = match v.server {
                Some(server) => Some(Counters::read(server.addr).await?),
                None => None,
            };
            let mut w = wrk::run(v.addr, v.script, o.secs, CONNS).await?;
            if let (Some(server), Some(before)) = (v.server, before) {
                w.redis_errors = client::count(Counters::read(server.addr).await?.since(before).redis_errors);
                stranded += unstick(server, v.paths, v.headers).await?;
            }
            runs[i].push(w);
        }
    }
    drop((nginx, bare));
    if o.profile && profile.is_empty() {
        eprintln!("  profiling the warm listing (perf)");
        *profile = perf(on, &s_listing, o.secs.max(5), tmp).await?;
        unstick(on, listing, &[]).await?;
    }
    let m: Vec<wrk::Wrk> = runs.iter().map(|r| wrk::median(r)).collect();
    let [l_on, l_off, filt, stat, f_on, f_off, d_on, d_off] = [m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]];
    let [l_nginx, l_bare, d_nginx, d_bare, revalidated] = [m[8], m[9], m[10], m[11], m[12]];
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
        Row::new(scope, "warm listing revalidated (If-None-Match: its tag): 304 from memory vs 200")
            .ours(report::wrk(&revalidated))
            .other(format!("200: {}", report::wrk(&l_on)))
            .ratio(revalidated.rps / l_on.rps),
    );
    rows.push(
        Row::new(scope, "warm filtered and sorted lists (4 lists × pages 1–10) vs warm listing")
            .ours(report::wrk(&filt))
            .other(format!("listing: {}", report::wrk(&l_on)))
            .ratio(filt.rps / l_on.rps)
            .target("≥ 0.9× listing", Verdict::of(filt.rps >= 0.9 * l_on.rps)),
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
            .target("p99 ≤ 2× p50", Verdict::of(l_on.p99_ms <= 2.0 * l_on.p50_ms)),
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
    // (what, marquee, the ceiling's name, the ceiling, the ratio the target asks for)
    let nginx = "nginx serving its bytes";
    let bare = "a bare axum server of its bytes";
    let ceilings = [
        ("listing", l_on, "nginx", nginx, l_nginx, Some(0.5)),
        ("listing", l_on, "bare axum", bare, l_bare, Some(0.8)),
        ("detail", d_on, "nginx", nginx, d_nginx, Some(0.6)),
        ("detail", d_on, "bare axum", bare, d_bare, None),
    ];
    for (page, ours, name, server, ceiling, at_least) in ceilings {
        let row = Row::new(scope, format!("ceiling: warm {page} vs {server}"))
            .ours(report::wrk(&ours))
            .other(format!("{name}: {}", report::wrk(&ceiling)))
            .ratio(ours.rps / ceiling.rps);
        rows.push(match at_least {
            Some(r) => row.target(format!("≥ {r}× {name}"), Verdict::of(ours.rps >= r * ceiling.rps)),
            None => row,
        });
    }
    Ok(stranded)
}
