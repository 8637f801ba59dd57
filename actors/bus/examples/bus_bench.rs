//! End-to-end throughput and latency of the event bus on MariaDB + RabbitMQ, compared in the
//! same run with a raw lapin publish/consume loop with publisher confirms.
//!
//! ```text
//! cargo run --release -p emporium-bus --example bus_bench -- [EVENTS] [PRODUCERS] [default]
//! ```
//!
//! Bus: `PRODUCERS` tasks insert `EVENTS` events into the outbox, one event per transaction
//! (as a service would), on the producing service's pool; the relay publishes them with
//! confirms; a consumer with a pool of its own applies each in a transaction (one insert into a
//! table of its own, plus the inbox row) and acks after commit. Throughput = events / (first
//! insert .. last inbox commit); latency = event time (just before the producer's transaction)
//! to the inbox row's `processed_at` (just before the consumer's commit). The events have a
//! type only the bench's queue is bound to, so the broker stores each once, as in the raw loop;
//! the last run uses `order.confirmed`, which the topology also routes to the inventory's and
//! the notification's queues. Runs: consumer batch 64 x 4 lanes (the default), 64 x 1 lane,
//! 256 x 4, 1 x 1 (no batching), and the default with three queues.
//!
//! Baselines in the same run: raw lapin, the same number of persistent messages of the same
//! size published to one durable queue with confirms (windows of 256) and consumed with manual
//! acks (prefetch 64); and raw MariaDB, the producers' part alone (the same number of one-row
//! transactions from the same number of tasks through one pool). `default` as the third
//! argument runs only the default configuration (for profiling). Uses `EMPORIUM_TEST_AMQP_URL`
//! and `EMPORIUM_TEST_MYSQL_URL` (defaults: the local servers); creates and drops its own
//! databases and queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_bus::{Bus, BusConfig, ConsumerSpec, EventError, handler_fn, outbox};
use emporium_cluster::directory::Directory;
use emporium_cluster::service_ref::Cluster;
use emporium_cluster::{ClusterSecret, ServiceContext, Settings};
use emporium_contracts::EventEnvelope;
use emporium_contracts::events::{ORDER_CONFIRMED, ORDER_EVENTS, OrderConfirmed};
use emporium_runtime::SupervisionTree;
use emporium_store::Database;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use sqlx::Row;
use tokio::sync::watch;

