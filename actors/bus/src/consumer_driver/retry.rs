//! The retry and dead-letter policy of a consumer: how many times an event was tried, when a
//! failed event is tried again or set aside, and when deliveries are applied one per batch.
//!
//! Attempts are counted per event id in memory (RabbitMQ 3.10's classic queues keep no
//! delivery count). The book lives beside the driver, not in it: a restart of the driver task
//! keeps the counts; a restart of the process gives each event `max_attempts` fresh attempts.

use std::collections::HashMap;
use std::time::Duration;

use emporium_contracts::ErrorKind;

use crate::config::BusConfig;

/// Event ids whose failures are remembered at most (the book starts over past it).
const MAX_TRACKED_FAILURES: usize = 100_000;

/// Failed attempts per event, and whether deliveries are being applied one at a time.
#[derive(Debug, Default)]
pub(crate) struct RetryBook {
    /// Failed attempts per event id.
    failures: HashMap<String, u32>,
    /// Deliveries to apply one per batch after a batch failed as a whole.
    isolate_next: usize,
}

/// What to do with an event whose handler failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FailureDecision {
    /// Deliver it again after this delay.
    RetryAfter(Duration),
    /// Set it aside, with this reason.
    DeadLetter { reason: String },
}

/// What to do after the consumer actor failed a whole batch (it answered no outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchFailureDecision {
    /// The batch held one event and the actor faulted on it: a failed attempt of that event.
    CountAgainstTheEvent,
    /// The actor faulted (a panic in a handler): deliver the batch again, one event per batch,
    /// so that the next fault names its event.
    RequeueOneByOne,
    /// The actor could not run (the database, the service is down): deliver the batch again
    /// after a pause.
    RequeueAfterPause,
}

impl RetryBook {
    /// The attempt a delivery of `event_id` is now (1 = first).
    pub(crate) fn attempt_of(&self, event_id: &str) -> u32 {
        self.failures.get(event_id).copied().unwrap_or(0) + 1
    }

    /// Forgets `event_id`'s failures (it was applied, is a duplicate, or was set aside).
    pub(crate) fn forget(&mut self, event_id: &str) {
        self.failures.remove(event_id);
    }

    /// Counts a failed attempt of `event_id`; answers the attempts so far.
    pub(crate) fn record_failure(&mut self, event_id: &str) -> u32 {
        if self.failures.len() >= MAX_TRACKED_FAILURES && !self.failures.contains_key(event_id) {
            self.failures.clear();
        }
        let count = self.failures.entry(event_id.to_string()).or_insert(0);
        *count += 1;
        *count
    }

    /// How many deliveries the next batch may take.
    pub(crate) fn next_batch_size(&self, configured: usize) -> usize {
        if self.isolate_next > 0 { 1 } else { configured }
    }

    /// The actor answered for a batch of `batch_size` deliveries.
    pub(crate) fn batch_answered(&mut self, batch_size: usize) {
        self.isolate_next = self.isolate_next.saturating_sub(batch_size);
    }

    /// The actor failed a whole batch: decides what comes next, and starts applying one
    /// delivery per batch when it was a fault (everything the broker may have sent meanwhile
    /// included).
    pub(crate) fn batch_failed(&mut self, kind: ErrorKind, batch_size: usize, prefetch: u16) -> BatchFailureDecision {
        if kind != ErrorKind::Fault {
            return BatchFailureDecision::RequeueAfterPause;
        }
        if batch_size == 1 {
            self.batch_answered(1);
            return BatchFailureDecision::CountAgainstTheEvent;
        }
        self.isolate_next = self.isolate_next.max(batch_size + prefetch as usize);
        BatchFailureDecision::RequeueOneByOne
    }

    /// Event ids with failures remembered.
    #[cfg(test)]
    pub(crate) fn num_tracked(&self) -> usize {
        self.failures.len()
    }
}

