//! The raw limit of the order saga on MariaDB/MySQL: for every order, the SQL transactions the
//! services run for one paid order, with exactly their statements in their order, issued by a
//! bare loop (`concurrency` orders in flight, one sqlx MySQL pool, no actor, no HTTP, no
//! ServiceRef, no RabbitMQ). Driven by ops/bench/orders.py, against the database the cluster
//! just used (its tables, its 20 products' stock rows, its users' notification recipients).
//!
//! Per order, in sequence (sources in brackets):
//!
//! ```text
//! T1 reserve         [inventory stock_keeper.rs `reserve`, store.rs]
//!    SELECT reservation head; per line UPDATE inventory_stock (take, SKU order); INSERT reservation
//!    head; per line INSERT reservation line; INSERT bus_outbox (inventory.reserved); per line
//!    SELECT stock twice (available before, then publish_reorder_if_crossed); COMMIT
//! T2 place           [order order_desk.rs `place`, store.rs; no Idempotency-Key, as the load sends none]
//!    INSERT orders; per line INSERT order_items; INSERT bus_outbox (order.created); COMMIT
//! T3 charge          [bus consumer.rs `apply_batch` + payment charger.rs, store.rs; a batch of one]
//!    SELECT bus_inbox; SELECT payments by order; INSERT payments (PENDING); UPDATE payments
//!    (SUCCEEDED); INSERT bus_outbox (payment.succeeded); INSERT bus_inbox; COMMIT
//! T4 confirm         [order payment_outcomes.rs, store.rs `finish_pending`, `order_in`]
//!    SELECT bus_inbox; UPDATE orders (CONFIRMED); SELECT orders; SELECT order_items;
//!    INSERT bus_outbox (order.confirmed); INSERT bus_inbox; COMMIT
//! T5 commit stock    [inventory order_outcomes.rs, stock_keeper.rs `settle_in`]
//!    SELECT bus_inbox; SELECT reservation head; SELECT reservation lines; UPDATE reservation
//!    (COMMITTED); per line UPDATE inventory_stock (reserved -= q); INSERT bus_outbox
//!    (inventory.committed); INSERT bus_inbox; COMMIT
//! T6, T7 notify      [notification recorder.rs, store.rs; order.created and order.confirmed]
//!    SELECT bus_inbox; SELECT COUNT(*) notifications by event; SELECT notification_recipients;
//!    INSERT notifications; INSERT bus_inbox; COMMIT
//! ```
//!
//! Alongside, one relay task per publishing service (inventory, order, payment) runs the
//! relay's statements [bus relay.rs, relay_driver.rs, outbox.rs]: `SELECT ... FROM bus_outbox
//! WHERE service = ? AND sent_at IS NULL ORDER BY id LIMIT 256`, then `UPDATE bus_outbox SET
//! sent_at = ? ... WHERE id IN (...)`, woken by the commits that enqueued rows or every 500 ms,
//! like the real relay (without publishing anything).
//!
//! What it leaves out: the catalog's price read (MongoDB, not SQL), the relays' lag query (1/s)
//! and lock check (1/s), and consumer batching (the services' consumers may apply up to 64
//! events in one transaction when their queue holds that many; here every event has its own).
//!
//! Prints progress on stderr every second and one JSON object on stdout.
//!
//!     orders-raw --url mysql://root@127.0.0.1:3306/db --skus A,B,C --users u1,u2 \
//!         --concurrency 8 --duration 20 --warmup 2

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::mysql::{MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Row};
use tokio::sync::Notify;

// inventory/src/store.rs
const SELECT_RESERVATION: &str = "SELECT status, expires_at_ms FROM inventory_reservations WHERE order_id = ?";
const SELECT_RESERVATION_LINES: &str =
    "SELECT sku, quantity FROM inventory_reservation_lines WHERE order_id = ? ORDER BY sku";
const TAKE_STOCK: &str = "UPDATE inventory_stock SET available = available - ?, reserved = reserved + ?, updated_at_ms = ? \
        WHERE sku = ? AND available >= ?";
