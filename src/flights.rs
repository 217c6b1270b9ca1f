//! Request coalescing: concurrent misses of the same key share one database read. A flight stays
//! joinable until the cache holds its result (its deferred write releases it), so requests that
//! arrive between the read and the write do not read again. A write to the catalog forgets the
//! flights it makes stale, so nobody joins a read that started before it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

type Flight<V, E> = Shared<BoxFuture<'static, Result<Arc<V>, E>>>;
type Map<K, V, E> = HashMap<K, (u64, Instant, Flight<V, E>)>;
/// What a run gives: the read's result and who ran it.
type Ran<V, E> = (Result<Arc<V>, E>, Role);

/// A finished read is joinable for this long at most: its result normally reaches the cache (and
/// the flight is released) within milliseconds; one whose write-back never came is not reused.
const FRESH_FOR: Duration = Duration::from_secs(1);

pub struct Flights<K, V, E> {
    map: Mutex<Map<K, V, E>>,
    next_id: AtomicU64,
    /// Counts releases. A request notes it before looking in the cache; if a flight was released
    /// since, its result may be in the cache now, so the request looks again instead of reading.
    releases: AtomicU64,
}

impl<K, V, E> Default for Flights<K, V, E> {
    fn default() -> Self {
        Self { map: Mutex::default(), next_id: AtomicU64::new(1), releases: AtomicU64::new(0) }
    }
}

/// A read's task panicked. The flight turns it into an error of the caller's type (`E:
/// From<Panicked>`), so every waiting request gets an answer and the flight is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panicked;

/// Who ran the read: the first request, or one that joined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

impl<K, V, E> Flights<K, V, E>
where
    K: Hash + Eq + Clone,
    V: Send + Sync + 'static,
    E: Clone + Send + Sync + From<Panicked> + 'static,
{
    /// The current release count, to pass to `run` as `seen`.
    pub fn releases(&self) -> u64 {
        self.releases.load(Relaxed)
    }

    /// Joins the flight for `key`, or starts one with `start(flight_id)`. The started future must
    /// see to `release(key, flight_id)` once its result is in the cache (or failed to get there).
    /// `None` (nothing started) when there is no flight but one was released since `seen`: the
    /// caller should look in the cache again first.
    pub async fn run<F>(&self, key: &K, seen: Option<u64>, start: impl FnOnce(u64) -> F) -> Option<Ran<V, E>>
    where
        F: Future<Output = Result<Arc<V>, E>> + Send + 'static,
        V: Send + Sync + 'static,
        E: Send + 'static,
    {
        let (flight, role, id) = {
            let Ok(mut map) = self.map.lock() else {
                let id = self.next_id.fetch_add(1, Relaxed);
                return Some((start(id).await, Role::Leader));
            };
            let current =
                map.get(key).filter(|(_, started, flight)| flight.peek().is_none() || started.elapsed() < FRESH_FOR);
            match current {
                Some((id, _, flight)) => (flight.clone(), Role::Follower, *id),
                None if seen.is_some_and(|seen| seen != self.releases()) => return None,
                None => {
                    let id = self.next_id.fetch_add(1, Relaxed);
                    // The read runs on a task of its own, so that it finishes (and gives its
                    // database connection back) even when every request waiting for it has gone.
                    let task = tokio::spawn(start(id));
                    let flight = async move {
                        task.await.unwrap_or_else(|e| {
                            tracing::error!(error = %e, "a shared database read panicked");
                            Err(E::from(Panicked))
                        })
                    }
                    .boxed()
                    .shared();
                    map.insert(key.clone(), (id, Instant::now(), flight.clone()));
                    (flight, Role::Leader, id)
                }
            }
        };
        let result = flight.await;
        if result.is_err() {
            self.release(key, id);
        }
        Some((result, role))
    }

    /// Ends flight `id` of `key` (a newer flight of the same key is left alone).
    pub fn release(&self, key: &K, id: u64) {
        if let Ok(mut map) = self.map.lock()
            && map.get(key).is_some_and(|(current, ..)| *current == id)
        {
            map.remove(key);
            self.releases.fetch_add(1, Relaxed);
        }
    }

    /// Forgets the flight of `key`: later requests start a fresh read.
    pub fn forget(&self, key: &K) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(key);
        }
    }

    pub fn forget_all(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn concurrent_runs_share_one_read_until_released() {
        let flights: Arc<Flights<u32, u32, Panicked>> = Arc::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, reads, gate) = (flights.clone(), reads.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run(&7, None, |_| async move {
                        reads.fetch_add(1, Relaxed);
                        gate.notified().await;
                        Ok(Arc::new(42))
                    })
                    .await
                    .unwrap()
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_waiters();
        let mut leaders = 0;
        for t in tasks {
            let (value, role) = t.await.unwrap_or((Err(Panicked), Role::Follower));
            assert_eq!(value.map(|v| *v), Ok(42));
            leaders += usize::from(role == Role::Leader);
        }
        assert_eq!((reads.load(Relaxed), leaders), (1, 1));
        // not yet released: a late request still joins
        let (_, role) = flights.run(&7, None, |_| async { Ok(Arc::new(0)) }).await.unwrap();
        assert_eq!(role, Role::Follower);
        flights.forget(&7);
        let (value, role) = flights.run(&7, None, |_| async { Ok(Arc::new(1)) }).await.unwrap();
        assert_eq!((value.map(|v| *v), role), (Ok(1), Role::Leader));
    }

    #[tokio::test]
    async fn release_ends_only_its_own_flight() {
        let flights: Flights<u32, u32, Panicked> = Flights::default();
        let (_, _) = flights.run(&1, None, |_| async { Ok(Arc::new(1)) }).await.unwrap();
        flights.release(&1, 999);
        let (_, role) = flights.run(&1, None, |_| async { Ok(Arc::new(2)) }).await.unwrap();
        assert_eq!(role, Role::Follower);
    }

    #[tokio::test]
    async fn a_release_since_the_cache_was_read_sends_the_caller_back_to_it() {
        let flights: Flights<u32, u32, Panicked> = Flights::default();
        let seen = flights.releases();
        let (_, _) = flights.run(&1, None, |id| async move { Ok(Arc::new(u32::try_from(id).unwrap())) }).await.unwrap();
        flights.release(&1, 1);
        assert!(flights.run(&1, Some(seen), |_| async { Ok(Arc::new(2)) }).await.is_none());
        assert!(flights.run(&1, Some(flights.releases()), |_| async { Ok(Arc::new(2)) }).await.is_some());
    }
}
