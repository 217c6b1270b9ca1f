//! The embedded 3,200 films on one backend: the parts in the order they run, and the rows
//! about the servers themselves (Redis errors, memory).

use std::path::Path;

use anyhow::Result;

use crate::client::{self, Counters};
use crate::common::PAGE_SIZE;
use crate::fixture::Fixture;
use crate::lab;
use crate::opts::Opts;
use crate::report::{Row, mib, thousands};
use crate::servers::{Backend, Janitor};
use crate::writes::quiet;
use crate::{search, steady, sweeps, writes};

/// The embedded films on one backend: every part, then the servers stopped and their keys removed.
pub async fn phase(
    o: &Opts,
    j: &Janitor,
    tmp: &Path,
    backend: Backend,
    rows: &mut Vec<Row>,
    profile: &mut String,
) -> Result<()> {
    let f = Fixture::start(j, tmp, backend).await?;
    let mut redis = lab::connect().await?;
    let Fixture { keys, on, off, total, pages, slugs, listing, details, .. } = &f;
    let (total, pages, scope) = (*total, *pages, f.scope.as_str());
    rows.push(
        Row::new(scope, "catalog").ours(format!("{} films, {pages} pages of {PAGE_SIZE}", thousands(total as f64))),
    );
    f.warm().await?;

    let stranded = steady::rows(o, &f, tmp, rows, profile).await?;
    let films = marquee::dataset::parse(marquee::dataset::MOVIES_JSON)?.movies;
    let titles = search::Titles::new(films.into_iter().map(|m| (m.title, m.imdb_votes)));
    search::rows(scope, on.addr, &titles, &f.filtered, rows).await?;
    if o.steady_only {
        let mut redis = lab::connect().await?;
        drop(f.on);
        drop(f.off);
        lab::unlink_prefix(&mut redis, &f.prefix).await?;
        return Ok(());
    }
    sweeps::cold_and_partial(o, &f, &mut redis, rows).await?;
    sweeps::per_request_rows(&f, &mut redis, rows).await?;
    sweeps::stampede_rows(o, &f, &mut redis, rows).await?;
    writes::invalidation(o, &f, &mut redis, rows).await?;

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
        client::sweep(on.addr, listing, &[], 64).await?;
        client::sweep(on.addr, details, &[], 64).await?;
        client::settle(on.addr).await?;
        let present: u64 = redis::cmd("EXISTS").arg(keys.page(1)).arg(keys.page(40)).query_async(&mut redis).await?;
        if present == 2 {
            break;
        }
    }
    let movie_keys: Vec<String> = slugs.iter().map(|s| keys.movie(s)).collect();
    let page_keys: Vec<String> = (1..=40).map(|n| keys.page(n)).collect();
    let movie_bytes = lab::memory_usage(&mut redis, &movie_keys).await?;
    let page_key_bytes = lab::memory_usage(&mut redis, &page_keys).await?;
    rows.push(
        Row::new(scope, "Redis bytes per cached film (MEMORY USAGE, 200 film keys)")
            .ours(format!("{movie_bytes:.0} B per film"))
            .other(format!("page key: {page_key_bytes:.0} B ({:.0} B per film listed)", page_key_bytes / 24.0)),
    );

    // last, as it may leave the servers unable to read: clients that hang up mid-request
    sweeps::abandoned_row(&f, &mut redis, stranded, rows).await?;
    drop(f.on);
    drop(f.off);
    lab::unlink_prefix(&mut redis, &f.prefix).await?;
    Ok(())
}
