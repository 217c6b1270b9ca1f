//! The mix (`--only mix`, `--million` for the big catalog too): the traffic readers bring, as a
//! browser sends it, rather than the pages known to be warm.
//!
//! A fixed-seed sequence of requests is drawn from the real catalog (every film in the listing's
//! order, read from the database; each list's size from its first page): 45% listing pages, 15%
//! the listing's next pages as the infinite scroll asks for them, 30% film pages, 5% filtered and
//! sorted lists (page 1 from the list's controls, the next pages from its scroll), 5% searches from
//! the search field. Listing pages, scroll pages and each list's pages follow a Zipf law (s = 1) by
//! page number, never past a list's end; films follow one over every film, its ranks shuffled with
//! a fixed seed so that the popular films are spread over the catalog; searches are drawn from a
//! fixed word list. Each request carries Chromium's headers and, for htmx, what htmx 2 sends
//! (`HX-Request`, `HX-Target`, `HX-Current-URL`, the trigger's id and name when it has them), with
//! the `Referer` a reader's browser would send. wrk plays the sequence from a file (each thread
//! from its own place in it), counts the answers by status class and prints its latencies; the
//! server's /metrics around the measured run give the tiers that answered, the database queries,
//! Redis commands and pool waits per request.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use marquee::movies::{GENRES, Sort};

use crate::ceilings;
use crate::client;
use crate::common::{CONNS, PAGE_SIZE, attr_values};
use crate::lab;
use crate::opts::Opts;
use crate::report::{Row, Verdict, mib, ms, thousands, times};
use crate::servers::{self, Backend, Database, Janitor, Server, Spec};

/// Requests in a sequence; a thread that reaches its end starts it again.
const SEQUENCE: usize = 200_000;

/// The words the searches look for.
const WORDS: [&str; 20] = [
    "love", "man", "night", "dead", "king", "star", "war", "life", "city", "girl", "house", "last", "day", "black",
    "world", "time", "american", "story", "blood", "home",
];

/// The rate the Redis tier alone was measured at before (3,200 films, SQLite, `RENDERED_CACHE_KB=0`).
const REDIS_TIER_BEFORE: f64 = 2_613.0;

/// Headers Chromium sends with every request.
const CHROMIUM: [(&str, &str); 6] = [
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("sec-ch-ua", "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\""),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
];

/// A document's navigation.
const NAVIGATE: [(&str, &str); 5] = [
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    ),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-User", "?1"),
    ("Sec-Fetch-Dest", "document"),
];

/// htmx's requests (an XMLHttpRequest from the page).
const HTMX: [(&str, &str); 5] = [
    ("Accept", "*/*"),
    ("HX-Request", "true"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-Mode", "cors"),
    ("Sec-Fetch-Dest", "empty"),
];

/// How a request is made, and so which headers it carries besides Chromium's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A navigation with no page of the site before it (typed, a bookmark, a reload).
    Typed,
    /// A navigation from a page of the site (`Referer`).
    Linked,
    /// The infinite scroll: the next page's cards (`HX-Target: feed`).
    Scroll,
    /// A list's controls: its section (`HX-Target: listing`).
    Controls,
    /// The search field: the results (`HX-Target: main`, its id and name).
    Search,
}

impl Kind {
    const ALL: [Self; 5] = [Self::Typed, Self::Linked, Self::Scroll, Self::Controls, Self::Search];

    fn letter(self) -> char {
        match self {
            Self::Typed => 't',
            Self::Linked => 'l',
            Self::Scroll => 'f',
            Self::Controls => 'c',
            Self::Search => 's',
        }
    }

    fn headers(self) -> Vec<(&'static str, &'static str)> {
        let mut h: Vec<(&str, &str)> = CHROMIUM.to_vec();
        match self {
            Self::Typed => h.extend(NAVIGATE.iter().copied().chain([("Sec-Fetch-Site", "none")])),
            Self::Linked => h.extend(NAVIGATE.iter().copied().chain([("Sec-Fetch-Site", "same-origin")])),
            Self::Scroll => h.extend(HTMX.iter().copied().chain([("HX-Target", "feed")])),
            Self::Controls => h.extend(HTMX.iter().copied().chain([("HX-Target", "listing")])),
            Self::Search => h.extend(HTMX.iter().copied().chain([
                ("HX-Target", "main"),
                ("HX-Trigger", "site-q"),
                ("HX-Trigger-Name", "q"),
            ])),
        }
        h
    }

    fn is_htmx(self) -> bool {
        matches!(self, Self::Scroll | Self::Controls | Self::Search)
    }
}

