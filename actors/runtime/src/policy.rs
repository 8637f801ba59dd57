//! OTP-style supervision policy: which children restart, when, how often, and how fast.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which children restart when one of them fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RestartStrategy {
    /// Only the failed child restarts.
    #[default]
    OneForOne,
    /// Every child restarts.
    OneForAll,
    /// The failed child and every child started after it restart.
    RestForOne,
}

impl RestartStrategy {
    /// The indexes of the children to restart, besides the failed one, in a group of `len`.
    pub fn siblings_to_restart(self, failed_index: usize, len: usize) -> Vec<usize> {
        match self {
            RestartStrategy::OneForOne => Vec::new(),
            RestartStrategy::OneForAll => (0..len).filter(|&index| index != failed_index).collect(),
            RestartStrategy::RestForOne => (failed_index + 1..len).collect(),
        }
    }
}

/// Whether a child is restarted after it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal stop (a fault).
    Transient,
    /// Never restarted.
    Temporary,
}

impl RestartType {
    /// Whether a child that stopped (abnormally when `after_fault`) should restart.
    pub fn restarts(self, after_fault: bool) -> bool {
        match self {
            RestartType::Permanent => true,
            RestartType::Transient => after_fault,
            RestartType::Temporary => false,
        }
    }
}

/// The most restarts a supervisor allows within a period before it gives up and escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intensity {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// The sliding period.
    pub period: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Intensity { max_restarts: 5, period: Duration::from_secs(10) }
    }
}

/// Counts restarts in a sliding window and says when the intensity is exceeded.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    intensity: Intensity,
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    /// An empty window for `intensity`.
    pub fn new(intensity: Intensity) -> Self {
        RestartWindow { intensity, restarts: VecDeque::new() }
    }

    /// Records a restart at `now`; answers false when it exceeds the intensity (escalate).
    pub fn admit(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.duration_since(oldest) > self.intensity.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        self.restarts.len() as u32 <= self.intensity.max_restarts
    }

    /// Restarts within the period as of the last admission.
    pub fn num_recent(&self) -> usize {
        self.restarts.len()
    }

    /// Restarts within the period ending at `now`.
    pub fn num_within(&self, now: Instant) -> usize {
        self.restarts.iter().filter(|&&restart| now.duration_since(restart) <= self.intensity.period).count()
    }
}

/// Exponential backoff with full jitter between consecutive restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The delay before the first restart of a burst.
    pub min: Duration,
    /// The cap.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { min: Duration::from_millis(10), max: Duration::from_secs(5) }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (0 = the first of a burst): a random value
    /// between half of `min * 2^attempt` and all of it, capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.min.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        if ceiling.is_zero() {
            return ceiling;
        }
        let half = ceiling / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }
}

/// The whole policy of one supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SupervisionPolicy {
    /// Which children restart together.
    pub strategy: RestartStrategy,
    /// When children restart.
    pub restart: RestartType,
    /// How many restarts before escalating.
    pub intensity: Intensity,
    /// How fast restarts follow each other.
    pub backoff: Backoff,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_pick_the_right_siblings() {
        assert!(RestartStrategy::OneForOne.siblings_to_restart(1, 4).is_empty());
        assert_eq!(RestartStrategy::OneForAll.siblings_to_restart(1, 4), vec![0, 2, 3]);
        assert_eq!(RestartStrategy::RestForOne.siblings_to_restart(1, 4), vec![2, 3]);
        assert!(RestartStrategy::RestForOne.siblings_to_restart(3, 4).is_empty());
    }

    #[test]
    fn restart_types_follow_otp() {
        assert!(RestartType::Permanent.restarts(false));
        assert!(RestartType::Transient.restarts(true));
        assert!(!RestartType::Transient.restarts(false));
        assert!(!RestartType::Temporary.restarts(true));
    }

    #[test]
    fn the_sixth_restart_within_ten_seconds_escalates() {
        let mut window = RestartWindow::new(Intensity::default());
        let start = Instant::now();
        for second in 0..5 {
            assert!(window.admit(start + Duration::from_secs(second)));
        }
        assert!(!window.admit(start + Duration::from_secs(5)));
    }

    #[test]
    fn restarts_older_than_the_period_are_forgotten() {
        let mut window = RestartWindow::new(Intensity { max_restarts: 2, period: Duration::from_secs(10) });
        let start = Instant::now();
        assert!(window.admit(start));
        assert!(window.admit(start + Duration::from_secs(1)));
        assert!(window.admit(start + Duration::from_secs(12)));
        assert_eq!(window.num_recent(), 1, "both early restarts left the window");
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_caps() {
        let backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(1) };
        for _ in 0..50 {
            let first = backoff.delay(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff.delay(2);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(backoff.delay(30) <= Duration::from_secs(1));
        }
    }
}
