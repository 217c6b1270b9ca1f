//! The big part (`--million`): `marquee seed --count N` films on one backend, then a deep page
//! against the first, Redis filled with every film, and invalidation with every film cached.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use marquee::cache::Keys;

use crate::client::{self, Conn};
use crate::cluster;
use crate::common::{PAGE_SIZE, cached_server, catalog, max, median, page_paths, secs_ms};
use crate::lab;
use crate::opts::Opts;
use crate::report::{Row, Verdict, mib, ms, thousands};
use crate::search;
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
    let (prefix, keys, static_dir, on) = cached_server(j, tmp, short, &db, false).await?;
    // the same PUTs with no cache: the database's own part of a write's time
    let off = servers::Server::start(
        servers::Spec {
            name: &format!("{short}-cache-off"),
            db: &db,
            prefix: None,
            redis: lab::REDIS,
            static_dir: &static_dir,
            load_dataset: false,
            env: &[],
        },
        tmp,
    )
    .await?;
    let mut redis = lab::connect().await?;
    let (total, slugs) = catalog(on.addr, 24).await?;
    eprintln!("  search");
    let lists = crate::fixture::FILTERED.map(|list| format!("/movies?{list}"));
    client::sweep(on.addr, &lists, &[], 4).await?;
    client::settle(on.addr).await?;
    let titles = search::Titles::new(marquee::dataset::synthetic(1, big).map(|m| (m.title, m.imdb_votes)));
    search::rows(scope, on.addr, &titles, &lists, rows).await?;
    if o.search_only {
        drop(on);
        lab::unlink_prefix(&mut redis, &prefix).await?;
        return Ok(());
    }
    let last = u32::try_from(total.div_ceil(u64::from(PAGE_SIZE)))?;
    let deep = 40_000.min(last);
    let deep_path = format!("/movies?page={deep}");
    eprintln!("  page 1 vs page {deep}");
    let first_deep = timed_get(on.addr, &deep_path).await?;
    let (mut p1, mut pd) = (Vec::new(), Vec::new());
    for _ in 0..o.reps(7) {
        for (n, out) in [(1, &mut p1), (deep, &mut pd)] {
            client::settle(on.addr).await?;
            // with the token: the page kept in the server's memory is not used either
            redis::cmd("UNLINK").arg(keys.page(n)).arg(keys.token()).query_async::<()>(&mut redis).await?;
            lab::kept_pages_forgotten().await;
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
    // every PUT moves the film to a date it does not have yet, so every one changes the order
    let mut puts_made = 0u32;
    let mut next_date = move || {
        puts_made += 1;
        format!("2001-{:02}-{:02}", 1 + puts_made / 28, 1 + puts_made % 28)
    };
    for (label, all) in [("pages 1–40 cached", false), ("every page cached", true)] {
        let (mut puts, mut cached, mut swept, mut bare) = (Vec::new(), 0, Vec::new(), Vec::new());
        for _ in 0..o.reps(if all { 3 } else { 5 }) {
            if all {
                lab::fill_pages(&mut redis, &keys, last, &slugs).await?;
            } else {
                client::sweep(on.addr, &visited, &[], 64).await?;
            }
            quiet(on.addr).await?;
            cached = scard(&mut redis, &keys.pages()).await?;
            // right before the timed PUT, so that both meet the database in the same state (the
            // cold pages just read may have rebuilt the deep-page anchors: a scan of every film)
            bare.push(secs_ms(put_date(off.addr, &slug, &next_date()).await?));
            let began = Instant::now();
            puts.push(secs_ms(put_date(on.addr, &slug, &next_date()).await?));
            swept.push(secs_ms(cluster::until_swept(&mut redis, &keys.pages(), began).await?));
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
        let cost = median(&puts) - median(&bare);
        let pass = Verdict::of(cost < 5.0);
        let sweeps = Sweeps { puts, set: set_t, scan: scan_t, keyspace, swept };
        rows.push(
            sweeps
                .row(scope, what)
                .ratio_text(format!(
                    "the cache's part: {} (the same PUT without cache: {})",
                    ms(cost),
                    ms(median(&bare))
                ))
                .target("cache's part < 5 ms", pass),
        );
    }

    // the same order change with every page cached on a Redis Cluster: a server of its own on
    // this database, its pages on the cluster's three masters
    eprintln!("  invalidation with every page cached on a Redis Cluster");
    let url = cluster::start()?;
    let cluster_prefix = j.prefix(&format!("{short}cl"));
    let cluster_keys = Keys::new(&cluster_prefix);
    let static_dir = tmp.join(format!("static-{short}-cluster"));
    std::fs::create_dir_all(&static_dir)?;
    let spec = servers::Spec {
        name: &format!("{short}-cluster"),
        db: &db,
        prefix: Some(&cluster_prefix),
        redis: &url,
        static_dir: &static_dir,
        load_dataset: false,
        env: &[],
    };
    let on_cluster = servers::Server::start(spec, tmp).await?;
    let mut cc = cluster::connect(&url).await?;
    let (mut puts, mut swept, mut cached, mut bare) = (Vec::new(), Vec::new(), 0, Vec::new());
    for _ in 0..o.reps(3) {
        bare.push(secs_ms(put_date(off.addr, &slug, &next_date()).await?));
        cluster::fill_pages(&mut cc, &cluster_keys, last, &slugs).await?;
        quiet(on_cluster.addr).await?;
        cached = redis::cmd("SCARD").arg(cluster_keys.pages()).query_async(&mut cc).await?;
        let began = Instant::now();
        puts.push(secs_ms(put_date(on_cluster.addr, &slug, &next_date()).await?));
        swept.push(secs_ms(cluster::until_swept(&mut cc, &cluster_keys.pages(), began).await?));
    }
    rows.push(
        Row::new(
            scope,
            format!(
                "invalidation on a 3-master cluster: PUT release_date, every page cached ({} page keys)",
                thousands(cached as f64)
            ),
        )
        .ours(format!("{} median (max {})", ms(median(&puts)), ms(max(&puts))))
        .other(format!("the deferred sweep done {} after the PUT began", ms(median(&swept))))
        .ratio_text(format!(
            "the cache's part: {} (the same PUT without cache: {})",
            ms(median(&puts) - median(&bare)),
            ms(median(&bare))
        ))
        .target("cache's part < 5 ms", Verdict::of(median(&puts) - median(&bare) < 5.0)),
    );
    drop(on_cluster);
    drop(off);
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