const SELECT_STOCK: &str = "SELECT sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms FROM inventory_stock WHERE sku = ?";
const INSERT_RESERVATION: &str = "INSERT INTO inventory_reservations (order_id, status, created_at_ms, expires_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?)";
const INSERT_RESERVATION_LINE: &str =
    "INSERT INTO inventory_reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)";
const SETTLE_RESERVATION: &str =
    "UPDATE inventory_reservations SET status = ?, updated_at_ms = ? WHERE order_id = ? AND status = 'RESERVED'";
const COMMIT_STOCK: &str = "UPDATE inventory_stock SET reserved = reserved - ?, updated_at_ms = ? WHERE sku = ?";
// order/src/store.rs
const INSERT_ORDER: &str = "INSERT INTO orders (id, user_id, status, currency, total_minor, cancellation_reason, created_at_ms, updated_at_ms) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_ORDER_ITEM: &str = "INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price_minor, line_total_minor) \
        VALUES (?, ?, ?, ?, ?, ?, ?)";
const FINISH_PENDING: &str = "UPDATE orders SET status = ?, cancellation_reason = ?, updated_at_ms = ? \
        WHERE id = ? AND status = 'PENDING_PAYMENT'";
const SELECT_ORDER: &str = "SELECT id, user_id, status, currency, total_minor, cancellation_reason, created_at_ms, updated_at_ms FROM orders WHERE id = ?";
const SELECT_ORDER_ITEMS: &str = "SELECT sku, name, quantity, unit_price_minor, line_total_minor FROM order_items WHERE order_id = ? ORDER BY line_no";
// payment/src/store.rs
const SELECT_PAYMENT: &str = "SELECT id, order_id, user_id, amount_minor, currency, method, status, failure_reason, provider_ref, created_at_ms FROM payments WHERE order_id = ?";
const CLAIM_PAYMENT: &str = "INSERT INTO payments \
        (id, order_id, user_id, amount_minor, currency, method, status, failure_reason, provider_ref, created_at_ms) \
        VALUES (?, ?, ?, ?, ?, ?, 'PENDING', NULL, NULL, ?)";
const SETTLE_PAYMENT: &str = "UPDATE payments SET status = ?, failure_reason = ?, provider_ref = ? WHERE id = ?";
// notification/src/store.rs
const NOTIFICATION_EXISTS: &str = "SELECT COUNT(*) AS found FROM notifications WHERE event_id = ?";
const SELECT_RECIPIENT: &str = "SELECT email FROM notification_recipients WHERE user_id = ?";
const INSERT_NOTIFICATION: &str = "INSERT INTO notifications \
        (id, event_id, user_id, kind, channel, recipient, subject, body, status, attempts, last_error, \
         next_attempt_at_ms, created_at_ms, sent_at_ms) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?, NULL)";
// bus/src/outbox.rs, inbox.rs (batches of one event)
const INSERT_OUTBOX: &str = "INSERT INTO bus_outbox \
        (service, event_id, exchange_name, routing_key, subject, envelope, traceparent, created_at, attempts) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)";
const SELECT_INBOX: &str = "SELECT event_id FROM bus_inbox WHERE consumer = ? AND event_id IN (?)";
const INSERT_INBOX: &str = "INSERT INTO bus_inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)";
const FETCH_PENDING: &str = "SELECT id, event_id, exchange_name, routing_key, subject, envelope, traceparent \
        FROM bus_outbox WHERE service = ? AND sent_at IS NULL ORDER BY id LIMIT ?";

/// The service's default reservation TTL (config/application.toml).
const TTL_MILLIS: i64 = 900_000;
/// BusConfig::default().relay_batch_size and relay_poll_interval.
const RELAY_BATCH: i64 = 256;
const RELAY_POLL: Duration = Duration::from_millis(500);
const PUBLISHERS: [&str; 3] = ["inventory", "order", "payment"];

#[derive(Clone)]
struct Options {
    url: String,
    skus: Vec<String>,
    users: Vec<String>,
    concurrency: usize,
    pool: u32,
    duration: Duration,
    warmup: Duration,
    max_lines: usize,
    max_quantity: u32,
}

