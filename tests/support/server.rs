//! A real `marquee serve` process for the multi-server tests: its own port and log file, the
//! database and cache it is given, killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{TOKEN, unique};
use crate::redis_server::{free_port, signal};

/// Pages answered from a server's memory (the page tier), from its `/metrics` (see `metric`).
pub const KEPT_HITS: &str = "marquee_cache_hits_total{tier=\"memory\"";

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    child: Option<Child>,
    log: PathBuf,
    /// Whether the log stays when the server is dropped (see `keep_log`).
    keep: std::sync::atomic::AtomicBool,
}

impl Server {
    /// Starts the binary (it does not wait for it: see `wait_up`). `redis` is one URL or the
    /// comma-separated seeds of a cluster.
    pub fn spawn(database_url: &str, redis: &str, prefix: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{}.log", unique("marquee_server_")));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_marquee"));
        cmd.arg("serve")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", redis)
            .env("CACHE_PREFIX", prefix)
            .env("ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "marquee=info")
            .env("LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the binary starts");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
        let keep = std::sync::atomic::AtomicBool::new(false);
        Self { base: format!("http://127.0.0.1:{port}"), client, child: Some(child), log, keep }
    }

    /// Waits (up to `limit`) until the server answers /healthz; panics with its log if not.
    pub async fn wait_up(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.client.get(self.url("/healthz")).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not come up within {limit:?}:\n{}", self.base, self.log());
    }

    /// Where its log goes (a file under the temporary directory).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// Leaves the log in place when the server is dropped (it is removed otherwise, unless the
    /// test is failing).
    pub fn keep_log(&self) {
        self.keep.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let r = self.client.get(self.url(path)).send().await.expect("request");
        let status = r.status();
        (status, r.text().await.expect("body"))
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(TOKEN)
    }

    /// A counter's value on /metrics (summed over its labels).
    pub async fn metric(&self, name: &str) -> f64 {
        let (status, text) = self.get_text("/metrics").await;
        assert_eq!(status, StatusCode::OK);
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{', ','])))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server frozen as by a long pause, then thawed.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            signal(child.id(), if frozen { "STOP" } else { "CONT" });
        }
    }

    /// SIGKILL, from a shared reference: the process ends at once, nothing drained (reaped when
    /// dropped).
    pub fn crash(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "KILL");
        }
    }

    /// SIGKILL: the process ends at once, nothing drained.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep.load(std::sync::atomic::Ordering::Relaxed) && !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
