//! What the consumer's driver shares with its handle and keeps across restarts of its task
//! ([`DriverShared`]: counters, recent dead letters, the retry book, the kill flag), and how
//! the driver is asked to end ([`Control`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::handle::ConsumerSnapshot;
use super::retry::RetryBook;
use crate::inbox::DeadLetter;

/// Dead letters a handle remembers for its snapshot.
pub(crate) const RECENT_DEAD_LETTERS: usize = 32;

/// How the driver is asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Go on.
    Run,
    /// Finish the current batch, then close.
    Stop,
    /// Close at once, acknowledging nothing more (as a crash would).
    Kill,
}

impl Control {
    /// The control that the stop signal and the kill flag say together.
    pub(crate) fn from_signals(stop: bool, kill: bool) -> Control {
        match (stop, kill) {
            (_, true) => Control::Kill,
            (true, false) => Control::Stop,
            (false, false) => Control::Run,
        }
    }
}

/// What the driver shares with its handle and keeps across restarts of its task: the
/// counters, the retry book, the kill flag and the test hook.
pub(crate) struct DriverShared {
    pub(crate) connected: AtomicBool,
    pub(crate) num_applied: AtomicU64,
    pub(crate) num_duplicates: AtomicU64,
    pub(crate) num_failures: AtomicU64,
    pub(crate) num_dead_lettered: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    pub(crate) recent_dead_letters: Mutex<VecDeque<DeadLetter>>,
    pub(crate) retry_book: Mutex<RetryBook>,
    /// On when the consumer is killed (its stop signal is on too).
    pub(crate) kill_tx: watch::Sender<bool>,
    /// Runs of the driver so far (more than one after a restart).
    pub(crate) num_driver_runs: AtomicU64,
    /// Test hook: the driver panics once at its next loop iteration.
    pub(crate) panic_requested: AtomicBool,
}

impl Default for DriverShared {
    fn default() -> Self {
        DriverShared {
            connected: AtomicBool::new(false),
            num_applied: AtomicU64::new(0),
            num_duplicates: AtomicU64::new(0),
            num_failures: AtomicU64::new(0),
            num_dead_lettered: AtomicU64::new(0),
            last_error: Mutex::new(None),
            recent_dead_letters: Mutex::new(VecDeque::new()),
            retry_book: Mutex::new(RetryBook::default()),
            kill_tx: watch::Sender::new(false),
            num_driver_runs: AtomicU64::new(0),
            panic_requested: AtomicBool::new(false),
        }
    }
}

impl DriverShared {
    pub(crate) fn record_error(&self, error: &str) {
        *self.last_error.lock() = Some(error.to_string());
    }

    /// Attached to the queue (`true`, clearing the last error) or not.
    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
        if connected {
            *self.last_error.lock() = None;
        }
    }

    /// Remembers `letter` among the most recent dead letters.
    pub(crate) fn remember_dead_letter(&self, letter: DeadLetter) {
        self.num_dead_lettered.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent_dead_letters.lock();
        if recent.len() == RECENT_DEAD_LETTERS {
            recent.pop_front();
        }
        recent.push_back(letter);
    }

    /// Panics when a test asked for it (once per request).
    pub(crate) fn panic_if_requested(&self, queue: &str) {
        if self.panic_requested.swap(false, Ordering::SeqCst) {
            panic!("consumer driver of {queue}: panic injected by a test");
        }
    }

    pub(crate) fn snapshot(&self, consumer: &str, queue: &str) -> ConsumerSnapshot {
        ConsumerSnapshot {
            consumer: consumer.to_string(),
            queue: queue.to_string(),
            connected: self.connected.load(Ordering::Acquire),
            num_applied: self.num_applied.load(Ordering::Relaxed),
            num_duplicates: self.num_duplicates.load(Ordering::Relaxed),
            num_failures: self.num_failures.load(Ordering::Relaxed),
            num_dead_lettered: self.num_dead_lettered.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
            recent_dead_letters: self.recent_dead_letters.lock().iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn letter(number: usize) -> DeadLetter {
        DeadLetter {
            consumer: "payment".into(),
            queue: "payment.order-events".into(),
            event_id: Some(format!("e{number}")),
            body: "{}".into(),
            reason: "test".into(),
            attempts: 1,
            dead_lettered_at: Utc::now(),
        }
    }

    #[test]
    fn a_kill_wins_over_a_stop() {
        assert_eq!(Control::from_signals(false, false), Control::Run);
        assert_eq!(Control::from_signals(true, false), Control::Stop);
        assert_eq!(Control::from_signals(true, true), Control::Kill);
        assert_eq!(Control::from_signals(false, true), Control::Kill);
    }

    #[test]
    fn the_snapshot_keeps_the_most_recent_dead_letters() {
        let shared = DriverShared::default();
        for number in 0..RECENT_DEAD_LETTERS + 3 {
            shared.remember_dead_letter(letter(number));
        }
        let snapshot = shared.snapshot("payment", "payment.order-events");
        assert_eq!(snapshot.num_dead_lettered, (RECENT_DEAD_LETTERS + 3) as u64);
        assert_eq!(snapshot.recent_dead_letters.len(), RECENT_DEAD_LETTERS);
        assert_eq!(snapshot.recent_dead_letters[0].event_id.as_deref(), Some("e3"), "oldest first");
    }

    #[test]
    fn attaching_clears_the_last_error_and_detaching_keeps_it() {
        let shared = DriverShared::default();
        shared.record_error("broker gone");
        shared.set_connected(false);
        let snapshot = shared.snapshot("payment", "q");
        assert!(!snapshot.connected);
        assert_eq!(snapshot.last_error.as_deref(), Some("broker gone"));
        shared.set_connected(true);
        let snapshot = shared.snapshot("payment", "q");
        assert!(snapshot.connected);
        assert_eq!(snapshot.last_error, None);
    }
}
