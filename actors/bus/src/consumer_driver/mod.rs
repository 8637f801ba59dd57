//! The consumer's driver task and the handle a service keeps. The driver owns the broker side:
//! it takes deliveries (manual acks, bounded prefetch), hands them in batches to the consumer
//! actor, and after the actor's commit acknowledges them. It dead-letters what cannot be read
//! or failed `max_attempts` times, retries the rest after a growing delay, and reconnects with
//! backoff when the broker goes away.
//!
//! **Supervision.** The driver is a supervised task of the consumer's group, beside the
//! consumer actor: `<consumer>.<exchange>/driver`. A panic in it, or a driver that ends on its
//! own, is a fault in the node's supervision tree (`/admin/v1/supervision`) and the driver runs
//! again with a fresh future after the policy's backoff. What it held when it broke off goes
//! back to the queue (an in-process delivery dropped unsettled returns to the front of its
//! queue; a dropped RabbitMQ session closes its channel, and the broker delivers again), and
//! the inbox recognises what was already applied. What must survive a restart lives beside
//! the future (`shared::DriverShared`): the counters, the recent dead letters and the retry
//! book. The driver ends for good when its handle stops or kills it (or is dropped) or when
//! the node stops (`ServiceContext::lifecycle`), and the node waits for it at shutdown.
//!
//! **Parts.** `handle`: the handle and the snapshot. `shared`: the state kept across
//! restarts and the stop/kill control. `run`: the loop (attach, take batches, detach).
//! `process`: one batch through the actor and its outcomes. `retry`: the retry and
//! dead-letter policy. `dead_letter`: setting a message aside. `delivery`, `amqp_delivery`,
//! `in_process_delivery`: the two transports.
//!
//! **Batches and lanes.** Each step takes up to [`BusConfig::consumer_step_size`] deliveries
//! (a batch for each lane) and splits them by the events' subjects into
//! [`BusConfig::consumer_lanes`] lanes. The actor applies the lanes concurrently, each in one
//! transaction (at most `consumer_batch_size` events), and the driver acks a lane's deliveries
//! together once its transaction committed. One subject always maps to the same lane, and a
//! step ends before the next starts, so the events of one subject are applied in the order the
//! queue gave them; events of different subjects may be applied in either order (the services'
//! handlers key their effects by order or product, never on the order across subjects). The
//! commits of the lanes are what the database groups into one log flush. On SQLite (one writer
//! at a time) a consumer runs a single lane.
//!
//! Attempts are counted per event id in memory (RabbitMQ 3.10's classic queues keep no
//! delivery count): after a crash of the process an event gets `max_attempts` fresh
//! attempts. A failure of the actor itself (a panic in a handler) fails a whole batch: its
//! events are then retried one per batch, so the attempt is counted against the event that
//! caused it, not its neighbours.

mod amqp_delivery;
mod dead_letter;
mod delivery;
mod handle;
mod in_process_delivery;
mod process;
mod retry;
mod run;
pub(crate) mod shared;

use std::sync::Arc;

use emporium_cluster::Lifecycle;
use emporium_runtime::fault::FaultLog;
use emporium_runtime::{CellHandle, ServiceGroup, TaskContext};
use futures::future::LocalBoxFuture;

pub(crate) use handle::ConsumerLoop;
pub use handle::{ConsumerHandle, ConsumerSnapshot};

use crate::config::{BusConfig, ConsumerSpec, QueueNames};
use crate::consumer::{ConsumerContext, InboxConsumer};
use crate::in_process::InProcessQueue;
use crate::stop_signal::StopSignal;
use crate::transport::Transport;

/// The name of a consumer's driver task in its group (`<consumer>.<exchange>/driver`).
pub const DRIVER_TASK: &str = "driver";

/// Everything the driver needs; shared by all its runs.
pub(crate) struct DriverSetup {
    pub(crate) spec: ConsumerSpec,
    pub(crate) names: QueueNames,
    pub(crate) config: BusConfig,
    pub(crate) transport: Transport,
    pub(crate) context: Arc<ConsumerContext>,
    pub(crate) cell: CellHandle<InboxConsumer>,
    pub(crate) faults: Arc<FaultLog>,
    pub(crate) in_process_queue: Option<Arc<InProcessQueue>>,
}

/// Starts the consumer's driver as a supervised task of `group` (the group of the consumer
/// actor), stopped by the handle or by `lifecycle`'s stop signal, and waited for at shutdown.
pub(crate) fn spawn_loop(setup: DriverSetup, group: &mut ServiceGroup, lifecycle: &Lifecycle) -> ConsumerLoop {
    let setup = Arc::new(setup);
    let shared = Arc::new(shared::DriverShared::default());
    let stop_signal = StopSignal::following(lifecycle.stop_receiver());
    let driver = group.spawn_task(DRIVER_TASK, stop_signal.receiver(), {
        let shared = shared.clone();
        move |task: TaskContext| -> LocalBoxFuture<'static, Result<(), String>> {
            let driver = run::ConsumerDriver::new(setup.clone(), shared.clone(), task.stop_receiver());
            Box::pin(async move {
                driver.run().await;
                Ok(())
            })
        }
    });
    lifecycle.track(driver.clone());
    ConsumerLoop { shared, stop_signal, driver }
}
