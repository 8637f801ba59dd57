//! Faults: what went wrong inside a handler, recorded with what led to it.
//!
//! A process-wide panic hook captures the panic text and backtrace of panics raised inside a
//! supervised handler (and leaves other panics to the default hook), so the supervisor can turn
//! the unwind into a [`Fault`] instead of losing the arbiter.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use parking_lot::Mutex;
use serde::Serialize;

use crate::monitor::FlightEntry;

/// What went wrong: a handler failed, or something an operator must see happened around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A handler panicked.
    Panic,
    /// A handler returned a fatal error.
    Error,
    /// A supervisor gave up after too many restarts: the service is DOWN.
    Escalation,
    /// A message was set aside after its retries.
    DeadLetter,
    /// A circuit breaker opened: calls to a service fail fast.
    BreakerOpened,
}

impl FaultKind {
    /// The label of the faults metric.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Panic => "panic",
            FaultKind::Error => "error",
            FaultKind::Escalation => "escalation",
            FaultKind::DeadLetter => "dead_letter",
            FaultKind::BreakerOpened => "breaker_opened",
        }
    }
}

/// One recorded failure of a handler.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Sequence number on this node.
    pub id: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The actor's path in the supervision tree.
    pub actor_path: String,
    /// The type of the message being handled.
    pub message_type: &'static str,
    /// Panic or error.
    pub kind: FaultKind,
    /// The panic text or error message.
    pub error: String,
    /// Where it panicked, when a backtrace could be captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
    /// The trace the message belonged to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The last messages the actor handled, the failing one last.
    pub flight_record: Vec<FlightEntry>,
}

/// The node's bounded list of recent faults, newest last.
#[derive(Debug)]
pub struct FaultLog {
    faults: Mutex<VecDeque<Fault>>,
    capacity: usize,
    num_recorded: AtomicU64,
}

impl FaultLog {
    /// A log keeping the last `capacity` faults.
    pub fn new(capacity: usize) -> Self {
        FaultLog { faults: Mutex::new(VecDeque::new()), capacity, num_recorded: AtomicU64::new(0) }
    }

    /// Records a fault, giving it its id.
    pub fn record(&self, mut fault: Fault) -> Fault {
        fault.id = self.num_recorded.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::counter!("emporium_actor_faults_total", "actor" => fault.actor_path.clone(), "kind" => fault.kind.label())
            .increment(1);
        let mut faults = self.faults.lock();
        if faults.len() == self.capacity {
            faults.pop_front();
        }
        faults.push_back(fault.clone());
        fault
    }

    /// Faults recorded since the node started.
    pub fn num_recorded(&self) -> u64 {
        self.num_recorded.load(Ordering::Relaxed)
    }

    /// The faults still kept, oldest first.
    pub fn list(&self) -> Vec<Fault> {
        self.faults.lock().iter().cloned().collect()
    }
}

/// Text and backtrace of the last panic caught on this thread.
#[derive(Debug, Clone)]
pub struct CaughtPanic {
    /// The panic message and location.
    pub message: String,
    /// The captured backtrace.
    pub backtrace: Option<String>,
}

thread_local! {
    static SUPERVISED_DEPTH: Cell<u32> = const { Cell::new(0) };
    static LAST_PANIC: RefCell<Option<CaughtPanic>> = const { RefCell::new(None) };
}

static INSTALL_HOOK: Once = Once::new();

/// Installs the panic hook once per process. Panics outside supervised handlers still go to
/// the previous hook.
pub fn install_panic_hook() {
    INSTALL_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if SUPERVISED_DEPTH.with(Cell::get) == 0 {
                previous(info);
                return;
            }
            let location = info.location().map(|location| format!(" at {location}")).unwrap_or_default();
            let message = format!("{}{location}", payload_text(info.payload()));
            let backtrace = std::backtrace::Backtrace::force_capture().to_string();
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(CaughtPanic { message, backtrace: Some(backtrace) }));
        }));
    });
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Takes the panic the hook captured on this thread, or builds one from the payload.
fn take_caught_panic(payload: Box<dyn Any + Send>) -> CaughtPanic {
    LAST_PANIC
        .with(|last| last.borrow_mut().take())
        .unwrap_or_else(|| CaughtPanic { message: payload_text(payload.as_ref()), backtrace: None })
}

struct SupervisedScope;

impl SupervisedScope {
    fn enter() -> SupervisedScope {
        SUPERVISED_DEPTH.with(|depth| depth.set(depth.get() + 1));
        SupervisedScope
    }
}

impl Drop for SupervisedScope {
    fn drop(&mut self) {
        SUPERVISED_DEPTH.with(|depth| depth.set(depth.get() - 1));
    }
}

/// Runs `work`, turning a panic into `Err`.
pub fn catch_panic<T>(work: impl FnOnce() -> T) -> Result<T, CaughtPanic> {
    let _scope = SupervisedScope::enter();
    std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(take_caught_panic)
}

/// A future that turns a panic while polling its inner future into `Err`.
pub struct CatchPanic<T> {
    inner: LocalBoxFuture<'static, T>,
}

impl<T> CatchPanic<T> {
    /// Wraps `inner`.
    pub fn new(inner: LocalBoxFuture<'static, T>) -> Self {
        CatchPanic { inner }
    }
}

impl<T> Future for CatchPanic<T> {
    type Output = Result<T, CaughtPanic>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match catch_panic(|| inner.as_mut().poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_keeps_its_text_and_location() {
        install_panic_hook();
        let caught = catch_panic(|| -> u32 { panic!("boom {}", 42) }).unwrap_err();
        assert!(caught.message.starts_with("boom 42 at "), "{}", caught.message);
        assert!(caught.message.contains("fault.rs"));
        assert!(caught.backtrace.is_some());
    }

    #[test]
    fn the_log_is_bounded_and_numbers_faults() {
        let log = FaultLog::new(2);
        for index in 0..3 {
            log.record(Fault {
                id: 0,
                at: Utc::now(),
                actor_path: "a".into(),
                message_type: "M",
                kind: FaultKind::Error,
                error: format!("e{index}"),
                backtrace: None,
                trace_id: None,
                flight_record: Vec::new(),
            });
        }
        let faults = log.list();
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[1].id, 3);
        assert_eq!(faults[0].error, "e1");
        assert_eq!(log.num_recorded(), 3);
    }

    #[test]
    fn a_panicking_future_becomes_an_error() {
        install_panic_hook();
        let future = CatchPanic::new(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("late");
        }));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result: Result<(), CaughtPanic> = runtime.block_on(future);
        assert!(result.unwrap_err().message.starts_with("late"));
    }
}
