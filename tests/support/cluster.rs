//! The Redis Cluster the tests run against: three masters on loopback started by
//! `.ci/redis-cluster` from Debian's redis-server when they are not already up, and stopped when
//! this test process exits (only the nodes it started). A test that breaks a cluster gets one of
//! its own on other ports.

use std::path::PathBuf;
use std::process::Command;

use tokio::sync::OnceCell;

/// The first port of the shared test cluster (never 6379).
pub const SHARED_PORT: u16 = 7101;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/redis-cluster")
}

/// The seed URLs of a cluster whose first port is `first`.
pub fn seeds(first: u16) -> Vec<String> {
    (first..first + 3).map(|p| format!("redis://127.0.0.1:{p}")).collect()
}

/// Starts the cluster at `first` unless it is up and healthy; stopped when this process exits.
async fn start(first: u16) {
    let status = tokio::task::spawn_blocking(move || {
        Command::new(script()).args(["start", &first.to_string(), "--owner", &std::process::id().to_string()]).status()
    })
    .await
    .expect("the cluster script ran")
    .expect("bash runs .ci/redis-cluster");
    assert!(status.success(), ".ci/redis-cluster start {first} failed");
}

/// The shared test cluster's seed URLs, started on first use.
pub async fn shared() -> Vec<String> {
    static STARTED: OnceCell<()> = OnceCell::const_new();
    STARTED.get_or_init(|| start(SHARED_PORT)).await;
    seeds(SHARED_PORT)
}

/// A cluster of the test's own, for breaking: stopped when dropped.
pub struct PrivateCluster {
    pub first: u16,
}

impl PrivateCluster {
    pub async fn start(first: u16) -> Self {
        start(first).await;
        Self { first }
    }

    pub fn seeds(&self) -> Vec<String> {
        seeds(self.first)
    }

    fn dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("marquee-cluster-{}", self.first))
    }

    /// SIGKILL of the node on `port` (a master: there are no replicas, so its slots fail).
    pub fn kill(&self, port: u16) {
        let pid = std::fs::read_to_string(self.dir().join(format!("redis-{port}.pid"))).expect("the node's pid file");
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status().expect("kill runs");
        assert!(status.success(), "SIGKILL of the node on {port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Starts the node on `port` again, as itself (its nodes.conf keeps its slots).
    pub fn revive(&self, port: u16) {
        let start = self.dir().join(format!("start-{port}.sh"));
        let status = Command::new("bash").arg(start).status().expect("bash runs");
        assert!(status.success(), "the node on {port} starts again");
        // daemonized: it may take a moment to listen
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the node on {port} does not listen 10 s after it was started again");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", &self.first.to_string()]).status();
    }
}
