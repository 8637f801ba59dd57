//! The relay's driver tasks and the handle a service keeps. The driver (`run`) asks the relay
//! actor to publish whenever a commit enqueued events (or the poll interval passed), backs off
//! while the broker or the database is down, and, on MariaDB/MySQL, makes sure only one
//! instance of a service relays at a time (`lock`); the lag reporter (`lag`) measures the
//! outbox lag and purges old sent rows.
//!
//! **Supervision.** Both loops are supervised tasks of the relay's group, beside the relay
//! actor: `<service>.outbox/driver` and `<service>.outbox/lag`. A panic in a loop, or a loop
//! that ends on its own, is a fault in the node's supervision tree (`/admin/v1/supervision`)
//! and the loop runs again with a fresh future after the policy's backoff. What must survive
//! such a restart lives outside the future, in `RelayState` (kept by the relay's context, so
//! the relay actor counts what it published and what came back unroutable there too): the
//! snapshot (role, counters, last lag) and whether the relay held its lock. Each run rebuilds
//! the rest (its lock connection, its commit signal) from it. Both loops end for good when the handle stops them
//! ([`RelayHandle::stop`], or dropping it) or when the node stops (`ServiceContext::lifecycle`),
//! and the node waits for them at shutdown.
//!
//! **Single relay per service and database.** The driver holds `GET_LOCK('emporium_bus_relay:..')`
//! on a dedicated connection while it relays; other instances stand by and try again every
//! second. The lock goes with its connection, so a crashed instance, or a driver run that
//! panicked (its connection is dropped with its future), frees it at once; a restarted run that
//! held the lock waits briefly for the server to let it go and takes it again. Its hold is
//! checked at most every second: in the short window after a lost connection two relays may
//! publish the same rows, which consumers dedupe.

mod lag;
mod lock;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use emporium_cluster::Lifecycle;
use emporium_runtime::{CellHandle, ServiceGroup, ServiceSupervision, TaskContext, TaskHandle};
use futures::future::LocalBoxFuture;
use parking_lot::Mutex;
use serde::Serialize;

use crate::ask::ask;
use crate::error::BusError;
use crate::messages::MeasureOutboxLag;
use crate::outbox::OutboxLag;
use crate::relay::{OutboxRelay, RelayContext};
use crate::stop_signal::StopSignal;

/// The name of the relay's driver task in its group (`<service>.outbox/driver`).
pub const DRIVER_TASK: &str = "driver";
/// The name of the relay's lag reporter task in its group (`<service>.outbox/lag`).
pub const LAG_TASK: &str = "lag";

/// What a relay is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayRole {
    /// Starting, or waiting until the in-process bus opens delivery.
    Starting,
    /// Publishing.
    Active,
    /// Another instance of the service relays; this one waits to take over.
    Standby,
    /// Stopped.
    Stopped,
}

/// A serializable view of a relay.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelaySnapshot {
    /// The service whose outbox it relays.
    pub service: String,
    /// What it is doing.
    pub role: RelayRole,
    /// The last measured lag.
    pub lag: OutboxLag,
    /// Rows published since start.
    pub num_published: u64,
    /// Failed publish batches since start (a batch with unroutable rows counts as failed).
    pub num_failures: u64,
    /// Publishes of events a consumer of the contracts' topology wants that reached no queue
    /// (RabbitMQ returned them, or no in-process queue took them), since start: each stays in
    /// the outbox and is published again with backoff. Also the counter
    /// `emporium_bus_unroutable_total` (labels `service`, `event_type`).
    pub num_unroutable: u64,
    /// The last failure, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What the relay's actor and loops share and keep across their restarts.
pub(crate) struct RelayState {
    pub(crate) snapshot: Mutex<RelaySnapshot>,
    /// Whether the driver held the relay lock when its last run ended or broke off.
    pub(crate) lock_held: AtomicBool,
    /// Runs of the driver so far (more than one after a restart).
    pub(crate) num_driver_runs: AtomicU64,
    /// Test hook: the driver panics once at its next loop iteration.
    pub(crate) panic_requested: AtomicBool,
}

