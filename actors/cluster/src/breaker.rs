//! A circuit breaker per call site: closed, open, half-open, over a sliding time window.
//!
//! Written here rather than taken from a crate: `tower` has no breaker, and `failsafe` (the
//! maintained one) lets every call through while half-open and only judges failure rates
//! after a whole window of traffic, which is wrong for the low-traffic call sites Emporium
//! has. This one opens on `consecutive_failures` in a row, or on `failure_rate` once the
//! window holds `min_calls`; after `open_for` it lets exactly one probe through.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The breaker's state as shown on the dashboard and in snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused at once.
    Open,
    /// One probe call is allowed to test the target.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: the value of the `emporium_breaker_state` gauge.
    pub fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Open when this fraction of the calls in the window failed...
    pub failure_rate: f64,
    /// ...and the window holds at least this many calls.
    pub min_calls: u32,
    /// Or when this many calls failed in a row.
    pub consecutive_failures: u32,
    /// The sliding window.
    pub window: Duration,
    /// How long to stay open before a probe.
    pub open_for: Duration,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Time until a probe will be let through.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

/// The breaker. Not thread-safe on its own: the call site keeps it behind a mutex.
#[derive(Debug)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    phase: Phase,
    outcomes: VecDeque<(Instant, bool)>,
    num_consecutive_failures: u32,
    num_opened: u64,
    num_rejected: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy) -> Self {
        CircuitBreaker {
            policy,
            phase: Phase::Closed,
            outcomes: VecDeque::new(),
            num_consecutive_failures: 0,
            num_opened: 0,
            num_rejected: 0,
        }
    }

    /// Changes thresholds live; the current state is kept.
    pub fn set_policy(&mut self, policy: BreakerPolicy) {
        self.policy = policy;
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { until } if now >= until => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Times the breaker opened.
    pub fn num_opened(&self) -> u64 {
        self.num_opened
    }

    /// Calls refused.
    pub fn num_rejected(&self) -> u64 {
        self.num_rejected
    }

    /// Asks to make a call at `now`.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Rejected> {
        match self.phase {
            Phase::Closed => Ok(()),
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen { probe_in_flight: true };
                Ok(())
            }
            Phase::Open { until } => {
                self.num_rejected += 1;
                Err(Rejected { retry_after: until - now })
            }
            Phase::HalfOpen { probe_in_flight: false } => {
                self.phase = Phase::HalfOpen { probe_in_flight: true };
                Ok(())
            }
            Phase::HalfOpen { probe_in_flight: true } => {
                self.num_rejected += 1;
                Err(Rejected { retry_after: Duration::from_millis(100) })
            }
        }
    }

    /// A call acquired earlier ended, well (`succeeded`) or badly, at `now`.
    pub fn record(&mut self, now: Instant, succeeded: bool) {
        while let Some(&(at, _)) = self.outcomes.front() {
            if now.duration_since(at) > self.policy.window {
                self.outcomes.pop_front();
            } else {
                break;
            }
        }
        self.outcomes.push_back((now, succeeded));
        if succeeded {
            self.num_consecutive_failures = 0;
        } else {
            self.num_consecutive_failures += 1;
        }
        match self.phase {
            Phase::HalfOpen { .. } if succeeded => {
                self.phase = Phase::Closed;
                self.outcomes.clear();
            }
            Phase::HalfOpen { .. } => self.open(now),
            Phase::Closed if !succeeded && self.should_open() => self.open(now),
            _ => {}
        }
    }

    /// A new instance of the service came up: an open breaker lets one probe through now
    /// instead of waiting out its open interval (a restarted node gets traffic as soon as it
    /// is registered; if the probe fails, the breaker opens again for a whole interval).
    pub fn probe_now(&mut self) {
        if let Phase::Open { .. } = self.phase {
            self.phase = Phase::HalfOpen { probe_in_flight: false };
        }
    }

    /// A call acquired earlier ended without telling anything about the target (for example
    /// the caller's own deadline was already spent): frees a half-open probe slot.
    pub fn release_without_outcome(&mut self) {
        if let Phase::HalfOpen { probe_in_flight: true } = self.phase {
            self.phase = Phase::HalfOpen { probe_in_flight: false };
        }
    }

    fn should_open(&self) -> bool {
        if self.num_consecutive_failures >= self.policy.consecutive_failures {
            return true;
        }
        let calls = self.outcomes.len() as u32;
        let failures = self.outcomes.iter().filter(|(_, succeeded)| !succeeded).count() as f64;
        calls >= self.policy.min_calls && failures / calls as f64 >= self.policy.failure_rate
    }

    fn open(&mut self, now: Instant) {
        self.phase = Phase::Open { until: now + self.policy.open_for };
        self.num_opened += 1;
        self.outcomes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failure_rate: 0.5,
            min_calls: 10,
            consecutive_failures: 3,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_new_instance_lets_a_probe_through_an_open_breaker_at_once() {
        let mut breaker = CircuitBreaker::new(policy());
        let now = Instant::now();
        breaker.probe_now();
        assert_eq!(breaker.state(now), BreakerState::Closed, "a closed breaker stays closed");
        for _ in 0..3 {
            breaker.try_acquire(now).unwrap();
            breaker.record(now, false);
        }
        assert!(breaker.try_acquire(now).is_err());
        breaker.probe_now();
        breaker.try_acquire(now).expect("one probe passes");
        assert!(breaker.try_acquire(now).is_err(), "only one");
        breaker.record(now, true);
        assert_eq!(breaker.state(now), BreakerState::Closed);
    }

    #[test]
    fn opens_after_consecutive_failures_even_at_low_traffic() {
        let mut breaker = CircuitBreaker::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            breaker.try_acquire(now).unwrap();
            breaker.record(now, false);
        }
        assert_eq!(breaker.state(now), BreakerState::Open);
        let rejected = breaker.try_acquire(now + Duration::from_secs(1)).unwrap_err();
        assert_eq!(rejected.retry_after, Duration::from_secs(4));
        assert_eq!(breaker.num_opened(), 1);
    }

    #[test]
    fn opens_on_failure_rate_once_the_window_has_enough_calls() {
        let mut breaker = CircuitBreaker::new(policy());
        let now = Instant::now();
        for index in 0..9 {
            breaker.record(now, index % 2 == 0);
        }
        assert_eq!(breaker.state(now), BreakerState::Closed, "9 calls are under min_calls");
        breaker.record(now, false);
        breaker.record(now, true);
        breaker.record(now, false);
        assert_eq!(breaker.state(now), BreakerState::Open);
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut breaker = CircuitBreaker::new(policy());
        let start = Instant::now();
        for _ in 0..4 {
            breaker.record(start, false);
            breaker.record(start, true);
        }
        breaker.record(start, true);
        // With those nine still in the window, one more failure would make 5 of 10 and open.
        let later = start + Duration::from_secs(11);
        breaker.record(later, false);
        assert_eq!(breaker.state(later), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_and_closes_on_success() {
        let mut breaker = CircuitBreaker::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            breaker.record(now, false);
        }
        let after = now + Duration::from_secs(5);
        assert_eq!(breaker.state(after), BreakerState::HalfOpen);
        breaker.try_acquire(after).unwrap();
        assert!(breaker.try_acquire(after).is_err(), "only one probe at a time");
        breaker.record(after, true);
        assert_eq!(breaker.state(after), BreakerState::Closed);
        breaker.try_acquire(after).unwrap();
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let mut breaker = CircuitBreaker::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            breaker.record(now, false);
        }
        let after = now + Duration::from_secs(6);
        breaker.try_acquire(after).unwrap();
        breaker.record(after, false);
        assert_eq!(breaker.state(after), BreakerState::Open);
        assert_eq!(breaker.num_opened(), 2);
    }
}
