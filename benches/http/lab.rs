//! The bench talking to Redis directly: the connection, cleanup and fills, Redis's own counts
//! (MONITOR, INFO, MEMORY USAGE), and the invalidation sweeps timed from outside the server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig, ScanOptions};

use marquee::movies::Movie;

/// The Redis every server of the bench and the bench itself use.
pub const REDIS: &str = "redis://127.0.0.1:6379";

pub type Conn = MultiplexedConnection;

pub async fn connect() -> Result<Conn> {
    let client = redis::Client::open(REDIS)?;
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(120)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client.get_multiplexed_async_connection_with_config(&config).await.context("connect to Redis at 127.0.0.1:6379")
}

/// UNLINKs every key starting with `prefix` (SCAN MATCH, COUNT 1000), 1000 at a time as the scan
/// goes: the iterator holds `c`, the UNLINKs go on a clone of it. Returns how many.
/// After the token was removed behind the servers' backs: each server's lease renewal
/// (every quarter of the default 1 s lease) finds it gone and learns a new one, and from then on
/// its kept pages are misses.
pub async fn kept_pages_forgotten() {
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
}

/// UNLINKs every key of `prefix` (and waits for the servers to forget their kept pages).
pub async fn unlink_prefix(c: &mut Conn, prefix: &str) -> Result<u64> {
    let mut unlink = c.clone();
    let options = ScanOptions::default().with_pattern(format!("{prefix}*")).with_count(1000);
    let mut keys = c.scan_options::<String>(options).await?;
    let mut found = Vec::with_capacity(1000);
    let mut n = 0;
    while let Some(key) = keys.next_item().await {
        found.push(key?);
        if found.len() == 1000 {
            n += unlink_all(&mut unlink, &mut found).await?;
        }
    }
    n += unlink_all(&mut unlink, &mut found).await?;
    if n > 0 {
        kept_pages_forgotten().await;
    }
    Ok(n)
}

/// UNLINKs `keys` (if any) and empties it. Returns how many.
async fn unlink_all(c: &mut Conn, keys: &mut Vec<String>) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    redis::cmd("UNLINK").arg(&*keys).query_async::<()>(c).await?;
    let n = keys.len() as u64;
    keys.clear();
    Ok(n)
}

/// Redis's own view of what one server sends: a MONITOR connection counting the commands that
/// touch keys under `prefix`, at top level and inside scripts ("[0 lua]"). Redis is shared with
/// other users here, so `INFO commandstats` deltas would count their traffic too.
pub struct Monitor {
    task: tokio::task::JoinHandle<Result<(u64, u64)>>,
    marker: String,
}

impl Monitor {
    pub async fn start(prefix: &str) -> Result<Self> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let stream = tokio::net::TcpStream::connect("127.0.0.1:6379").await?;
        let (read, mut write) = stream.into_split();
        write.write_all(b"MONITOR\r\n").await?;
        let mut lines = BufReader::new(read).lines();
        let ok = lines.next_line().await?.unwrap_or_default();
        anyhow::ensure!(ok.starts_with("+OK"), "MONITOR answered {ok:?}");
        let marker = format!("{prefix}monitor-end-{}", fastrand::u64(..));
        let (prefix, end) = (prefix.to_owned(), marker.clone());
        let task = tokio::spawn(async move {
            let _write = write; // the connection stays open while we read
            let (mut top, mut lua) = (0, 0);
            while let Some(line) = lines.next_line().await? {
                if line.contains(&end) {
                    return Ok((top, lua));
                }
                if line.contains(&prefix) {
                    if line.contains(" lua]") { lua += 1 } else { top += 1 }
                }
            }
            anyhow::bail!("MONITOR connection closed")
        });
        Ok(Self { task, marker })
    }

    /// (commands at top level, commands inside scripts) since `start`.
    pub async fn finish(self, c: &mut Conn) -> Result<(u64, u64)> {
        redis::cmd("ECHO").arg(&self.marker).query_async::<String>(c).await?;
        tokio::time::timeout(Duration::from_secs(30), self.task).await.context("MONITOR did not see its marker")??
    }
}