/// The nodes' allocator (nodes/src/allocator.rs), so the bench's CPU per event is a node's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn amqp_url() -> String {
    std::env::var("EMPORIUM_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

fn mysql_url() -> String {
    std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

struct Figures {
    events_per_second: f64,
    p50_millis: f64,
    p99_millis: f64,
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

/// An event type of the order exchange that no subscription of the topology wants: only the
/// bench's queue (bound to `order.*`) gets it, as the raw lapin loop's one queue does.
const BENCH_ONLY: &str = "order.bench_measured";

fn sample_envelope(index: usize, event_type: &str) -> EventEnvelope {
    let payload = OrderConfirmed {
        order_id: format!("order-{index}"),
        user_id: "user-1".into(),
        total: "19.98".into(),
        currency: "USD".into(),
    };
    EventEnvelope::new("/emporium/order", event_type, &format!("order-{index}"), &payload).expect("envelope")
}

async fn raw_lapin(num_events: usize) -> Figures {
    let queue = format!("bench.raw.{}", uuid::Uuid::new_v4().simple());
    let publisher = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("rabbitmq");
    let consumer_connection =
        Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("rabbitmq");
    let channel = publisher.create_channel().await.expect("channel");
    channel
        .queue_declare(
            queue.clone().into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let consume_channel = consumer_connection.create_channel().await.expect("channel");
    consume_channel.basic_qos(64, BasicQosOptions::default()).await.expect("qos");
    let mut consumer = consume_channel
        .basic_consume(queue.clone().into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("consume");
    let body_size = sample_envelope(0, BENCH_ONLY).to_json().expect("json").len();
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(num_events);
        while latencies.len() < num_events {
            let Some(Ok(delivery)) = consumer.next().await else { break };
            let sent_micros = u64::from_le_bytes(delivery.data[..8].try_into().expect("8 bytes"));
            latencies.push((started.elapsed().as_micros() as u64).saturating_sub(sent_micros) as f64 / 1000.0);
            delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
        }
        latencies
    });
    let mut body = vec![b'x'; body_size.max(8)];
    for window_start in (0..num_events).step_by(256) {
        let mut confirms = Vec::with_capacity(256);
        for _ in window_start..(window_start + 256).min(num_events) {
            body[..8].copy_from_slice(&(started.elapsed().as_micros() as u64).to_le_bytes());
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.clone().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish");
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.expect("confirm").is_ack());
        }
    }
    let mut latencies = consuming.await.expect("consumer");
    let elapsed = started.elapsed();
    let _ = channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
    let _ = publisher.close(200, "done".into()).await;
    let _ = consumer_connection.close(200, "done".into()).await;
    latencies.sort_by(f64::total_cmp);
    Figures {
        events_per_second: num_events as f64 / elapsed.as_secs_f64(),
        p50_millis: percentile(&latencies, 0.5),
        p99_millis: percentile(&latencies, 0.99),
    }
}

/// The database's own limit for the producers' part: `num_producers` tasks commit
/// `num_events` one-row transactions (the outbox row's size) through one pool, as the bus's
/// producers do, with no relay and no consumer. Answers transactions per second.
async fn raw_mariadb(num_events: usize, num_producers: usize) -> f64 {
    let database_name = format!("bus_bench_raw_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&mysql_url()).await.expect("mariadb");
    admin.execute(&format!("CREATE DATABASE {database_name}")).await.expect("create database");
    let database = Database::connect(&format!("{}/{database_name}", mysql_url())).await.expect("database");
    database
        .execute(
            "CREATE TABLE raw_rows (id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id VARCHAR(64) NOT NULL UNIQUE, \
             envelope TEXT NOT NULL)",
        )
        .await
        .expect("table");
    let started = Instant::now();
    let per_producer = num_events / num_producers;
    let producers: Vec<_> = (0..num_producers)
        .map(|producer| {
            let database = database.clone();
            tokio::spawn(async move {
                for index in 0..per_producer {
                    let envelope = sample_envelope(producer * per_producer + index, BENCH_ONLY);
                    let body = String::from_utf8(envelope.to_json().expect("json")).expect("utf-8");
                    let mut tx = database.begin().await.expect("begin");
                    sqlx::query("INSERT INTO raw_rows (event_id, envelope) VALUES (?, ?)")
                        .bind(&envelope.id)
                        .bind(&body)
                        .execute(tx.connection())
                        .await
                        .expect("insert");
                    tx.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer");
    }
    let per_second = (per_producer * num_producers) as f64 / started.elapsed().as_secs_f64();
    database.close().await;
    admin.execute(&format!("DROP DATABASE {database_name}")).await.expect("drop database");
    admin.close().await;
    per_second
}

fn service_context() -> ServiceContext {
    let (_settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
    ServiceContext {
        node_id: "bench".into(),
        tree: SupervisionTree::new("bench", 64, 32),
        cluster: Cluster::new("bench", Directory::new(), ClusterSecret::generate()),
        settings: settings_rx,
        arbiter: actix::Arbiter::current(),
        lifecycle: emporium_cluster::Lifecycle::new(),
    }
}

async fn through_the_bus(
    num_events: usize,
    num_producers: usize,
    consumer_batch_size: usize,
    consumer_lanes: usize,
    event_type: &'static str,
) -> Figures {
    let database_name = format!("bus_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&mysql_url()).await.expect("mariadb");
    admin.execute(&format!("CREATE DATABASE {database_name}")).await.expect("create database");
    // Two services, two pools (as on two nodes): the producing service writes its outbox and
    // runs its relay on one, the consuming service applies events on the other.
    let database = Database::connect(&format!("{}/{database_name}", mysql_url())).await.expect("database");
    let producer_database = Database::connect(&format!("{}/{database_name}", mysql_url())).await.expect("database");
    database
        .execute(
            "CREATE TABLE bench_applied (event_id VARCHAR(64) NOT NULL PRIMARY KEY, subject VARCHAR(64) NOT NULL, \
             event_time VARCHAR(40) NOT NULL)",
        )
        .await
        .expect("table");
    let namespace = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let config = BusConfig {
        consumer_batch_size,
        consumer_lanes,
        // A batch per lane in flight, as the default (64 x 4 = 256) does.
        prefetch: (consumer_batch_size * consumer_lanes).clamp(64, usize::from(u16::MAX)) as u16,
        ..BusConfig::amqp(&amqp_url()).with_namespace(&namespace)
    };
    let bus = Bus::connect(config).await.expect("bus");
    let ctx = service_context();
    let handler = handler_fn(|event, mut tx| async move {
        const INSERT: &str = "INSERT INTO bench_applied (event_id, subject, event_time) VALUES (?, ?, ?)";
        sqlx::query(INSERT)
            .bind(&event.envelope.id)
            .bind(&event.envelope.subject)
            .bind(&event.envelope.time)
            .execute(tx.connection())
            .await?;
        Ok::<_, EventError>(tx)
    });
    let consumer = bus
        .subscribe(&ctx, ConsumerSpec::new("bench", ORDER_EVENTS, &["order.*"]), database.clone(), handler)
        .await
        .expect("subscribe");
    let relay = bus.start_relay(&ctx, "order", producer_database.clone()).await.expect("relay");
    bus.start_delivery();

    let started = Instant::now();
    let per_producer = num_events / num_producers;
    let mut producers = Vec::new();
    for producer in 0..num_producers {
        let database = producer_database.clone();
        producers.push(tokio::spawn(async move {
            for index in 0..per_producer {
                let envelope = sample_envelope(producer * per_producer + index, event_type);
                let mut tx = database.begin().await.expect("begin");
                outbox::enqueue_to(&mut tx, "order", ORDER_EVENTS, &envelope, None).await.expect("enqueue");
                tx.commit().await.expect("commit");
            }
        }));
    }
    for producer in producers {
        producer.await.expect("producer");
    }
    let total = per_producer * num_producers;
    let inserted_after = started.elapsed();
    loop {
        if consumer.snapshot().num_applied as usize >= total {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the bench did not finish: {:?}", consumer.snapshot());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let rows = sqlx::query(
        "SELECT b.event_time AS event_time, DATE_FORMAT(i.processed_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS processed_at \
         FROM bench_applied b JOIN bus_inbox i ON i.event_id = b.event_id",
    )
    .fetch_all(database.pool())
    .await
    .expect("latencies");
    let mut latencies: Vec<f64> = rows
        .iter()
        .filter_map(|row| {
            let event_time: String = row.try_get("event_time").ok()?;
            let processed_at: String = row.try_get("processed_at").ok()?;
            let event_time = chrono::DateTime::parse_from_rfc3339(&event_time).ok()?;
            let processed_at = chrono::DateTime::parse_from_rfc3339(&processed_at).ok()?;
            Some((processed_at - event_time).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "  bus ({event_type}, consumer batch {consumer_batch_size} x {consumer_lanes} lanes): inserts done after {:.2}s, all applied after {:.2}s; consumer {:?}",
        inserted_after.as_secs_f64(),
        elapsed.as_secs_f64(),
        consumer.snapshot().num_applied
    );
    consumer.stop().await;
    relay.stop().await;
    // The topology's own queues got the bench's events too.
    if let Err(error) = bus.delete_topology().await {
        eprintln!("  could not delete the bench's topology: {error}");
    }
    bus.close().await;
    database.close().await;
    producer_database.close().await;
    admin.execute(&format!("DROP DATABASE {database_name}")).await.expect("drop database");
    let cleanup = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("rabbitmq");
    if let Ok(channel) = cleanup.create_channel().await {
        let names = consumer.queue_names();
        for queue in [&names.queue, &names.dead_letter_queue] {
            let _ = channel.queue_delete(queue.clone().into(), QueueDeleteOptions::default()).await;
        }
    }
    let _ = cleanup.close(200, "done".into()).await;
    Figures {
        events_per_second: total as f64 / elapsed.as_secs_f64(),
        p50_millis: percentile(&latencies, 0.5),
        p99_millis: percentile(&latencies, 0.99),
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let num_events: usize = arguments.first().and_then(|value| value.parse().ok()).unwrap_or(20_000);
    let num_producers: usize = arguments.get(1).and_then(|value| value.parse().ok()).unwrap_or(32);
    // `default`: only the default configuration (for profiling); anything else: every run.
    let only_default = arguments.get(2).is_some_and(|mode| mode == "default");
    actix_rt::System::new().block_on(async move {
        let flush: String = {
            let admin = Database::connect(&mysql_url()).await.expect("mariadb");
            let value = sqlx::query("SELECT CAST(@@innodb_flush_log_at_trx_commit AS CHAR) AS value")
                .fetch_one(admin.pool())
                .await
                .and_then(|row| row.try_get("value"))
                .unwrap_or_default();
            admin.close().await;
            value
        };
        println!(
            "bus_bench: {num_events} events, {num_producers} producers, {} cores, innodb_flush_log_at_trx_commit={flush}",
            std::thread::available_parallelism().map(|cores| cores.get()).unwrap_or(1)
        );
        let raw = raw_lapin(num_events).await;
        println!(
            "raw lapin (confirms, manual acks): {:>8.0} events/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            raw.events_per_second, raw.p50_millis, raw.p99_millis
        );
        let raw_transactions = raw_mariadb(num_events, num_producers).await;
        println!("raw MariaDB (one-row transactions, {num_producers} tasks): {raw_transactions:>8.0} commits/s");
        // (consumer batch, lanes, event type): the default (64 x 4); one lane (no concurrent
        // transactions); larger batches; no batching; and the default where the event also
        // reaches the topology's two other queues (inventory, notification: no consumers).
        let runs = [
            (64, 4, BENCH_ONLY),
            (64, 1, BENCH_ONLY),
            (256, 4, BENCH_ONLY),
            (1, 1, BENCH_ONLY),
            (64, 4, ORDER_CONFIRMED),
        ];
        for (batch, lanes, event_type) in runs.into_iter().take(if only_default { 1 } else { usize::MAX }) {
            let bus = through_the_bus(num_events, num_producers, batch, lanes, event_type).await;
            let queues = if event_type == ORDER_CONFIRMED { "3 queues" } else { "1 queue " };
            println!(
                "bus outbox->inbox, {queues}, batch {batch:>3} x {lanes} lanes: {:>8.0} events/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.1}% of raw lapin)",
                bus.events_per_second,
                bus.p50_millis,
                bus.p99_millis,
                100.0 * bus.events_per_second / raw.events_per_second
            );
        }
    });
}
