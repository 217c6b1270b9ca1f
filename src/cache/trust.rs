//! Whether this server may answer from Redis at all: only while its relay has lately found nothing
//! in the cache log that Redis may lack.
//!
//! A write whose writer could not teach Redis (Redis stopped, unreachable from that server,
//! refusing writes, the breaker open) leaves Redis holding the older copy, and possibly the token
//! every server's kept pages are valid under. Such a writer hands its log rows over to the relays
//! and is answered only once they are applied, or once `CONFIRMED_FOR` has passed: by then every
//! server has looked at the log since the hand-over (and stopped trusting Redis until the rows are
//! applied), or its confirmation has run out. So a server trusts Redis — its pages, its films, its
//! token, and the pages it keeps under that token — only until `CONFIRMED_FOR` after the start of
//! its relay's last pass that found no row overdue (see `service::relay`), by its own monotonic
//! clock. A server whose relay cannot reach the database stops trusting Redis when that runs out.
//!
//! A lost connection (refused, reset) also ends trust until the next look: Redis may have
//! restarted from an older snapshot, which that look checks for (see `service::relay`) before
//! anything is read from it again. A timeout alone does not: a frozen Redis loses nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Cache, CacheError};

/// How long a look at the cache log that found nothing overdue lets a server trust Redis; also how
/// long a writer whose rows Redis has not taken waits at most before it is answered.
pub const CONFIRMED_FOR: Duration = Duration::from_secs(3);

#[derive(Default)]
pub(super) struct Trust {
    state: Mutex<State>,
}

#[derive(Default, Clone, Copy)]
struct State {
    /// Raised by every `distrust`: a look begun before it confirms nothing.
    generation: u64,
    until: Option<Instant>,
    /// The client's count of lost connections when the confirming look began.
    lost: u64,
}

/// A look at the cache log, begun: confirms trust from its start if nothing overdue was found and
/// nothing withdrew trust meanwhile.
#[derive(Clone, Copy)]
pub struct Look {
    began: Instant,
    generation: u64,
    lost: u64,
}

impl Cache {
    /// Call before reading the cache log.
    pub fn look(&self) -> Look {
        let generation = self.inner.trust.state.lock().map(|s| s.generation).unwrap_or(u64::MAX);
        Look { began: Instant::now(), generation, lost: self.inner.client.lost() }
    }

    /// A look begun now that vouches for Redis only as far as `earlier` did: its check of what
    /// Redis is (see `service::relay`) came before any connection lost since `earlier` began, and
    /// a lost connection may be a restart that check did not see.
    pub fn look_on(&self, earlier: Look) -> Look {
        Look { lost: earlier.lost, ..self.look() }
    }

    /// The look found nothing overdue in the cache log: Redis may be trusted until `CONFIRMED_FOR`
    /// after it began.
    pub fn confirm(&self, look: Look) {
        if let Ok(mut state) = self.inner.trust.state.lock()
            && state.generation == look.generation
        {
            let until = look.began + CONFIRMED_FOR;
            if state.lost != look.lost || state.until.is_none_or(|u| u <= Instant::now()) {
                tracing::debug!(lost = look.lost, "redis trusted again");
            }
            state.until = Some(state.until.map_or(until, |u| u.max(until)));
            state.lost = look.lost;
        }
    }

    /// Redis may lack a write (this server's own could not reach it, or the log holds rows
    /// overdue): nothing is read from it, nor kept under its token, until a look confirms it again.
    pub fn distrust(&self) {
        if let Ok(mut state) = self.inner.trust.state.lock() {
            state.generation += 1;
            state.until = None;
        }
        tracing::debug!("redis not trusted until a look at the cache log confirms it");
    }

    /// How many connections to Redis this server has lost so far: a mark for `unbroken_since`.
    pub fn connections_lost(&self) -> u64 {
        self.inner.client.lost()
    }

    /// `Err(Lost)` when a connection was lost since the mark `before` (see `connections_lost`):
    /// what was written before may have gone with a restart (from a snapshot without it), and
    /// what was written after may have reached the Redis that came back or not.
    pub fn unbroken_since(&self, before: u64) -> Result<(), CacheError> {
        if self.inner.client.lost() == before { Ok(()) } else { Err(CacheError::Lost) }
    }

    pub fn is_trusted(&self) -> bool {
        let Ok(state) = self.inner.trust.state.lock() else { return false };
        state.lost == self.inner.client.lost() && state.until.is_some_and(|until| Instant::now() < until)
    }

    /// `Err(Unconfirmed)` while Redis is not trusted.
    pub(super) fn trusted(&self) -> Result<(), CacheError> {
        if self.is_trusted() { Ok(()) } else { Err(CacheError::Unconfirmed) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::hooks::Hooks;
    use crate::stats::Stats;

    fn cache() -> Cache {
        let config = Config::from_lookup(|_| None).expect("the defaults");
        Cache::new(config.cache, Arc::new(Stats::default()), Hooks::default()).expect("cache")
    }

    #[tokio::test]
    async fn trusted_only_after_a_look_and_until_it_runs_out() {
        let cache = cache();
        assert!(!cache.is_trusted(), "nothing confirmed yet");
        let look = cache.look();
        cache.confirm(look);
        assert!(cache.is_trusted());
        let old = Look { began: Instant::now() - CONFIRMED_FOR, ..look };
        cache.distrust();
        cache.confirm(Look { generation: old.generation + 1, ..old });
        assert!(!cache.is_trusted(), "a look as old as the confirmation's length confirms nothing");
    }

    #[tokio::test]
    async fn a_look_begun_before_a_distrust_confirms_nothing() {
        let cache = cache();
        let look = cache.look();
        cache.distrust();
        cache.confirm(look);
        assert!(!cache.is_trusted());
        cache.confirm(cache.look());
        assert!(cache.is_trusted());
    }
}
