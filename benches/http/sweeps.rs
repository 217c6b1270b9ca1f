//! What the bench's own client measures and wrk cannot: every listing page requested exactly once
//! (cold, partial miss), per-request counts (the server's counters and Redis's MONITOR), 200
//! simultaneous cold requests for one page, and clients that hang up mid-request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use marquee::cache::Keys;

use crate::client::{self, Conn, Counters, Sweep};
use crate::common::{HX, secs_ms};
use crate::fixture::Fixture;
use crate::lab;
use crate::opts::Opts;
use crate::report::{self, Row, Verdict, ms};
use crate::servers::Server;

/// A sweep, with the Redis calls the server gave up on meanwhile (its deferred writes included).
async fn counted(server: &Server, sweep: impl Future<Output = Result<Sweep>>) -> Result<Sweep> {
    client::settle(server.addr).await?;
    let before = Counters::read(server.addr).await?;
    let mut s = sweep.await?;
    client::settle(server.addr).await?;
    s.redis_errors = client::count(Counters::read(server.addr).await?.since(before).redis_errors);
    Ok(s)
}

/// Removes a third of each cached page's film keys (every third slug), leaving the page keys, and
/// the token, so that the pages kept in the server's memory are not used either.
async fn remove_a_third(redis: &mut lab::Conn, keys: &Keys, pages: u32) -> Result<usize> {
    let mut pipe = redis::pipe();
    for n in 1..=pages {
        pipe.cmd("GET").arg(keys.page(n));
    }
    let raw: Vec<Option<String>> = pipe.query_async(redis).await?;
    let mut gone = Vec::new();
    for page in raw.into_iter().flatten() {
        let Some(Ok(page)) = marquee::cache::decode_page(Some(page.as_bytes())) else {
            bail!("a page key that does not decode: {page}");
        };
        gone.extend(page.slugs.iter().step_by(3).map(|s| keys.movie(s)));
    }
    let films = gone.len();
    gone.push(keys.token());
    redis::cmd("UNLINK").arg(&gone).query_async::<()>(redis).await?;
    lab::kept_pages_forgotten().await;
    Ok(films)
}

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

