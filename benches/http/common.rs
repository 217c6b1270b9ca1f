//! What the parts of the bench share: the page size and wrk's connections, the catalog as the
//! server shows it, the cache-on server, and medians.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use marquee::cache::Keys;

use crate::client;
use crate::servers::{Database, Janitor, Server, Spec};

pub const PAGE_SIZE: u32 = 24;
pub const CONNS: u32 = 64;

/// The header htmx sends (the server answers with the fragment).
pub const HX: &[(&str, &str)] = &[("HX-Request", "true"), ("HX-Target", "feed")];

pub fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
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
pub async fn catalog(addr: SocketAddr, want: usize) -> Result<(u64, Vec<String>)> {
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

pub fn page_paths(pages: impl Iterator<Item = u32>) -> Vec<String> {
    pages.map(|n| format!("/movies?page={n}")).collect()
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    client::percentile(&v, 50.0)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

pub fn secs_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A server with the cache on, its own Redis prefix and static folder, on `db`.
pub async fn cached_server(
    j: &Janitor,
    tmp: &Path,
    short: &str,
    db: &Database,
    load_dataset: bool,
) -> Result<(String, Keys, PathBuf, Server)> {
    let prefix = j.prefix(short);
    let keys = Keys::new(&prefix);
    let static_dir = tmp.join(format!("static-{short}"));
    std::fs::create_dir_all(&static_dir)?;
    let spec = Spec {
        name: &format!("{short}-cache-on"),
        db,
        prefix: Some(&prefix),
        redis: crate::lab::REDIS,
        static_dir: &static_dir,
        load_dataset,
        env: &[],
    };
    let server = Server::start(spec, tmp).await?;
    Ok((prefix, keys, static_dir, server))
}
