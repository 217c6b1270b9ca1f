//! Coalescing: concurrent misses of the same key share ONE database read. The read runs on a task
//! of its own (it finishes, and gives its connection back, even when every request waiting for it
//! has gone); its cache write is handed to the first request that gets the result, to run once that
//! request's response is built, or written anyway when no request took it.
//!
//! A read stays joinable until its result is in the cache (its write releases it), so requests that
//! arrive between the read and the write do not read again; and a request that finds no read under
//! way but sees that one was released since it looked in the cache looks again instead of reading.
//! A write to the catalog forgets every read under way: nobody joins a read begun before it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::{Result, ServiceError};
use crate::cache::{Cache, WriteBatch};
use crate::deferred::Deferred;
use crate::stats::{Outcome, Stats};

/// A finished read is joinable for this long at most: its result normally reaches the cache (and
/// the read is released) within milliseconds; one whose write never came is not reused.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// How long a read's cache write waits for a request to take it before it is written anyway.
const UNCLAIMED_AFTER: Duration = Duration::from_millis(250);

/// What a database read gives: the value, and the cache write that stores it.
pub struct Loaded<V> {
    pub value: V,
    pub write: Option<WriteBatch>,
}

/// A read's value, with its cache write until a request takes it.
struct Read<V> {
    value: Arc<V>,
    write: Mutex<Option<WriteBatch>>,
}

type Flight<V> = Shared<BoxFuture<'static, Result<Arc<Read<V>>>>>;

/// A read under way: its id, when it began, and its result to share.
type Flights<K, V> = HashMap<K, (u64, Instant, Flight<V>)>;

/// The release count a request saw before it looked in the cache.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

pub struct Coalesce<K, V> {
    shared: Arc<State<K, V>>,
}

struct State<K, V> {
    flights: Mutex<Flights<K, V>>,
    next_id: AtomicU64,
    releases: AtomicU64,
    cache: Cache,
    deferred: Deferred,
    stats: Arc<Stats>,
}

/// What `get_or_load` found.
pub enum Got<V> {
    /// The value of a database read, this request's own or shared.
    Read(Arc<V>),
    /// No read under way, but one was released since the ticket: the cache holds it, look again.
    LookAgain,
}

impl<K, V> Coalesce<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(cache: Cache, deferred: Deferred, stats: Arc<Stats>) -> Self {
        let state = State {
            flights: Mutex::default(),
            next_id: AtomicU64::new(1),
            releases: AtomicU64::new(0),
            cache,
            deferred,
            stats,
        };
        Self { shared: Arc::new(state) }
    }

    /// Take one before looking in the cache, and hand it to `get_or_load` on a miss.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.shared.releases.load(Relaxed))
    }

    /// The value of `load`, a database read shared with the concurrent callers for `key`. `seen`:
    /// when no read is under way but one was released since, `LookAgain` instead of reading (with
    /// `None` a read always runs).
    pub async fn get_or_load<F>(&self, key: &K, seen: Option<Ticket>, load: impl FnOnce() -> F) -> Result<Got<V>>
    where
        F: Future<Output = Result<Loaded<V>>> + Send + 'static,
    {
        let state = &self.shared;
        let (flight, id, leader) = {
            let Ok(mut flights) = state.flights.lock() else {
                return Err(ServiceError::Panicked);
            };
            let current = flights.get(key).filter(|(_, began, f)| f.peek().is_none() || began.elapsed() < FRESH_FOR);
            match current {
                Some((id, _, flight)) => (flight.clone(), *id, false),
                None if seen.is_some_and(|Ticket(seen)| seen != state.releases.load(Relaxed)) => {
                    return Ok(Got::LookAgain);
                }
                None => {
                    let id = state.next_id.fetch_add(1, Relaxed);
                    let flight = self.start(key.clone(), id, load());
                    flights.insert(key.clone(), (id, Instant::now(), flight.clone()));
                    (flight, id, true)
                }
            }
        };
        if !leader {
            state.stats.coalesced_wait();
        }
        let read = match flight.await {
            Ok(read) => read,
            Err(e) => {
                self.release(key, id);
                return Err(e);
            }
        };
        if let Some(write) = read.write.lock().ok().and_then(|mut w| w.take()) {
            self.write_back(key.clone(), id, write);
        }
        Ok(Got::Read(read.value.clone()))
    }

    /// Spawns the read; a read whose write no request took within `UNCLAIMED_AFTER` is written then.
    fn start(&self, key: K, id: u64, load: impl Future<Output = Result<Loaded<V>>> + Send + 'static) -> Flight<V> {
        let this = self.clone();
        let task = tokio::spawn(async move {
            // a write-back's rows are as old as the moment their read began (see `WriteBatch::read_at`)
            let began = std::time::SystemTime::now();
            let Loaded { value, mut write } = load.await?;
            if let Some(write) = &mut write {
                write.read_at(began);
            }
            if write.is_none() {
                this.release(&key, id);
            }
            let read = Arc::new(Read { value: Arc::new(value), write: Mutex::new(write) });
            let unclaimed = read.clone();
            tokio::spawn(async move {
                tokio::time::sleep(UNCLAIMED_AFTER).await;
                if let Some(write) = unclaimed.write.lock().ok().and_then(|mut w| w.take()) {
                    this.write_back(key, id, write);
                }
            });
            Ok(read)
        });
        async move {
            task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "a shared database read panicked");
                Err(ServiceError::Panicked)
            })
        }
        .boxed()
        .shared()
    }

    /// Queues the read's cache write for after the response; the read is released once it was tried.
    fn write_back(&self, key: K, id: u64, write: WriteBatch) {
        let this = self.clone();
        self.shared.deferred.defer(Box::pin(async move {
            let outcome = Outcome::of(&this.shared.cache.write(&write).await);
            this.release(&key, id);
            outcome
        }));
    }

    /// Ends read `id` of `key` (a newer read of the same key is left alone).
    fn release(&self, key: &K, id: u64) {
        if let Ok(mut flights) = self.shared.flights.lock()
            && flights.get(key).is_some_and(|(current, ..)| *current == id)
        {
            flights.remove(key);
            self.shared.releases.fetch_add(1, Relaxed);
        }
    }

    /// Forgets every read under way: a write made them stale, so later requests read afresh.
    pub fn forget_all(&self) {
        if let Ok(mut flights) = self.shared.flights.lock() {
            flights.clear();
        }
    }
}

