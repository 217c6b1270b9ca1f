//! Writes: a PUT that changes a film's release_date, timed end to end (the database write, the
//! film and stamp keys, the sweep of the page keys), and the two sweeps alone timed from the bench
//! (marquee's set of page keys against the plain design's SCAN). The million-film part reuses
//! the helpers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use crate::client::{self, Conn};
use crate::common::{max, median, secs_ms};
use crate::fixture::Fixture;
use crate::lab;
use crate::opts::Opts;
use crate::report::{Row, Verdict, ms, thousands, times};
use crate::servers::TOKEN;

/// Deferred writes done, and past the cache's back-off (500 ms after a Redis timeout), so that a
/// timed write meets a cache that is being asked.
pub async fn quiet(addr: SocketAddr) -> Result<()> {
    client::settle(addr).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    Ok(())
}

/// A PUT on a fresh connection (the server closes idle ones after 10 s); only the request is timed.
pub async fn put_date(addr: SocketAddr, slug: &str, date: &str) -> Result<Duration> {
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

pub async fn release_date(addr: SocketAddr, slug: &str) -> Result<String> {
    let r = client::get(addr, &format!("/api/movies/{slug}")).await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    v.get("release_date").and_then(|d| d.as_str()).map(str::to_owned).ok_or_else(|| anyhow!("no release_date"))
}

pub async fn scard(redis: &mut lab::Conn, key: &str) -> Result<u64> {
    Ok(redis::cmd("SCARD").arg(key).query_async(redis).await?)
}

/// The invalidation row of the embedded films: a PUT that changes release_date sweeps the page keys.
pub async fn invalidation(o: &Opts, f: &Fixture, redis: &mut lab::Conn, rows: &mut Vec<Row>) -> Result<()> {
    let Fixture { prefix, keys, on, total, slugs, all_pages, .. } = f;
    let scope = f.scope.as_str();
    eprintln!("  invalidation");
    let slug = slugs.first().cloned().ok_or_else(|| anyhow!("no slug"))?;
    let original = release_date(on.addr, &slug).await?;
    let (mut puts, mut cached, mut swept) = (Vec::new(), 0, Vec::new());
    for rep in 0..o.reps(7) {
        client::sweep(on.addr, all_pages, &[], 64).await?;
        quiet(on.addr).await?;
        cached = scard(redis, &keys.pages()).await?;
        let began = Instant::now();
        puts.push(secs_ms(put_date(on.addr, &slug, if rep % 2 == 0 { "2001-01-01" } else { "2001-01-02" }).await?));
        swept.push(secs_ms(crate::cluster::until_swept(redis, &keys.pages(), began).await?));
    }
    let (mut set_t, mut scan_t) = (Vec::new(), Vec::new());
    let keyspace = lab::dbsize(redis).await?;
    for _ in 0..o.reps(7) {
        client::sweep(on.addr, all_pages, &[], 64).await?;
        client::settle(on.addr).await?;
        set_t.push(secs_ms(lab::sweep_set(redis, &keys.pages()).await?.0));
        client::sweep(on.addr, all_pages, &[], 64).await?;
        client::settle(on.addr).await?;
        scan_t.push(secs_ms(lab::sweep_scan(redis, &format!("{prefix}movies:page:*")).await?.0));
        redis::cmd("DEL").arg(keys.pages()).query_async::<()>(redis).await?;
    }
    put_date(on.addr, &slug, &original).await?;
    let what = format!("invalidation: PUT release_date, {cached} page keys + {total} films cached");
    let sweeps = Sweeps { puts, set: set_t, scan: scan_t, keyspace, swept };
    rows.push(sweeps.row(scope, what).target("< 5 ms at 1M (see below)", Verdict::Info));
    Ok(())
}

/// An invalidation's timings: the writer's PUTs, and the two sweeps timed from the bench.
pub struct Sweeps {
    pub puts: Vec<f64>,
    pub set: Vec<f64>,
    pub scan: Vec<f64>,
    pub keyspace: u64,
    /// When the deferred sweep had emptied the set of page keys, from the PUT's start.
    pub swept: Vec<f64>,
}

impl Sweeps {
    /// The table's row for them (without its target).
    pub fn row(&self, scope: &str, what: String) -> Row {
        let (puts, set, scan) = (&self.puts, &self.set, &self.scan);
        Row::new(scope, what)
            .ours(format!("{} median (max {})", ms(median(puts)), ms(max(puts))))
            .other(format!(
                "deferred sweep done {} after the PUT began · sweep alone, from the bench: set {} vs plain SCAN {} ({} keys in Redis)",
                ms(median(&self.swept)),
                ms(median(set)),
                ms(median(scan)),
                thousands(self.keyspace as f64)
            ))
            .ratio_text(format!("plain/set {}", times(median(scan) / median(set))))
    }
}
