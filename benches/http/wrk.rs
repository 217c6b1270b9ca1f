//! Steady-state load from a second process: `wrk -t2 -c64 --latency` with a Lua script that
//! rotates over a list of paths (each thread starting at a different place) and prints its
//! summary as one machine-readable line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};

#[derive(Debug, Clone, Copy, Default)]
pub struct Wrk {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Socket errors and non-2xx/3xx answers.
    pub errors: u64,
    /// Redis calls the server gave up on during the run (set by the caller from /metrics).
    pub redis_errors: u64,
}

/// Writes a wrk script requesting `paths` in turn, with `headers` on every request.
pub fn script(dir: &Path, name: &str, paths: &[String], headers: &[(&str, &str)]) -> Result<PathBuf> {
    lua(dir, name, paths, headers, &[])
}

/// The same rotation, each path asked with `If-None-Match:` its tag in `etags` (as a browser
/// revalidates the page it stored).
pub fn revalidating(dir: &Path, name: &str, paths: &[String], etags: &[String]) -> Result<PathBuf> {
    lua(dir, name, paths, &[], etags)
}

fn lua(dir: &Path, name: &str, paths: &[String], headers: &[(&str, &str)], etags: &[String]) -> Result<PathBuf> {
    let quote = |s: &str| format!("{s:?}"); // Rust string escapes are valid Lua for these ASCII paths
    let mut lua = String::from("local paths = {\n");
    for p in paths {
        lua.push_str(&format!("  {},\n", quote(p)));
    }
    lua.push_str("}\nlocal etags = {\n");
    for tag in etags {
        lua.push_str(&format!("  {},\n", quote(tag)));
    }
    lua.push_str("}\nlocal headers = {\n");
    for (k, v) in headers {
        lua.push_str(&format!("  [{}] = {},\n", quote(k), quote(v)));
    }
    lua.push_str(
        r#"}
local n = #paths
local threads = 0
local i = 0
function setup(thread)
  thread:set("offset", threads * 7)
  threads = threads + 1
end
function init(args)
  i = (offset or 0) % n
end
function request()
  i = i % n + 1
  if #etags > 0 then
    headers["If-None-Match"] = etags[i]
  end
  return wrk.format("GET", paths[i], headers)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCHJSON %.0f %.0f %.0f %.0f %.0f\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"#,
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua)?;
    Ok(path)
}

/// `wrk -t2 -c{conns} -d{secs}s --latency -s script`.
pub async fn run(addr: SocketAddr, script: &Path, secs: u32, conns: u32) -> Result<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t2")
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}"));
    let out = tokio::task::spawn_blocking(move || cmd.output()).await?.context("run wrk (apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCHJSON "))
        .ok_or_else(|| anyhow!("no summary in wrk's output: {stdout}"))?;
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [requests, duration_us, p50_us, p99_us, errors] = v[..] else {
        bail!("bad wrk summary {line:?}");
    };
    Ok(Wrk {
        rps: requests / (duration_us / 1e6),
        p50_ms: p50_us / 1e3,
        p99_ms: p99_us / 1e3,
        requests: crate::client::count(requests),
        errors: crate::client::count(errors),
        redis_errors: 0,
    })
}

/// The median of each figure over rounds.
pub fn median(runs: &[Wrk]) -> Wrk {
    let med = |f: fn(&Wrk) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    Wrk {
        rps: med(|w| w.rps),
        p50_ms: med(|w| w.p50_ms),
        p99_ms: med(|w| w.p99_ms),
        requests: runs.iter().map(|w| w.requests).sum(),
        errors: runs.iter().map(|w| w.errors).sum(),
        redis_errors: runs.iter().map(|w| w.redis_errors).sum(),
    }
}