/// One request: how it is made, its path, and the page it is made from (`Referer`, and for htmx
/// `HX-Current-URL`), as a path.
#[derive(Debug, Clone)]
struct Request {
    kind: Kind,
    path: String,
    from: Option<String>,
}

/// A Zipf law with s = 1 over ranks 0..n.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut sum = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|k| {
                sum += 1.0 / k as f64;
                sum
            })
            .collect();
        Self { cumulative }
    }

    fn draw(&self, rng: &mut fastrand::Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let u = rng.f64() * total;
        self.cumulative.partition_point(|&c| c < u).min(self.cumulative.len() - 1)
    }
}

/// A list of the mix: its canonical URL's parameters, the form's, and its pages.
struct List {
    key: String,
    form: String,
    zipf: Zipf,
}

impl List {
    fn href(&self, page: usize) -> String {
        if page == 1 { format!("/movies?{}", self.key) } else { format!("/movies?{}&page={page}", self.key) }
    }
}

/// What the sequence is drawn from.
pub struct Catalog {
    /// Every film's slug, in the listing's order.
    films: Vec<String>,
    pages: usize,
    lists: Vec<List>,
}

fn listing_href(page: usize) -> String {
    if page == 1 { "/".to_owned() } else { format!("/movies?page={page}") }
}

/// Every film's slug in the listing's order (newest release first, ties by slug), from the database.
async fn films(db: &Database) -> Result<Vec<String>> {
    use sqlx::{Connection, Row as _};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.context("open the database")?;
    let rows = sqlx::query("select slug from movies order by release_date is null, release_date desc, slug")
        .fetch_all(&mut conn)
        .await?;
    let slugs = rows.iter().map(|r| r.try_get::<String, _>("slug")).collect::<Result<Vec<_>, _>>()?;
    let _ = conn.close().await;
    Ok(slugs)
}

/// A list's size: its first page's cards' `aria-setsize` (0: none).
async fn list_size(addr: SocketAddr, href: &str) -> Result<u64> {
    let r = client::get(addr, href).await?;
    if r.status != 200 {
        bail!("{href}: status {}", r.status);
    }
    Ok(attr_values(&r.text(), "aria-setsize").first().and_then(|v| v.parse().ok()).unwrap_or(0))
}

impl Catalog {
    pub async fn read(db: &Database, addr: SocketAddr) -> Result<Self> {
        let films = films(db).await?;
        let pages = films.len().div_ceil(PAGE_SIZE as usize);
        let mut lists = Vec::new();
        for (genre, _) in GENRES {
            for sort in Sort::ALL {
                let key = if sort == Sort::Newest {
                    format!("genre={genre}")
                } else {
                    format!("genre={genre}&sort={}", sort.name())
                };
                let size = list_size(addr, &format!("/movies?{key}")).await?;
                if size == 0 {
                    continue;
                }
                let pages = usize::try_from(size.div_ceil(u64::from(PAGE_SIZE)))?;
                let form = format!("genre={genre}&decade=&rating=&sort={}", sort.name());
                lists.push(List { key, form, zipf: Zipf::new(pages) });
            }
        }
        if films.is_empty() || lists.is_empty() {
            bail!("an empty catalog ({} films, {} lists)", films.len(), lists.len());
        }
        Ok(Self { films, pages, lists })
    }

    /// `n` requests drawn with `seed`.
    fn sequence(&self, seed: u64, n: usize) -> Vec<Request> {
        let mut rng = fastrand::Rng::with_seed(seed);
        // the films' popularity: rank r is the film at rank_to_film[r] (fixed, whatever the seed)
        let mut rank_to_film: Vec<usize> = (0..self.films.len()).collect();
        fastrand::Rng::with_seed(1).shuffle(&mut rank_to_film);
        let pages = Zipf::new(self.pages);
        let next_pages = Zipf::new(self.pages.saturating_sub(1));
        let films = Zipf::new(self.films.len());
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let roll = rng.u32(0..100);
            let request = match roll {
                // a listing page, opened as a document
                0..45 => {
                    let page = 1 + pages.draw(&mut rng);
                    Request { kind: Kind::Typed, path: listing_href(page), from: None }
                }
                // the listing's next page, as the scroll asks for it from the page before
                45..60 if self.pages >= 2 => {
                    let page = 2 + next_pages.draw(&mut rng);
                    Request { kind: Kind::Scroll, path: listing_href(page), from: Some(listing_href(page - 1)) }
                }
                // a film, opened from the listing page it is on
                60..90 => {
                    let at = rank_to_film[films.draw(&mut rng)];
                    let from = listing_href(at / PAGE_SIZE as usize + 1);
                    Request { kind: Kind::Linked, path: format!("/movies/{}", self.films[at]), from: Some(from) }
                }
                // a list: chosen with its controls on the listing, then scrolled
                90..95 => {
                    let list = &self.lists[rng.usize(..self.lists.len())];
                    let page = 1 + list.zipf.draw(&mut rng);
                    if page == 1 {
                        Request {
                            kind: Kind::Controls,
                            path: format!("/movies?{}", list.form),
                            from: Some("/movies".to_owned()),
                        }
                    } else {
                        Request { kind: Kind::Scroll, path: list.href(page), from: Some(list.href(page - 1)) }
                    }
                }
                95..100 => {
                    let word = WORDS[rng.usize(..WORDS.len())];
                    Request { kind: Kind::Search, path: format!("/search?q={word}"), from: Some("/".to_owned()) }
                }
                _ => continue,
            };
            out.push(request);
        }
        out
    }

    /// The listing's pages 1–40 as documents: the warm listing.
    fn warm_listing() -> Vec<Request> {
        (1..=40).map(|n| Request { kind: Kind::Typed, path: format!("/movies?page={n}"), from: None }).collect()
    }
}

