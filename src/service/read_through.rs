//! The read-through mechanism, one home for the listing's pages and for films: look in the cache;
//! on a miss, share ONE database read between the concurrent requests that missed the same key;
//! hand the read's cache write to the first response that gets the result (it runs once that
//! response is built), or write it anyway when every client has hung up.

use std::hash::Hash;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Result, ServiceError};
use crate::cache::{Cache, WriteBatch};
use crate::deferred::Deferred;
use crate::flights::{Flights, Role};
use crate::stats::{Outcome, Stats};

/// How long a shared read's write-back waits for a request to take it before it is written anyway.
const UNCLAIMED_AFTER: Duration = Duration::from_millis(250);

/// What a database read gives: the value for the requests, and the cache write that stores it
/// (`None` when there is nothing to store).
pub struct Loaded<V> {
    pub value: V,
    pub write: Option<WriteBatch>,
}

/// What a look in the cache found: the answer, or what the database read needs to know of the miss.
pub enum Lookup<T, M> {
    Hit(T),
    Miss(M),
}

/// A database read shared by the requests that missed; derefs to its value.
pub struct Read<V> {
    value: V,
    /// The cache write and the flight it releases, taken by the first request that gets the read.
    write_back: Mutex<Option<(WriteBatch, u64)>>,
}

impl<V> Read<V> {
    fn take_write_back(&self) -> Option<(WriteBatch, u64)> {
        self.write_back.lock().ok().and_then(|mut w| w.take())
    }
}

impl<V> Deref for Read<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.value
    }
}

pub struct ReadThrough<K, V> {
    flights: Arc<Flights<K, Read<V>, ServiceError>>,
    cache: Cache,
    deferred: Deferred,
    stats: Arc<Stats>,
}

impl<K, V> ReadThrough<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(cache: Cache, deferred: Deferred, stats: Arc<Stats>) -> Self {
        Self { flights: Arc::default(), cache, deferred, stats }
    }

    /// Looks in the cache with `look`; on a miss, reads through with `load` and answers with
    /// `pick` of the read. When a read of this key finished (and so reached the cache) while we
    /// looked, we look once more instead of reading again.
    pub async fn get<T, M, LF, DF>(
        &self,
        key: &K,
        mut look: impl FnMut() -> LF,
        load: impl Fn(M) -> DF,
        pick: impl Fn(&V) -> T,
    ) -> Result<T>
    where
        LF: Future<Output = Result<Lookup<T, M>>>,
        DF: Future<Output = Result<Loaded<V>>> + Send + 'static,
    {
        let mut releases = Some(self.flights.releases());
        loop {
            let miss = match look().await? {
                Lookup::Hit(found) => return Ok(found),
                Lookup::Miss(miss) => miss,
            };
            match self.load(key, releases, || load(miss)).await {
                Some(read) => return read.map(|read| pick(&read)),
                None => releases = None,
            }
        }
    }

    /// Reads `key` from the database with `load`, shared with concurrent requests for it. `None`
    /// (nothing read) when no read of `key` is under way but one finished since `releases` were counted: its
    /// result is in the cache now. With `releases` `None` a read always runs.
    pub async fn load<DF>(
        &self,
        key: &K,
        releases: Option<u64>,
        load: impl FnOnce() -> DF,
    ) -> Option<Result<Arc<Read<V>>>>
    where
        DF: Future<Output = Result<Loaded<V>>> + Send + 'static,
    {
        let (read, role) = self
            .flights
            .run(key, releases, |id| {
                let this = self.handle(key);
                let loading = load();
                async move {
                    let Loaded { value, write } = loading.await?;
                    if write.is_none() {
                        this.flights.release(&this.key, id);
                    }
                    let read = Arc::new(Read { value, write_back: Mutex::new(write.map(|w| (w, id))) });
                    this.unclaimed(read.clone());
                    Ok(read)
                }
            })
            .await?;
        if role == Role::Follower {
            self.stats.coalesced_wait();
        }
        if let Ok(read) = &read
            && let Some((batch, id)) = read.take_write_back()
        {
            self.handle(key).write_back(batch, id);
        }
        Some(read)
    }

    /// Forgets every read under way: a write made them stale, so later requests read afresh.
    pub fn forget_all(&self) {
        self.flights.forget_all();
    }

    fn handle(&self, key: &K) -> Handle<K, V> {
        Handle {
            key: key.clone(),
            flights: self.flights.clone(),
            cache: self.cache.clone(),
            deferred: self.deferred.clone(),
        }
    }
}

/// What a read's follow-up work needs of its key, owned so that it can outlive the request.
struct Handle<K, V> {
    key: K,
    flights: Arc<Flights<K, Read<V>, ServiceError>>,
    cache: Cache,
    deferred: Deferred,
}

impl<K, V> Handle<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Queues the cache write for after the response; the flight is released once it was tried.
    fn write_back(self, batch: WriteBatch, id: u64) {
        let deferred = self.deferred.clone();
        deferred.defer(Box::pin(async move {
            let outcome = Outcome::of(&self.cache.write(&batch).await);
            self.flights.release(&self.key, id);
            outcome
        }));
    }

    /// A read whose requests have all gone (clients hung up) leaves its write-back unclaimed:
    /// after a moment, write it anyway, so the read still reaches the cache.
    fn unclaimed(self, read: Arc<Read<V>>) {
        tokio::spawn(async move {
            tokio::time::sleep(UNCLAIMED_AFTER).await;
            if let Some((batch, id)) = read.take_write_back() {
                self.write_back(batch, id);
            }
        });
    }
}
