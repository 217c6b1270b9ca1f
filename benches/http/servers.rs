//! The processes and stores the bench owns: marquee servers (the release binary), their databases
//! (a SQLite file, a PostgreSQL database) and their Redis key prefixes. Everything is registered
//! with the `Janitor` when made and removed at the end, also after an error or Ctrl-C; a server is
//! stopped when its `Server` is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client;
use crate::lab;

pub const BIN: &str = env!("CARGO_BIN_EXE_marquee");
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const TOKEN: &str = "bench-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// A database of the bench's own.
#[derive(Debug, Clone)]
pub struct Database {
    pub url: String,
}

enum Trash {
    File(PathBuf),
    Dir(PathBuf),
    PgDatabase(String),
    Prefix(String),
}

/// Removes what the bench made, in reverse order.
#[derive(Default)]
pub struct Janitor {
    trash: Mutex<Vec<Trash>>,
}

impl Janitor {
    fn add(&self, t: Trash) {
        if let Ok(mut v) = self.trash.lock() {
            v.push(t);
        }
    }

    pub fn dir(&self, path: &Path) {
        self.add(Trash::Dir(path.to_owned()));
    }

    /// A key prefix no one else uses (and its keys removed at the end).
    pub fn prefix(&self, tag: &str) -> String {
        let prefix = format!("bench{}{}_{tag}:", std::process::id(), fastrand::u32(..));
        self.add(Trash::Prefix(prefix.clone()));
        prefix
    }

    pub async fn database(&self, backend: Backend, tmp: &Path, tag: &str) -> Result<Database> {
        let name = format!("bench_{}_{}_{tag}", std::process::id(), fastrand::u32(..));
        match backend {
            Backend::Sqlite => {
                let path = tmp.join(format!("{name}.db"));
                self.add(Trash::File(path.clone()));
                Ok(Database { url: format!("sqlite://{}", path.display()) })
            }
            Backend::Postgres => {
                admin_sql(&format!("create database {name}")).await.context("create the PostgreSQL database")?;
                self.add(Trash::PgDatabase(name.clone()));
                Ok(Database { url: format!("postgres://postgres@127.0.0.1:5432/{name}") })
            }
        }
    }

    /// The last lines of every server log, for an error report.
    pub fn log_tails(&self) -> String {
        let dirs: Vec<PathBuf> = self
            .trash
            .lock()
            .map(|v| v.iter().filter_map(|t| if let Trash::Dir(p) = t { Some(p.clone()) } else { None }).collect())
            .unwrap_or_default();
        let mut out = String::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    out.push_str(&format!(
                        "--- {}\n{}\n",
                        path.display(),
                        lines[lines.len().saturating_sub(15)..].join("\n")
                    ));
                }
            }
        }
        out
    }

    pub async fn clean(&self) {
        let trash = self.trash.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        for t in trash.into_iter().rev() {
            match t {
                Trash::File(p) => {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
                    }
                }
                Trash::Dir(p) => {
                    let _ = std::fs::remove_dir_all(p);
                }
                Trash::PgDatabase(name) => {
                    if let Err(e) = admin_sql(&format!("drop database if exists {name} with (force)")).await {
                        eprintln!("bench: could not drop database {name}: {e:#}");
                    }
                }
                Trash::Prefix(prefix) => match lab::connect().await {
                    Ok(mut c) => {
                        if let Err(e) = lab::unlink_prefix(&mut c, &prefix).await {
                            eprintln!("bench: could not remove the keys {prefix}*: {e:#}");
                        }
                    }
                    Err(e) => eprintln!("bench: could not remove the keys {prefix}*: {e:#}"),
                },
            }
        }
    }
}

pub async fn admin_sql(sql: &str) -> Result<()> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(PG_ADMIN).await?;
    sqlx::query(sql).execute(&mut conn).await?;
    let _ = conn.close().await;
    Ok(())
}

/// How to start one server.
pub struct Spec<'a> {
    pub name: &'a str,
    pub db: &'a Database,
    /// `None`: `REDIS_URL=off`.
    pub prefix: Option<&'a str>,
    /// The cache's `REDIS_URL` when `prefix` is set: `lab::REDIS`, or a cluster's seeds.
    pub redis: &'a str,
    pub static_dir: &'a Path,
    pub load_dataset: bool,
    /// More settings, over the bench's own.
    pub env: &'a [(&'a str, &'a str)],
}

/// A running marquee, stopped when dropped.
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The binary with only our settings (every documented variable cleared first).
pub fn command(db: &Database, bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (name, ..) in marquee::config::VARIABLES {
        cmd.env_remove(name);
    }
    cmd.env("DATABASE_URL", &db.url).env("LOG_FORMAT", "json").env("RUST_LOG", "warn");
    cmd
}

impl Server {
    pub async fn start(spec: Spec<'_>, tmp: &Path) -> Result<Self> {
        Self::start_built(spec, tmp, Path::new(BIN)).await
    }

    /// `spec` served by the binary at `bin` (another build of marquee, to compare in one run).
    pub async fn start_built(spec: Spec<'_>, tmp: &Path, bin: &Path) -> Result<Self> {
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let log = tmp.join(format!("{}.log", spec.name));
        let out = std::fs::File::create(&log)?;
        let mut cmd = command(spec.db, bin);
        cmd.arg("serve")
            .env("LISTEN_ADDR", addr.to_string())
            .env("REDIS_URL", spec.prefix.map_or("off", |_| spec.redis))
            .env("CACHE_PREFIX", spec.prefix.unwrap_or(""))
            .env("ADMIN_TOKEN", TOKEN)
            .env("STATIC_DIR", spec.static_dir)
            .env("LOAD_DATASET", if spec.load_dataset { "true" } else { "false" })
            .envs(spec.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd.spawn().with_context(|| format!("start {}", bin.display()))?;
        let mut server = Self { name: spec.name.to_owned(), addr, pid: child.id(), child, log };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = client::get(addr, "/readyz").await
                && r.status == 200
            {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("{} exited ({status}) at start:\n{}", server.name, server.log_tail());
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 300 s:\n{}", server.name, server.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// CPU time the server has used so far (user and system, every thread), in seconds: beside a
    /// rate, the cost of a request whatever else shares the machine.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // the fields after the command's name, which is in parentheses and may hold spaces
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are the stat file's 14th and 15th fields, in clock ticks (USER_HZ, 100 on Linux)
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / 100.0)
    }

    /// Peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first (a graceful stop), SIGKILL after 5 s.
        let _ = Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `marquee seed --count N` into `db`; returns the time it took.
pub async fn seed(db: &Database, count: u64) -> Result<Duration> {
    let mut cmd = command(db, Path::new(BIN));
    cmd.arg("seed").arg("--count").arg(count.to_string()).stdin(Stdio::null());
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let took = start.elapsed();
    if !out.status.success() {
        bail!("seed failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}
