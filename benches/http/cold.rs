//! Every kind of page with nothing cached (`--only cold`): `marquee seed --count N` films (a
//! million unless `--films N`) on each backend, one server with `REDIS_URL=off` and
//! `RENDERED_CACHE_KB=0`, restarted before each kind of page so that what it keeps in memory (the
//! deep pages' bucket counts) starts empty too. Each page is requested once, on a fresh connection,
//! one at a time; a row prints the slowest of its kind against the target, 50 ms, beside the
//! median and how many of its pages took longer (each named on stderr: one stall of a busy machine
//! and a kind of page that is slow read alike in the slowest alone).
//!
//! The kinds: the listing at page 1, deep (page 20,000 and the last) and past its end; the same deep
//! page right after a write that moves a film (its counts read again); every genre × decade ×
//! rating filter (none included) with each sort at page 1, a middle page, the last page and past
//! the end; searches for the commonest words, rare ones and none, at page 1, 2 and a middle page;
//! film pages with their related films.
//!
//! With `MARQUEE_BENCH_KEEP=DIR` the seeded databases are kept for the next run (see kept.rs).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use marquee::movies::{GENRES, RATINGS, Sort};

use crate::client::Conn;
use crate::common::{PAGE_SIZE, median, secs_ms};
use crate::kept;
use crate::opts::Opts;
use crate::report::{Row, Verdict, ms, thousands};
use crate::servers::{self, Backend, Database, Janitor, Server, Spec};
use crate::writes::{put_date, release_date};

const TARGET_MS: f64 = 50.0;

/// A GET on a fresh connection, timed alone; the status it must have.
async fn timed(addr: SocketAddr, path: &str, want: u16) -> Result<(f64, String)> {
    let mut conn = Conn::open(addr).await?;
    let start = Instant::now();
    let r = conn.get(path).await?;
    let took = secs_ms(start.elapsed());
    if r.status != want {
        bail!("{path}: status {}, not {want}", r.status);
    }
    Ok((took, r.text()))
}

/// The list's size as its first page says it (the cards' aria-setsize; none: no film).
fn size_of(html: &str) -> u64 {
    let needle = "aria-setsize=\"";
    html.find(needle).and_then(|i| html[i + needle.len()..].split('"').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The times of one kind of page, and the slowest of them.
struct Kind {
    what: String,
    times: Vec<f64>,
    slowest: (f64, String),
}

impl Kind {
    fn new(what: impl Into<String>) -> Self {
        Self { what: what.into(), times: Vec::new(), slowest: (0.0, String::new()) }
    }

    fn add(&mut self, took: f64, path: &str) {
        self.times.push(took);
        if took > TARGET_MS {
            // every miss named in the log: one stall of the machine, or a kind of page that is slow
            eprintln!("    over {TARGET_MS:.0} ms: {} {path}", ms(took));
        }
        if took > self.slowest.0 {
            self.slowest = (took, path.to_owned());
        }
    }

    fn row(&self, scope: &str) -> Row {
        Row::new(scope, format!("cold: {}", self.what))
            .ours(format!("slowest {} ({})", ms(self.slowest.0), self.slowest.1))
            .other(format!(
                "median {} of {}, {} over {TARGET_MS:.0} ms",
                ms(median(&self.times)),
                thousands(self.times.len() as f64),
                self.times.iter().filter(|t| **t > TARGET_MS).count()
            ))
            .target(format!("≤ {TARGET_MS:.0} ms"), Verdict::of(self.slowest.0 <= TARGET_MS))
    }
}

fn server<'a>(db: &'a Database, static_dir: &'a Path, name: &'a str) -> Spec<'a> {
    Spec {
        name,
        db,
        prefix: None,
        redis: crate::lab::REDIS,
        static_dir,
        load_dataset: false,
        env: &[("RENDERED_CACHE_KB", "0")],
    }
}

/// Every list a reader can reach from the controls: each filter or none, with each sort.
fn lists() -> Vec<String> {
    let genres = std::iter::once(None).chain(GENRES.iter().map(|(s, _)| Some(format!("genre={s}"))));
    let mut out = Vec::new();
    for genre in genres {
        let decades = std::iter::once(None).chain((1910..=2010).step_by(10).map(|d| Some(format!("decade={d}"))));
        for decade in decades {
            let ratings = std::iter::once(None).chain(RATINGS.iter().map(|(s, _)| Some(format!("rating={s}"))));
            for rating in ratings {
                for sort in Sort::ALL {
                    let sort = (sort != Sort::Newest).then(|| format!("sort={}", sort.name()));
                    let params: Vec<String> =
                        [genre.clone(), decade.clone(), rating.clone(), sort].into_iter().flatten().collect();
                    if !params.is_empty() {
                        out.push(params.join("&"));
                    }
                }
            }
        }
    }
    out
}

