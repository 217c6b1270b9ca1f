//! The big part (`--million`): `marquee seed --count N` films on one backend, then a deep page
//! against the first, Redis filled with every film, and invalidation with every film cached.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};

use crate::client::{self, Conn};
use crate::common::{PAGE_SIZE, cached_server, catalog, median, page_paths, secs_ms};
use crate::lab;
use crate::opts::Opts;
use crate::report::{Row, Verdict, mib, ms, thousands};
use crate::servers::{self, Backend, Janitor};
use crate::writes::{Sweeps, put_date, quiet, release_date, scard};

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

/// The big part on one backend: its own database, seeded, and a cache-on server on it.
pub async fn phase(o: &Opts, j: &Janitor, tmp: &Path, backend: Backend, rows: &mut Vec<Row>) -> Result<()> {
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
    let (fill, n) = lab::fill_movies(&mut redis, &prefix, marquee::dataset::synthetic(1, big)).await?;
    let mem1 = lab::used_memory(&mut redis).await?;
    let sample: Vec<String> =
        marquee::dataset::synthetic(1, big).step_by((big / 200).max(1) as usize).map(|m| keys.movie(&m.slug)).collect();
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
        let what = format!("invalidation: PUT release_date, {label} ({} page keys)", thousands(cached as f64));
        let pass = Verdict::of(median(&puts) < 50.0 && unswept == 0);
        let sweeps = Sweeps { puts, set: set_t, scan: scan_t, keyspace, unswept };
        rows.push(sweeps.row(scope, what).target("< 50 ms", pass));
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