/// Whether an event that failed `attempts` times (`permanent` when its handler said it can
/// never succeed) is tried again, and when.
pub(crate) fn decide_after_failure(
    config: &BusConfig,
    attempts: u32,
    permanent: bool,
    reason: &str,
) -> FailureDecision {
    if permanent {
        return FailureDecision::DeadLetter { reason: format!("handler rejected the event: {reason}") };
    }
    if attempts >= config.max_attempts {
        return FailureDecision::DeadLetter { reason: format!("handler failed {attempts} times: {reason}") };
    }
    FailureDecision::RetryAfter(config.retry_delay_for(attempts))
}

/// The reason recorded with a message whose body is not an event envelope.
pub(crate) fn unreadable_reason(error: &impl std::fmt::Display) -> String {
    format!("unreadable message: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BusConfig {
        BusConfig { max_attempts: 3, retry_delay: Duration::from_millis(100), ..BusConfig::default() }
    }

    #[test]
    fn attempts_count_per_event_until_forgotten() {
        let mut book = RetryBook::default();
        assert_eq!(book.attempt_of("e1"), 1);
        assert_eq!(book.record_failure("e1"), 1);
        assert_eq!(book.record_failure("e1"), 2);
        assert_eq!(book.record_failure("e2"), 1);
        assert_eq!(book.attempt_of("e1"), 3);
        book.forget("e1");
        assert_eq!(book.attempt_of("e1"), 1);
        assert_eq!(book.attempt_of("e2"), 2);
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = RetryBook::default();
        for index in 0..MAX_TRACKED_FAILURES {
            book.record_failure(&format!("e{index}"));
        }
        assert_eq!(book.record_failure("e0"), 2, "a known event keeps its count at the bound");
        assert_eq!(book.record_failure("new"), 1);
        assert_eq!(book.num_tracked(), 1, "past the bound the book starts over");
    }

    #[test]
    fn failures_retry_with_growing_delays_then_dead_letter() {
        let config = config();
        assert_eq!(
            decide_after_failure(&config, 1, false, "db"),
            FailureDecision::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            decide_after_failure(&config, 2, false, "db"),
            FailureDecision::RetryAfter(Duration::from_millis(200))
        );
        assert_eq!(
            decide_after_failure(&config, 3, false, "db"),
            FailureDecision::DeadLetter { reason: "handler failed 3 times: db".to_string() }
        );
    }

    #[test]
    fn a_permanent_failure_is_dead_lettered_at_once() {
        assert_eq!(
            decide_after_failure(&config(), 1, true, "no such order"),
            FailureDecision::DeadLetter { reason: "handler rejected the event: no such order".to_string() }
        );
    }

    #[test]
    fn a_faulted_batch_is_applied_one_by_one_until_isolated() {
        let mut book = RetryBook::default();
        assert_eq!(book.next_batch_size(32), 32);
        assert_eq!(book.batch_failed(ErrorKind::Fault, 4, 8), BatchFailureDecision::RequeueOneByOne);
        for _ in 0..11 {
            assert_eq!(book.next_batch_size(32), 1);
            book.batch_answered(1);
        }
        assert_eq!(book.next_batch_size(32), 1);
        assert_eq!(book.batch_failed(ErrorKind::Fault, 1, 8), BatchFailureDecision::CountAgainstTheEvent);
        assert_eq!(book.next_batch_size(32), 32, "the last isolated delivery was counted");
    }

    #[test]
    fn an_actor_that_cannot_run_pauses_without_isolating() {
        let mut book = RetryBook::default();
        assert_eq!(book.batch_failed(ErrorKind::Unavailable, 4, 8), BatchFailureDecision::RequeueAfterPause);
        assert_eq!(book.batch_failed(ErrorKind::Unavailable, 1, 8), BatchFailureDecision::RequeueAfterPause);
        assert_eq!(book.next_batch_size(32), 32);
    }

    #[test]
    fn unreadable_messages_say_why() {
        assert_eq!(unreadable_reason(&"expected value at line 1"), "unreadable message: expected value at line 1");
    }
}
