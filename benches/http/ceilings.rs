//! The ceilings marquee's warm pages are measured against: the very bytes of those pages, saved as
//! files, served by nginx (Debian's `nginx-light`, one worker, `sendfile`; or at full strength: a
//! worker per core and `gzip_static`) and by a bare
//! axum/hyper server that holds them in memory and does nothing else.
//!
//! The bare server is this bench's own binary started again with `--bare-server DIR PORT` (see
//! `serve_bare`): a process of its own, on the same tokio runtime settings as marquee, so that it
//! is measured the way marquee is. Both are stopped by their PID when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::Write as _;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::response::IntoResponse;

use crate::client;

/// A page saved for the ceilings: the path it is requested at and its body.
pub struct Saved {
    pub path: String,
    pub body: Vec<u8>,
}

/// GETs each of `paths` from `addr` (each must be a 200), for the ceilings to serve.
pub async fn save(addr: SocketAddr, paths: &[String]) -> Result<Vec<Saved>> {
    let mut conn = client::Conn::open(addr).await?;
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let r = conn.get(path).await?;
        if r.status != 200 {
            bail!("{path}: status {}", r.status);
        }
        out.push(Saved { path: path.clone(), body: r.body });
    }
    Ok(out)
}

/// Where nginx keeps a path's file under its root: `/movies?page=N` as `list/N.html`, a film's
/// `/movies/{slug}` as itself.
fn file_of(path: &str) -> Result<PathBuf> {
    if let Some(n) = path.strip_prefix("/movies?page=") {
        return Ok(PathBuf::from(format!("list/{n}.html")));
    }
    match path.strip_prefix("/movies/") {
        Some(slug) if !slug.contains(['/', '?', '.']) => Ok(PathBuf::from(format!("movies/{slug}"))),
        _ => bail!("no file for {path}"),
    }
}

/// A ceiling server, stopped (by its PID) when dropped.
pub struct Ceiling {
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        // SIGTERM, so that nginx's master stops its worker too (SIGKILL would orphan it); SIGKILL
        // if it has not gone within 5 s
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn until_served(addr: SocketAddr, probe: &str, child: &mut Child, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = client::get(addr, probe).await
            && r.status == 200
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited: {status}");
        }
        if Instant::now() > deadline {
            bail!("{name} did not serve {probe} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// nginx serving `pages` from files under `dir`, with one worker and `sendfile`, no access log.
pub async fn nginx(dir: &Path, pages: &[Saved]) -> Result<Ceiling> {
    nginx_with(dir, pages, false).await
}

/// nginx at full strength, as a site would run it for browsers: a worker per core, and each page
/// gzipped beside it (at the best level, once) for `gzip_static`.
pub async fn nginx_full(dir: &Path, pages: &[Saved]) -> Result<Ceiling> {
    nginx_with(dir, pages, true).await
}

async fn nginx_with(dir: &Path, pages: &[Saved], full: bool) -> Result<Ceiling> {
    let root = dir.join("nginx");
    for p in pages {
        let file = root.join(file_of(&p.path)?);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, &p.body)?;
        if full {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&p.body)?;
            let mut name = file.into_os_string();
            name.push(".gz");
            std::fs::write(name, gz.finish()?)?;
        }
    }
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    let (workers, gzip) = if full { ("auto", "  gzip_static on;\n") } else { ("1", "") };
    std::fs::write(
        &conf,
        format!(
            "worker_processes {workers};\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n\
               default_type text/html;\n  client_body_temp_path {d}/nginx-body;\n{gzip}\
               server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
                 location = /movies {{ try_files /list/$arg_page.html =404; }}\n\
                 location /movies/ {{ }}\n  }}\n}}\n",
            root = root.display()
        ),
    )?;
    let mut child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nginx is not installed (apt-get install nginx-light)")?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let probe = pages.first().map_or("/", |p| p.path.as_str());
    until_served(addr, probe, &mut child, "nginx").await?;
    Ok(Ceiling { addr, child })
}

/// Each of `pages` from `addr` as a browser asks for it (gzip accepted): a 200, gzipped, with the
/// page's bytes once unzipped. `Err` says which was not.
pub async fn check_gzipped(addr: SocketAddr, pages: &[Saved]) -> Result<()> {
    let mut conn = client::Conn::open(addr).await?;
    for p in pages {
        let r = conn.send("GET", &p.path, &[("Accept-Encoding", "gzip, deflate, br, zstd")], &[]).await?;
        let mut body = Vec::new();
        let unzipped = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut body);
        if r.status != 200 || unzipped.is_err() || body != p.body {
            bail!("{}: status {}, {} bytes, not the page gzipped", p.path, r.status, r.body.len());
        }
    }
    Ok(())
}

/// The bare server serving `pages` from memory (this binary, `--bare-server`).
pub async fn bare(dir: &Path, pages: &[Saved]) -> Result<Ceiling> {
    let store = dir.join("bare");
    std::fs::create_dir_all(&store)?;
    let mut index = String::new();
    for (i, p) in pages.iter().enumerate() {
        std::fs::write(store.join(i.to_string()), &p.body)?;
        index.push_str(&format!("{i} {}\n", p.path));
    }
    std::fs::write(store.join("index"), index)?;
    let port = free_port()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--bare-server")
        .arg(&store)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let probe = pages.first().map_or("/", |p| p.path.as_str());
    until_served(addr, probe, &mut child, "the bare server").await?;
    Ok(Ceiling { addr, child })
}

/// `--bare-server DIR PORT`: answers each path of DIR/index with its saved body, from memory, as
/// `text/html`; anything else with a 404. Nothing more: no middleware, no logging.
pub fn serve_bare(dir: &Path, port: u16) -> Result<()> {
    let index = std::fs::read_to_string(dir.join("index"))?;
    let mut pages: HashMap<String, Bytes> = HashMap::new();
    for line in index.lines() {
        let Some((i, path)) = line.split_once(' ') else { continue };
        pages.insert(path.to_owned(), Bytes::from(std::fs::read(dir.join(i))?));
    }
    let pages = std::sync::Arc::new(pages);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let pages = pages.clone();
        async move {
            let key = uri.path_and_query().map_or("/", |pq| pq.as_str());
            match pages.get(key) {
                Some(body) => {
                    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], body.clone()).into_response()
                }
                None => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    // the runtime marquee runs on: tokio's multi-threaded, one worker per core
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}
