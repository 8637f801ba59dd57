//! The raw limit of one-unit reservations on MariaDB/MySQL: every transaction runs exactly the
//! statements that inventory's `ReserveStock` runs for a new order id with one line (see
//! `reserve` in actors/inventory/src/stock_keeper.rs, the statements in
//! actors/inventory/src/store.rs and `outbox::enqueue_to` in actors/bus/src/outbox.rs), in the
//! same order, on a sqlx MySQL pool of the same size as the service's (16), from a bare loop:
//! `concurrency` transactions in flight, no actor, no ServiceRef, no HTTP.
//!
//! Per reservation (variant `same`, what the service does today):
//!
//! ```text
//! BEGIN
//! SELECT status, expires_at_ms FROM inventory_reservations WHERE order_id = ?      -- none yet
//! UPDATE inventory_stock SET available = available - ?, reserved = reserved + ?, ... WHERE sku = ? AND available >= ?
//! INSERT INTO inventory_reservations (...)
//! INSERT INTO inventory_reservation_lines (...)
//! INSERT INTO bus_outbox (...)                       -- the inventory.reserved CloudEvents envelope
//! SELECT ... FROM inventory_stock WHERE sku = ?      -- available before, for the reorder check
//! SELECT ... FROM inventory_stock WHERE sku = ?      -- publish_reorder_if_crossed reads it again
//! COMMIT
//! ```
//!
//! Variant `lock-last` (a suggestion, not what the service does): the same inserts first, then
//! the conditional UPDATE and one stock SELECT, so the hot SKU row is locked only for the last
//! two statements and the commit.
//!
//! Prints one JSON object: numOk, numErrors, elapsedMicros, p50Micros, p99Micros,
//! reservationsPerSecond, errors.
//!
//!     inventory-raw --url mysql://root@127.0.0.1:3306/db --sku SKU --count 5000 --concurrency 16

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, Row};

const SELECT_RESERVATION: &str = "SELECT status, expires_at_ms FROM inventory_reservations WHERE order_id = ?";
const SELECT_LINES: &str = "SELECT sku, quantity FROM inventory_reservation_lines WHERE order_id = ? ORDER BY sku";
const TAKE_STOCK: &str = "UPDATE inventory_stock SET available = available - ?, reserved = reserved + ?, updated_at_ms = ? \
        WHERE sku = ? AND available >= ?";
const SELECT_STOCK: &str = "SELECT sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms FROM inventory_stock WHERE sku = ?";
const INSERT_RESERVATION: &str = "INSERT INTO inventory_reservations (order_id, status, created_at_ms, expires_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?)";
const INSERT_LINE: &str = "INSERT INTO inventory_reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)";
const INSERT_OUTBOX: &str = "INSERT INTO bus_outbox \
        (service, event_id, exchange_name, routing_key, subject, envelope, traceparent, created_at, attempts) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)";
/// The service's default reservation TTL (config/application.toml).
const TTL_MILLIS: i64 = 900_000;

#[derive(Clone)]
struct Options {
    url: String,
    sku: String,
    count: u32,
    concurrency: u32,
    pool: u32,
    warmup: u32,
    prefix: String,
    variant: Variant,
    traceparent: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Same,
    LockLast,
}

