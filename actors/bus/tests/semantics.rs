//! The bus's semantics, run against both implementations (RabbitMQ and in-process) and both
//! databases (MariaDB and SQLite): the round trip with trace context, a consumer killed
//! mid-batch, a poison message, a handler that keeps failing, the order of one subject's
//! events across the consumer's lanes.
//!
//! They run against the machine's real RabbitMQ and MariaDB (`EMPORIUM_TEST_AMQP_URL`,
//! `EMPORIUM_TEST_MYSQL_URL`), with a fresh database and a unique namespace per test, and fail
//! loudly when either is missing.

mod support;

use std::time::Duration;

use emporium_bus::amqp::{DEAD_LETTER_ATTEMPTS_HEADER, DEAD_LETTER_REASON_HEADER, header_text};
use emporium_bus::{Bus, BusConfig, QueueNames};
use emporium_cluster::ServiceContext;
use emporium_runtime::TraceParent;
use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};
use support::*;

const WITHIN: Duration = Duration::from_secs(20);

/// One test's bus, database and context.
struct Sandbox {
    transport: Transport,
    bus: Bus,
    test_database: TestDatabase,
    ctx: ServiceContext,
    namespace: String,
    queues: Vec<QueueNames>,
}

impl Sandbox {
    async fn start(transport: Transport, store: Store, tweak: impl FnOnce(&mut BusConfig)) -> Sandbox {
        let namespace = unique_namespace();
        let bus = connect_bus(transport, &namespace, tweak).await;
        let test_database = TestDatabase::create(store, "bus").await;
        create_applied_table(&test_database.database).await;
        Sandbox { transport, bus, test_database, ctx: service_context("bus-test-node"), namespace, queues: Vec::new() }
    }

    fn database(&self) -> emporium_store::Database {
        self.test_database.database.clone()
    }

    async fn finish(self) {
        self.bus.close().await;
        if self.transport == Transport::Amqp {
            delete_amqp_names(&self.namespace, &self.queues).await;
        }
        self.test_database.drop_now().await;
    }