/// What one wrk run of a sequence measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// Answers by status class: 1xx to 5xx.
    pub status: [u64; 5],
}

impl Run {
    fn figures(&self) -> String {
        let errors =
            if self.socket_errors > 0 { format!(" ({} socket errors)", self.socket_errors) } else { String::new() };
        format!(
            "{} r/s · p50 {} · p90 {} · p99 {} · max {}{errors}",
            thousands(self.rps),
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.max_ms)
        )
    }

    fn statuses(&self) -> String {
        let [_, ok, redirect, client, server] = self.status;
        format!("2xx {} · 3xx {redirect} · 4xx {client} · 5xx {server}", thousands(ok as f64))
    }
}

/// Writes the sequence (one request a line: kind, path, the page it is made from) and the wrk
/// script that plays it against `addr`.
fn script(dir: &Path, name: &str, addr: SocketAddr, requests: &[Request]) -> Result<PathBuf> {
    let data = dir.join(format!("{name}.tsv"));
    let mut text = String::with_capacity(requests.len() * 64);
    for r in requests {
        let _ = writeln!(text, "{}\t{}\t{}", r.kind.letter(), r.path, r.from.as_deref().unwrap_or(""));
    }
    std::fs::write(&data, text)?;
    let quote = |s: &str| format!("{s:?}"); // Rust string escapes are valid Lua for these ASCII values
    let mut lua = format!(
        "local data = {}\nlocal origin = {}\nlocal heads = {{\n",
        quote(&data.display().to_string()),
        quote(&format!("http://{addr}"))
    );
    for kind in Kind::ALL {
        let _ = writeln!(lua, "  {} = {{", kind.letter());
        let _ = writeln!(lua, "    [\"Host\"] = {},", quote(&addr.to_string()));
        for (k, v) in kind.headers() {
            let _ = writeln!(lua, "    [{}] = {},", quote(k), quote(v));
        }
        lua.push_str("  },\n");
    }
    let htmx: Vec<String> =
        Kind::ALL.iter().filter(|k| k.is_htmx()).map(|k| format!("{} = true", k.letter())).collect();
    let _ = writeln!(lua, "}}\nlocal htmx = {{ {} }}", htmx.join(", "));
    lua.push_str(
        r#"local kinds, paths, froms = {}, {}, {}
local n = 0
local threads = {}
local i = 0
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(data) do
    local k, p, f = line:match("^(%a)\t([^\t]*)\t(.*)$")
    n = n + 1
    kinds[n], paths[n] = k, p
    froms[n] = (f ~= "") and (origin .. f) or false
  end
  -- each thread from its own place in the sequence
  i = math.floor(n * (id or 0) / 2) % n
  s1, s2, s3, s4, s5 = 0, 0, 0, 0, 0
end
function request()
  i = i % n + 1
  local k = kinds[i]
  local h = heads[k]
  local from = froms[i]
  if from then
    h["Referer"] = from
    if htmx[k] then h["HX-Current-URL"] = from end
  end
  return wrk.format("GET", paths[i], h)
end
function response(status, headers, body)
  if status < 200 then s1 = s1 + 1
  elseif status < 300 then s2 = s2 + 1
  elseif status < 400 then s3 = s3 + 1
  elseif status < 500 then s4 = s4 + 1
  else s5 = s5 + 1 end
end
function done(summary, latency, requests)
  local s = {0, 0, 0, 0, 0}
  for _, thread in ipairs(threads) do
    for c = 1, 5 do s[c] = s[c] + (thread:get("s" .. c) or 0) end
  end
  local e = summary.errors
  io.write(string.format("BENCHMIX %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout,
    s[1], s[2], s[3], s[4], s[5]))
end
"#,
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua)?;
    Ok(path)
}

