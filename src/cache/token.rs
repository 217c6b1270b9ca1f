//! The token (see `Keys::token`), read for many requests at once. A request may trust a
//! token only if it was read after the request arrived (a write answered before then has set a
//! newer one), so requests wait for a GET sent after they asked: the requests that arrive while
//! one GET is out share the next one. Under load, one GET answers every request that came in
//! during one Redis round trip, instead of one GET each.

use std::sync::{Arc, Mutex, Weak};

use redis::Cmd;
use tokio::sync::{Notify, oneshot};

use super::client::Connection;
use super::{Cache, CacheError, Inner};

/// The requests waiting for the next GET, and the reader task's wake-up.
#[derive(Default)]
pub(super) struct TokenReads {
    waiting: Mutex<Vec<oneshot::Sender<Option<u64>>>>,
    wake: Notify,
    /// Whether the reader task runs (started by the first request, in the runtime).
    started: std::sync::OnceLock<()>,
}

impl Cache {
    /// The current token, read after this call began (or known, while this server's lease runs): `None` when there is none, it is unreadable,
    /// Redis did not answer, or is not trusted (see `trust`). A reader who finds none sets one (unless another did first) for
    /// the readers after it, and keeps nothing it renders itself: its reads may have begun before
    /// a write that removed it.
    pub async fn token(&self) -> Option<u64> {
        if !self.is_trusted() {
            return None;
        }
        // while this server's lease runs, the token it knows is the current one
        if let Some(token) = self.inner.lease.current() {
            return Some(token);
        }
        let reads = &self.inner.token_reads;
        reads.started.get_or_init(|| {
            tokio::spawn(read_tokens(Arc::downgrade(&self.inner), self.inner.token_reads.clone()));
        });
        let (tx, rx) = oneshot::channel();
        reads.waiting.lock().ok()?.push(tx);
        reads.wake.notify_one();
        let token = rx.await.ok().flatten();
        // (asked again: see `read`)
        if !self.is_trusted() {
            return None;
        }
        token
    }

    /// One GET of the token (and a SET NX of a new one when there is none).
    async fn read_token(&self) -> Result<Option<u64>, CacheError> {
        let key = self.inner.keys.token();
        let get = |mut c: Connection| {
            let key = key.clone();
            async move { Cmd::hget(key, "token").query_async::<Option<String>>(&mut c).await }
        };
        let token = self.inner.client.call(1, get).await?;
        if token.is_none() {
            let set = super::batch::set_token(key, &fastrand::u64(..).to_string(), true);
            let set = |mut c: Connection| async move { set.query_async::<i64>(&mut c).await };
            // refused (out of memory, read-only): then nothing is kept until it can be
            let _ = self.inner.client.call(1, set).await;
        }
        Ok(token.and_then(|t| t.parse().ok()))
    }
}

/// The reader task: one GET for everyone waiting, again while anyone is, until the cache is gone.
async fn read_tokens(cache: Weak<Inner>, reads: Arc<TokenReads>) {
    loop {
        reads.wake.notified().await;
        loop {
            let batch = match reads.waiting.lock() {
                Ok(mut waiting) => std::mem::take(&mut *waiting),
                Err(_) => return,
            };
            if batch.is_empty() {
                break;
            }
            let Some(inner) = cache.upgrade() else { return };
            let token = Cache { inner }.read_token().await.ok().flatten();
            for waiter in batch {
                let _ = waiter.send(token);
            }
        }
    }
}