fn parse_options() -> Options {
    let mut options = Options {
        url: String::new(),
        skus: Vec::new(),
        users: Vec::new(),
        concurrency: 8,
        pool: 0,
        duration: Duration::from_secs(20),
        warmup: Duration::from_secs(2),
        max_lines: 3,
        max_quantity: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => options.url = value(),
            "--skus" => options.skus = value().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            "--users" => options.users = value().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            "--concurrency" => options.concurrency = value().parse().expect("--concurrency"),
            "--pool" => options.pool = value().parse().expect("--pool"),
            "--duration" => options.duration = Duration::from_secs_f64(value().parse().expect("--duration")),
            "--warmup" => options.warmup = Duration::from_secs_f64(value().parse().expect("--warmup")),
            "--max-lines" => options.max_lines = value().parse().expect("--max-lines"),
            "--max-quantity" => options.max_quantity = value().parse().expect("--max-quantity"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!options.url.is_empty(), "--url is required");
    assert!(!options.skus.is_empty(), "--skus is required");
    assert!(!options.users.is_empty(), "--users is required");
    assert!(options.max_lines >= 1 && options.max_lines <= options.skus.len());
    if options.pool == 0 {
        // One connection per order in flight, plus one per relay.
        options.pool = (options.concurrency + PUBLISHERS.len()) as u32;
    }
    options
}

/// xorshift64*: the loop's random SKUs, quantities and ids.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A version-4-shaped UUID (36 characters), like the services' ids.
    fn uuid(&mut self) -> String {
        let hex = format!("{:016x}{:016x}", self.next(), self.next());
        format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A CloudEvents 1.0 envelope as `EventEnvelope::to_json` writes it.
fn envelope(id: &str, service: &str, event_type: &str, subject: &str, data: serde_json::Value) -> String {
    serde_json::to_string(&serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("/emporium/{service}"),
        "type": event_type,
        "time": rfc3339_now(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }))
    .expect("json")
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

struct Line {
    sku: String,
    quantity: u32,
    unit_price_minor: i64,
}

struct Shared {
    options: Options,
    wake: BTreeMap<&'static str, Notify>,
    stop_relays: AtomicBool,
    relay_batches: AtomicU64,
    relay_rows: AtomicU64,
    traceparent: String,
}

impl Shared {
    fn enqueued(&self, services: &[&'static str]) {
        for service in services {
            self.wake[*service].notify_one();
        }
    }
}

async fn insert_outbox(
    connection: &mut MySqlConnection,
    shared: &Shared,
    service: &str,
    exchange: &str,
    event_type: &str,
    id: &str,
    subject: &str,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_OUTBOX)
        .bind(service)
        .bind(id)
        .bind(exchange)
        .bind(event_type)
        .bind(subject)
        .bind(body)
        .bind(Some(shared.traceparent.as_str()))
        .bind(chrono::Utc::now().naive_utc())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// The inbox check and the inbox row of a consumer transaction (a batch of one).
async fn inbox_check(connection: &mut MySqlConnection, consumer: &str, event_id: &str) -> Result<bool, sqlx::Error> {
    let rows = sqlx::query(SELECT_INBOX).bind(consumer).bind(event_id).fetch_all(&mut *connection).await?;
    Ok(rows.is_empty())
}

async fn inbox_record(connection: &mut MySqlConnection, consumer: &str, event_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_INBOX)
        .bind(consumer)
        .bind(event_id)
        .bind(chrono::Utc::now().naive_utc())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

async fn select_stock(connection: &mut MySqlConnection, sku: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(SELECT_STOCK).bind(sku).fetch_one(&mut *connection).await?;
    let _: String = row.try_get("sku")?;
    let _: i64 = row.try_get("reserved")?;
    let _: i64 = row.try_get("reorder_level")?;
    let _: i64 = row.try_get("reorder_quantity")?;
    let _: i64 = row.try_get("updated_at_ms")?;
    row.try_get("available")
}

/// Runs `body` in a transaction and commits it; any error rolls back.
macro_rules! transaction {
    ($pool:expr, $step:literal, |$tx:ident| $body:block) => {{
        let mut $tx = $pool.begin().await.map_err(|error| format!("{} begin: {error}", $step))?;
        let result: Result<(), String> = async { $body }.await;
        match result {
            Ok(()) => $tx.commit().await.map_err(|error| format!("{} commit: {error}", $step)),
            Err(error) => {
                let _ = $tx.rollback().await;
                Err(error)
            }
        }
    }};
}

fn sql(step: &'static str) -> impl Fn(sqlx::Error) -> String {
    move |error| format!("{step}: {error}")
}

/// One order, all seven transactions; answers the time to the end of T2 (the POST's share).
async fn one_order(pool: &MySqlPool, shared: &Shared, random: &mut Random) -> Result<Duration, String> {
    let started = Instant::now();
    let options = &shared.options;
    // 1-3 distinct SKUs, 1-2 units each, like ops/bench/orders.py; the reservation sorts them.
    let num_lines = 1 + random.below(options.max_lines as u64) as usize;
    let mut picked: Vec<usize> = Vec::with_capacity(num_lines);
    while picked.len() < num_lines {
        let index = random.below(options.skus.len() as u64) as usize;
        if !picked.contains(&index) {
            picked.push(index);
        }
    }
    let lines: Vec<Line> = picked
        .iter()
        .map(|&index| Line {
            sku: options.skus[index].clone(),
            quantity: 1 + random.below(options.max_quantity as u64) as u32,
            unit_price_minor: 1000 + 25 * index as i64,
        })
        .collect();
    let mut sorted: Vec<&Line> = lines.iter().collect();
    sorted.sort_by(|a, b| a.sku.cmp(&b.sku));
    let user_id = options.users[random.below(options.users.len() as u64) as usize].clone();
    let order_id = random.uuid();
    let total_minor: i64 = lines.iter().map(|line| line.unit_price_minor * line.quantity as i64).sum();
    let stock_lines: Vec<serde_json::Value> =
        sorted.iter().map(|line| serde_json::json!({"sku": line.sku, "quantity": line.quantity})).collect();

    // T1: ReserveStock.
    transaction!(pool, "reserve", |tx| {
        let existing = sqlx::query(SELECT_RESERVATION).bind(&order_id).fetch_optional(&mut *tx).await;
        if existing.map_err(sql("reserve"))?.is_some() {
            return Err("reservation exists".to_string());
        }
        let now = now_millis();
        for line in &sorted {
            let q = line.quantity as i64;
            let done = sqlx::query(TAKE_STOCK)
                .bind(q)
                .bind(q)
                .bind(now)
                .bind(&line.sku)
                .bind(q)
                .execute(&mut *tx)
                .await
                .map_err(sql("reserve take"))?;
            if done.rows_affected() != 1 {
                return Err(format!("out of stock: {}", line.sku));
            }
        }
        sqlx::query(INSERT_RESERVATION)
            .bind(&order_id)
            .bind("RESERVED")
            .bind(now)
            .bind(now + TTL_MILLIS)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(sql("reserve insert"))?;
        for line in &sorted {
            sqlx::query(INSERT_RESERVATION_LINE)
                .bind(&order_id)
                .bind(&line.sku)
                .bind(line.quantity as i64)
                .execute(&mut *tx)
                .await
                .map_err(sql("reserve line"))?;
        }
        let id = random.uuid();
        let body = envelope(&id, "inventory", "inventory.reserved", &order_id,
            serde_json::json!({"orderId": order_id, "lines": stock_lines}));
        insert_outbox(&mut tx, shared, "inventory", "inventory-events", "inventory.reserved", &id, &order_id, &body)
            .await
            .map_err(sql("reserve outbox"))?;
        for line in &sorted {
            select_stock(&mut tx, &line.sku).await.map_err(sql("reserve stock"))?;
            select_stock(&mut tx, &line.sku).await.map_err(sql("reserve reorder"))?;
        }
        Ok(())
    })?;
    shared.enqueued(&["inventory"]);

    // T2: the order and order.created.
    let created_id = random.uuid();
    transaction!(pool, "place", |tx| {
        let now = now_millis();
        sqlx::query(INSERT_ORDER)
            .bind(&order_id)
            .bind(&user_id)
            .bind("PENDING_PAYMENT")
            .bind("USD")
            .bind(total_minor)
            .bind(None::<String>)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(sql("place order"))?;
        for (line_no, line) in lines.iter().enumerate() {
            sqlx::query(INSERT_ORDER_ITEM)
                .bind(&order_id)
                .bind(line_no as i64)
                .bind(&line.sku)
                .bind(format!("Product {}", line.sku))
                .bind(line.quantity as i64)
                .bind(line.unit_price_minor)
                .bind(line.unit_price_minor * line.quantity as i64)
                .execute(&mut *tx)
                .await
                .map_err(sql("place item"))?;
        }
        let items: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| {
                serde_json::json!({"sku": line.sku, "name": format!("Product {}", line.sku), "quantity": line.quantity,
                    "unitPrice": money(line.unit_price_minor),
                    "lineTotal": money(line.unit_price_minor * line.quantity as i64)})
            })
            .collect();
        let body = envelope(&created_id, "order", "order.created", &order_id, serde_json::json!({
            "orderId": order_id, "userId": user_id, "items": items, "total": money(total_minor), "currency": "USD",
            "payment": {"method": "card", "token": "tok_visa"}}));
        insert_outbox(&mut tx, shared, "order", "order-events", "order.created", &created_id, &order_id, &body)
            .await
            .map_err(sql("place outbox"))?;
        Ok(())
    })?;
    shared.enqueued(&["order"]);
    let placed = started.elapsed();

    // T3: the payment service consumes order.created.
    let succeeded_id = random.uuid();
    transaction!(pool, "charge", |tx| {
        if !inbox_check(&mut tx, "payment", &created_id).await.map_err(sql("charge inbox"))? {
            return Err("duplicate order.created".into());
        }
        if sqlx::query(SELECT_PAYMENT).bind(&order_id).fetch_optional(&mut *tx).await.map_err(sql("charge select"))?.is_some() {
            return Err("order already paid".into());
        }
        let payment_id = random.uuid();
        sqlx::query(CLAIM_PAYMENT)
            .bind(&payment_id)
            .bind(&order_id)
            .bind(&user_id)
            .bind(total_minor)
            .bind("USD")
            .bind("card")
            .bind(now_millis())
            .execute(&mut *tx)
            .await
            .map_err(sql("charge claim"))?;
        let provider_ref = format!("sim_{}", &payment_id[..18]);
        sqlx::query(SETTLE_PAYMENT)
            .bind("SUCCEEDED")
            .bind(None::<String>)
            .bind(Some(provider_ref.as_str()))
            .bind(&payment_id)
            .execute(&mut *tx)
            .await
            .map_err(sql("charge settle"))?;
        let body = envelope(&succeeded_id, "payment", "payment.succeeded", &order_id, serde_json::json!({
            "paymentId": payment_id, "orderId": order_id, "userId": user_id, "amount": money(total_minor),
            "currency": "USD", "providerRef": provider_ref}));
        insert_outbox(&mut tx, shared, "payment", "payment-events", "payment.succeeded", &succeeded_id, &order_id, &body)
            .await
            .map_err(sql("charge outbox"))?;
        inbox_record(&mut tx, "payment", &created_id).await.map_err(sql("charge inbox row"))?;
        Ok(())
    })?;
    shared.enqueued(&["payment"]);

    // T4: the order service consumes payment.succeeded.
    let confirmed_id = random.uuid();
    transaction!(pool, "confirm", |tx| {
        if !inbox_check(&mut tx, "order", &succeeded_id).await.map_err(sql("confirm inbox"))? {
            return Err("duplicate payment.succeeded".into());
        }
        let done = sqlx::query(FINISH_PENDING)
            .bind("CONFIRMED")
            .bind(None::<String>)
            .bind(now_millis())
            .bind(&order_id)
            .execute(&mut *tx)
            .await
            .map_err(sql("confirm update"))?;
        if done.rows_affected() != 1 {
            return Err("order not pending".into());
        }
        let row = sqlx::query(SELECT_ORDER).bind(&order_id).fetch_one(&mut *tx).await.map_err(sql("confirm order"))?;
        let total: i64 = row.try_get("total_minor").map_err(sql("confirm order"))?;
        let _items = sqlx::query(SELECT_ORDER_ITEMS).bind(&order_id).fetch_all(&mut *tx).await.map_err(sql("confirm items"))?;
        let body = envelope(&confirmed_id, "order", "order.confirmed", &order_id, serde_json::json!({
            "orderId": order_id, "userId": user_id, "total": money(total), "currency": "USD"}));
        insert_outbox(&mut tx, shared, "order", "order-events", "order.confirmed", &confirmed_id, &order_id, &body)
            .await
            .map_err(sql("confirm outbox"))?;
        inbox_record(&mut tx, "order", &succeeded_id).await.map_err(sql("confirm inbox row"))?;
        Ok(())
    })?;
    shared.enqueued(&["order"]);

    // T5: the inventory consumes order.confirmed and commits the reservation.
    transaction!(pool, "commit stock", |tx| {
        if !inbox_check(&mut tx, "inventory", &confirmed_id).await.map_err(sql("settle inbox"))? {
            return Err("duplicate order.confirmed".into());
        }
        let head = sqlx::query(SELECT_RESERVATION).bind(&order_id).fetch_optional(&mut *tx).await.map_err(sql("settle head"))?;
        if head.is_none() {
            return Err("no reservation".into());
        }
        let reserved = sqlx::query(SELECT_RESERVATION_LINES).bind(&order_id).fetch_all(&mut *tx).await.map_err(sql("settle lines"))?;
        let now = now_millis();
        let done = sqlx::query(SETTLE_RESERVATION)
            .bind("COMMITTED")
            .bind(now)
            .bind(&order_id)
            .execute(&mut *tx)
            .await
            .map_err(sql("settle reservation"))?;
        if done.rows_affected() != 1 {
            return Err("reservation not RESERVED".into());
        }
        let mut settled = Vec::with_capacity(reserved.len());
        for row in &reserved {
            let sku: String = row.try_get("sku").map_err(sql("settle lines"))?;
            let quantity: i64 = row.try_get("quantity").map_err(sql("settle lines"))?;
            sqlx::query(COMMIT_STOCK).bind(quantity).bind(now).bind(&sku).execute(&mut *tx).await.map_err(sql("settle stock"))?;
            settled.push(serde_json::json!({"sku": sku, "quantity": quantity}));
        }
        let id = random.uuid();
        let body = envelope(&id, "inventory", "inventory.committed", &order_id,
            serde_json::json!({"orderId": order_id, "lines": settled}));
        insert_outbox(&mut tx, shared, "inventory", "inventory-events", "inventory.committed", &id, &order_id, &body)
            .await
            .map_err(sql("settle outbox"))?;
        inbox_record(&mut tx, "inventory", &confirmed_id).await.map_err(sql("settle inbox row"))?;
        Ok(())
    })?;
    shared.enqueued(&["inventory"]);

    // T6, T7: the notification service records order.created and order.confirmed.
    let total_text = money(total_minor);
    for (event_id, kind, subject, body) in [
        (
            &created_id,
            "order.created",
            format!("Order {order_id} received"),
            format!(
                "Thank you for your order {order_id}.\n\n{}\nTotal: {total_text} USD\n\nWe will confirm it as soon as the payment goes through.\n\n-- \nEmporium\n",
                lines
                    .iter()
                    .map(|line| format!("  {} x Product {} ({}) at {} = {} USD\n", line.quantity, line.sku, line.sku,
                        money(line.unit_price_minor), money(line.unit_price_minor * line.quantity as i64)))
                    .collect::<String>()
            ),
        ),
        (
            &confirmed_id,
            "order.confirmed",
            format!("Order {order_id} confirmed"),
            format!("Your payment of {total_text} USD went through: order {order_id} is confirmed.\n\n-- \nEmporium\n"),
        ),
    ] {
        transaction!(pool, "notify", |tx| {
            if !inbox_check(&mut tx, "notification", event_id).await.map_err(sql("notify inbox"))? {
                return Err("duplicate event".into());
            }
            let found: i64 = sqlx::query(NOTIFICATION_EXISTS)
                .bind(event_id)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get("found"))
                .map_err(sql("notify exists"))?;
            if found > 0 {
                return Err("notification exists".into());
            }
            let recipient: Option<String> = match sqlx::query(SELECT_RECIPIENT)
                .bind(&user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql("notify recipient"))?
            {
                Some(row) => Some(row.try_get("email").map_err(sql("notify recipient"))?),
                None => None,
            };
            let now = now_millis();
            sqlx::query(INSERT_NOTIFICATION)
                .bind(random.uuid())
                .bind(event_id)
                .bind(&user_id)
                .bind(kind)
                .bind("stored")
                .bind(recipient)
                .bind(&subject)
                .bind(&body)
                .bind("STORED")
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(sql("notify insert"))?;
            inbox_record(&mut tx, "notification", event_id).await.map_err(sql("notify inbox row"))?;
            Ok(())
        })?;
    }
    Ok(placed)
}

/// One service's relay: the statements of `OutboxRelay::publish_pending`, woken like the
/// relay driver (by the commits that enqueued rows, or every 500 ms), nothing published.
async fn relay(pool: MySqlPool, shared: Arc<Shared>, service: &'static str) -> Result<(), String> {
    let wake = &shared.wake[service];
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let rows = sqlx::query(FETCH_PENDING)
            .bind(service)
            .bind(RELAY_BATCH)
            .fetch_all(&pool)
            .await
            .map_err(|error| format!("relay fetch: {error}"))?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let _: String = row.try_get("envelope").map_err(|error| format!("relay row: {error}"))?;
            ids.push(row.try_get::<i64, _>("id").map_err(|error| format!("relay row: {error}"))?);
        }
        if !ids.is_empty() {
            let placeholders = vec!["?"; ids.len()].join(", ");
            let update = format!("UPDATE bus_outbox SET sent_at = ?, attempts = attempts + 1 WHERE id IN ({placeholders})");
            let mut query = sqlx::query(AssertSqlSafe(update)).bind(chrono::Utc::now().naive_utc());
            for id in &ids {
                query = query.bind(id);
            }
            query.execute(&pool).await.map_err(|error| format!("relay mark: {error}"))?;
            shared.relay_batches.fetch_add(1, Ordering::Relaxed);
            shared.relay_rows.fetch_add(ids.len() as u64, Ordering::Relaxed);
            if ids.len() as i64 == RELAY_BATCH {
                continue;
            }
        } else if shared.stop_relays.load(Ordering::Relaxed) {
            return Ok(());
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(if shared.stop_relays.load(Ordering::Relaxed) { Duration::from_millis(5) } else { RELAY_POLL }) => {}
        }
    }
}