/// `wrk -t2 -c64 -d{secs}s --latency -s script`.
async fn wrk(addr: SocketAddr, script: &Path, secs: u32) -> Result<Run> {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t2")
        .arg(format!("-c{CONNS}"))
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "10s", "--latency", "-s"])
        .arg(script)
        .arg(format!("http://{addr}"));
    let out = tokio::task::spawn_blocking(move || cmd.output()).await?.context("run wrk (apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCHMIX "))
        .ok_or_else(|| anyhow!("no summary in wrk's output: {stdout}{}", String::from_utf8_lossy(&out.stderr)))?;
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [requests, duration_us, p50, p90, p99, max, errors, s1, s2, s3, s4, s5] = v[..] else {
        bail!("bad wrk summary {line:?}");
    };
    Ok(Run {
        requests: client::count(requests),
        rps: requests / (duration_us / 1e6),
        p50_ms: p50 / 1e3,
        p90_ms: p90 / 1e3,
        p99_ms: p99 / 1e3,
        max_ms: max / 1e3,
        socket_errors: client::count(errors),
        status: [s1, s2, s3, s4, s5].map(client::count),
    })
}

/// The server's counters the mix reports, by name.
const COUNTED: [&str; 6] = [
    "marquee_cache_hits_total{tier=\"memory\",kind=\"page\"}",
    "marquee_pages_rendered_total{from=\"redis\"}",
    "marquee_pages_rendered_total{from=\"database\"}",
    "marquee_db_queries_total",
    "marquee_redis_commands_total",
    "marquee_db_pool_waits_total",
];

async fn counters(addr: SocketAddr) -> Result<([f64; 6], HashMap<String, (f64, f64)>)> {
    let m: HashMap<String, f64> = client::metrics(addr).await?;
    Ok((COUNTED.map(|name| m.get(name).copied().unwrap_or(0.0)), slow_by_route(&m)))
}

/// What the tail is made of, from the server's own latency histogram: by route, the requests it
/// took over 100 ms to answer, and all it answered.
fn slow_by_route(m: &HashMap<String, f64>) -> HashMap<String, (f64, f64)> {
    const HISTOGRAM: &str = "marquee_http_request_duration_seconds_";
    let mut by_route: HashMap<String, (f64, f64)> = HashMap::new();
    for (name, value) in m {
        let Some(rest) = name.strip_prefix(HISTOGRAM) else { continue };
        let Some(route) = rest.split("route=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        let entry = by_route.entry(route.to_owned()).or_default();
        if rest.starts_with("count{") {
            entry.0 += value;
            entry.1 += value;
        } else if rest.starts_with("bucket{") && rest.contains("le=\"0.1\"") {
            entry.0 -= value;
        }
    }
    by_route
}

/// A measured run and what the server counted during it.
struct Measured {
    run: Run,
    /// Pages answered from the page tier, from Redis, with the database.
    tiers: [f64; 3],
    queries: f64,
    commands: f64,
    pool_waits: f64,
    /// The server's CPU time over the run, in seconds.
    cpu: f64,
    /// What the page tier held at the end, and its budget, in bytes.
    kept: f64,
    budget: f64,
    /// By route: requests the server took over 100 ms to answer, and all it answered.
    slow: HashMap<String, (f64, f64)>,
}

impl Measured {
    fn counts(&self) -> String {
        let total: f64 = self.tiers.iter().sum();
        let share = |x: f64| if total > 0.0 { format!("{:.0}%", 100.0 * x / total) } else { "–".to_owned() };
        let per = |x: f64| x / self.run.requests.max(1) as f64;
        let held = if self.budget > 0.0 {
            format!(" ({} of {} held)", mib(self.kept).trim_end_matches(" MiB"), mib(self.budget))
        } else {
            String::new()
        };
        format!(
            "{} · pages from kept {}{held} / Redis {} / database {} · per request {:.2} queries, {:.2} Redis commands, {:.0} µs of server CPU · {} pool waits",
            self.run.statuses(),
            share(self.tiers[0]),
            share(self.tiers[1]),
            share(self.tiers[2]),
            per(self.queries),
            per(self.commands),
            per(self.cpu) * 1e6,
            thousands(self.pool_waits)
        )
    }

    /// The routes with requests the server took over 100 ms to answer, slowest share first.
    fn tail(&self) -> String {
        let mut slow: Vec<_> = self.slow.iter().filter(|(_, (over, _))| *over >= 1.0).collect();
        slow.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        if slow.is_empty() {
            return " · none over 100 ms at the server".to_owned();
        }
        let each: Vec<String> = slow
            .iter()
            .map(|(route, (over, all))| format!("{route} {} of {}", thousands(*over), thousands(*all)))
            .collect();
        format!(" · over 100 ms at the server: {}", each.join(", "))
    }
}

/// The round of median rate (of an even number, the faster of the middle two).
fn median_run(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.run.rps.total_cmp(&b.run.rps));
    runs.swap_remove(runs.len() / 2)
}

