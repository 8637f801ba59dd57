//! Shared set-up of the bus's integration tests: a fresh database (MariaDB or SQLite) and a
//! unique namespace per test on the real RabbitMQ, a hand-built `ServiceContext`, and a
//! handler that records what it applied.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use emporium_bus::{Bus, BusConfig, ConsumerSpec, EventError, EventHandler, ReceivedEvent, outbox};
use emporium_cluster::directory::Directory;
use emporium_cluster::service_ref::Cluster;
use emporium_cluster::{ClusterSecret, ServiceContext, Settings};
use emporium_contracts::EventEnvelope;
use emporium_contracts::events::{ORDER_CREATED, OrderCancelled};
use emporium_runtime::SupervisionTree;
use emporium_store::{Database, DbTx};
use futures::future::BoxFuture;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use parking_lot::Mutex;
use sqlx::Row;
use tokio::sync::{Notify, watch};

/// Which broker a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The machine's RabbitMQ.
    Amqp,
    /// The in-process bus.
    InProcess,
}

pub use emporium_store::testing::{StoreKind as Store, TestDatabase};

pub fn amqp_url() -> String {
    std::env::var("EMPORIUM_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A `ServiceContext` on the current actix system, as a node would give a service.
pub fn service_context(node_id: &str) -> ServiceContext {
    let (_settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
    ServiceContext {
        node_id: node_id.to_string(),
        tree: SupervisionTree::new(node_id, 64, 32),
        cluster: Cluster::new(node_id, Directory::new(), ClusterSecret::generate()),
        settings: settings_rx,
        arbiter: actix::Arbiter::current(),
        lifecycle: emporium_cluster::Lifecycle::new(),
    }
}

/// A bus on `transport` with a unique namespace.
pub async fn connect_bus(transport: Transport, namespace: &str, tweak: impl FnOnce(&mut BusConfig)) -> Bus {
    let mut config = BusConfig {
        amqp_url: (transport == Transport::Amqp).then(amqp_url),
        namespace: namespace.to_string(),
        retry_delay: Duration::from_millis(20),
        relay_poll_interval: Duration::from_millis(200),
        lag_report_interval: Duration::from_millis(200),
        reconnect_min_delay: Duration::from_millis(50),
        reconnect_max_delay: Duration::from_millis(500),
        ..BusConfig::default()
    };
    tweak(&mut config);
    Bus::connect(config).await.unwrap_or_else(|error| {
        panic!("the bus could not start ({error}); is RabbitMQ running at {}? (ops/test.sh starts it)", amqp_url())
    })
}

pub fn unique_namespace() -> String {
    format!("bt{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Deletes the namespace's exchanges and queues from the broker: `queues` and every queue of
/// the contracts' topology (which every bus declares).
pub async fn delete_amqp_names(namespace: &str, queues: &[emporium_bus::QueueNames]) {
    let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await else { return };
    let Ok(channel) = connection.create_channel().await else { return };
    let config = BusConfig::default().with_namespace(namespace);
    let topology = ConsumerSpec::topology().into_iter().map(|spec| config.queue_names(&spec.consumer, &spec.exchange));
    for names in queues.iter().cloned().chain(topology) {
        for queue in [&names.queue, &names.dead_letter_queue] {
            let _ = channel.queue_delete(queue.clone().into(), QueueDeleteOptions::default()).await;
        }
        let _ =
            channel.exchange_delete(names.dead_letter_exchange.clone().into(), ExchangeDeleteOptions::default()).await;
    }
    for exchange in emporium_contracts::events::ALL_EXCHANGES {
        let _ =
            channel.exchange_delete(format!("{namespace}.{exchange}").into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = connection.close(200, "test done".into()).await;
}

/// The table the recording handler writes; no unique key, so a second effect would show.
pub async fn create_applied_table(database: &Database) {
    let ddl = match database.dialect() {
        emporium_store::Dialect::MySql => {
            "CREATE TABLE applied_events (row_id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id VARCHAR(64) NOT NULL, \
             subject VARCHAR(255) NOT NULL, traceparent VARCHAR(64) NULL)"
        }
        emporium_store::Dialect::Sqlite => {
            "CREATE TABLE applied_events (row_id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, \
             subject TEXT NOT NULL, traceparent TEXT NULL)"
        }
    };
    database.execute(ddl).await.expect("create applied_events");
}

/// `(rows, distinct event ids)` in `applied_events`.
pub async fn applied_counts(database: &Database) -> (i64, i64) {
    let sql = "SELECT COUNT(*) AS num_rows, COUNT(DISTINCT event_id) AS num_distinct FROM applied_events";
    let row = sqlx::query(sql).fetch_one(database.pool()).await.unwrap();
    (row.get("num_rows"), row.get("num_distinct"))
}

/// The traceparent recorded with the event of `subject`.
pub async fn applied_traceparent(database: &Database, subject: &str) -> Option<String> {
    let sql = "SELECT traceparent FROM applied_events WHERE subject = ?";
    sqlx::query(sql).bind(subject).fetch_one(database.pool()).await.unwrap().get("traceparent")
}

/// One outbox row of `service` for a new `order.created`-shaped event about `subject`, in its
/// own transaction.
pub async fn enqueue_event(
    database: &Database,
    service: &str,
    subject: &str,
    traceparent: Option<String>,
) -> EventEnvelope {
    let payload = OrderCancelled { order_id: subject.to_string(), user_id: "u1".into(), reason: "test".into() };
    let envelope = EventEnvelope::new("/emporium/test", ORDER_CREATED, subject, &payload).unwrap();
    let mut tx = database.begin().await.unwrap();
    outbox::enqueue(&mut tx, service, &envelope, traceparent).await.unwrap();
    tx.commit().await.unwrap();
    envelope
}

/// Inserts a row whose envelope is not JSON, straight into the outbox.
pub async fn enqueue_poison(database: &Database, service: &str) {
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now();
    let created_at = match database.dialect() {
        emporium_store::Dialect::MySql => now.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        emporium_store::Dialect::Sqlite => now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    };
    let sql = format!(
        "INSERT INTO bus_outbox (service, event_id, exchange_name, routing_key, subject, envelope, created_at, attempts) \
         VALUES ('{service}', '{id}', 'order-events', 'order.created', 'poison', 'this is {{ not json', '{created_at}', 0)"
    );
    database.execute(&sql).await.unwrap();
}

/// A handler that records every event it applies in `applied_events`, fails on subjects it
/// is told to, and can hold one subject at a gate.
#[derive(Default)]
pub struct RecordingHandler {
    /// Subjects whose events always fail (transiently).
    pub failing_subjects: Mutex<Vec<String>>,
    /// Handler calls per subject.
    pub calls: Mutex<HashMap<String, u32>>,
    /// Holds the event of this subject until `gate_open` is notified.
    pub gated_subject: Mutex<Option<String>>,
    pub gate_reached: Notify,
    pub gate_open: Notify,
    gate_passed: AtomicBool,
    /// Sleeps this long per event.
    pub delay: Mutex<Duration>,
}

impl RecordingHandler {
    pub fn calls_for(&self, subject: &str) -> u32 {
        self.calls.lock().get(subject).copied().unwrap_or(0)
    }
}

impl RecordingHandler {
    async fn apply(self: Arc<Self>, event: ReceivedEvent, mut tx: DbTx) -> Result<DbTx, EventError> {
        let subject = event.envelope.subject.clone();
        *self.calls.lock().entry(subject.clone()).or_default() += 1;
        let fails = self.failing_subjects.lock().contains(&subject);
        let gated = self.gated_subject.lock().as_deref() == Some(subject.as_str())
            && !self.gate_passed.swap(true, Ordering::SeqCst);
        let delay = *self.delay.lock();
        if gated {
            let opened = self.gate_open.notified();
            self.gate_reached.notify_one();
            opened.await;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if fails {
            return Err(EventError::Transient(format!("subject {subject} always fails")));
        }
        const INSERT: &str = "INSERT INTO applied_events (event_id, subject, traceparent) VALUES (?, ?, ?)";
        sqlx::query(INSERT)
            .bind(&event.envelope.id)
            .bind(&subject)
            .bind(&event.traceparent)
            .execute(tx.connection())
            .await?;
        Ok(tx)
    }
}

/// The [`EventHandler`] face of a shared [`RecordingHandler`].
pub struct Recorder(pub Arc<RecordingHandler>);

impl EventHandler for Recorder {
    fn handle(&self, event: ReceivedEvent, tx: DbTx) -> BoxFuture<'static, Result<DbTx, EventError>> {
        Box::pin(self.0.clone().apply(event, tx))
    }
}

/// A recording handler and its `EventHandler` face.
pub fn recorder() -> (Arc<RecordingHandler>, Arc<dyn EventHandler>) {
    let handler = Arc::new(RecordingHandler::default());
    (handler.clone(), Arc::new(Recorder(handler)))
}

/// Polls `condition` every 20 ms until it holds or `within` passes.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < within, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The consumer spec every test uses.
pub fn test_spec(consumer: &str) -> ConsumerSpec {
    ConsumerSpec::new(consumer, "order-events", &["order.*"])
}

/// Whether the supervision tree recorded a dead-letter fault.
pub fn dead_letter_faults(ctx: &ServiceContext) -> Vec<String> {
    ctx.tree
        .snapshot()
        .faults
        .into_iter()
        .filter(|fault| fault.message_type == "DeadLetter")
        .map(|fault| fault.error)
        .collect()
}
