//! When Redis is left alone: a circuit breaker that opens on a sustained failure rate, not on one
//! slow reply. A call that times out under a CPU spike costs its own request a database read; it
//! does not send every request to the database for the next half second.
//!
//! Closed: calls go through and are counted in fixed windows; the breaker opens when a window has
//! seen at least `min_failures` failures that are at least `failure_pct`% of its calls. Open:
//! no call goes through for `open_for`. Half-open: ONE call goes through as a probe (the others
//! still skip Redis); its success closes the breaker, its failure opens it again. A probe that
//! never reports back (its request was dropped) is replaced after another `open_for`.

use std::sync::Mutex;
use std::time::Duration;

pub use crate::config::BreakerConfig;

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Call,
    /// Call, as the one probe of a half-open breaker.
    Probe,
    /// Skip Redis.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { window_start: u64, calls: u32, failures: u32, streak: u32 },
    Open { until: u64 },
    HalfOpen { probe_since: u64 },
}

/// Times are milliseconds on the caller's clock.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self { config, state: Mutex::new(State::Closed { window_start: 0, calls: 0, failures: 0, streak: 0 }) }
    }

    pub fn admit(&self, now: u64) -> Admit {
        let Ok(mut state) = self.state.lock() else { return Admit::Call };
        match *state {
            State::Closed { .. } => Admit::Call,
            State::Open { until } if now < until => Admit::Skip,
            State::HalfOpen { probe_since } if now < probe_since.saturating_add(millis(self.config.open_for)) => {
                Admit::Skip
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { probe_since: now };
                Admit::Probe
            }
        }
    }

    /// Records how an admitted call ended. Returns true when this failure opened the breaker.
    pub fn record(&self, now: u64, ok: bool, probe: bool) -> bool {
        let Ok(mut state) = self.state.lock() else { return false };
        let open = State::Open { until: now.saturating_add(millis(self.config.open_for)) };
        match *state {
            State::HalfOpen { .. } if probe => {
                *state = if ok { State::Closed { window_start: now, calls: 0, failures: 0, streak: 0 } } else { open };
                !ok
            }
            State::Closed { window_start, calls, failures, streak } => {
                let fresh = now.saturating_sub(window_start) >= millis(self.config.window);
                let (start, calls, failures) = if fresh { (now, 0, 0) } else { (window_start, calls, failures) };
                let (calls, failures) = (calls.saturating_add(1), failures.saturating_add(u32::from(!ok)));
                let streak = if ok { 0 } else { streak.saturating_add(1) };
                let rate_reached = u64::from(failures) * 100 >= u64::from(self.config.failure_pct) * u64::from(calls);
                // a sustained rate, or as many failures in a row: an outage right after a busy
                // moment is not outvoted by the successes before it in the same window
                if !ok && failures >= self.config.min_failures && (rate_reached || streak >= self.config.min_failures) {
                    *state = open;
                    true
                } else {
                    *state = State::Closed { window_start: start, calls, failures, streak };
                    false
                }
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig::default())
    }

    #[test]
    fn one_slow_reply_among_many_good_ones_keeps_it_closed() {
        let b = breaker();
        for t in 0..1000 {
            assert_eq!(b.admit(t), Admit::Call);
            // every tenth call times out: 10%, under the 50% rate
            assert!(!b.record(t, t % 10 != 0, false));
        }
        assert_eq!(b.admit(1000), Admit::Call);
    }

    #[test]
    fn a_sustained_failure_rate_opens_it_and_one_probe_goes_through() {
        let b = breaker();
        let mut opened_at = None;
        for t in 0..100 {
            if b.admit(t) == Admit::Call && b.record(t, false, false) {
                opened_at = Some(t);
                break;
            }
        }
        // the 20th failure in a row opens it
        assert_eq!(opened_at, Some(19));
        assert_eq!(b.admit(20), Admit::Skip);
        assert_eq!(b.admit(518), Admit::Skip);
        // half-open: one probe, the others still skip
        assert_eq!(b.admit(519), Admit::Probe);
        assert_eq!(b.admit(520), Admit::Skip);
        assert_eq!(b.admit(600), Admit::Skip);
        // the probe failed: open again for another 500 ms
        assert!(b.record(601, false, true));
        assert_eq!(b.admit(700), Admit::Skip);
        assert_eq!(b.admit(1101), Admit::Probe);
        // the probe succeeded: closed
        assert!(!b.record(1102, true, true));
        assert_eq!(b.admit(1103), Admit::Call);
    }

    #[test]
    fn few_failures_do_not_open_it_even_at_a_high_rate() {
        let b = breaker();
        for t in 0..19 {
            assert!(!b.record(t, false, false));
        }
        assert_eq!(b.admit(19), Admit::Call);
        // a new window starts counting again
        assert!(!b.record(2_100, false, false));
        assert_eq!(b.admit(2_101), Admit::Call);
    }

    #[test]
    fn failures_in_a_row_open_it_even_after_many_successes() {
        let b = breaker();
        for t in 0..500 {
            assert!(!b.record(t, true, false));
        }
        for t in 500..519 {
            assert!(!b.record(t, false, false), "{t}");
        }
        assert!(b.record(519, false, false), "the twentieth failure in a row opens it");
        assert_eq!(b.admit(520), Admit::Skip);
    }

    #[test]
    fn a_lost_probe_is_replaced() {
        let b = breaker();
        for t in 0..20 {
            b.record(t, false, false);
        }
        assert_eq!(b.admit(519), Admit::Probe);
        // the probe's request was dropped and never reports back
        assert_eq!(b.admit(1000), Admit::Skip);
        assert_eq!(b.admit(1019), Admit::Probe);
    }

    #[test]
    fn the_old_rule_opens_on_one_failure() {
        let b = Breaker::new(BreakerConfig { min_failures: 1, failure_pct: 0, ..BreakerConfig::default() });
        for t in 0..100 {
            assert!(!b.record(t, true, false));
        }
        assert!(b.record(100, false, false));
        assert_eq!(b.admit(101), Admit::Skip);
    }
}
