//! The broker watcher: checks the publishing connection every second and opens it again when
//! it dropped, so readiness follows RabbitMQ even on a node with nothing to publish.
//!
//! The bus is made before any service context exists, so [`crate::Bus::connect`] starts the
//! watcher as a plain task that lives exactly as long as the bus: it ends when the bus is
//! closed ([`crate::Bus::close`]) or its last clone dropped. A node hands it over to
//! supervision with [`crate::Bus::supervise_broker_watch`] (a node task, `node/event-bus-broker`):
//! the plain task then ends and the supervised one takes over, its panics recorded as faults
//! and followed by restarts, ended by the node's stop signal.

use std::sync::{Arc, Weak};
use std::time::Duration;

use emporium_runtime::TaskContext;
use futures::future::LocalBoxFuture;
use lapin::types::ShortString;
use tokio::sync::watch;

use crate::amqp::{AmqpConnector, BrokerHealth};

/// How often the broker connection is checked (and re-opened) for readiness.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The name of the supervised watcher among the node's tasks (`node/event-bus-broker`).
pub const BROKER_WATCH_TASK: &str = "event-bus-broker";

/// The watcher of one bus, and the signals that end it.
pub(crate) struct BrokerWatch {
    publish: Weak<AmqpConnector>,
    health: Arc<BrokerHealth>,
    /// On when the bus is closed; dropped with the bus.
    closed_tx: watch::Sender<bool>,
    /// On once a supervised watcher took over from the plain one.
    supervised_tx: Arc<watch::Sender<bool>>,
}

impl BrokerWatch {
    /// Starts the plain watcher of `publish`.
    pub(crate) fn start(publish: &Arc<AmqpConnector>, health: Arc<BrokerHealth>) -> BrokerWatch {
        let watch = BrokerWatch {
            publish: Arc::downgrade(publish),
            health,
            closed_tx: watch::Sender::new(false),
            supervised_tx: Arc::new(watch::Sender::new(false)),
        };
        let (publish, health) = (watch.publish.clone(), watch.health.clone());
        let (closed_rx, supervised_rx) = (watch.closed_tx.subscribe(), watch.supervised_tx.subscribe());
        tokio::spawn(async move { watch_until(&publish, &health, closed_rx, supervised_rx).await });
        watch
    }

    /// Ends the watcher (plain or supervised): the bus is closed.
    pub(crate) fn close(&self) {
        self.closed_tx.send_replace(true);
    }

    /// Builds the runs of the supervised watcher. The first run ends the plain watcher; a
    /// run whose bus is closed or gone waits for its stop signal (a supervised task ends only
    /// then).
    pub(crate) fn task_factory(
        &self,
    ) -> impl Fn(TaskContext) -> LocalBoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
        let (publish, health) = (self.publish.clone(), self.health.clone());
        let (closed_rx, supervised_tx) = (self.closed_tx.subscribe(), self.supervised_tx.clone());
        move |task: TaskContext| -> LocalBoxFuture<'static, Result<(), String>> {
            supervised_tx.send_replace(true);
            let (publish, health, closed_rx) = (publish.clone(), health.clone(), closed_rx.clone());
            Box::pin(async move {
                watch_until(&publish, &health, closed_rx, task.stop_receiver()).await;
                task.stop_requested().await;
                Ok(())
            })
        }
    }
}

impl Drop for BrokerWatch {
    fn drop(&mut self) {
        self.close();
    }
}

/// Resolves once `signal` is on or its sender is gone.
async fn turned_on(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|on| *on).await;
}

/// Watches until `closed_rx` or `end_rx` turns on (or goes away), or the connector is gone.
async fn watch_until(
    publish: &Weak<AmqpConnector>,
    health: &BrokerHealth,
    mut closed_rx: watch::Receiver<bool>,
    mut end_rx: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(BROKER_CHECK_INTERVAL) => {}
            _ = turned_on(&mut closed_rx) => return,
            _ = turned_on(&mut end_rx) => return,
        }
        let Some(connector) = publish.upgrade() else { return };
        let checked = async {
            if connector.is_connected().await {
                health.record_up();
                return;
            }
            match connector.channel().await {
                Ok(channel) => {
                    let _ = channel.close(200, ShortString::from("reconnected")).await;
                }
                Err(error) => tracing::debug!(error = %error, "rabbitmq still unreachable"),
            }
        };
        tokio::select! {
            _ = checked => {}
            _ = turned_on(&mut closed_rx) => return,
            _ = turned_on(&mut end_rx) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use emporium_runtime::{Backoff, Intensity, RestartStrategy, RestartType, ServiceGroup, SupervisionPolicy};

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    /// A connector to a port where no broker listens: the watcher keeps trying.
    fn unreachable_connector() -> (Arc<AmqpConnector>, Arc<BrokerHealth>) {
        let health = Arc::new(BrokerHealth::default());
        (Arc::new(AmqpConnector::new("amqp://guest:guest@127.0.0.1:1/%2f", "publish", health.clone())), health)
    }

    /// Each running watcher holds one receiver of the closed signal.
    async fn wait_for_watchers(watch: &BrokerWatch, count: usize) {
        tokio::time::timeout(PATIENCE, async {
            while watch.closed_tx.receiver_count() != count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("expected {count} watchers, found {}", watch.closed_tx.receiver_count()));
    }

    #[tokio::test]
    async fn closing_the_bus_ends_the_watcher() {
        let (connector, health) = unreachable_connector();
        let watch = BrokerWatch::start(&connector, health.clone());
        wait_for_watchers(&watch, 1).await;
        watch.close();
        wait_for_watchers(&watch, 0).await;
        assert!(health.readiness().is_err(), "never reached the broker");
    }

    #[tokio::test]
    async fn dropping_the_bus_closes_it() {
        let (connector, health) = unreachable_connector();
        let watch = BrokerWatch::start(&connector, health);
        let mut closed_rx = watch.closed_tx.subscribe();
        drop(watch);
        assert!(*closed_rx.borrow_and_update(), "the watcher sees the bus closed");
    }

    #[actix_rt::test]
    async fn a_supervised_watcher_takes_over_and_ends_with_its_stop_signal() {
        let (connector, health) = unreachable_connector();
        let watch = BrokerWatch::start(&connector, health);
        wait_for_watchers(&watch, 1).await;
        let tree = emporium_runtime::SupervisionTree::new("node-1", 16, 8);
        let policy = SupervisionPolicy {
            strategy: RestartStrategy::OneForOne,
            restart: RestartType::Permanent,
            intensity: Intensity { max_restarts: 5, period: Duration::from_secs(10) },
            backoff: Backoff { min: Duration::from_millis(1), max: Duration::from_millis(10) },
        };
        let mut group = ServiceGroup::new(&tree, "node", policy, actix::Arbiter::current());
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = group.spawn_task(BROKER_WATCH_TASK, stop_rx, watch.task_factory());
        let _supervision = group.finish();
        let mut supervised_rx = watch.supervised_tx.subscribe();
        tokio::time::timeout(PATIENCE, supervised_rx.wait_for(|on| *on)).await.expect("run").expect("open");
        // The factory holds one receiver, the supervised run one; the plain watcher ended.
        wait_for_watchers(&watch, 2).await;
        stop_tx.send_replace(true);
        tokio::time::timeout(PATIENCE, task.wait_stopped()).await.expect("stops with the node");
        assert_eq!(tree.snapshot().num_faults, 0, "an orderly end is no fault");
        assert_eq!(task.monitor.path(), "node/event-bus-broker");
    }
}
