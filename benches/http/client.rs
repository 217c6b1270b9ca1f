//! A minimal HTTP/1.1 keep-alive client over tokio, for the parts of the bench that need exact
//! control over connections: the sweeps (each URL requested exactly once), the 200 simultaneous
//! cold requests (all connections open before the first byte is sent), the metrics scrapes and the
//! timed PUTs. wrk drives the steady-state load.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Response {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Conn {
    addr: SocketAddr,
    io: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self { addr, io: BufReader::with_capacity(64 * 1024, stream), line: String::new() })
    }

    /// Writes the request without reading the answer (see `read`).
    pub async fn write(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            req.push_str(name);
            req.push_str(": ");
            req.push_str(value);
            req.push_str("\r\n");
        }
        if !body.is_empty() || method != "GET" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.io.get_mut().write_all(&bytes).await?;
        Ok(())
    }

    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
        self.write(method, path, headers, body).await?;
        self.read().await
    }

    pub async fn get(&mut self, path: &str) -> Result<Response> {
        self.send("GET", path, &[], &[]).await
    }

    async fn read_line(&mut self) -> Result<&str> {
        self.line.clear();
        if self.io.read_line(&mut self.line).await? == 0 {
            bail!("the server closed the connection");
        }
        Ok(self.line.trim_end())
    }

    pub async fn read(&mut self) -> Result<Response> {
        let status_line = self.read_line().await?.to_owned();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut etag = None;
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                    chunked = true;
                } else if name.eq_ignore_ascii_case("etag") {
                    etag = Some(value.to_owned());
                }
            }
        }
        let mut body = Vec::with_capacity(length.unwrap_or(0));
        if chunked {
            loop {
                let size = usize::from_str_radix(self.read_line().await?.split(';').next().unwrap_or("0"), 16)?;
                if size == 0 {
                    while !self.read_line().await?.is_empty() {}
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.io.read_exact(&mut body[start..]).await?;
                self.read_line().await?;
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.io.read_exact(&mut body).await?;
        }
        Ok(Response { status, etag, body })
    }
}

/// Each path's `ETag`, checked: a GET naming it is answered 304 (what a browser revalidating the
/// page it stored gets).
pub async fn etags(addr: SocketAddr, paths: &[String]) -> Result<Vec<String>> {
    let mut conn = Conn::open(addr).await?;
    let mut tags = Vec::with_capacity(paths.len());
    for path in paths {
        let tag = conn.get(path).await?.etag.ok_or_else(|| anyhow!("{path}: no ETag"))?;
        let again = conn.send("GET", path, &[("If-None-Match", &tag)], &[]).await?;
        if again.status != 304 || !again.body.is_empty() {
            bail!("{path}: a GET naming its ETag got {} and {} bytes", again.status, again.body.len());
        }
        tags.push(tag);
    }
    Ok(tags)
}

/// One GET on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response> {
    Conn::open(addr).await?.get(path).await
}

/// The server's own counters, by metric name (labels included in the name when present).
pub async fn metrics(addr: SocketAddr) -> Result<HashMap<String, f64>> {
    let text = get(addr, "/metrics").await?.text();
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_owned(), value.parse().ok()?)))
        .collect())
}

/// The counters the bench reads per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub queries: f64,
    pub commands: f64,
    pub round_trips: f64,
    pub coalesced: f64,
    pub redis_errors: f64,
}

impl Counters {
    pub async fn read(addr: SocketAddr) -> Result<Self> {
        let m = metrics(addr).await?;
        let get = |name: &str| m.get(name).copied().unwrap_or(0.0);
        Ok(Self {
            queries: get("marquee_db_queries_total"),
            commands: get("marquee_redis_commands_total"),
            round_trips: get("marquee_redis_round_trips_total"),
            coalesced: get("marquee_coalesced_waits_total"),
            redis_errors: get("marquee_redis_errors_total"),
        })
    }

    pub fn since(self, before: Self) -> Self {
        Self {
            queries: self.queries - before.queries,
            commands: self.commands - before.commands,
            round_trips: self.round_trips - before.round_trips,
            coalesced: self.coalesced - before.coalesced,
            redis_errors: self.redis_errors - before.redis_errors,
        }
    }
}

/// Waits until the server has no deferred cache write pending (they run after the response).
pub async fn settle(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = metrics(addr).await?;
        let pending = m.get("marquee_deferred_writes_pending").copied().unwrap_or(0.0)
            + m.get("marquee_deferred_writes_tracked").copied().unwrap_or(0.0);
        if pending <= 0.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("deferred cache writes still pending after 15 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a sweep measured.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    pub latencies: Vec<Duration>,
    pub wall: Duration,
    pub failed: usize,
    pub bytes: usize,
    /// Redis calls the server gave up on (set by the caller from /metrics).
    pub redis_errors: u64,
}

impl Sweep {
    pub fn add(&mut self, other: Sweep) {
        self.latencies.extend(other.latencies);
        self.wall += other.wall;
        self.failed += other.failed;
        self.bytes += other.bytes;
        self.redis_errors += other.redis_errors;
    }

    pub fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        let mut v: Vec<f64> = self.latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, p)
    }
}

/// `p` in 0..=100 of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[expect(clippy::cast_possible_truncation, reason = "a rank within the sample's length")]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Requests every path once, `conns` at a time over connections opened beforehand; the wall time
/// runs from the first request to the last answer.
pub async fn sweep(addr: SocketAddr, paths: &[String], headers: &[(&str, &str)], conns: usize) -> Result<Sweep> {
    let n = conns.min(paths.len()).max(1);
    let mut opened = Vec::with_capacity(n);
    for _ in 0..n {
        opened.push(Conn::open(addr).await?);
    }
    let paths: Arc<Vec<String>> = Arc::new(paths.to_vec());
    let headers: Arc<Vec<(String, String)>> =
        Arc::new(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for mut conn in opened {
        let (paths, headers, next) = (paths.clone(), headers.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut out = Sweep::default();
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some(path) = paths.get(i) else { break };
                let t = Instant::now();
                let r = conn.send("GET", path, &hs, &[]).await?;
                out.latencies.push(t.elapsed());
                out.bytes += r.body.len();
                if r.status != 200 {
                    out.failed += 1;
                }
            }
            anyhow::Ok(out)
        }));
    }
    let mut total = Sweep::default();
    for t in tasks {
        total.add(t.await??);
    }
    total.wall = start.elapsed();
    Ok(total)
}

/// A Prometheus counter's value (a float in the exposition) as the whole number it counts.
#[expect(clippy::cast_possible_truncation, reason = "counters are whole numbers far below 2^53")]
pub fn count(x: f64) -> u64 {
    x.max(0.0).round() as u64
}