/// A warm-up run of `warm_up` for `warm_secs`, then the measured run of `measured`.
async fn measure(
    o: &Opts,
    server: &Server,
    dir: &Path,
    name: &str,
    (warm_up, warm_secs): (&[Request], u32),
    measured: &[Request],
) -> Result<Measured> {
    let warm = script(dir, &format!("{name}-warm-up"), server.addr, warm_up)?;
    let timed = script(dir, name, server.addr, measured)?;
    wrk(server.addr, &warm, warm_secs).await?;
    client::settle(server.addr).await?;
    let (before, slow_before) = counters(server.addr).await?;
    let cpu_before = server.cpu_seconds();
    let run = wrk(server.addr, &timed, 2 * o.secs).await?;
    let cpu = server.cpu_seconds().zip(cpu_before).map_or(0.0, |(after, before)| after - before);
    client::settle(server.addr).await?;
    let (after, slow_after) = counters(server.addr).await?;
    let slow = slow_after
        .into_iter()
        .map(|(route, (over, all))| {
            let (over_before, all_before) = slow_before.get(&route).copied().unwrap_or_default();
            (route, (over - over_before, all - all_before))
        })
        .collect();
    let d: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let m = client::metrics(server.addr).await?;
    let gauge = |name: &str| m.get(name).copied().unwrap_or(0.0);
    Ok(Measured {
        run,
        tiers: [d[0], d[1], d[2]],
        queries: d[3],
        commands: d[4],
        pool_waits: d[5],
        cpu,
        kept: gauge("marquee_cache_kept_bytes"),
        budget: gauge("marquee_cache_kept_budget_bytes"),
        slow,
    })
}

/// nginx at full strength serving the warm listing's pages as `on` serves them, checked (each a 200
/// with the page gzipped) and then timed with the warm listing's script: a warm-up, then the
/// measured run. A run with any answer but a 200 is an error, not a figure.
async fn nginx_full(o: &Opts, on: &Server, tmp: &Path, dir: &Path, short: &str, listing: &[Request]) -> Result<Run> {
    let paths: Vec<String> = listing.iter().map(|r| r.path.clone()).collect();
    let saved = ceilings::save(on.addr, &paths).await?;
    let nginx = ceilings::nginx_full(&tmp.join(format!("nginx-full-{short}")), &saved).await?;
    ceilings::check_gzipped(nginx.addr, &saved).await?;
    let timed = script(dir, "nginx-full", nginx.addr, listing)?;
    wrk(nginx.addr, &timed, o.secs).await?;
    let run = wrk(nginx.addr, &timed, 2 * o.secs).await?;
    let [_, ok, ..] = run.status;
    if ok != run.requests || run.socket_errors > 0 {
        bail!("nginx answered {} ({} socket errors)", run.statuses(), run.socket_errors);
    }
    Ok(run)
}

/// The warm listing's pages answer 200 with a listing page before they are timed; `Err` says what
/// they answered instead.
async fn checked(addr: SocketAddr) -> Result<(), String> {
    for r in Catalog::warm_listing() {
        let answer = client::get(addr, &r.path).await.map_err(|e| format!("{}: {e:#}", r.path))?;
        let text = answer.text();
        if answer.status != 200 || !text.contains("aria-setsize") || !text.contains("</html>") {
            return Err(format!("{} answered {} with {} bytes", r.path, answer.status, answer.body.len()));
        }
    }
    Ok(())
}

fn scope(backend: Backend, films: usize) -> String {
    match films {
        3_200 => format!("{} · 3k", backend.name()),
        1_000_000 => format!("{} · 1M", backend.name()),
        n => format!("{} · {}", backend.name(), thousands(n as f64)),
    }
}

const WHAT: &str = "mix: 45% listing, 15% scroll, 30% films, 5% lists, 5% search";

