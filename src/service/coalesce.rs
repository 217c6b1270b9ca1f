//! Coalescing: concurrent misses of the same key share ONE database read. The read runs on a task
//! of its own (it finishes, and gives its connection back, even when every request waiting for it
//! has gone); its cache write is handed to the first request that gets the result, to run once that
//! request's response is built, or written anyway when no request took it.
//!
//! A read stays joinable until its result is in the cache (its write releases it), so requests that
//! arrive between the read and the write do not read again; and a request that finds no read under
//! way but sees that one was released since it looked in the cache looks again instead of reading.
//! A write to the catalog forgets every read under way: nobody joins a read begun before it.
//!
//! Nor may a request join a read begun before it arrived that could miss a write answered before
//! then — a write through another server, which this server's reads cannot forget. A request
//! joins a read that began after it arrived, or one begun under the token it knows itself (a
//! write answered before it arrived changed the token, and every lease learnt it: see
//! `cache::lease`). Otherwise it shares the next read of the key, which begins once the current
//! one has finished: the requests that arrive during one read share the one after it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
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

/// A read under way, or next.
struct Entry<V> {
    id: u64,
    /// When it was made (a finished read is reused for `FRESH_FOR` at most).
    made: Instant,
    /// When its database read began (unset while it waits for the read before it).
    began: Arc<OnceLock<Instant>>,
    /// The token its first request knew when it arrived.
    token: Option<u64>,
    flight: Flight<V>,
}

type Flights<K, V> = HashMap<K, Entry<V>>;

/// Taken when a request begins asking, before it looks in the cache: when it arrived, the token
/// its server knew then, and the release count it saw.
#[derive(Clone, Copy)]
pub struct Ticket {
    releases: Option<u64>,
    arrived: Instant,
    token: Option<u64>,
}

impl Ticket {
    /// A ticket that never sends its request back to the cache: a read always runs.
    pub fn always_read(self) -> Self {
        Self { releases: None, ..self }
    }
}

/// What a request does about a key's reads.
enum Step<V> {
    Join(Flight<V>, u64),
    Lead(Flight<V>, u64),
    ReadToken,
}

