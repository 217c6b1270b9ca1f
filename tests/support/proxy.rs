//! A TCP proxy the fault tests put between the app and PostgreSQL or Redis, to cut the path (every
//! connection dropped) or to pause it (connections kept, nothing carried either way).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::redis_server::free_port;

/// A TCP proxy in front of a service that the test can cut (every connection dropped, new ones
/// refused) and restore, on the same port, or pause and resume.
pub struct Proxy {
    pub port: u16,
    target: SocketAddr,
    accept: Option<JoinHandle<()>>,
    conns: Arc<std::sync::Mutex<JoinSet<()>>>,
    /// `true` while paused: bytes read are held until it is `false` again.
    paused: watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let (paused, _) = watch::channel(false);
        let mut proxy = Self { port: free_port(), target, accept: None, conns: Arc::default(), paused };
        proxy.up().await;
        proxy
    }

    pub async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("proxy port");
        let (target, conns, paused) = (self.target, self.conns.clone(), self.paused.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let paused = paused.clone();
                let task = async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::join!(
                            carry(in_read, out_write, paused.subscribe()),
                            carry(out_read, in_write, paused.subscribe())
                        );
                    }
                };
                if let Ok(mut set) = conns.lock() {
                    set.spawn(task);
                }
            }
        }));
    }

    /// Closes the listening socket and every proxied connection, and waits until they are gone.
    pub async fn down(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let mut set = std::mem::take(&mut *self.conns.lock().expect("proxy connections"));
        set.shutdown().await;
    }

    /// Holds every byte either way (connections stay open; a call through the path times out)
    /// until `resume`.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

/// Copies `from` to `to` until either ends, holding what it read while paused; shuts `to` down
/// when `from` ends (once not paused).
async fn carry(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, mut paused: watch::Receiver<bool>) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !p).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // an end is carried as late as a byte would be
    let _ = paused.wait_for(|p| !p).await;
    let _ = to.shutdown().await;
}
