//! The relay's and the consumer's drivers are supervised tasks: a panic inside one is a fault
//! in the node's supervision tree under the driver's path, its monitor counts a restart, and
//! the loop runs again (events enqueued after the panic still arrive, each applied once). The
//! node's stop signal ends every loop of the bus.
//!
//! They run against the machine's real RabbitMQ and MariaDB, with a fresh database and a
//! unique namespace per test.

mod support;

use std::time::Duration;

use emporium_bus::{Bus, ConsumerHandle, QueueNames, RelayHandle, RelayRole};
use emporium_cluster::ServiceContext;
use emporium_runtime::fault::{Fault, FaultKind};
use emporium_runtime::monitor::ActorStatus;
use emporium_runtime::task::TASK_RUN;
use support::*;

const WITHIN: Duration = Duration::from_secs(20);
const RELAY_DRIVER: &str = "order.outbox/driver";
const CONSUMER_DRIVER: &str = "payment.order-events/driver";

/// One test's bus, database and context, with a `payment` consumer and an `order` relay.
struct Sandbox {
    transport: Transport,
    bus: Bus,
    test_database: TestDatabase,
    ctx: ServiceContext,
    namespace: String,
    relay: RelayHandle,
    consumer: ConsumerHandle,
}

impl Sandbox {
    async fn start(transport: Transport, store: Store) -> Sandbox {
        let namespace = unique_namespace();
        let bus = connect_bus(transport, &namespace, |_| {}).await;
        let test_database = TestDatabase::create(store, "bus").await;
        let database = test_database.database.clone();
        create_applied_table(&database).await;
        let ctx = service_context("supervised-drivers");
        let (_recording, handler) = recorder();
        let consumer = bus.subscribe(&ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
        let relay = bus.start_relay(&ctx, "order", database).await.unwrap();
        bus.start_delivery();
        Sandbox { transport, bus, test_database, ctx, namespace, relay, consumer }
    }

    fn database(&self) -> emporium_store::Database {
        self.test_database.database.clone()
    }

    /// Enqueues the event of `subject` and waits until `num_applied` events are applied, each
    /// once.
    async fn enqueue_and_wait(&self, subject: &str, num_applied: i64) {
        let database = self.database();
        enqueue_event(&database, "order", subject, None).await;
        wait_until(&format!("{num_applied} events applied"), WITHIN, || async {
            applied_counts(&database).await.1 >= num_applied
        })
        .await;
    }

    /// The faults recorded under `path`.
    fn faults_of(&self, path: &str) -> Vec<Fault> {
        self.ctx.tree.faults().list().into_iter().filter(|fault| fault.actor_path == path).collect()
    }

    /// `(num_restarts, num_panics, status)` of `path` in the supervision snapshot.
    fn monitor_of(&self, path: &str) -> (u64, u64, ActorStatus) {
        let snapshot = self.ctx.tree.snapshot();
        let actor = snapshot
            .services
            .iter()
            .flat_map(|service| service.actors.iter())
            .find(|actor| actor.path == path)
            .unwrap_or_else(|| panic!("{path} is in the supervision tree"));
        (actor.num_restarts, actor.num_panics, actor.status)
    }

    /// Waits for the injected panic's fault under `path` and the restart that follows it.
    async fn wait_for_one_restart_after_a_panic(&self, path: &str) {
        wait_until(&format!("the panic of {path} recorded"), WITHIN, || async { !self.faults_of(path).is_empty() })
            .await;
        let faults = self.faults_of(path);
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!((faults[0].kind, faults[0].message_type), (FaultKind::Panic, TASK_RUN));
        assert!(faults[0].error.contains("panic injected by a test"), "{}", faults[0].error);
        wait_until(&format!("{path} running again"), WITHIN, || async {
            self.monitor_of(path) == (1, 1, ActorStatus::Running)
        })
        .await;
    }

    /// Stops both loops, checks that the only faults were `expected_paths`', and cleans up.
    async fn finish(self, expected_paths: &[&str]) {
        self.consumer.stop().await;
        self.relay.stop().await;
        let faults = self.ctx.tree.faults().list();
        let paths: Vec<&str> = faults.iter().map(|fault| fault.actor_path.as_str()).collect();
        assert_eq!(paths, expected_paths, "no other fault: {faults:?}");
        self.bus.close().await;
        if self.transport == Transport::Amqp {
            let queues: Vec<QueueNames> = vec![self.consumer.queue_names().clone()];
            delete_amqp_names(&self.namespace, &queues).await;
        }
        self.test_database.drop_now().await;
    }
}

async fn a_panic_in_the_relay_driver_is_a_fault_and_relaying_goes_on(transport: Transport, store: Store) {
    let sandbox = Sandbox::start(transport, store).await;
    sandbox.enqueue_and_wait("order-1", 1).await;
    assert_eq!(sandbox.relay.driver_task().monitor.num_restarts(), 0);

    sandbox.relay.inject_driver_panic_for_tests();
    sandbox.wait_for_one_restart_after_a_panic(RELAY_DRIVER).await;
    assert_eq!(sandbox.relay.driver_task().monitor.num_restarts(), 1);

    sandbox.enqueue_and_wait("order-2", 2).await;
    sandbox.enqueue_and_wait("order-3", 3).await;
    assert_eq!(applied_counts(&sandbox.database()).await, (3, 3), "each event applied once");
    wait_until("the relay active again", WITHIN, || async { sandbox.relay.snapshot().role == RelayRole::Active }).await;
    wait_until("the relay counts every row", WITHIN, || async { sandbox.relay.snapshot().num_published >= 3 }).await;
    sandbox.finish(&[RELAY_DRIVER]).await;
}

async fn a_panic_in_the_consumer_driver_is_a_fault_and_consuming_goes_on(transport: Transport, store: Store) {
    let sandbox = Sandbox::start(transport, store).await;
    sandbox.enqueue_and_wait("order-1", 1).await;
    assert_eq!(sandbox.consumer.driver_task().monitor.num_restarts(), 0);

    // The driver takes order-2's batch and panics on it: the batch goes back to the queue.
    sandbox.consumer.inject_driver_panic_for_tests();
    enqueue_event(&sandbox.database(), "order", "order-2", None).await;
    sandbox.wait_for_one_restart_after_a_panic(CONSUMER_DRIVER).await;
    assert_eq!(sandbox.consumer.driver_task().monitor.num_restarts(), 1);

    // Three distinct events: order-3, enqueued after the panic, and the redelivered order-2.
    sandbox.enqueue_and_wait("order-3", 3).await;
    assert_eq!(applied_counts(&sandbox.database()).await, (3, 3), "each event applied once");
    let snapshot = sandbox.consumer.snapshot();
    assert!(snapshot.connected, "{snapshot:?}");
    assert_eq!((snapshot.num_failures, snapshot.num_dead_lettered), (0, 0), "{snapshot:?}");
    sandbox.finish(&[CONSUMER_DRIVER]).await;
}

/// The node's stop signal ends the relay's and the consumer's loops: `Lifecycle::stop` finds
/// none still running, and none of them counted it as a fault.
async fn the_node_stop_signal_ends_every_loop_of_the_bus(transport: Transport, store: Store) {
    let sandbox = Sandbox::start(transport, store).await;
    sandbox.enqueue_and_wait("order-1", 1).await;

    let still_running = sandbox.ctx.lifecycle.stop(Duration::from_secs(5)).await;
    assert!(still_running.is_empty(), "still running: {still_running:?}");
    assert!(sandbox.relay.driver_task().is_stopped());
    assert!(sandbox.consumer.driver_task().is_stopped());
    assert_eq!(sandbox.relay.snapshot().role, RelayRole::Stopped);
    assert!(!sandbox.consumer.snapshot().connected);
    // Stopping the handles afterwards returns at once.
    tokio::time::timeout(Duration::from_secs(1), async {
        sandbox.consumer.stop().await;
        sandbox.relay.stop().await;
    })
    .await
    .expect("already stopped");
    sandbox.finish(&[]).await;
}

#[actix_rt::test]
async fn relay_driver_panic_in_process_mariadb() {
    a_panic_in_the_relay_driver_is_a_fault_and_relaying_goes_on(Transport::InProcess, Store::MariaDb).await
}

#[actix_rt::test]
async fn relay_driver_panic_rabbitmq_sqlite() {
    a_panic_in_the_relay_driver_is_a_fault_and_relaying_goes_on(Transport::Amqp, Store::Sqlite).await
}

#[actix_rt::test]
async fn consumer_driver_panic_in_process_sqlite() {
    a_panic_in_the_consumer_driver_is_a_fault_and_consuming_goes_on(Transport::InProcess, Store::Sqlite).await
}

#[actix_rt::test]
async fn consumer_driver_panic_rabbitmq_mariadb() {
    a_panic_in_the_consumer_driver_is_a_fault_and_consuming_goes_on(Transport::Amqp, Store::MariaDb).await
}

#[actix_rt::test]
async fn node_stop_ends_the_bus_loops_in_process() {
    the_node_stop_signal_ends_every_loop_of_the_bus(Transport::InProcess, Store::Sqlite).await
}

#[actix_rt::test]
async fn node_stop_ends_the_bus_loops_rabbitmq() {
    the_node_stop_signal_ends_every_loop_of_the_bus(Transport::Amqp, Store::MariaDb).await
}