/// Whether a request holding `ticket` (knowing `token`) may take `entry`'s result.
fn joinable<V>(entry: &Entry<V>, ticket: &Ticket, token: Option<u64>) -> bool {
    entry.began.get().is_none_or(|began| *began >= ticket.arrived) || (token.is_some() && token == entry.token)
}

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
        Ticket {
            releases: Some(self.shared.releases.load(Relaxed)),
            arrived: Instant::now(),
            token: self.shared.cache.leased_token(),
        }
    }

    /// The value of `load`, a database read shared with the concurrent callers for `key` that may
    /// take it (see the module's comment). When no read is under way but one was released since
    /// the ticket was taken, `LookAgain` instead of reading (unless `Ticket::always_read`).
    pub async fn get_or_load<F>(&self, key: &K, ticket: Ticket, load: impl FnOnce() -> F) -> Result<Got<V>>
    where
        F: Future<Output = Result<Loaded<V>>> + Send + 'static,
    {
        let state = &self.shared;
        let (mut token, mut asked, mut load) = (ticket.token, false, Some(load));
        let (flight, id, leader) = loop {
            let step = {
                let Ok(mut flights) = state.flights.lock() else {
                    return Err(ServiceError::Panicked);
                };
                let current = flights.get(key).filter(|e| e.flight.peek().is_none() || e.made.elapsed() < FRESH_FOR);
                match current {
                    Some(e) if joinable(e, &ticket, token) => Step::Join(e.flight.clone(), e.id),
                    None if ticket.releases.is_some_and(|seen| seen != state.releases.load(Relaxed)) => {
                        return Ok(Got::LookAgain);
                    }
                    // without a lease: the token, read after this request arrived (once)
                    Some(Entry { token: Some(_), .. }) if !asked && token.is_none() => Step::ReadToken,
                    // none, or one begun before this request arrived under another token: the next
                    current => {
                        let after = current.map(|e| e.flight.clone());
                        let Some(load) = load.take() else { return Err(ServiceError::Panicked) };
                        let id = state.next_id.fetch_add(1, Relaxed);
                        let began = Arc::new(OnceLock::new());
                        let flight = self.start(key.clone(), id, after, began.clone(), load());
                        let entry = Entry { id, made: Instant::now(), began, token, flight: flight.clone() };
                        flights.insert(key.clone(), entry);
                        Step::Lead(flight, id)
                    }
                }
            };
            match step {
                Step::Join(flight, id) => break (flight, id, false),
                Step::Lead(flight, id) => break (flight, id, true),
                Step::ReadToken => {
                    token = state.cache.token().await;
                    asked = true;
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

    /// Spawns the read, once the read `after` has finished; a read whose write no request took
    /// within `UNCLAIMED_AFTER` is written then.
    fn start(
        &self,
        key: K,
        id: u64,
        after: Option<Flight<V>>,
        began_at: Arc<OnceLock<Instant>>,
        load: impl Future<Output = Result<Loaded<V>>> + Send + 'static,
    ) -> Flight<V> {
        let this = self.clone();
        let task = tokio::spawn(async move {
            if let Some(after) = after {
                let _ = after.await;
            }
            let _ = began_at.set(Instant::now());
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
            && flights.get(key).is_some_and(|e| e.id == id)
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
                c.get_or_load(&7, c.ticket().always_read(), load).await.ok().and_then(value)
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
        let got = c.get_or_load(&1, c.ticket(), || async { Ok(Loaded { value: 1, write: None }) }).await.unwrap();
        assert_eq!(value(got), Some(1));
        let again = c.get_or_load(&1, ticket, || async { Ok(Loaded { value: 2, write: None }) }).await;
        assert!(matches!(again, Ok(Got::LookAgain)), "released since the ticket: look in the cache again");
        let fresh = c.get_or_load(&1, c.ticket(), || async { Ok(Loaded { value: 3, write: None }) }).await;
        assert_eq!(fresh.ok().and_then(value), Some(3));
    }

    #[tokio::test]
    async fn a_read_stays_joinable_until_its_write_is_done_and_a_write_forgets_it() {
        let c = coalesce();
        let load = |n| move || async move { Ok(Loaded { value: n, write: Some(WriteBatch::default()) }) };
        let early = c.ticket();
        // its cache write is deferred, outside a request spawned at once: joinable until it ran
        let first = c.get_or_load(&1, c.ticket(), load(1)).await.ok().and_then(value);
        let joined = c.get_or_load(&1, early, load(2)).await.ok().and_then(value);
        assert_eq!((first, joined), (Some(1), Some(1)));
        c.forget_all();
        assert_eq!(c.get_or_load(&1, c.ticket(), load(3)).await.ok().and_then(value), Some(3));
    }

    #[tokio::test]
    async fn a_request_that_arrived_after_a_read_began_takes_it_only_under_the_same_token() {
        let c = coalesce();
        let load = |n| move || async move { Ok(Loaded { value: n, write: Some(WriteBatch::default()) }) };
        let first = c.get_or_load(&1, c.ticket(), load(1)).await.ok().and_then(value);
        // no token (no cache here) vouches that no write was answered since the read began
        let late = c.ticket();
        assert_eq!((first, c.get_or_load(&1, late, load(2)).await.ok().and_then(value)), (Some(1), Some(2)));
        let token = |t| Ticket { token: Some(t), ..c.ticket() };
        // a read begun under a token is taken by later requests knowing that token, not another
        c.forget_all();
        assert_eq!(c.get_or_load(&1, token(7), load(3)).await.ok().and_then(value), Some(3));
        assert_eq!(c.get_or_load(&1, token(7), load(4)).await.ok().and_then(value), Some(3));
        assert_eq!(c.get_or_load(&1, token(8), load(5)).await.ok().and_then(value), Some(5));
    }

    #[tokio::test]
    async fn a_read_that_panics_is_an_error_for_every_caller() {
        let c = coalesce();
        #[expect(clippy::panic, reason = "a read that panics, as a bug of ours would")]
        let got = c.get_or_load(&1, c.ticket(), || async { panic!("a bug") }).await;
        assert!(matches!(got, Err(ServiceError::Panicked)));
        let again = c.get_or_load(&1, c.ticket(), || async { Ok(Loaded { value: 5, write: None }) }).await;
        assert_eq!(again.ok().and_then(value), Some(5), "the failed read is not reused");
    }
}