impl RelayState {
    pub(crate) fn new(service: &str) -> RelayState {
        RelayState {
            snapshot: Mutex::new(RelaySnapshot {
                service: service.to_string(),
                role: RelayRole::Starting,
                lag: OutboxLag::default(),
                num_published: 0,
                num_failures: 0,
                num_unroutable: 0,
                last_error: None,
            }),
            lock_held: AtomicBool::new(false),
            num_driver_runs: AtomicU64::new(0),
            panic_requested: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_role(&self, role: RelayRole) {
        self.snapshot.lock().role = role;
    }

    /// Counts rows published and marked sent (by the relay actor).
    pub(crate) fn record_published(&self, num_published: usize) {
        self.snapshot.lock().num_published += num_published as u64;
    }

    /// A batch went out whole: the last failure is over.
    pub(crate) fn record_success(&self) {
        self.snapshot.lock().last_error = None;
    }

    pub(crate) fn record_unroutable(&self, num_unroutable: usize) {
        self.snapshot.lock().num_unroutable += num_unroutable as u64;
    }

    pub(crate) fn record_failure(&self, error: &str) {
        let mut snapshot = self.snapshot.lock();
        snapshot.num_failures += 1;
        snapshot.last_error = Some(error.to_string());
    }

    /// Panics when a test asked for it (once per request).
    pub(crate) fn panic_if_requested(&self) {
        if self.panic_requested.swap(false, Ordering::SeqCst) {
            let service = self.snapshot.lock().service.clone();
            panic!("relay driver of {service}: panic injected by a test");
        }
    }
}

/// The relay's running loops, before the group is finished.
pub(crate) struct RelayLoops {
    pub(crate) state: Arc<RelayState>,
    stop_signal: StopSignal,
    driver: TaskHandle,
    lag_reporter: TaskHandle,
}

/// Starts the relay's driver and lag reporter as supervised tasks of `group` (the group of
/// `cell`), stopped by the handle or by `lifecycle`'s stop signal, and waited for at shutdown.
pub(crate) fn spawn_loops(
    context: Arc<RelayContext>,
    cell: &CellHandle<OutboxRelay>,
    group: &mut ServiceGroup,
    lifecycle: &Lifecycle,
) -> RelayLoops {
    let state = context.state.clone();
    let stop_signal = StopSignal::following(lifecycle.stop_receiver());
    let driver = group.spawn_task(DRIVER_TASK, stop_signal.receiver(), {
        let (context, cell, state) = (context.clone(), cell.clone(), state.clone());
        move |task: TaskContext| -> LocalBoxFuture<'static, Result<(), String>> {
            let driver = run::RelayDriver::new(context.clone(), cell.clone(), state.clone(), task.stop_receiver());
            Box::pin(async move {
                driver.run().await;
                Ok(())
            })
        }
    });
    let lag_reporter = group.spawn_task(LAG_TASK, stop_signal.receiver(), {
        let (cell, state) = (cell.clone(), state.clone());
        move |task: TaskContext| -> LocalBoxFuture<'static, Result<(), String>> {
            let reporter = lag::LagReporter::new(context.clone(), cell.clone(), state.clone(), task.stop_receiver());
            Box::pin(async move {
                reporter.run().await;
                Ok(())
            })
        }
    });
    lifecycle.track(driver.clone());
    lifecycle.track(lag_reporter.clone());
    RelayLoops { state, stop_signal, driver, lag_reporter }
}

/// A running relay. Dropping it stops its loops (without waiting).
pub struct RelayHandle {
    service: String,
    cell: CellHandle<OutboxRelay>,
    supervision: ServiceSupervision,
    loops: RelayLoops,
}

impl RelayHandle {
    pub(crate) fn new(
        service: &str,
        cell: CellHandle<OutboxRelay>,
        supervision: ServiceSupervision,
        loops: RelayLoops,
    ) -> RelayHandle {
        RelayHandle { service: service.to_string(), cell, supervision, loops }
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The relay's state: role, last lag, counters.
    pub fn snapshot(&self) -> RelaySnapshot {
        self.loops.state.snapshot.lock().clone()
    }

    /// Measures the lag now.
    pub async fn measure_lag(&self) -> Result<OutboxLag, BusError> {
        Ok(ask(&self.cell, MeasureOutboxLag {}, None).await?)
    }

    /// The relay actor's supervisor and health.
    pub fn supervision(&self) -> &ServiceSupervision {
        &self.supervision
    }

    /// The supervised driver task (`<service>.outbox/driver`): its monitor counts its runs,
    /// panics and restarts.
    pub fn driver_task(&self) -> &TaskHandle {
        &self.loops.driver
    }

    /// Stops relaying (the current batch finishes first, within a few seconds) and frees the
    /// relay lock; waits until both loops ended. Stopping again changes nothing.
    pub async fn stop(&self) {
        self.loops.stop_signal.stop();
        self.loops.driver.wait_stopped().await;
        self.loops.lag_reporter.wait_stopped().await;
    }

    /// Makes the driver panic once, at its next loop iteration, to test its supervision.
    #[doc(hidden)]
    pub fn inject_driver_panic_for_tests(&self) {
        self.loops.state.panic_requested.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_counts_and_clears_the_last_error() {
        let state = RelayState::new("order");
        state.record_failure("broker down");
        state.record_failure("broker still down");
        assert_eq!(state.snapshot.lock().last_error.as_deref(), Some("broker still down"));
        state.record_published(3);
        assert_eq!(state.snapshot.lock().last_error.as_deref(), Some("broker still down"), "until a batch succeeds");
        state.record_success();
        state.record_unroutable(2);
        state.record_unroutable(1);
        state.set_role(RelayRole::Active);
        let snapshot = state.snapshot.lock().clone();
        assert_eq!((snapshot.num_failures, snapshot.num_published, snapshot.num_unroutable), (2, 3, 3));
        assert_eq!(snapshot.last_error, None, "a publish clears the last failure");
        assert_eq!(snapshot.role, RelayRole::Active);
    }

    #[test]
    fn an_injected_panic_fires_once() {
        let state = RelayState::new("order");
        state.panic_if_requested();
        state.panic_requested.store(true, Ordering::SeqCst);
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.panic_if_requested()));
        let message = first.expect_err("panics when asked").downcast::<String>().expect("formatted message");
        assert!(message.contains("relay driver of order"), "{message}");
        state.panic_if_requested();
    }

    #[test]
    fn the_snapshot_serializes_in_camel_case() {
        let state = RelayState::new("order");
        state.set_role(RelayRole::Standby);
        let json = serde_json::to_value(&*state.snapshot.lock()).unwrap();
        assert_eq!(json["role"], "standby");
        assert_eq!(json["numPublished"], 0);
        assert_eq!(json["numUnroutable"], 0);
        assert!(json.get("lastError").is_none());
    }
}