fn parse_options() -> Options {
    let mut options = Options {
        url: String::new(),
        sku: "BENCH-SKU".into(),
        count: 1000,
        concurrency: 1,
        pool: 16,
        warmup: 0,
        prefix: format!("raw-{:x}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()),
        variant: Variant::Same,
        traceparent: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => options.url = value(),
            "--sku" => options.sku = value(),
            "--count" => options.count = value().parse().expect("--count"),
            "--concurrency" => options.concurrency = value().parse().expect("--concurrency"),
            "--pool" => options.pool = value().parse().expect("--pool"),
            "--warmup" => options.warmup = value().parse().expect("--warmup"),
            "--prefix" => options.prefix = value(),
            "--traceparent" => options.traceparent = Some(value()),
            "--variant" => {
                options.variant = match value().as_str() {
                    "same" => Variant::Same,
                    "lock-last" => Variant::LockLast,
                    other => panic!("unknown variant {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!options.url.is_empty(), "--url is required");
    options
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A version-4-shaped id (36 characters, like `new_event_id`).
fn event_id(prefix_hash: u64, index: u32) -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let hex = format!("{:016x}{:08x}{:08x}", prefix_hash ^ nanos, index, (nanos >> 16) as u32);
    format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// The `inventory.reserved` envelope as the service writes it (CloudEvents 1.0 JSON).
fn envelope(id: &str, order_id: &str, sku: &str) -> String {
    serde_json::to_string(&serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/emporium/inventory",
        "type": "inventory.reserved",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "subject": order_id,
        "datacontenttype": "application/json",
        "data": {"orderId": order_id, "lines": [{"sku": sku, "quantity": 1}]},
    }))
    .expect("json")
}

struct Stock {
    available: i64,
    reorder_level: i64,
}

async fn stock_in(connection: &mut sqlx::MySqlConnection, sku: &str) -> Result<Option<Stock>, sqlx::Error> {
    match sqlx::query(SELECT_STOCK).bind(sku).fetch_optional(&mut *connection).await? {
        Some(row) => {
            let _: String = row.try_get("sku")?;
            let _: i64 = row.try_get("reserved")?;
            let _: i64 = row.try_get("reorder_quantity")?;
            let _: i64 = row.try_get("updated_at_ms")?;
            Ok(Some(Stock { available: row.try_get("available")?, reorder_level: row.try_get("reorder_level")? }))
        }
        None => Ok(None),
    }
}

/// store::take_stock: one unit from available to reserved when at least one is available.
async fn take_stock(connection: &mut sqlx::MySqlConnection, sku: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(TAKE_STOCK)
        .bind(1i64)
        .bind(1i64)
        .bind(now_millis())
        .bind(sku)
        .bind(1i64)
        .execute(&mut *connection)
        .await?;
    Ok(done.rows_affected() == 1)
}

async fn reserve(pool: &MySqlPool, options: &Options, prefix_hash: u64, index: u32) -> Result<(), String> {
    let order_id = format!("{}-{index}", options.prefix);
    let sku = options.sku.as_str();
    let mut tx = pool.begin().await.map_err(|error| format!("begin: {error}"))?;
    let result: Result<Result<(), String>, sqlx::Error> = async {
        // store::reservation
        if let Some(head) = sqlx::query(SELECT_RESERVATION).bind(&order_id).fetch_optional(&mut *tx).await? {
            let _: String = head.try_get("status")?;
            sqlx::query(SELECT_LINES).bind(&order_id).fetch_all(&mut *tx).await?;
            return Ok(Err("already reserved".to_string()));
        }
        let now = now_millis();
        if options.variant == Variant::Same && !take_stock(&mut tx, sku).await? {
            stock_in(&mut tx, sku).await?;
            return Ok(Err("out_of_stock".to_string()));
        }
        // store::insert_reservation
        sqlx::query(INSERT_RESERVATION)
            .bind(&order_id)
            .bind("RESERVED")
            .bind(now)
            .bind(now + TTL_MILLIS)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_LINE).bind(&order_id).bind(sku).bind(1i64).execute(&mut *tx).await?;
        // outbox::enqueue_to
        let id = event_id(prefix_hash, index);
        let body = envelope(&id, &order_id, sku);
        sqlx::query(INSERT_OUTBOX)
            .bind("inventory")
            .bind(&id)
            .bind("inventory-events")
            .bind("inventory.reserved")
            .bind(&order_id)
            .bind(&body)
            .bind(&options.traceparent)
            .bind(chrono::Utc::now().naive_utc())
            .execute(&mut *tx)
            .await?;
        if options.variant == Variant::LockLast {
            if !take_stock(&mut tx, sku).await? {
                stock_in(&mut tx, sku).await?;
                return Ok(Err("out_of_stock".to_string()));
            }
            // One read serves the reorder check.
            stock_in(&mut tx, sku).await?;
            return Ok(Ok(()));
        }
        // The available-before read, then publish_reorder_if_crossed's own read.
        let before = stock_in(&mut tx, sku).await?.map_or(0, |stock| stock.available) + 1;
        if let Some(stock) = stock_in(&mut tx, sku).await?
            && stock.available <= stock.reorder_level
            && before > stock.reorder_level
        {
            return Ok(Err("reorder level crossed: set a lower reorder level for the benchmark".to_string()));
        }
        Ok(Ok(()))
    }
    .await;
    match result {
        Ok(Ok(())) => tx.commit().await.map_err(|error| format!("commit: {error}")),
        Ok(Err(reason)) => {
            let _ = tx.rollback().await;
            Err(reason)
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(format!("sql: {error}"))
        }
    }
}

async fn run(pool: &MySqlPool, options: &Options, first: u32, count: u32, concurrency: u32) -> serde_json::Value {
    let prefix_hash = {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(&options.prefix)
    };
    let started = Instant::now();
    let results: Vec<(Duration, Result<(), String>)> = futures::stream::iter(first..first + count)
        .map(|index| async move {
            let sent = Instant::now();
            let result = reserve(pool, options, prefix_hash, index).await;
            (sent.elapsed(), result)
        })
        .buffer_unordered(concurrency.max(1) as usize)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies: Vec<u64> = Vec::with_capacity(results.len());
    let mut errors: BTreeMap<String, u32> = BTreeMap::new();
    for (latency, result) in results {
        match result {
            Ok(()) => latencies.push(latency.as_micros() as u64),
            Err(error) => *errors.entry(error).or_default() += 1,
        }
    }
    latencies.sort_unstable();
    // The same percentile as the probe's `measure` (actors/echo/src/probe.rs).
    let percentile = |fraction: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() as f64 - 1.0) * fraction).round() as usize]
    };
    // The node's latency histogram buckets (actors/cluster/src/telemetry.rs), cumulative, so
    // that percentiles can be interpolated the same way as the service's.
    const BUCKETS_MICROS: [u64; 13] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000];
    let buckets: Vec<serde_json::Value> = BUCKETS_MICROS
        .iter()
        .map(|bound| serde_json::json!([*bound as f64 / 1e6, latencies.partition_point(|latency| latency <= bound)]))
        .collect();
    let mean = if latencies.is_empty() { 0.0 } else { latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 };
    serde_json::json!({
        "meanMicros": mean,
        "buckets": buckets,
        "numOk": latencies.len(),
        "numErrors": errors.values().sum::<u32>(),
        "elapsedMicros": elapsed.as_micros() as u64,
        "p50Micros": percentile(0.50),
        "p99Micros": percentile(0.99),
        "reservationsPerSecond": latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        "errors": errors,
    })
}

#[tokio::main]
async fn main() {
    let options = parse_options();
    let pool = MySqlPoolOptions::new()
        .max_connections(options.pool)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&options.url)
        .await
        .expect("connect to the database");
    // Open every connection of the pool before the clock starts, as a warmed-up service has.
    let mut held = Vec::new();
    for _ in 0..options.pool {
        let mut connection = pool.acquire().await.expect("connection");
        connection.ping().await.expect("ping");
        held.push(connection);
    }
    drop(held);
    let mut output = serde_json::Map::new();
    if options.warmup > 0 {
        let warm = run(&pool, &options, 1_000_000_000, options.warmup, options.pool).await;
        output.insert("warmup".into(), warm);
    }
    let measured = run(&pool, &options, 0, options.count, options.concurrency).await;
    if let serde_json::Value::Object(fields) = measured {
        output.extend(fields);
    }
    pool.close().await;
    println!("{}", serde_json::Value::Object(output));
}