    /// The dead letters waiting in the consumer's RabbitMQ dead-letter queue, as
    /// `(reason header, attempts header)`.
    async fn amqp_dead_letters(&self, names: &QueueNames) -> Vec<(Option<String>, Option<i64>)> {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut letters = Vec::new();
        while let Some(message) =
            channel.basic_get(names.dead_letter_queue.clone().into(), BasicGetOptions { no_ack: true }).await.unwrap()
        {
            let properties = &message.delivery.properties;
            let attempts = properties
                .headers()
                .as_ref()
                .and_then(|headers| headers.inner().get(DEAD_LETTER_ATTEMPTS_HEADER).cloned())
                .and_then(|value| match value {
                    lapin::types::AMQPValue::LongLongInt(count) => Some(count),
                    _ => None,
                });
            letters.push((header_text(properties, DEAD_LETTER_REASON_HEADER), attempts));
        }
        let _ = connection.close(200, "done".into()).await;
        letters
    }
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

on_every_bus!(an_event_goes_round_trip_with_its_trace_context);
on_every_bus!(a_consumer_killed_mid_batch_gets_its_messages_again_and_applies_each_once);
on_every_bus!(a_poison_message_is_dead_lettered_while_the_next_is_processed);
on_every_bus!(a_handler_that_keeps_failing_is_dead_lettered_after_max_attempts);
on_every_bus!(the_events_of_one_subject_are_applied_in_order_across_lanes);

async fn an_event_goes_round_trip_with_its_trace_context(transport: Transport, store: Store) {
    let mut sandbox = Sandbox::start(transport, store, |_| {}).await;
    let database = sandbox.database();
    let (_recording, handler) = recorder();
    let consumer = sandbox.bus.subscribe(&sandbox.ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    sandbox.queues.push(consumer.queue_names().clone());
    let relay = sandbox.bus.start_relay(&sandbox.ctx, "order", database.clone()).await.unwrap();
    sandbox.bus.start_delivery();

    let trace = TraceParent::new_root().to_string();
    let envelope = enqueue_event(&database, "order", "order-1", Some(trace.clone())).await;
    wait_until("the event is applied", WITHIN, || async { applied_counts(&database).await.0 == 1 }).await;

    assert_eq!(applied_traceparent(&database, "order-1").await.as_deref(), Some(trace.as_str()), "traceparent arrived");
    wait_until("the row is marked sent", WITHIN, || async {
        relay.measure_lag().await.map(|lag| lag.num_unsent == 0).unwrap_or(false)
    })
    .await;
    wait_until("the relay counts it", WITHIN, || async { relay.snapshot().num_published == 1 }).await;
    let snapshot = consumer.snapshot();
    assert_eq!((snapshot.num_applied, snapshot.num_dead_lettered), (1, 0));
    assert!(snapshot.connected);
    assert!(!envelope.id.is_empty());

    consumer.stop().await;
    relay.stop().await;
    assert_eq!(sandbox.ctx.tree.snapshot().num_faults, 0, "no fault was recorded");
    sandbox.finish().await;
}

async fn a_consumer_killed_mid_batch_gets_its_messages_again_and_applies_each_once(transport: Transport, store: Store) {
    let mut sandbox = Sandbox::start(transport, store, |config| config.consumer_batch_size = 16).await;
    let database = sandbox.database();
    let (recording, handler) = recorder();
    *recording.gated_subject.lock() = Some("order-30".to_string());
    let first =
        sandbox.bus.subscribe(&sandbox.ctx, test_spec("payment"), database.clone(), handler.clone()).await.unwrap();
    sandbox.queues.push(first.queue_names().clone());
    // Enqueued before the relay starts: on SQLite the gated handler holds the write lock.
    for index in 0..60 {
        enqueue_event(&database, "order", &format!("order-{index}"), None).await;
    }
    let relay = sandbox.bus.start_relay(&sandbox.ctx, "order", database.clone()).await.unwrap();
    sandbox.bus.start_delivery();

    tokio::time::timeout(WITHIN, recording.gate_reached.notified()).await.expect("the handler reached order-30");
    // The consumer dies with a batch in its actor's hands: nothing of it is acknowledged.
    first.kill().await;
    // The batch commits after its consumer died: its messages come back although applied.
    recording.gate_open.notify_one();
    wait_until("the killed consumer's batch to commit", WITHIN, || async {
        applied_traceparent_exists(&database, "order-30").await
    })
    .await;

    let second = sandbox.bus.subscribe(&sandbox.ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    wait_until("all 60 events applied", WITHIN, || async { applied_counts(&database).await.1 == 60 }).await;
    wait_until("the redelivered, already committed messages are recognised", WITHIN, || async {
        second.snapshot().num_duplicates >= 1
    })
    .await;
    wait_until("the relay marked every row sent", WITHIN, || async {
        relay.measure_lag().await.map(|lag| lag.num_unsent == 0).unwrap_or(false)
    })
    .await;

    let (num_rows, num_distinct) = applied_counts(&database).await;
    assert_eq!((num_rows, num_distinct), (60, 60), "each event applied exactly once");
    // Give a late redelivery the time to show up as a second effect, were there one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(applied_counts(&database).await, (60, 60), "still exactly once");
    second.stop().await;
    relay.stop().await;
    sandbox.finish().await;
}

async fn applied_traceparent_exists(database: &emporium_store::Database, subject: &str) -> bool {
    let sql = format!("SELECT COUNT(*) AS n FROM applied_events WHERE subject = '{subject}'");
    let count: i64 =
        sqlx::Row::get(&sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(database.pool()).await.unwrap(), "n");
    count > 0
}

async fn a_poison_message_is_dead_lettered_while_the_next_is_processed(transport: Transport, store: Store) {
    let mut sandbox = Sandbox::start(transport, store, |_| {}).await;
    let database = sandbox.database();
    let (_recording, handler) = recorder();
    let consumer = sandbox.bus.subscribe(&sandbox.ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    sandbox.queues.push(consumer.queue_names().clone());
    let relay = sandbox.bus.start_relay(&sandbox.ctx, "order", database.clone()).await.unwrap();
    sandbox.bus.start_delivery();

    enqueue_poison(&database, "order").await;
    enqueue_event(&database, "order", "after-poison", None).await;
    wait_until("the next event is applied", WITHIN, || async { applied_counts(&database).await.0 == 1 }).await;
    wait_until("the poison is dead-lettered", WITHIN, || async { consumer.snapshot().num_dead_lettered == 1 }).await;

    let snapshot = consumer.snapshot();
    let letter = &snapshot.recent_dead_letters[0];
    assert!(letter.reason.starts_with("unreadable message"), "{}", letter.reason);
    assert!(letter.body.contains("not json"));
    let faults = dead_letter_faults(&sandbox.ctx);
    assert_eq!(faults.len(), 1, "the dead letter shows in the node's supervision snapshot");
    match transport {
        Transport::Amqp => {
            let letters = sandbox.amqp_dead_letters(consumer.queue_names()).await;
            assert_eq!(letters.len(), 1);
            assert!(letters[0].0.as_deref().unwrap_or("").starts_with("unreadable message"), "{letters:?}");
        }
        Transport::InProcess => {
            let stored = consumer.stored_dead_letters().await.unwrap();
            assert_eq!(stored.len(), 1);
            assert!(stored[0].reason.starts_with("unreadable message"));
        }
    }
    wait_until("the relay marked both rows sent", WITHIN, || async {
        relay.measure_lag().await.map(|lag| lag.num_unsent == 0).unwrap_or(false)
    })
    .await;
    consumer.stop().await;
    relay.stop().await;
    sandbox.finish().await;
}

async fn a_handler_that_keeps_failing_is_dead_lettered_after_max_attempts(transport: Transport, store: Store) {
    let mut sandbox = Sandbox::start(transport, store, |config| config.max_attempts = 3).await;
    let database = sandbox.database();
    let (recording, handler) = recorder();
    recording.failing_subjects.lock().push("bad".to_string());
    let consumer = sandbox.bus.subscribe(&sandbox.ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    sandbox.queues.push(consumer.queue_names().clone());
    let relay = sandbox.bus.start_relay(&sandbox.ctx, "order", database.clone()).await.unwrap();
    sandbox.bus.start_delivery();

    let bad = enqueue_event(&database, "order", "bad", None).await;
    enqueue_event(&database, "order", "good", None).await;
    wait_until("the good event is applied", WITHIN, || async { applied_counts(&database).await.0 == 1 }).await;
    wait_until("the bad event is dead-lettered", WITHIN, || async { consumer.snapshot().num_dead_lettered == 1 }).await;

    assert_eq!(recording.calls_for("bad"), 3, "the handler ran max_attempts times");
    let snapshot = consumer.snapshot();
    assert_eq!(snapshot.num_failures, 3);
    let letter = &snapshot.recent_dead_letters[0];
    assert_eq!(letter.event_id.as_deref(), Some(bad.id.as_str()));
    assert!(letter.reason.contains("failed 3 times"), "{}", letter.reason);
    assert_eq!(letter.attempts, 3);
    assert_eq!(dead_letter_faults(&sandbox.ctx).len(), 1);
    if transport == Transport::Amqp {
        let letters = sandbox.amqp_dead_letters(consumer.queue_names()).await;
        assert_eq!(letters.len(), 1);
        assert!(letters[0].0.as_deref().unwrap_or("").contains("failed 3 times"));
        assert_eq!(letters[0].1, Some(3));
    } else {
        assert_eq!(consumer.stored_dead_letters().await.unwrap().len(), 1);
    }
    consumer.stop().await;
    relay.stop().await;
    sandbox.finish().await;
}

/// Events of eight subjects, taken from the queue in steps of several lanes (batches of 8 x 4
/// lanes): every event is applied once, and the events of each subject in the order they were
/// published. (On SQLite the consumer runs one lane; the order must hold all the same.)
async fn the_events_of_one_subject_are_applied_in_order_across_lanes(transport: Transport, store: Store) {
    let mut sandbox = Sandbox::start(transport, store, |config| {
        config.consumer_batch_size = 8;
        config.consumer_lanes = 4;
    })
    .await;
    let database = sandbox.database();
    let (recording, handler) = recorder();
    // Each event takes a while, so that lanes run side by side and a subject split across two
    // of them would come out of order.
    *recording.delay.lock() = Duration::from_millis(1);
    let consumer = sandbox.bus.subscribe(&sandbox.ctx, test_spec("payment"), database.clone(), handler).await.unwrap();
    sandbox.queues.push(consumer.queue_names().clone());
    let mut published: std::collections::HashMap<String, Vec<String>> = Default::default();
    // Enqueued before the relay starts, so that the consumer's steps are full.
    for index in 0..160 {
        let subject = format!("order-{}", index % 8);
        let envelope = enqueue_event(&database, "order", &subject, None).await;
        published.entry(subject).or_default().push(envelope.id);
    }
    let relay = sandbox.bus.start_relay(&sandbox.ctx, "order", database.clone()).await.unwrap();
    sandbox.bus.start_delivery();
    wait_until("all 160 events applied", WITHIN, || async { applied_counts(&database).await.1 == 160 }).await;

    assert_eq!(applied_counts(&database).await, (160, 160), "each event applied exactly once");
    for (subject, expected) in &published {
        let applied: Vec<String> =
            sqlx::query_scalar("SELECT event_id FROM applied_events WHERE subject = ? ORDER BY row_id")
                .bind(subject)
                .fetch_all(database.pool())
                .await
                .unwrap();
        assert_eq!(&applied, expected, "the events of {subject} in the order they were published");
    }
    consumer.stop().await;
    relay.stop().await;
    sandbox.finish().await;
}