pub async fn phase(o: &Opts, j: &Janitor, tmp: &Path, backend: Backend, rows: &mut Vec<Row>) -> Result<()> {
    let short = match backend {
        Backend::Sqlite => "sqlitecold",
        Backend::Postgres => "pgcold",
    };
    let big = o.big;
    let scope =
        if big == 1_000_000 { format!("{} · 1M", backend.name()) } else { format!("{} · {big}", backend.name()) };
    let scope = scope.as_str();
    let (db, ready) = match kept::dir() {
        Some(dir) => kept::database(backend, &dir, big).await?,
        None => (j.database(backend, tmp, short).await?, false),
    };
    let seed_row = Row::new(scope, format!("seed {} films (marquee seed --count {big})", thousands(big as f64)));
    if ready {
        eprintln!("  the films seeded by an earlier run ({})", db.url);
        rows.push(seed_row.ours(format!("kept from an earlier run ({})", db.url)));
    } else {
        eprintln!("  seeding (marquee seed --count {big})");
        let seeded = servers::seed(&db, big).await?;
        rows.push(seed_row.ours(format!("{:.1} s", seeded.as_secs_f64())));
    }
    let static_dir = tmp.join(format!("static-{short}"));
    std::fs::create_dir_all(&static_dir)?;
    let name = format!("{short}-cache-off");
    let start = || Server::start(server(&db, &static_dir, &name), tmp);
    let mut kinds = Vec::new();

    eprintln!("  the listing");
    let on = start().await?;
    let mut first = Kind::new("listing page 1");
    first.add(timed(on.addr, "/movies", 200).await?.0, "/movies");
    let last = u32::try_from(big.div_ceil(u64::from(PAGE_SIZE)))?;
    let deep = 20_000.min(last);
    drop(on);
    let mut deep_kind = Kind::new("listing deep pages, the first after a start");
    for n in [deep, last] {
        let on = start().await?;
        let path = format!("/movies?page={n}");
        deep_kind.add(timed(on.addr, &path, 200).await?.0, &path);
        drop(on);
    }
    let on = start().await?;
    let mut past = Kind::new("listing past its end");
    let path = format!("/movies?page={}", last + 1);
    past.add(timed(on.addr, &path, 404).await?.0, &path);

    // a write that moves a film: the next deep page reads the counts again
    let mut moved = Kind::new("listing deep page right after a write that changes the order");
    let slug = marquee::dataset::synthetic(1, 1).next().map(|m| m.slug).unwrap_or_default();
    let original = release_date(on.addr, &slug).await?;
    for (i, date) in ["2011-12-31", "1920-01-01", original.as_str()].iter().enumerate() {
        put_date(on.addr, &slug, date).await?;
        let path = format!("/movies?page={}", deep - u32::try_from(i)?);
        moved.add(timed(on.addr, &path, 200).await?.0, &path);
    }
    kinds.extend([first, deep_kind, past, moved]);
    drop(on);

    eprintln!("  every list");
    let all = lists();
    let step = if o.quick { 7 } else { 1 };
    let on = start().await?;
    let (mut top, mut middle, mut end, mut beyond) = (
        Kind::new(format!("every filter × sort, page 1 ({} lists)", thousands(all.len().div_ceil(step) as f64))),
        Kind::new("every filter × sort, a middle page"),
        Kind::new("every filter × sort, the last page"),
        Kind::new("every filter × sort, past the end"),
    );
    for list in all.iter().step_by(step) {
        let path = format!("/movies?{list}");
        let (took, html) = timed(on.addr, &path, 200).await?;
        top.add(took, &path);
        let pages = u32::try_from(size_of(&html).div_ceil(u64::from(PAGE_SIZE)))?;
        if pages > 2 {
            let path = format!("/movies?{list}&page={}", pages / 2);
            middle.add(timed(on.addr, &path, 200).await?.0, &path);
        }
        if pages > 1 {
            let path = format!("/movies?{list}&page={pages}");
            end.add(timed(on.addr, &path, 200).await?.0, &path);
        }
        let path = format!("/movies?{list}&page={}", pages.max(1) + 1);
        beyond.add(timed(on.addr, &path, 404).await?.0, &path);
    }
    kinds.extend([top, middle, end, beyond]);
    drop(on);

    eprintln!("  search");
    let on = start().await?;
    let exact = marquee::dataset::synthetic(big / 2, 1).next().map(|m| m.title).unwrap_or_default();
    let mut searches = Kind::new("search: the, a, t, love, paris, two words, a whole title, no match; page 1");
    let mut deeper = Kind::new("search: the same, page 2 and a middle page");
    for q in ["the", "a", "t", "love", "paris", "crimson harbor", "the crimson", exact.as_str(), "zyzzyva"] {
        let path = format!("/search?q={}", q.replace(' ', "+"));
        let (took, html) = timed(on.addr, &path, 200).await?;
        searches.add(took, &path);
        let pages = u32::try_from(size_of(&html).div_ceil(u64::from(PAGE_SIZE)))?;
        for n in [2, pages / 2].into_iter().filter(|n| *n >= 2 && *n <= pages) {
            let path = format!("{path}&page={n}");
            deeper.add(timed(on.addr, &path, 200).await?.0, &path);
        }
    }
    kinds.extend([searches, deeper]);
    drop(on);

    eprintln!("  film pages");
    let on = start().await?;
    let mut films = Kind::new("a film's page with its related films");
    let mut rng = fastrand::Rng::with_seed(26);
    for _ in 0..o.reps(60) {
        let Some(m) = marquee::dataset::synthetic(rng.u64(1..=big), 1).next() else { continue };
        let path = format!("/movies/{}", m.slug);
        films.add(timed(on.addr, &path, 200).await?.0, &path);
    }
    kinds.push(films);
    drop(on);

    rows.extend(kinds.iter().map(|k| k.row(scope)));
    Ok(())
}