struct Tally {
    all: u64,
    chain_micros: Vec<u64>,
    place_micros: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

async fn worker(
    pool: MySqlPool,
    shared: Arc<Shared>,
    seed: u64,
    measure_from: Instant,
    until: Instant,
    done: Arc<AtomicU64>,
) -> Tally {
    let mut random = Random(seed | 1);
    let mut tally = Tally { all: 0, chain_micros: Vec::new(), place_micros: Vec::new(), errors: BTreeMap::new() };
    while Instant::now() < until {
        let started = Instant::now();
        let result = one_order(&pool, &shared, &mut random).await;
        let measured = started >= measure_from;
        match result {
            Ok(placed) => {
                tally.all += 1;
                if measured {
                    tally.chain_micros.push(started.elapsed().as_micros() as u64);
                    tally.place_micros.push(placed.as_micros() as u64);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                if measured {
                    let key: String = error.chars().take(160).collect();
                    *tally.errors.entry(key).or_default() += 1;
                }
            }
        }
    }
    tally
}

fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

#[tokio::main]
async fn main() {
    let options = parse_options();
    let pool = MySqlPoolOptions::new()
        .max_connections(options.pool)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&options.url)
        .await
        .expect("connect to the database");
    // Open every connection before the clock starts, as a warmed-up service has.
    let mut held = Vec::new();
    for _ in 0..options.pool {
        let mut connection = pool.acquire().await.expect("connection");
        connection.ping().await.expect("ping");
        held.push(connection);
    }
    drop(held);

    let seed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let shared = Arc::new(Shared {
        wake: PUBLISHERS.iter().map(|service| (*service, Notify::new())).collect(),
        options: options.clone(),
        stop_relays: AtomicBool::new(false),
        relay_batches: AtomicU64::new(0),
        relay_rows: AtomicU64::new(0),
        traceparent: format!("00-{:032x}-{:016x}-01", seed as u128 * 7919, seed ^ 0x5bd1_e995),
    });
    let relays: Vec<_> =
        PUBLISHERS.iter().map(|service| tokio::spawn(relay(pool.clone(), shared.clone(), *service))).collect();

    let begin = Instant::now();
    let measure_from = begin + options.warmup;
    let until = measure_from + options.duration;
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..options.concurrency)
        .map(|index| {
            tokio::spawn(worker(
                pool.clone(),
                shared.clone(),
                seed.wrapping_add((index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                measure_from,
                until,
                done.clone(),
            ))
        })
        .collect();
    // Progress, on stderr.
    let progress = {
        let done = done.clone();
        let concurrency = options.concurrency;
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = done.load(Ordering::Relaxed);
                let elapsed = begin.elapsed().as_secs_f64();
                let phase = if Instant::now() < measure_from { "warm-up" } else { "measuring" };
                eprintln!("  raw c={concurrency}: {elapsed:5.1} s {phase}: {now} orders done, {}/s in the last second", now - last);
                last = now;
            }
        })
    };
    let mut tally = Tally { all: 0, chain_micros: Vec::new(), place_micros: Vec::new(), errors: BTreeMap::new() };
    for handle in workers {
        let part = handle.await.expect("worker");
        tally.all += part.all;
        tally.chain_micros.extend(part.chain_micros);
        tally.place_micros.extend(part.place_micros);
        for (error, count) in part.errors {
            *tally.errors.entry(error).or_default() += count;
        }
    }
    let elapsed = measure_from.elapsed();
    progress.abort();
    // Let the relays mark the last rows sent.
    shared.stop_relays.store(true, Ordering::Relaxed);
    for service in PUBLISHERS {
        shared.wake[service].notify_one();
    }
    let mut relay_errors = Vec::new();
    for handle in relays {
        match tokio::time::timeout(Duration::from_secs(30), handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => relay_errors.push(error),
            Ok(Err(error)) => relay_errors.push(error.to_string()),
            Err(_) => relay_errors.push("relay did not drain within 30 s".into()),
        }
    }
    pool.close().await;
    tally.chain_micros.sort_unstable();
    tally.place_micros.sort_unstable();
    let num = tally.chain_micros.len() as u64;
    let output = serde_json::json!({
        "concurrency": options.concurrency,
        "pool": options.pool,
        "numOrders": num,
        "numOrdersWithWarmup": tally.all,
        "numErrors": tally.errors.values().sum::<u64>(),
        "errors": tally.errors,
        "elapsedSeconds": elapsed.as_secs_f64(),
        "ordersPerSecond": num as f64 / elapsed.as_secs_f64().max(1e-9),
        "chainP50Micros": percentile(&tally.chain_micros, 0.50),
        "chainP99Micros": percentile(&tally.chain_micros, 0.99),
        "placeP50Micros": percentile(&tally.place_micros, 0.50),
        "placeP99Micros": percentile(&tally.place_micros, 0.99),
        "transactionsPerOrder": 7,
        "relayBatches": shared.relay_batches.load(Ordering::Relaxed),
        "relayRows": shared.relay_rows.load(Ordering::Relaxed),
        "relayErrors": relay_errors,
    });
    println!("{output}");
}
