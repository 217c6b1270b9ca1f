//! The Redis Cluster the tests run against: three masters, each with a replica, on loopback started
//! by `.ci/redis-cluster` from Debian's redis-server when they are not already up, and stopped when
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

    fn signal(&self, port: u16, signal: &str) {
        let pid = std::fs::read_to_string(self.dir().join(format!("redis-{port}.pid"))).expect("the node's pid file");
        let status = Command::new("kill").args([signal, pid.trim()]).status().expect("kill runs");
        assert!(status.success(), "{signal} of the node on {port}");
    }

    /// SIGSTOP of the node on `port`: it keeps its sockets and answers nothing (a replica stopped
    /// so takes no writes from its master) until `resume`.
    pub fn pause(&self, port: u16) {
        self.signal(port, "-STOP");
    }

    pub fn resume(&self, port: u16) {
        self.signal(port, "-CONT");
    }

    /// SIGKILL of the node on `port` (a master: its replica takes its place after the node timeout).
    pub fn kill(&self, port: u16) {
        self.signal(port, "-KILL");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The ports of the nodes that answer as masters now.
    pub async fn masters(&self) -> Vec<u16> {
        self.with_role(true).await
    }

    /// The ports of the nodes that answer as replicas now.
    pub async fn replicas(&self) -> Vec<u16> {
        self.with_role(false).await
    }

    async fn with_role(&self, master: bool) -> Vec<u16> {
        let mut ports = Vec::new();
        for port in self.first..self.first + 6 {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up && is_master(port).await == master {
                ports.push(port);
            }
        }
        ports
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

/// The port of the master serving `key`, and of its replica, as the node on `port` sees them.
pub async fn master_and_replica(port: u16, key: &str) -> (u16, u16) {
    let mut conn = crate::helpers::redis_conn(&format!("redis://127.0.0.1:{port}")).await;
    let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut conn).await.expect("KEYSLOT");
    let text: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn).await.expect("CLUSTER NODES");
    // <id> <ip:port@bus> <flags> <master id or -> <ping> <pong> <epoch> <link> <slot ranges>...
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let port_of = |f: &[&str]| -> u16 { f[1].split([':', '@']).nth(1).and_then(|p| p.parse().ok()).expect("a port") };
    let serves = |range: &&str| {
        let (from, to) = range.split_once('-').unwrap_or((range, range));
        from.parse::<u16>().is_ok_and(|from| from <= slot) && to.parse::<u16>().is_ok_and(|to| slot <= to)
    };
    let master =
        lines.iter().find(|f| f[2].contains("master") && f[8..].iter().any(serves)).expect("the slot's master");
    let replica = lines.iter().find(|f| f[3] == master[0]).expect("the master's replica");
    (port_of(master), port_of(replica))
}

/// Whether the node on `port` is a master.
pub async fn is_master(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else { return false };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return false };
    let info: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await.unwrap_or_default();
    info.lines().any(|l| l.trim() == "role:master")
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", &self.first.to_string()]).status();
    }
}
