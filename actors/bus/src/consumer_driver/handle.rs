//! The handle a service keeps on its consumer and the consumer's snapshot; how a stop or a
//! kill reaches the driver.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use emporium_runtime::{ServiceSupervision, TaskHandle};
use serde::Serialize;
use tokio::sync::watch;

use super::shared::{Control, DriverShared};
use crate::config::{ConsumerSpec, QueueNames};
use crate::error::BusError;
use crate::inbox::{self, DeadLetter};
use crate::stop_signal::StopSignal;
use emporium_store::Database;

/// A serializable view of a consumer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSnapshot {
    /// The consumer.
    pub consumer: String,
    /// Its queue (with namespace).
    pub queue: String,
    /// Whether it is attached to its queue now.
    pub connected: bool,
    /// Events applied (committed with their inbox row).
    pub num_applied: u64,
    /// Deliveries recognised as already applied and acknowledged without effect.
    pub num_duplicates: u64,
    /// Handler failures (each attempt counts).
    pub num_failures: u64,
    /// Messages dead-lettered.
    pub num_dead_lettered: u64,
    /// The last broker or database failure, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The most recent dead letters, oldest first.
    pub recent_dead_letters: Vec<DeadLetter>,
}

/// The consumer's supervised driver and the signal that ends it.
pub(crate) struct ConsumerLoop {
    pub(crate) shared: Arc<DriverShared>,
    pub(crate) stop_signal: StopSignal,
    pub(crate) driver: TaskHandle,
}

impl ConsumerLoop {
    /// Asks the driver to end as `control` says, unless it was already asked to.
    pub(crate) fn request(&self, control: Control) -> bool {
        request_end(&self.stop_signal, &self.shared.kill_tx, control)
    }
}

/// Turns `stop_signal` on (and `kill_tx` first for a kill), unless the signal already was;
/// answers whether this call asked. The kill flag goes up before the stop signal, so the
/// driver never mistakes a kill for a stop.
fn request_end(stop_signal: &StopSignal, kill_tx: &watch::Sender<bool>, control: Control) -> bool {
    if stop_signal.is_on() || control == Control::Run {
        return false;
    }
    if control == Control::Kill {
        kill_tx.send_replace(true);
    }
    stop_signal.stop();
    true
}

/// A running consumer. Dropping it stops its driver (without waiting).
pub struct ConsumerHandle {
    spec: ConsumerSpec,
    names: QueueNames,
    database: Database,
    supervision: ServiceSupervision,
    driver: ConsumerLoop,
}

impl ConsumerHandle {
    pub(crate) fn new(
        spec: ConsumerSpec,
        names: QueueNames,
        database: Database,
        supervision: ServiceSupervision,
        driver: ConsumerLoop,
    ) -> ConsumerHandle {
        ConsumerHandle { spec, names, database, supervision, driver }
    }

    /// What it subscribed to.
    pub fn spec(&self) -> &ConsumerSpec {
        &self.spec
    }

    /// Its queue's broker names.
    pub fn queue_names(&self) -> &QueueNames {
        &self.names
    }

    /// The consumer actor's supervisor and health.
    pub fn supervision(&self) -> &ServiceSupervision {
        &self.supervision
    }

    /// The supervised driver task (`<consumer>.<exchange>/driver`): its monitor counts its
    /// runs, panics and restarts.
    pub fn driver_task(&self) -> &TaskHandle {
        &self.driver.driver
    }

    /// Its counters and recent dead letters.
    pub fn snapshot(&self) -> ConsumerSnapshot {
        self.driver.shared.snapshot(&self.spec.consumer, &self.names.queue)
    }

    /// The dead letters stored in the consumer's database (in-process bus; RabbitMQ keeps
    /// them in the dead-letter queue).
    pub async fn stored_dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        inbox::list_dead_letters(&self.database, &self.spec.consumer).await
    }

    /// Stops after the current batch and detaches from the queue; waits until it did.
    pub async fn stop(&self) {
        self.driver.request(Control::Stop);
        self.driver.driver.wait_stopped().await;
    }

    /// Detaches at once without acknowledging what it holds, as a crash would: the broker
    /// delivers those messages again. A batch already handed to the actor may still commit;
    /// its redelivery is then recognised by the inbox.
    pub async fn kill(&self) {
        self.driver.request(Control::Kill);
        self.driver.driver.wait_stopped().await;
    }

    /// Makes the driver panic once, at its next loop iteration (at the latest when it takes
    /// its next batch, which then goes back to the queue unsettled), to test its supervision.
    #[doc(hidden)]
    pub fn inject_driver_panic_for_tests(&self) {
        self.driver.shared.panic_requested.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_first_request_to_end_counts() {
        let (_node_stop_tx, node_stop_rx) = watch::channel(false);
        let stop_signal = StopSignal::following(node_stop_rx);
        let kill_tx = watch::Sender::new(false);
        let control = || Control::from_signals(stop_signal.is_on(), *kill_tx.borrow());
        assert!(!request_end(&stop_signal, &kill_tx, Control::Run));
        assert_eq!(control(), Control::Run);
        assert!(request_end(&stop_signal, &kill_tx, Control::Stop));
        assert_eq!(control(), Control::Stop);
        assert!(!request_end(&stop_signal, &kill_tx, Control::Kill), "a stopping consumer is not killed");
        assert_eq!(control(), Control::Stop);
    }

    #[tokio::test]
    async fn a_kill_raises_both_signals() {
        let (_node_stop_tx, node_stop_rx) = watch::channel(false);
        let stop_signal = StopSignal::following(node_stop_rx);
        let kill_tx = watch::Sender::new(false);
        assert!(request_end(&stop_signal, &kill_tx, Control::Kill));
        assert_eq!(Control::from_signals(stop_signal.is_on(), *kill_tx.borrow()), Control::Kill);
    }
}
