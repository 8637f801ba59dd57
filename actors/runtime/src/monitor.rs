//! What every actor reports about itself: monotonic counters, mailbox depth, a handler-time
//! histogram, the message it is handling now, and a flight recorder of the last messages.
//!
//! Counters only grow; readers compute rates from two snapshots.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

/// Upper bounds, in microseconds, of the handler-time histogram buckets (the last is +Inf).
pub const HANDLER_TIME_BUCKETS_MICROS: [u64; 10] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000, 1_000_000];

/// The state of one actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorStatus {
    /// Handling messages.
    Running,
    /// Waiting out its restart backoff; messages queue meanwhile.
    BackingOff,
    /// Stopped for good (temporary child, or its supervisor gave up): answers errors.
    Terminated,
}

impl ActorStatus {
    fn from_code(code: u8) -> ActorStatus {
        match code {
            0 => ActorStatus::Running,
            1 => ActorStatus::BackingOff,
            _ => ActorStatus::Terminated,
        }
    }

    fn code(self) -> u8 {
        match self {
            ActorStatus::Running => 0,
            ActorStatus::BackingOff => 1,
            ActorStatus::Terminated => 2,
        }
    }
}

/// How a recorded message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still being handled.
    InFlight,
    /// Answered successfully.
    Ok,
    /// Answered with an error.
    Error,
    /// The handler panicked.
    Panic,
}

/// One entry of the flight recorder.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlightEntry {
    /// Sequence number of the message within this actor (monotonic across restarts).
    pub seq: u64,
    /// The message type.
    pub message_type: &'static str,
    /// When handling began.
    pub at: DateTime<Utc>,
    /// A redacted summary (field names only, never values).
    pub summary: String,
    /// The trace the message belonged to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took, once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_micros: Option<u64>,
}

/// The message an actor is handling now.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentMessage {
    /// Its type.
    pub message_type: &'static str,
    /// For how long it has been handled, in milliseconds.
    pub for_millis: u64,
}

/// A serializable copy of an actor's state at one instant.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActorSnapshot {
    /// The actor's path in the supervision tree (`echo/worker`).
    pub path: String,
    /// Its status.
    pub status: ActorStatus,
    /// Messages handled to completion (successes and errors).
    pub num_handled: u64,
    /// Messages answered with an error.
    pub num_errors: u64,
    /// Handler panics caught.
    pub num_panics: u64,
    /// Restarts.
    pub num_restarts: u64,
    /// Messages sent and not yet picked up.
    pub mailbox_depth: u64,
    /// Messages being handled (futures in flight).
    pub num_in_flight: u64,
    /// Handler time histogram: `[upper bound in µs or null for +Inf, count]`.
    pub handler_time_histogram: Vec<(Option<u64>, u64)>,
    /// Total handler time, in microseconds.
    pub handler_time_sum_micros: u64,
    /// The oldest message being handled now, and for how long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_message: Option<CurrentMessage>,
    /// The last messages handled, oldest first.
    pub flight_recorder: Vec<FlightEntry>,
}

/// The live, shared state behind an actor's snapshot. Cheap to update from the actor.
#[derive(Debug)]
pub struct ActorMonitor {
    path: String,
    status: AtomicU8,
    num_handled: AtomicU64,
    num_errors: AtomicU64,
    num_panics: AtomicU64,
    num_restarts: AtomicU64,
    num_enqueued: AtomicU64,
    num_dequeued: AtomicU64,
    num_started: AtomicU64,
    buckets: [AtomicU64; HANDLER_TIME_BUCKETS_MICROS.len() + 1],
    handler_time_sum_micros: AtomicU64,
    in_flight: Mutex<Vec<(u64, &'static str, Instant)>>,
    recorder: Mutex<VecDeque<FlightEntry>>,
    recorder_capacity: usize,
}

impl ActorMonitor {
    /// A monitor for the actor at `path` keeping the last `recorder_capacity` messages.
    pub fn new(path: impl Into<String>, recorder_capacity: usize) -> Self {
        ActorMonitor {
            path: path.into(),
            status: AtomicU8::new(ActorStatus::Running.code()),
            num_handled: AtomicU64::new(0),
            num_errors: AtomicU64::new(0),
            num_panics: AtomicU64::new(0),
            num_restarts: AtomicU64::new(0),
            num_enqueued: AtomicU64::new(0),
            num_dequeued: AtomicU64::new(0),
            num_started: AtomicU64::new(0),
            buckets: Default::default(),
            handler_time_sum_micros: AtomicU64::new(0),
            in_flight: Mutex::new(Vec::new()),
            recorder: Mutex::new(VecDeque::with_capacity(recorder_capacity)),
            recorder_capacity,
        }
    }

    /// The actor's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The actor's status.
    pub fn status(&self) -> ActorStatus {
        ActorStatus::from_code(self.status.load(Ordering::Acquire))
    }

    /// Sets the actor's status.
    pub fn set_status(&self, status: ActorStatus) {
        self.status.store(status.code(), Ordering::Release);
    }

    /// A sender put a message in the mailbox.
    pub fn record_enqueued(&self) {
        self.num_enqueued.fetch_add(1, Ordering::Relaxed);
    }

    /// A sender gave up on a message before the actor took it (so depth stays right).
    pub fn record_dropped_before_delivery(&self) {
        self.num_dequeued.fetch_add(1, Ordering::Relaxed);
    }