/// Cold and partial-miss sweeps, and warm and cache-off sweeps beside them: the same client for
/// every variant.
pub async fn cold_and_partial(o: &Opts, f: &Fixture, redis: &mut lab::Conn, rows: &mut Vec<Row>) -> Result<()> {
    let Fixture { prefix, keys, on, off, total, pages, all_pages, .. } = f;
    let (pages, scope) = (*pages, f.scope.as_str());
    eprintln!("  cold and partial-miss sweeps");
    let (mut cold, mut partial, mut warm, mut offs) =
        (Sweep::default(), Sweep::default(), Sweep::default(), Sweep::default());
    let mut removed = 0;
    for _ in 0..o.reps(5) {
        client::settle(on.addr).await?;
        lab::unlink_prefix(redis, prefix).await?;
        cold.add(counted(on, client::sweep(on.addr, all_pages, &[], 64)).await?);
        client::settle(on.addr).await?;
        offs.add(client::sweep(off.addr, all_pages, &[], 64).await?);
        removed = remove_a_third(redis, keys, pages).await?;
        partial.add(counted(on, client::sweep(on.addr, all_pages, &[], 64)).await?);
        client::settle(on.addr).await?;
        warm.add(counted(on, client::sweep(on.addr, all_pages, &[], 64)).await?);
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
    Ok(())
}

/// Per-request counts, the server's counters and Redis's: warm, cold, partial, cache off.
pub async fn per_request_rows(f: &Fixture, redis: &mut lab::Conn, rows: &mut Vec<Row>) -> Result<()> {
    let Fixture { prefix, keys, on, off, pages, listing, all_pages, details, .. } = f;
    let (pages, scope) = (*pages, f.scope.as_str());
    eprintln!("  per-request counts");
    let rotating: Vec<String> = listing.iter().cycle().take(200).cloned().collect();
    // twice: the first pass fills Redis (the partial sweep left films out), the second is read
    // wholly from Redis and kept in the server's memory
    for _ in 0..2 {
        client::sweep(on.addr, all_pages, &[], 64).await?;
        client::sweep(on.addr, listing, HX, 64).await?;
        client::sweep(on.addr, details, &[], 64).await?;
        client::settle(on.addr).await?;
    }
    // warm, each page is kept in the server's memory and answered under its lease: no round trip.
    // The pages measured are asked for just before (all of the above is more than the default
    // RENDERED_CACHE_KB holds, so some of them may have been dropped since)
    for (what, paths, headers) in [
        ("warm listing (a kept page)", &rotating[..], &[][..]),
        ("warm htmx fragment (a kept page)", &rotating, HX),
        // 100 film pages: the 200 of the steady rows are about as much as the default budget
        ("warm detail (a kept page)", &details[..100.min(details.len())], &[][..]),
    ] {
        client::sweep(on.addr, paths, headers, 64).await?;
        client::settle(on.addr).await?;
        let p = per_request(on, redis, prefix, paths, headers).await?;
        rows.push(per_request_row(scope, what, &p, Some((0.0, 0.0))));
    }
    lab::unlink_prefix(redis, prefix).await?;
    let p = per_request(on, redis, prefix, all_pages, &[]).await?;
    rows.push(per_request_row(scope, "cold listing (incl. its deferred write-back)", &p, None));
    remove_a_third(redis, keys, pages).await?;
    let p = per_request(on, redis, prefix, all_pages, &[]).await?;
    rows.push(per_request_row(scope, "partial miss (8 of 24 films)", &p, None));
    let p = per_request(off, redis, prefix, &rotating, &[]).await?;
    rows.push(per_request_row(scope, "cache off listing", &p, None));
    let p = per_request(off, redis, prefix, details, &[]).await?;
    rows.push(per_request_row(scope, "cache off detail", &p, None));
    Ok(())
}

/// 200 simultaneous cold requests for one page: how many database queries they cost.
pub async fn stampede_rows(o: &Opts, f: &Fixture, redis: &mut lab::Conn, rows: &mut Vec<Row>) -> Result<()> {
    let Fixture { prefix, on, off, .. } = f;
    let scope = f.scope.as_str();
    eprintln!("  200 simultaneous cold requests");
    let mut worst = 0.0f64;
    let mut seen = Vec::new();
    for page in [7, 8, 9].iter().take(o.reps(3)) {
        lab::unlink_prefix(redis, prefix).await?;
        let s = stampede(on, &format!("/movies?page={page}"), 200).await?;
        if s.ok != 200 {
            bail!("200 cold requests: only {} answered 200", s.ok);
        }
        worst = worst.max(s.queries);
        seen.push(format!("{:.0} ({:.0} waited, {})", s.queries, s.coalesced, ms(secs_ms(s.took))));
    }
    let s_off = stampede(off, "/movies?page=7", 200).await?;
    rows.push(
        Row::new(scope, "200 simultaneous cold requests for one page: database queries")
            .ours(format!("{worst:.0} (tries: {})", seen.join("; ")))
            .other(format!("cache off: {:.0} ({:.0} waited)", s_off.queries, s_off.coalesced))
            .target("1 query", Verdict::of(worst <= 1.0)),
    );
    Ok(())
}

/// Clients that hang up mid-request, then one more request; `stranded` is what the wrk runs left.
pub async fn abandoned_row(f: &Fixture, redis: &mut lab::Conn, stranded: usize, rows: &mut Vec<Row>) -> Result<()> {
    let Fixture { prefix, on, off, pages, .. } = f;
    let (pages, scope) = (*pages, f.scope.as_str());
    eprintln!("  abandoned requests");
    lab::unlink_prefix(redis, prefix).await?;
    let (on_status, on_took) = abandoned(on, pages).await?;
    let (off_status, off_took) = abandoned(off, pages).await?;
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
    Ok(())
}
