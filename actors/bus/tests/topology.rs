//! No event is lost for want of a queue: the bus declares the contracts' whole topology when
//! it connects, an event that reaches no queue anyway stays in the outbox (counted, retried)
//! until one exists, events nobody consumes do not block the outbox, and two namespaces on one
//! broker never see each other's events.
//!
//! They run against the machine's real RabbitMQ and MariaDB (`EMPORIUM_TEST_AMQP_URL`,
//! `EMPORIUM_TEST_MYSQL_URL`), with a fresh database and a unique namespace per test, and fail
//! loudly when either is missing.

mod support;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use emporium_bus::{Bus, ConsumerSpec, RelayHandle};
use emporium_cluster::ServiceContext;
use emporium_contracts::EventEnvelope;
use emporium_contracts::events::{ORDER_EVENTS, UserLoggedIn};
use emporium_store::Database;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::Row;
use support::*;

const WITHIN: Duration = Duration::from_secs(20);

/// The test binary's metrics recorder (one per process).
fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().expect("the only metrics recorder"))
}

/// The value of `emporium_bus_unroutable_total` for the relay of `service`, summed over event
/// types (0 when never counted).
fn unroutable_metric(service: &str) -> f64 {
    let label = format!("service=\"{service}\"");
    metrics()
        .render()
        .lines()
        .filter(|line| line.starts_with("emporium_bus_unroutable_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Whether queue `name` exists on the broker (a passive declaration succeeds).
async fn queue_exists(name: &str) -> bool {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let exists = channel.queue_declare(name.into(), passive, FieldTable::default()).await.is_ok();
    let _ = connection.close(200, "checked".into()).await;
    exists
}

/// Deletes the queues of the contracts' topology in `namespace` (the exchanges stay): a
/// namespace whose queues nobody declared.
async fn delete_topology_queues(bus: &Bus) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    for spec in ConsumerSpec::topology() {
        let names = bus.config().queue_names(&spec.consumer, &spec.exchange);
        channel.queue_delete(names.queue.into(), QueueDeleteOptions::default()).await.unwrap();
    }
    let _ = connection.close(200, "deleted".into()).await;
}

/// Rows of `service`'s outbox not marked sent.
async fn num_unsent(database: &Database, service: &str) -> i64 {
    let sql = "SELECT COUNT(*) AS num_unsent FROM bus_outbox WHERE service = ? AND sent_at IS NULL";
    sqlx::query(sql).bind(service).fetch_one(database.pool()).await.unwrap().get("num_unsent")
}

/// The subjects `applied_events` holds.
async fn applied_subjects(database: &Database) -> BTreeSet<String> {
    let rows = sqlx::query("SELECT subject FROM applied_events").fetch_all(database.pool()).await.unwrap();
    rows.iter().map(|row| row.get::<String, _>("subject")).collect()
}

/// The errors the relay actor of `service` answered, as the supervision tree counts them.
fn relay_actor_errors(ctx: &ServiceContext, service: &str) -> u64 {
    let path = format!("{service}.outbox/relay");
    ctx.tree
        .snapshot()
        .services
        .iter()
        .flat_map(|group| group.actors.iter())
        .find(|actor| actor.path == path)
        .map(|actor| actor.num_errors)
        .unwrap_or_else(|| panic!("{path} is in the supervision tree"))
}

/// A unique relay service name (the metric's label), at most 64 characters.
fn unique_service(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

macro_rules! on_every_bus {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[actix_rt::test]
            async fn rabbitmq_mariadb() {
                super::$scenario(Transport::Amqp, Store::MariaDb).await
            }

            #[actix_rt::test]
            async fn rabbitmq_sqlite() {
                super::$scenario(Transport::Amqp, Store::Sqlite).await
            }

            #[actix_rt::test]
            async fn in_process_mariadb() {
                super::$scenario(Transport::InProcess, Store::MariaDb).await
            }

            #[actix_rt::test]
            async fn in_process_sqlite() {
                super::$scenario(Transport::InProcess, Store::Sqlite).await
            }
        }
    };
}

on_every_bus!(an_event_no_queue_took_stays_in_the_outbox_until_its_consumer_subscribes);
on_every_bus!(events_no_consumer_wants_are_marked_sent_without_a_queue);

/// `order.created` (which payment and notification consume) published where no queue of the
/// topology exists: on RabbitMQ a namespace whose queues were deleted after the bus declared
/// them, in process a process without those consumers.
async fn an_event_no_queue_took_stays_in_the_outbox_until_its_consumer_subscribes(transport: Transport, store: Store) {
    let _ = metrics();
    let namespace = unique_namespace();
    let bus = connect_bus(transport, &namespace, |_| {}).await;
    if transport == Transport::Amqp {
        delete_topology_queues(&bus).await;
    }
    let test_database = TestDatabase::create(store, "bus").await;
    let database = test_database.database.clone();
    create_applied_table(&database).await;
    let ctx = service_context("unroutable-test");
    let service = unique_service("order");
    let relay: RelayHandle = bus.start_relay(&ctx, &service, database.clone()).await.unwrap();
    bus.start_delivery();

    enqueue_event(&database, &service, "lost-1", None).await;
    wait_until("the relay tried again after the first unroutable publish", WITHIN, || async {
        relay.snapshot().num_unroutable >= 2
    })
    .await;
    assert_eq!(num_unsent(&database, &service).await, 1, "{transport:?}: the row stays in the outbox");
    let snapshot = relay.snapshot();
    assert_eq!(snapshot.num_published, 0, "{snapshot:?}");
    assert!(snapshot.last_error.as_deref().is_some_and(|error| error.contains("reached no queue")), "{snapshot:?}");
    assert!(unroutable_metric(&service) >= 2.0, "counted on /metrics:\n{}", metrics().render());
    assert!(relay_actor_errors(&ctx, &service) >= 2, "counted in the supervision tree");
    assert_eq!(ctx.tree.snapshot().num_faults, 0, "an unroutable event is no fault");

    // Its consumer subscribes (declaring its queue): the event is delivered, once.
    let (_recording, handler) = recorder();
    let spec = ConsumerSpec::from_topology("payment", ORDER_EVENTS).unwrap();
    let consumer = bus.subscribe(&ctx, spec, database.clone(), handler).await.unwrap();
    wait_until("the event is applied", WITHIN, || async { applied_counts(&database).await == (1, 1) }).await;
    wait_until("the row is marked sent", WITHIN, || async { num_unsent(&database, &service).await == 0 }).await;
    // A later event of the same queue: once it is applied, a second copy of the first would
    // have been too (one queue, in order).
    enqueue_event(&database, &service, "later-2", None).await;
    wait_until("the later event is applied", WITHIN, || async { applied_counts(&database).await.1 == 2 }).await;
    assert_eq!(applied_counts(&database).await, (2, 2), "{transport:?}: each event applied once");
    assert_eq!(consumer.snapshot().num_duplicates, 0, "the first event was delivered once");
    wait_until("the relay counts both", WITHIN, || async { relay.snapshot().num_published == 2 }).await;
    assert_eq!(relay.snapshot().last_error, None, "a batch that went out whole ends the failure");

    consumer.stop().await;
    relay.stop().await;
    bus.close().await;
    if transport == Transport::Amqp {
        delete_amqp_names(&namespace, &[]).await;
    }
    test_database.drop_now().await;
}

/// `user.logged_in` has no consumer in the topology: it is published (not `mandatory`) and
/// marked sent although no queue takes it, and it does not hold up the events behind it.
async fn events_no_consumer_wants_are_marked_sent_without_a_queue(transport: Transport, store: Store) {
    let namespace = unique_namespace();
    let bus = connect_bus(transport, &namespace, |_| {}).await;
    let test_database = TestDatabase::create(store, "bus").await;
    let database = test_database.database.clone();
    let ctx = service_context("unwanted-test");
    let service = unique_service("auth");
    let relay = bus.start_relay(&ctx, &service, database.clone()).await.unwrap();
    bus.start_delivery();

    for number in 0..3 {
        let user_id = format!("u{number}");
        let envelope = EventEnvelope::new(
            "/emporium/auth",
            "user.logged_in",
            &user_id,
            &UserLoggedIn { user_id: user_id.clone() },
        )
        .unwrap();
        let mut tx = database.begin().await.unwrap();
        emporium_bus::outbox::enqueue(&mut tx, &service, &envelope, None).await.unwrap();
        tx.commit().await.unwrap();
    }
    wait_until("every sign-in is marked sent", WITHIN, || async { num_unsent(&database, &service).await == 0 }).await;
    wait_until("the relay counts them", WITHIN, || async { relay.snapshot().num_published == 3 }).await;
    let snapshot = relay.snapshot();
    assert_eq!((snapshot.num_unroutable, snapshot.num_failures), (0, 0), "{transport:?}: {snapshot:?}");

    relay.stop().await;
    bus.close().await;
    if transport == Transport::Amqp {
        delete_amqp_names(&namespace, &[]).await;
    }
    test_database.drop_now().await;
}

#[actix_rt::test]
async fn connecting_declares_every_queue_of_the_topology_in_its_namespace() {
    let namespace = unique_namespace();
    let bus = connect_bus(Transport::Amqp, &namespace, |_| {}).await;
    for spec in ConsumerSpec::topology() {
        let names = bus.config().queue_names(&spec.consumer, &spec.exchange);
        assert!(names.queue.starts_with(&format!("{namespace}.")), "{names:?}");
        assert!(queue_exists(&names.queue).await, "{} declared", names.queue);
        assert!(queue_exists(&names.dead_letter_queue).await, "{} declared", names.dead_letter_queue);
    }
    // A consumer declares the same queue with the same arguments: no PRECONDITION_FAILED.
    let test_database = TestDatabase::create(Store::Sqlite, "bus").await;
    let ctx = service_context("declare-test");
    let (_recording, handler) = recorder();
    let mut consumers = Vec::new();
    for spec in ConsumerSpec::topology_of("notification") {
        consumers.push(bus.subscribe(&ctx, spec, test_database.database.clone(), handler.clone()).await.unwrap());
    }
    // A second bus in the same namespace declares it all again.
    let again = connect_bus(Transport::Amqp, &namespace, |_| {}).await;
    again.close().await;
    for consumer in &consumers {
        consumer.stop().await;
    }

    bus.delete_topology().await.unwrap();
    for spec in ConsumerSpec::topology() {
        let names = bus.config().queue_names(&spec.consumer, &spec.exchange);
        assert!(!queue_exists(&names.queue).await, "{} deleted", names.queue);
    }
    bus.close().await;
    test_database.drop_now().await;
}

/// One namespace's bus, database, consumer (`payment` on `order-events`) and relay.
struct Tenant {
    namespace: String,
    bus: Bus,
    test_database: TestDatabase,
    relay: RelayHandle,
    consumer: emporium_bus::ConsumerHandle,
}

impl Tenant {
    async fn start(ctx: &ServiceContext) -> Tenant {
        let namespace = unique_namespace();
        let bus = connect_bus(Transport::Amqp, &namespace, |_| {}).await;
        let test_database = TestDatabase::create(Store::MariaDb, "bus").await;
        let database = test_database.database.clone();
        create_applied_table(&database).await;
        let (_recording, handler) = recorder();
        let spec = ConsumerSpec::from_topology("payment", ORDER_EVENTS).unwrap();
        let consumer = bus.subscribe(ctx, spec, database.clone(), handler).await.unwrap();
        let relay = bus.start_relay(ctx, &unique_service("order"), database).await.unwrap();
        Tenant { namespace, bus, test_database, relay, consumer }
    }

    fn database(&self) -> &Database {
        &self.test_database.database
    }

    /// Publishes an event about `subject` and waits until the broker routed it.
    async fn publish(&self, subject: &str) {
        enqueue_event(self.database(), self.relay.service(), subject, None).await;
        wait_until("the event is published", WITHIN, || async {
            num_unsent(self.database(), self.relay.service()).await == 0
        })
        .await;
    }

    async fn wait_applied(&self, subject: &str) {
        wait_until(&format!("{subject} is applied in {}", self.namespace), WITHIN, || async {
            applied_subjects(self.database()).await.contains(subject)
        })
        .await;
    }

    async fn finish(self) {
        self.consumer.stop().await;
        self.relay.stop().await;
        self.bus.close().await;
        delete_amqp_names(&self.namespace, &[]).await;
        self.test_database.drop_now().await;
    }
}

#[actix_rt::test]
async fn two_namespaces_on_one_vhost_do_not_see_each_others_events() {
    let ctx = service_context("namespaces-test");
    let first = Tenant::start(&ctx).await;
    let second = Tenant::start(&ctx).await;

    // Each event is routed before the other namespace publishes: had the first leaked into the
    // second's queue, it would be applied there before the second's own (one queue, in order).
    first.publish("first-1").await;
    second.publish("second-1").await;
    second.wait_applied("second-1").await;
    first.wait_applied("first-1").await;
    second.publish("second-2").await;
    first.publish("first-2").await;
    first.wait_applied("first-2").await;
    second.wait_applied("second-2").await;

    assert_eq!(applied_subjects(first.database()).await, BTreeSet::from(["first-1".into(), "first-2".into()]));
    assert_eq!(applied_subjects(second.database()).await, BTreeSet::from(["second-1".into(), "second-2".into()]));
    assert_eq!(ctx.tree.snapshot().num_faults, 0);
    first.finish().await;
    second.finish().await;
}
