//! Search: what a query costs over a realistic mix of queries (one request at a time, p50 and
//! p99), and whether caching search results in Redis would pay on that mix.
//!
//! The mix, as people use the header's active search: each search is for one film, drawn in
//! proportion to its IMDB votes (the popular films are the ones looked for); the person types its
//! folded title from the start, and stops somewhere after the first word (anywhere up to the
//! whole title). htmx sends the text typed so far after each pause of 300 ms: here, after each
//! character with a chance of one in four, and always where the person stops. One film in ten is
//! looked for by a word from the middle of its title instead of its start.
//!
//! The hit ratio is that mix replayed against a cache that keeps each answer (keyed by the folded
//! query, as the server folds it) for the page keys' TTL, at a steady rate of searches: the share
//! of requests a cache would have answered, counted after the first TTL (a cache that is filled).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Result, bail};
use marquee::movies::search_text;

use crate::client::{Conn, percentile};
use crate::common::{median, secs_ms};
use crate::lab;
use crate::report::{Row, Verdict, ms};

/// The page keys' TTL (PAGE_TTL_SECS' default), the life a cached search would have.
const TTL_SECS: f64 = 300.0;
/// Searches per second of the whole site, from a small site to a busy one.
const RATES: [f64; 3] = [1.0, 10.0, 100.0];
/// Requests timed one at a time, and replayed for the hit ratio.
const TIMED: usize = 400;
const REPLAYED: usize = 200_000;

/// Films to look for: each folded title, with its weight (IMDB votes, at least 1).
pub struct Titles {
    titles: Vec<String>,
    /// Running sums of the weights, for drawing in proportion to them.
    sums: Vec<f64>,
}

impl Titles {
    pub fn new(films: impl Iterator<Item = (String, Option<i64>)>) -> Self {
        let (mut titles, mut sums, mut total) = (Vec::new(), Vec::new(), 0.0);
        for (title, votes) in films {
            let folded = search_text(&title);
            if folded.is_empty() {
                continue;
            }
            total += votes.unwrap_or(0).max(1) as f64;
            titles.push(folded);
            sums.push(total);
        }
        Self { titles, sums }
    }

    fn draw(&self, rng: &mut fastrand::Rng) -> &str {
        let total = self.sums.last().copied().unwrap_or(0.0);
        let at = self.sums.partition_point(|s| *s < rng.f64() * total);
        self.titles.get(at.min(self.titles.len().saturating_sub(1))).map_or("", String::as_str)
    }

    /// `n` queries in the order they reach the server (see the module's comment).
    pub fn mix(&self, n: usize, seed: u64) -> Vec<String> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut out = Vec::with_capacity(n + 16);
        while out.len() < n {
            let title = self.draw(&mut rng);
            let words: Vec<&str> = title.split(' ').collect();
            let typed = if words.len() > 1 && rng.u8(..10) == 0 { words[1..].join(" ") } else { title.to_owned() };
            let first = typed.find(' ').unwrap_or(typed.len());
            let stop = rng.usize(first..=typed.len());
            for end in 1..=stop {
                if !typed.is_char_boundary(end) {
                    continue;
                }
                let q = typed[..end].trim_end();
                if (end == stop || rng.u8(..4) == 0) && !q.is_empty() {
                    out.push(q.to_owned());
                }
            }
        }
        out.truncate(n);
        out
    }
}

/// The share of `queries`, arriving at `rate` per second, that a cache keeping each answer for
/// `ttl` seconds would have answered (counted after the first `ttl`).
fn hit_ratio(queries: &[String], rate: f64, ttl: f64) -> f64 {
    let mut filled: HashMap<&str, f64> = HashMap::new();
    let (mut hits, mut counted) = (0u64, 0u64);
    for (i, q) in queries.iter().enumerate() {
        let now = i as f64 / rate;
        let hit = filled.get(q.as_str()).is_some_and(|at| now - at < ttl);
        if !hit {
            filled.insert(q, now);
        }
        if now >= ttl {
            counted += 1;
            hits += u64::from(hit);
        }
    }
    if counted == 0 { 0.0 } else { hits as f64 / counted as f64 }
}