    /// The actor took a message; answers its sequence number.
    pub fn record_started(&self, message_type: &'static str, summary: String, trace_id: Option<String>) -> u64 {
        self.num_dequeued.fetch_add(1, Ordering::Relaxed);
        let seq = self.num_started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.lock().push((seq, message_type, Instant::now()));
        let mut recorder = self.recorder.lock();
        if recorder.len() == self.recorder_capacity {
            recorder.pop_front();
        }
        recorder.push_back(FlightEntry {
            seq,
            message_type,
            at: Utc::now(),
            summary,
            trace_id,
            outcome: Outcome::InFlight,
            elapsed_micros: None,
        });
        seq
    }

    /// The message `seq` ended with `outcome` after `elapsed`.
    pub fn record_finished(&self, seq: u64, outcome: Outcome, elapsed: Duration) {
        let micros = elapsed.as_micros() as u64;
        match outcome {
            Outcome::Ok | Outcome::InFlight => {}
            Outcome::Error => {
                self.num_errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Panic => {
                self.num_panics.fetch_add(1, Ordering::Relaxed);
            }
        }
        if outcome != Outcome::Panic {
            self.num_handled.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = HANDLER_TIME_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(HANDLER_TIME_BUCKETS_MICROS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.handler_time_sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.in_flight.lock().retain(|(in_flight_seq, _, _)| *in_flight_seq != seq);
        let mut recorder = self.recorder.lock();
        if let Some(entry) = recorder.iter_mut().rev().find(|entry| entry.seq == seq) {
            entry.outcome = outcome;
            entry.elapsed_micros = Some(micros);
        }
    }

    /// The actor restarted: messages that were in flight are gone with the old state.
    pub fn record_restart(&self) {
        self.num_restarts.fetch_add(1, Ordering::Relaxed);
        self.in_flight.lock().clear();
    }

    /// Restarts so far.
    pub fn num_restarts(&self) -> u64 {
        self.num_restarts.load(Ordering::Relaxed)
    }

    /// The last `count` flight-recorder entries, oldest first.
    pub fn recent_messages(&self, count: usize) -> Vec<FlightEntry> {
        let recorder = self.recorder.lock();
        let skip = recorder.len().saturating_sub(count);
        recorder.iter().skip(skip).cloned().collect()
    }

    /// A serializable copy of the current state.
    pub fn snapshot(&self) -> ActorSnapshot {
        let enqueued = self.num_enqueued.load(Ordering::Relaxed);
        let dequeued = self.num_dequeued.load(Ordering::Relaxed);
        let in_flight = self.in_flight.lock().clone();
        let current_message = in_flight.iter().min_by_key(|(_, _, since)| *since).map(|(_, message_type, since)| {
            CurrentMessage { message_type, for_millis: since.elapsed().as_millis() as u64 }
        });
        let mut handler_time_histogram = Vec::with_capacity(self.buckets.len());
        for (index, count) in self.buckets.iter().enumerate() {
            let bound = HANDLER_TIME_BUCKETS_MICROS.get(index).copied();
            handler_time_histogram.push((bound, count.load(Ordering::Relaxed)));
        }
        ActorSnapshot {
            path: self.path.clone(),
            status: self.status(),
            num_handled: self.num_handled.load(Ordering::Relaxed),
            num_errors: self.num_errors.load(Ordering::Relaxed),
            num_panics: self.num_panics.load(Ordering::Relaxed),
            num_restarts: self.num_restarts.load(Ordering::Relaxed),
            mailbox_depth: enqueued.saturating_sub(dequeued),
            num_in_flight: in_flight.len() as u64,
            handler_time_histogram,
            handler_time_sum_micros: self.handler_time_sum_micros.load(Ordering::Relaxed),
            current_message,
            flight_recorder: self.recorder.lock().iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_depth_and_recorder_follow_the_messages() {
        let monitor = ActorMonitor::new("echo/worker", 2);
        monitor.record_enqueued();
        monitor.record_enqueued();
        monitor.record_enqueued();
        let first = monitor.record_started("Echo", "{text}".into(), None);
        monitor.record_finished(first, Outcome::Ok, Duration::from_micros(80));
        let second = monitor.record_started("Crash", "{mode}".into(), Some("abc".into()));
        monitor.record_finished(second, Outcome::Panic, Duration::from_millis(3));
        let third = monitor.record_started("Sleep", "{millis}".into(), None);

        let snapshot = monitor.snapshot();
        assert_eq!(snapshot.num_handled, 1);
        assert_eq!(snapshot.num_panics, 1);
        assert_eq!(snapshot.mailbox_depth, 0);
        assert_eq!(snapshot.num_in_flight, 1);
        assert_eq!(snapshot.current_message.unwrap().message_type, "Sleep");
        assert_eq!(snapshot.flight_recorder.len(), 2, "capacity 2 keeps the last two");
        assert_eq!(snapshot.flight_recorder[0].outcome, Outcome::Panic);
        assert_eq!(snapshot.flight_recorder[1].seq, third);
        assert_eq!(snapshot.handler_time_histogram[0], (Some(100), 1));
        assert_eq!(snapshot.handler_time_histogram[5], (Some(5_000), 1));
    }

    #[test]
    fn restart_clears_in_flight_and_counts() {
        let monitor = ActorMonitor::new("a", 4);
        monitor.record_started("Sleep", String::new(), None);
        monitor.record_restart();
        let snapshot = monitor.snapshot();
        assert_eq!(snapshot.num_restarts, 1);
        assert!(snapshot.current_message.is_none());
    }
}