/// The mix at the embedded 3,200 films on one backend: the default server (the warm listing
/// beside it) and one with `RENDERED_CACHE_KB=0`. Returns the default mix's rate.
pub async fn embedded(o: &Opts, j: &Janitor, tmp: &Path, backend: Backend, rows: &mut Vec<Row>) -> Result<f64> {
    let short = match backend {
        Backend::Sqlite => "mixsqlite",
        Backend::Postgres => "mixpg",
    };
    let db = j.database(backend, tmp, short).await?;
    let dir = tmp.join(format!("lua-{short}"));
    std::fs::create_dir_all(&dir)?;
    let (prefix, _, static_dir, on) = crate::common::cached_server(j, tmp, short, &db, true).await?;
    // the same Redis keys as the default server (two servers of one site): what differs is the
    // page tier in front of them
    let (tier_name, baseline_name) = (format!("{short}-redis-tier"), format!("{short}-baseline"));
    let redis_tier_spec = |name| Spec {
        name,
        db: &db,
        prefix: Some(&prefix),
        redis: lab::REDIS,
        static_dir: &static_dir,
        load_dataset: false,
        env: &[("RENDERED_CACHE_KB", "0")],
    };
    let redis_tier = Server::start(redis_tier_spec(&tier_name), tmp).await?;
    // another build's Redis tier beside ours, to compare in one run (`MARQUEE_BENCH_BASELINE`): on
    // a database and keys of its own, of the same films (an older build refuses a schema its
    // migrations do not know, and may write its keys in another form)
    let baseline = match std::env::var_os("MARQUEE_BENCH_BASELINE") {
        Some(bin) => {
            let (db, prefix) =
                (j.database(backend, tmp, &format!("{short}_baseline")).await?, j.prefix(&baseline_name));
            let spec = Spec { db: &db, prefix: Some(&prefix), load_dataset: true, ..redis_tier_spec(&baseline_name) };
            let server = Server::start_built(spec, tmp, Path::new(&bin)).await?;
            Some((server, PathBuf::from(bin)))
        }
        None => None,
    };
    let catalog = Catalog::read(&db, on.addr).await?;
    let scope = scope(backend, catalog.films.len());
    let scope = scope.as_str();
    rows.push(Row::new(scope, "mix: the catalog").ours(format!(
        "{} films, {} listing pages, {} lists (genre × sort)",
        thousands(catalog.films.len() as f64),
        catalog.pages,
        catalog.lists.len()
    )));
    let warm_up = catalog.sequence(2, SEQUENCE);
    let mix = catalog.sequence(1, SEQUENCE);
    let listing = Catalog::warm_listing();

    eprintln!("  the warm listing");
    let warm = match checked(on.addr).await {
        Ok(()) => Some(measure(o, &on, &dir, "warm-listing", (&listing, o.secs), &listing).await?),
        Err(why) => {
            rows.push(
                Row::new(scope, "warm listing (pages 1–40), Chromium's headers")
                    .ours(format!("failed: {why}"))
                    .target("200 with the page", Verdict::Miss),
            );
            None
        }
    };
    let nginx = match &warm {
        Some(_) => {
            eprintln!("  nginx at full strength, the warm listing's bytes");
            Some(nginx_full(o, &on, tmp, &dir, short, &listing).await)
        }
        None => None,
    };
    eprintln!("  the mix, default settings");
    let default = measure(o, &on, &dir, "mix", (&warm_up, o.secs), &mix).await?;
    let rss = on.peak_rss().unwrap_or(0) as f64;
    // with another build beside ours, the two alternate round by round (the machine's speed
    // drifts over a run: one round each would compare two moments as much as two builds), each
    // side's median round reported
    let rounds = if baseline.is_some() { o.rounds.max(1) } else { 1 };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        eprintln!("  the mix, RENDERED_CACHE_KB=0, round {round}/{rounds}");
        ours.push(measure(o, &redis_tier, &dir, "mix-redis-tier", (&warm_up, o.secs), &mix).await?);
        if let Some((server, bin)) = &baseline {
            eprintln!("  the mix, RENDERED_CACHE_KB=0, {}, round {round}/{rounds}", bin.display());
            theirs.push(measure(o, server, &dir, "mix-baseline", (&warm_up, o.secs), &mix).await?);
        }
    }
    let each = |runs: &[Measured]| runs.iter().map(|m| thousands(m.run.rps)).collect::<Vec<_>>().join(", ");
    let rounds_text = format!("rounds (r/s): this build {}; the other {}", each(&ours), each(&theirs));
    let alone = median_run(ours);
    let rss_alone = redis_tier.peak_rss().unwrap_or(0) as f64;
    if o.profile {
        eprintln!("  profiling the mix, RENDERED_CACHE_KB=0 (perf, every process)");
        let report = profile(o, &redis_tier, &dir, &catalog.sequence(3, SEQUENCE)).await?;
        let name = format!("benches/PROFILE-mix-redis-tier-{}.md", backend.name());
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&name);
        std::fs::write(
            &path,
            format!(
                "# The mix at 3,200 films on {}, RENDERED_CACHE_KB=0 (the Redis tier alone), profiled\n\n{report}",
                backend.name()
            ),
        )?;
        eprintln!("  written to {}", path.display());
    }
    let before = baseline.as_ref().map(|(_, bin)| (median_run(theirs), bin));

    if let Some(warm) = &warm {
        rows.push(
            Row::new(scope, "warm listing (pages 1–40), Chromium's headers, the mix's script")
                .ours(warm.run.figures())
                .other(warm.counts()),
        );
    }
    if let (Some(warm), Some(nginx)) = (&warm, nginx) {
        let what = "warm listing / nginx at full strength (a worker per core, gzip_static), the same pages and script";
        rows.push(match nginx {
            Ok(n) => Row::new(scope, what)
                .ours(format!("{} r/s", thousands(warm.run.rps)))
                .other(format!("nginx: {} · {}", n.figures(), n.statuses()))
                .ratio(warm.run.rps / n.rps)
                .target("≥ 0.9×", Verdict::of(warm.run.rps >= 0.9 * n.rps)),
            Err(e) => Row::new(scope, what).other(format!("nginx failed: {e:#}")).target("≥ 0.9×", Verdict::Miss),
        });
    }
    let row = Row::new(scope, format!("{WHAT}, default settings")).ours(default.run.figures()).other(format!(
        "{} · peak RSS {}",
        default.counts(),
        mib(rss)
    ));
    rows.push(match &warm {
        Some(w) => row
            .ratio(default.run.rps / w.run.rps)
            .target("≥ 0.5× the warm listing", Verdict::of(default.run.rps >= 0.5 * w.run.rps)),
        None => row.target("≥ 0.5× the warm listing (no warm listing to compare)", Verdict::Miss),
    });
    rows.push(
        Row::new(scope, "mix, default settings: server peak RSS (VmHWM)")
            .ours(mib(rss))
            .target("≤ 64 MiB", Verdict::of(rss <= 64.0 * 1024.0 * 1024.0)),
    );
    let goal = 3.0 * REDIS_TIER_BEFORE;
    rows.push(
        Row::new(scope, format!("{WHAT}, RENDERED_CACHE_KB=0 (the Redis tier alone)"))
            .ours(alone.run.figures())
            .other(format!("{} · peak RSS {}", alone.counts(), mib(rss_alone)))
            .ratio_text(format!("{} the default's rate", times(alone.run.rps / default.run.rps)))
            .target(
                format!("≥ {} r/s (3 × {})", thousands(goal), thousands(REDIS_TIER_BEFORE)),
                Verdict::of(alone.run.rps >= goal),
            ),
    );
    if let Some((before, bin)) = &before {
        rows.push(
            Row::new(scope, format!("{WHAT}, RENDERED_CACHE_KB=0, the build at {}", bin.display()))
                .ours(before.run.figures())
                .other(format!("{} · {rounds_text}", before.counts()))
                .ratio_text(format!("this build: {} (median rounds)", times(alone.run.rps / before.run.rps)))
                .target("this build ≥ 3× its rate", Verdict::of(alone.run.rps >= 3.0 * before.run.rps)),
        );
    }
    drop(on);
    drop(redis_tier);
    drop(baseline);
    let mut redis = lab::connect().await?;
    lab::unlink_prefix(&mut redis, &prefix).await?;
    Ok(default.run.rps)
}