fn path(q: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
    format!("/search?q={q}")
}

/// Times each path once, one at a time on one connection; milliseconds in request order.
async fn timed(addr: SocketAddr, paths: &[String]) -> Result<Vec<f64>> {
    let mut conn = Conn::open(addr).await?;
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let start = Instant::now();
        let r = conn.get(p).await?;
        out.push(secs_ms(start.elapsed()));
        if r.status != 200 {
            bail!("{p}: status {}", r.status);
        }
    }
    Ok(out)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn p(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, q)
}

/// The search rows of one catalog: the cost of a query on the mix against a warm cached list page
/// of the same server (what a cached search would cost), and the hit ratio a cache would have.
/// `cached_pages` are list pages already warm on `addr`.
pub async fn rows(
    scope: &str,
    addr: SocketAddr,
    titles: &Titles,
    cached_pages: &[String],
    rows: &mut Vec<Row>,
) -> Result<()> {
    let mix = titles.mix(REPLAYED, 0x5eed);
    // the timed requests: a stretch of the mix from its middle, as the server would meet it
    let timed_paths: Vec<String> = mix[REPLAYED / 2..REPLAYED / 2 + TIMED].iter().map(|q| path(q)).collect();
    timed(addr, &timed_paths[..20]).await?; // the connection, the statements' first preparation
    let search = timed(addr, &timed_paths).await?;
    let pages: Vec<String> = cached_pages.iter().cycle().take(TIMED).cloned().collect();
    let cached = timed(addr, &pages).await?;
    // a cache's cost on a miss: one more Redis round trip (a GET of a key that is not there)
    let mut redis = lab::connect().await?;
    let mut gets = Vec::with_capacity(200);
    for i in 0..200 {
        let start = Instant::now();
        redis::cmd("GET").arg(format!("marquee-bench:absent:{i}")).query_async::<Option<String>>(&mut redis).await?;
        gets.push(secs_ms(start.elapsed()));
    }
    let get = median(&gets);
    let long = timed_paths.iter().zip(&search).max_by(|a, b| a.1.total_cmp(b.1)).map(|(p, _)| p.clone());
    rows.push(
        Row::new(scope, format!("search, {TIMED} queries of the mix one at a time (page 1, uncached)"))
            .ours(format!("p50 {} · p99 {} · mean {}", ms(p(&search, 50.0)), ms(p(&search, 99.0)), ms(mean(&search))))
            .other(format!(
                "a warm cached list page: p50 {} · mean {} · slowest query: {}",
                ms(p(&cached, 50.0)),
                ms(mean(&cached)),
                long.unwrap_or_default()
            ))
            .ratio(mean(&search) / mean(&cached)),
    );
    let distinct = mix.iter().collect::<std::collections::HashSet<_>>().len();
    for rate in RATES {
        let h = hit_ratio(&mix, rate, TTL_SECS);
        // per search, on average: the hits answered at a cached page's cost instead of the
        // query's, the misses paying one more round trip (the write-back is deferred)
        let saved = h * (mean(&search) - mean(&cached)) - (1.0 - h) * get;
        rows.push(
            Row::new(scope, format!("caching search in Redis at {rate} searches/s (TTL {TTL_SECS:.0} s)"))
                .ours(format!("hit ratio {:.1}% of {REPLAYED} searches ({distinct} distinct)", h * 100.0))
                .other(format!("a miss costs one more GET: {}", ms(get)))
                .ratio_text(format!("{} saved per search", ms(saved)))
                .target(if saved > 0.1 { "pays" } else { "does not pay" }, Verdict::Info),
        );
    }
    Ok(())
}
