//! A TCP proxy the fault tests put between the app and PostgreSQL, to cut the database off.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::redis_server::free_port;

/// A TCP proxy in front of PostgreSQL that the test can cut (every connection dropped, new ones
/// refused) and restore, on the same port.
pub struct Proxy {
    pub port: u16,
    target: SocketAddr,
    accept: Option<JoinHandle<()>>,
    conns: Arc<std::sync::Mutex<JoinSet<()>>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let mut proxy = Self { port: free_port(), target, accept: None, conns: Arc::default() };
        proxy.up().await;
        proxy
    }

    pub async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("proxy port");
        let (target, conns) = (self.target, self.conns.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
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
}