impl<K, V> Clone for Coalesce<K, V> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::config::Config;

    /// A coalescer whose cache is off: its writes are skipped, and release the read at once.
    fn coalesce() -> Coalesce<u32, u32> {
        let config = Config::from_lookup(|name| (name == "REDIS_URL").then(|| "off".to_owned())).unwrap();
        let stats = Arc::new(Stats::default());
        let cache = Cache::new(config.cache, stats.clone(), crate::hooks::Hooks::default()).unwrap();
        Coalesce::new(cache, Deferred::new(stats.clone()), stats)
    }

    fn value(got: Got<u32>) -> Option<u32> {
        match got {
            Got::Read(v) => Some(*v),
            Got::LookAgain => None,
        }
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_read() {
        let c = coalesce();
        let reads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, reads, gate) = (c.clone(), reads.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let load = || async move {
                    reads.fetch_add(1, Relaxed);
                    gate.notified().await;
                    Ok(Loaded { value: 42, write: None })
                };
                c.get_or_load(&7, None, load).await.ok().and_then(value)
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_waiters();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(42));
        }
        assert_eq!(reads.load(Relaxed), 1);
        assert_eq!(c.shared.stats.snapshot().coalesced_waits, 49);
    }

    #[tokio::test]
    async fn a_read_released_since_the_ticket_sends_the_caller_back_to_the_cache() {
        let c = coalesce();
        let ticket = c.ticket();
        // no write: released as soon as it is read
        let got = c.get_or_load(&1, None, || async { Ok(Loaded { value: 1, write: None }) }).await.unwrap();
        assert_eq!(value(got), Some(1));
        let again = c.get_or_load(&1, Some(ticket), || async { Ok(Loaded { value: 2, write: None }) }).await;
        assert!(matches!(again, Ok(Got::LookAgain)), "released since the ticket: look in the cache again");
        let fresh = c.get_or_load(&1, Some(c.ticket()), || async { Ok(Loaded { value: 3, write: None }) }).await;
        assert_eq!(fresh.ok().and_then(value), Some(3));
    }

    #[tokio::test]
    async fn a_read_stays_joinable_until_its_write_is_done_and_a_write_forgets_it() {
        let c = coalesce();
        let load = |n| move || async move { Ok(Loaded { value: n, write: Some(WriteBatch::default()) }) };
        // its cache write is deferred, outside a request spawned at once: joinable until it ran
        let first = c.get_or_load(&1, None, load(1)).await.ok().and_then(value);
        let joined = c.get_or_load(&1, None, load(2)).await.ok().and_then(value);
        assert_eq!((first, joined), (Some(1), Some(1)));
        c.forget_all();
        assert_eq!(c.get_or_load(&1, None, load(3)).await.ok().and_then(value), Some(3));
    }

    #[tokio::test]
    async fn a_read_that_panics_is_an_error_for_every_caller() {
        let c = coalesce();
        #[expect(clippy::panic, reason = "a read that panics, as a bug of ours would")]
        let got = c.get_or_load(&1, None, || async { panic!("a bug") }).await;
        assert!(matches!(got, Err(ServiceError::Panicked)));
        let again = c.get_or_load(&1, None, || async { Ok(Loaded { value: 5, write: None }) }).await;
        assert_eq!(again.ok().and_then(value), Some(5), "the failed read is not reused");
    }
}
