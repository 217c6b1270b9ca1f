//! A private `redis-server` for one test, on a free port: a real process the test may kill, pause
//! (SIGSTOP) and restart on the same port, without touching the shared Redis other tests use.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/redis-server";

/// A port nothing listens on right now (bound once by the OS, then let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Sends `signal` (`TERM`, `KILL`, `STOP`, `CONT`, …) to process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill(1) runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Where its snapshot is kept (`SAVE`), loaded again at each start; none: nothing persisted.
    dir: Option<std::path::PathBuf>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub async fn start() -> Self {
        let mut server = Self { port: free_port(), child: None, dir: None };
        server.restart().await;
        server
    }

    /// `start`, with a snapshot only when asked (`SAVE`), loaded again whenever it restarts: a
    /// restart then goes back to the last snapshot.
    pub async fn start_with_snapshots() -> Self {
        let dir = std::env::temp_dir().join(crate::helpers::unique("marquee_redis_"));
        std::fs::create_dir_all(&dir).expect("a snapshot directory");
        let mut server = Self { port: free_port(), child: None, dir: Some(dir) };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the server is running")
    }

    /// Starts the server (again) on its port, with nothing persisted, and waits for PING.
    pub async fn restart(&mut self) {
        self.spawn(&[]);
        self.wait_for("PING").await;
    }

    /// Starts the server again with `args` added, and waits only until it answers INFO: it may
    /// still be loading its snapshot, refusing every other command with LOADING.
    pub async fn restart_loading(&mut self, args: &[&str]) {
        self.spawn(args);
        self.wait_for("INFO").await;
    }

    fn spawn(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "the server is already running");
        let mut command = Command::new(BINARY);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .args(args);
        if let Some(dir) = &self.dir {
            command.arg("--dir").arg(dir);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
    }

    async fn wait_for(&self, command: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(Ok(mut conn)) =
                    tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await
                && redis::cmd(command).query_async::<redis::Value>(&mut conn).await.is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer {command}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, then waits for the process to be gone (the port is free again).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing until `resume`.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// A connection of the test's own.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        crate::helpers::redis_conn(&self.url()).await
    }

    /// The keys whose name starts with `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        keys_with_prefix(&mut self.conn().await, prefix).await
    }

    /// The number of client connections the server has open (`CLIENT LIST`, our own included).
    pub async fn clients(&self) -> usize {
        let mut conn = self.conn().await;
        let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.expect("client list");
        list.lines().filter(|l| !l.trim().is_empty()).count()
    }
}

/// The keys whose name starts with `prefix` (glob characters in it taken literally), sorted.
pub async fn keys_with_prefix(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    crate::helpers::scan(conn, &format!("{}*", glob_escape(prefix))).await
}

/// `text` as a SCAN MATCH pattern that matches only itself.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // a paused server does not die of SIGKILL any later than a running one, but be explicit
            let _ = Command::new("kill").arg("-CONT").arg(child.id().to_string()).status();
        }
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
