//! The embedded films on one backend: one fresh database, a server with the cache and one with
//! `REDIS_URL=off` on it, and the paths the parts request.

use std::path::{Path, PathBuf};

use anyhow::Result;
use marquee::cache::Keys;

use crate::client;
use crate::common::{HX, PAGE_SIZE, cached_server, catalog, page_paths};
use crate::servers::{Backend, Janitor, Server, Spec};

/// The filtered and sorted lists of the bench, each with at least 10 pages of the embedded films.
pub const FILTERED: [&str; 4] = ["sort=rating", "genre=comedy", "decade=1990&sort=votes", "genre=drama&sort=gross"];

/// What the parts of the embedded-films run share.
pub struct Fixture {
    pub backend: Backend,
    /// "sqlite" or "pg", in the names of what the bench makes.
    pub short: &'static str,
    /// The rows' scope, "SQLite · 3k".
    pub scope: String,
    /// The cache-on server's Redis key prefix, and its keys.
    pub prefix: String,
    pub keys: Keys,
    pub static_dir: PathBuf,
    /// The server with the cache, and the one without (same database, same static folder).
    pub on: Server,
    pub off: Server,
    /// Films in the catalog, and its listing pages.
    pub total: u64,
    pub pages: u32,
    /// 200 slugs from the first pages.
    pub slugs: Vec<String>,
    /// Listing pages 1–40, pages 1–10 of four filtered or sorted lists, every listing page, and
    /// the detail pages of `slugs`.
    pub listing: Vec<String>,
    pub filtered: Vec<String>,
    pub all_pages: Vec<String>,
    pub details: Vec<String>,
}

impl Fixture {
    /// A fresh database with the embedded films, and both servers on it.
    pub async fn start(j: &Janitor, tmp: &Path, backend: Backend) -> Result<Self> {
        let short = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "pg",
        };
        let db = j.database(backend, tmp, short).await?;
        let (prefix, keys, static_dir, on) = cached_server(j, tmp, short, &db, true).await?;
        let off = Server::start(
            Spec {
                name: &format!("{short}-cache-off"),
                db: &db,
                prefix: None,
                redis: crate::lab::REDIS,
                static_dir: &static_dir,
                load_dataset: false,
                env: &[],
            },
            tmp,
        )
        .await?;

        let (total, slugs) = catalog(on.addr, 200).await?;
        let pages = u32::try_from(total.div_ceil(u64::from(PAGE_SIZE)))?;
        let listing = page_paths(1..=40);
        let filtered =
            FILTERED.iter().flat_map(|list| (1..=10).map(move |n| format!("/movies?{list}&page={n}"))).collect();
        let all_pages = page_paths(1..=pages);
        let details: Vec<String> = slugs.iter().map(|s| format!("/movies/{s}")).collect();
        Ok(Self {
            backend,
            short,
            scope: format!("{} · 3k", backend.name()),
            prefix,
            keys,
            static_dir,
            on,
            off,
            total,
            pages,
            slugs,
            listing,
            filtered,
            all_pages,
            details,
        })
    }

    /// Warms both servers (cache, pools, the deep-page anchors).
    pub async fn warm(&self) -> Result<()> {
        let Self { on, off, listing, filtered, all_pages, details, .. } = self;
        for (server, warm_all) in [(on, true), (off, false)] {
            let list = if warm_all { all_pages } else { listing };
            client::sweep(server.addr, list, &[], 64).await?;
            client::sweep(server.addr, filtered, &[], 64).await?;
            client::sweep(server.addr, list, HX, 64).await?;
            client::sweep(server.addr, details, &[], 64).await?;
            client::settle(server.addr).await?;
        }
        Ok(())
    }
}