/// `INFO` field as a number.
pub async fn info_field(c: &mut Conn, section: &str, field: &str) -> Result<f64> {
    let text: String = redis::cmd("INFO").arg(section).query_async(c).await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

pub async fn used_memory(c: &mut Conn) -> Result<f64> {
    info_field(c, "memory", "used_memory").await
}

/// The average of `MEMORY USAGE key SAMPLES 0` over `keys`.
pub async fn memory_usage(c: &mut Conn, keys: &[String]) -> Result<f64> {
    let mut total = 0u64;
    let mut n = 0u64;
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(c).await?;
        for s in sizes.into_iter().flatten() {
            total += s;
            n += 1;
        }
    }
    Ok(total as f64 / n.max(1) as f64)
}

/// marquee's own sweep, replayed from outside: SSCAN the set of page keys (COUNT 100), each
/// step's keys SREMed and UNLINKed (in that order) in one pipeline. Returns the time and the keys swept.
// A cursor loop of its own: the redis crate's `sscan`/`sscan_match` take no COUNT (only SCAN has
// `scan_options`), and its iterator does not show where one step ends.
pub async fn sweep_set(c: &mut Conn, set: &str) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, members): (u64, Vec<String>) =
            redis::cmd("SSCAN").arg(set).arg(cursor).arg("COUNT").arg(100).query_async(c).await?;
        if !members.is_empty() {
            n += members.len() as u64;
            let mut pipe = redis::pipe();
            pipe.cmd("SREM").arg(set).arg(&members).ignore();
            pipe.cmd("UNLINK").arg(&members).ignore();
            pipe.query_async::<()>(c).await?;
        }
        if next == 0 {
            return Ok((start.elapsed(), n));
        }
        cursor = next;
    }
}

/// The plain design: `SCAN MATCH {prefix}movies:page:* COUNT 100` over the whole keyspace, each
/// step's keys UNLINKed.
// A cursor loop of its own, as this is the measurement: one UNLINK per SCAN reply, as the loop
// has always timed it. The redis crate's `scan_options` iterator does not show where a reply ends;
// UNLINKing 100 found keys at a time instead makes this sweep about a third faster on the 3k
// keyspace, a change of the figure, not of the design measured.
pub async fn sweep_scan(c: &mut Conn, pattern: &str) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(100).query_async(c).await?;
        if !keys.is_empty() {
            n += keys.len() as u64;
            redis::cmd("UNLINK").arg(&keys).query_async::<()>(c).await?;
        }
        if next == 0 {
            return Ok((start.elapsed(), n));
        }
        cursor = next;
    }
}

pub async fn dbsize(c: &mut Conn) -> Result<u64> {
    Ok(redis::cmd("DBSIZE").query_async(c).await?)
}

/// Writes `films` as `{prefix}movie:{slug}` JSON strings (the server's own encoding), pipelined.
pub async fn fill_movies(c: &mut Conn, prefix: &str, movies: impl Iterator<Item = Movie>) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let mut n = 0u64;
    let mut pipe = redis::pipe();
    let mut in_pipe = 0;
    for movie in movies {
        let value = marquee::cache::encode_movie(&movie);
        pipe.cmd("SET").arg(format!("{prefix}movie:{}", movie.slug)).arg(value).arg("EX").arg(3600).ignore();
        in_pipe += 1;
        n += 1;
        if in_pipe == 2000 {
            pipe.query_async::<()>(c).await?;
            pipe = redis::pipe();
            in_pipe = 0;
        }
    }
    if in_pipe > 0 {
        pipe.query_async::<()>(c).await?;
    }
    Ok((start.elapsed(), n))
}

/// Writes page keys 1..=pages as the server would (a JSON array of 24 slugs, TTL 300 s, recorded
/// in the set of page keys). The slugs are only filler: the sweep does not read them.
pub async fn fill_pages(c: &mut Conn, keys: &marquee::cache::Keys, pages: u32, slugs: &[String]) -> Result<()> {
    let page: Vec<&str> = slugs.iter().take(24).map(String::as_str).collect();
    // order version 0: stale against any stamp, as pages cached before an order change are
    let value = serde_json::json!({ "v": 0, "slugs": page }).to_string();
    let set = keys.pages();
    for chunk in (1..=pages).collect::<Vec<_>>().chunks(2000) {
        let mut pipe = redis::pipe();
        let names: Vec<String> = chunk.iter().map(|&n| keys.page(n)).collect();
        for k in &names {
            pipe.cmd("SET").arg(k).arg(&value).arg("EX").arg(300).ignore();
        }
        pipe.cmd("SADD").arg(&set).arg(&names).ignore();
        pipe.cmd("EXPIRE").arg(&set).arg(600).ignore();
        pipe.query_async::<()>(c).await?;
    }
    Ok(())
}