/// The mix at `o.big` films (`marquee seed`) on one backend, with default settings; `small` is the
/// same backend's rate at 3,200 films, for the ratio.
pub async fn big(
    o: &Opts,
    j: &Janitor,
    tmp: &Path,
    backend: Backend,
    small: Option<f64>,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let short = match backend {
        Backend::Sqlite => "mixsqlitebig",
        Backend::Postgres => "mixpgbig",
    };
    // (the mix writes nothing: a database kept by the cold part serves it as well)
    let (db, ready) = match crate::kept::dir() {
        Some(dir) => crate::kept::database(backend, &dir, o.big).await?,
        None => (j.database(backend, tmp, short).await?, false),
    };
    let dir = tmp.join(format!("lua-{short}"));
    std::fs::create_dir_all(&dir)?;
    let seeded = if ready {
        eprintln!("  the films seeded by an earlier run ({})", db.url);
        "kept from an earlier run".to_owned()
    } else {
        eprintln!("  seeding (marquee seed --count {})", o.big);
        format!("seeded in {:.0} s", servers::seed(&db, o.big).await?.as_secs_f64())
    };
    let (prefix, _, _, on) = crate::common::cached_server(j, tmp, short, &db, false).await?;
    let catalog = Catalog::read(&db, on.addr).await?;
    let scope = scope(backend, catalog.films.len());
    let scope = scope.as_str();
    rows.push(Row::new(scope, "mix: the catalog").ours(format!(
        "{} films ({seeded}), {} listing pages, {} lists (genre × sort)",
        thousands(catalog.films.len() as f64),
        thousands(catalog.pages as f64),
        catalog.lists.len()
    )));
    eprintln!("  the mix, default settings");
    // A million films' working set is the database's files, which this machine's OS pages out a
    // minute after they were last read (DAMON's reclaim, `pageout` past 60 s): after the parts
    // before it, 5 s of warm-up read too little of them back (SQLite's mix measured 899 r/s, p99
    // 3.3 s, while the file was read from disk; 3,029 r/s in the profiled run right after).
    let warm_up = catalog.sequence(2, SEQUENCE);
    let mix = measure(o, &on, &dir, "mix", (&warm_up, 3 * o.secs), &catalog.sequence(1, SEQUENCE)).await?;
    let rss = on.peak_rss().unwrap_or(0) as f64;
    let run = mix.run;
    let row = Row::new(scope, format!("{WHAT}, default settings")).ours(run.figures()).other(format!(
        "{} · peak RSS {}{}",
        mix.counts(),
        mib(rss),
        mix.tail()
    ));
    let row = match small {
        Some(small) => row.ratio_text(format!("{} the 3,200-film mix", times(run.rps / small))),
        None => row,
    };
    rows.push(if backend == Backend::Postgres {
        row.target(
            "≥ 2,000 r/s, p99 ≤ 100 ms, 0 5xx",
            Verdict::of(run.rps >= 2_000.0 && run.p99_ms <= 100.0 && run.status[4] == 0 && run.socket_errors == 0),
        )
    } else {
        row
    });
    if o.profile {
        eprintln!("  profiling the mix (perf, every process)");
        let report = profile(o, &on, &dir, &catalog.sequence(3, SEQUENCE)).await?;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/PROFILE-mix-{}.md", backend.name()));
        std::fs::write(
            &path,
            format!("# The mix at {} films on {}, profiled\n\n{report}", thousands(o.big as f64), backend.name()),
        )?;
        eprintln!("  written to {}", path.display());
    }
    drop(on);
    let mut redis = lab::connect().await?;
    lab::unlink_prefix(&mut redis, &prefix).await?;
    Ok(())
}

