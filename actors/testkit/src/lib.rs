//! Set-up shared by the services' integration tests (a dev-dependency only): a fresh database
//! per test (from `emporium_store::testing`) on the machine's MariaDB (`EMPORIUM_TEST_MYSQL_URL`) or in a SQLite file, a bus with
//! a unique namespace on the machine's RabbitMQ (`EMPORIUM_TEST_AMQP_URL`) or in process, and a
//! few readers of the tables. Neither server missing is skipped: the tests fail and say so.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_bus::{Bus, BusConfig, outbox};
use emporium_cluster::{ServiceContext, Settings};
use emporium_contracts::EventEnvelope;
use emporium_store::Database;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use sqlx::Row;
use tokio::sync::watch;

/// Which broker a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The machine's RabbitMQ.
    Amqp,
    /// The in-process bus.
    InProcess,
}

pub use emporium_store::testing::{StoreKind, TestDatabase as TestStore, mysql_url};

pub fn amqp_url() -> String {
    std::env::var("EMPORIUM_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

pub fn unique_namespace(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A bus on `transport` with `namespace` and quick retries.
pub async fn connect_bus(transport: Transport, namespace: &str) -> Bus {
    let config = BusConfig {
        amqp_url: (transport == Transport::Amqp).then(amqp_url),
        namespace: namespace.to_string(),
        retry_delay: Duration::from_millis(20),
        relay_poll_interval: Duration::from_millis(100),
        lag_report_interval: Duration::from_millis(200),
        reconnect_min_delay: Duration::from_millis(50),
        reconnect_max_delay: Duration::from_millis(500),
        ..BusConfig::default()
    };
    Bus::connect(config).await.unwrap_or_else(|error| {
        panic!("the bus could not start ({error}); is RabbitMQ running at {}? (ops/test.sh starts it)", amqp_url())
    })
}

/// Deletes what `namespace` declared on the broker: the queues of `consumer` on `exchanges`
/// (with their dead-letter queue and exchange) and the namespace's exchanges.
pub async fn delete_amqp_names(namespace: &str, consumer: &str, exchanges: &[&str]) {
    let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await else { return };
    let Ok(channel) = connection.create_channel().await else { return };
    for exchange in exchanges {
        let queue = format!("{namespace}.{consumer}.{exchange}");
        for name in [queue.clone(), format!("{queue}.dlq")] {
            let _ = channel.queue_delete(name.into(), QueueDeleteOptions::default()).await;
        }
        let _ = channel.exchange_delete(format!("{queue}.dlx").into(), ExchangeDeleteOptions::default()).await;
    }
    for exchange in emporium_contracts::events::ALL_EXCHANGES {
        let _ =
            channel.exchange_delete(format!("{namespace}.{exchange}").into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = connection.close(200, "test done".into()).await;
}

/// A standalone service context (inside the current actix system) and its settings' sender.
pub fn service_context(node_id: &str) -> (ServiceContext, watch::Sender<Arc<Settings>>) {
    let (settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
    (ServiceContext::standalone(node_id, settings_rx), settings_tx)
}

/// Writes `envelope` into the outbox of `service` (a stand-in publisher), in its own
/// transaction.
pub async fn enqueue(database: &Database, service: &str, envelope: &EventEnvelope, traceparent: Option<String>) {
    let mut tx = database.begin().await.unwrap();
    outbox::enqueue(&mut tx, service, envelope, traceparent).await.unwrap();
    tx.commit().await.unwrap();
}

/// The first column of the first row of `sql` (test-built SQL), as an integer.
pub async fn scalar(database: &Database, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    sqlx::query(sql).fetch_one(database.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// The text columns of every row of `sql` (test-built SQL), as nullable strings.
pub async fn rows(database: &Database, sql: &str) -> Vec<Vec<Option<String>>> {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    let rows = sqlx::query(sql).fetch_all(database.pool()).await.unwrap();
    rows.iter()
        .map(|row| (0..row.len()).map(|index| row.try_get::<Option<String>, _>(index).unwrap()).collect())
        .collect()
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