/// `perf record` of the whole machine (cpu-clock, no call graphs: the server, the database, Redis
/// and wrk share its two cores) during a run of the mix on a third sequence, after the measured
/// one: each process's share of the CPU, then the top symbols by self time.
async fn profile(o: &Opts, server: &Server, dir: &Path, sequence: &[Request]) -> Result<String> {
    let timed = script(dir, "mix-profiled", server.addr, sequence)?;
    let data = dir.join("perf.data");
    let mut rec = Command::new("perf");
    rec.args(["record", "-a", "-e", "cpu-clock", "-F", "499", "-o"])
        .arg(&data)
        .args(["--", "sleep", &(2 * o.secs).to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let recording = tokio::task::spawn_blocking(move || rec.status());
    let run = wrk(server.addr, &timed, 2 * o.secs + 1).await?;
    recording.await?.context("perf record (is perf installed?)")?;
    let report = |sort: &str, lines: usize| -> Result<String> {
        let out = Command::new("perf")
            .args(["report", "--no-children", "--sort", sort, "--stdio", "-g", "none", "-i"])
            .arg(&data)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .take(lines)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n"))
    };
    Ok(format!(
        "`cargo bench --bench http -- --only mix [--million] --profile`: {} r/s, p99 {} under perf.\n\n\
         CPU by process (every core, idle included):\n```text\n{}\n```\n\n\
         Top symbols by self time:\n```text\n{}\n```\n",
        thousands(run.rps),
        ms(run.p99_ms),
        report("comm", 12)?,
        report("comm,dso,symbol", 40)?
    ))
}

/// The whole part: both backends at 3,200 films, then with `--million` at `o.big` films.
pub async fn part(o: &Opts, j: &Janitor, tmp: &Path, started: std::time::Instant, rows: &mut Vec<Row>) -> Result<()> {
    let mut small = HashMap::new();
    for backend in o.backends() {
        eprintln!("[{:>5.0} s] {}: the mix at the embedded films", started.elapsed().as_secs_f64(), backend.name());
        small.insert(backend.name(), embedded(o, j, tmp, backend, rows).await?);
    }
    if o.million {
        // PostgreSQL first: its row is the one with targets
        let mut backends = o.backends();
        backends.reverse();
        for backend in backends {
            eprintln!(
                "[{:>5.0} s] {}: the mix at {} films",
                started.elapsed().as_secs_f64(),
                backend.name(),
                thousands(o.big as f64)
            );
            big(o, j, tmp, backend, small.get(backend.name()).copied(), rows).await?;
        }
    }
    Ok(())
}
