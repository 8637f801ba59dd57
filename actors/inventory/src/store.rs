//! The inventory's SQL: one implementation for MariaDB/MySQL and SQLite (the statements are
//! the same text in both dialects; `emporium_bus::on_connection!` and `on_pool!` run them on
//! the dialect at hand). Times are epoch milliseconds.
//!
//! No oversell: stock is taken with a conditional update (`available >= requested`) inside the
//! reservation's transaction, so concurrent reservations serialize on the row and the
//! `available >= 0` check constraint backs it up.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use emporium_bus::database::Database;
use emporium_bus::database::DbTx;
use emporium_bus::error::BusError;
use emporium_bus::{on_connection, on_pool};
use emporium_contracts::events::StockLine;
use emporium_contracts::inventory::{Reservation, ReservationStatus, StockView};
use emporium_contracts::page::PageRequest;
use sqlx::Row;

/// Migrations of the inventory: versions `3_000_001..=3_999_999` (see the bus crate for the
/// convention), as `(version, description, MySQL, SQLite)`.
const MIGRATIONS: [(i64, &str, &str, &str); 1] = [(
    3_000_001,
    "inventory stock and reservations",
    include_str!("../migrations/mysql/3000001_inventory.sql"),
    include_str!("../migrations/sqlite/3000001_inventory.sql"),
)];

/// Creates or updates the inventory's tables (and the bus's, which the outbox needs).
pub async fn migrate(database: &Database) -> Result<(), BusError> {
    database.migrate_bus().await?;
    database.migrate(&MIGRATIONS).await
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// The instant `millis` milliseconds after the epoch.
pub fn time_of(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default()
}

fn status_text(status: ReservationStatus) -> &'static str {
    match status {
        ReservationStatus::Reserved => "RESERVED",
        ReservationStatus::Committed => "COMMITTED",
        ReservationStatus::Released => "RELEASED",
    }
}

fn status_of(text: &str) -> ReservationStatus {
    match text {
        "COMMITTED" => ReservationStatus::Committed,
        "RELEASED" => ReservationStatus::Released,
        _ => ReservationStatus::Reserved,
    }
}

const STOCK_COLUMNS: &str = "sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms";

macro_rules! stock_of_row {
    ($row:expr) => {{
        let row = $row;
        StockView {
            sku: row.try_get("sku")?,
            available: row.try_get::<i64, _>("available")?.max(0) as u64,
            reserved: row.try_get::<i64, _>("reserved")?.max(0) as u64,
            reorder_level: row.try_get::<i64, _>("reorder_level")?.max(0) as u64,
            reorder_quantity: row.try_get::<i64, _>("reorder_quantity")?.max(0) as u64,
            updated_at: time_of(row.try_get("updated_at_ms")?),
        }
    }};
}

/// The stock of `sku`, read inside `tx`.
pub async fn stock_in(tx: &mut DbTx, sku: &str) -> Result<Option<StockView>, sqlx::Error> {
    const SELECT: &str = "SELECT sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms FROM inventory_stock WHERE sku = ?";
    on_connection!(tx, |connection| {
        match sqlx::query(SELECT).bind(sku).fetch_optional(&mut *connection).await? {
            Some(row) => Ok(Some(stock_of_row!(row))),
            None => Ok(None),
        }
    })
}

/// The stock of `sku`.
pub async fn stock(database: &Database, sku: &str) -> Result<Option<StockView>, sqlx::Error> {
    const SELECT: &str = "SELECT sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms FROM inventory_stock WHERE sku = ?";
    on_pool!(database, |pool| {
        match sqlx::query(SELECT).bind(sku).fetch_optional(pool).await? {
            Some(row) => Ok(Some(stock_of_row!(row))),
            None => Ok(None),
        }
    })
}

/// Available units of each known SKU among `skus`.
pub async fn available_of(database: &Database, skus: &[String]) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut available = BTreeMap::new();
    for sku in skus {
        if let Some(stock) = stock(database, sku).await? {
            available.insert(stock.sku, stock.available);
        }
    }
    Ok(available)
}

/// A page of stock, by SKU; `reorder_needed` filters on `available <= reorder_level`.
pub async fn list_stock(
    database: &Database,
    reorder_needed: Option<bool>,
    page: PageRequest,
) -> Result<(Vec<StockView>, u64), sqlx::Error> {
    let filter = match reorder_needed {
        Some(true) => " WHERE available <= reorder_level",
        Some(false) => " WHERE available > reorder_level",
        None => "",
    };
    let count = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS total FROM inventory_stock{filter}"));
    let select = sqlx::AssertSqlSafe(format!(
        "SELECT {STOCK_COLUMNS} FROM inventory_stock{filter} ORDER BY sku LIMIT ? OFFSET ?"
    ));
    on_pool!(database, |pool| {
        let total: i64 = sqlx::query(count).fetch_one(pool).await?.try_get("total")?;
        let rows = sqlx::query(select).bind(page.size as i64).bind(page.offset() as i64).fetch_all(pool).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            items.push(stock_of_row!(row));
        }
        Ok((items, total.max(0) as u64))
    })
}

/// Sets a SKU's stock, creating it when new; `reserved` is kept.
pub async fn set_stock(
    tx: &mut DbTx,
    sku: &str,
    available: i64,
    reorder_level: i64,
    reorder_quantity: i64,
) -> Result<(), sqlx::Error> {
    const UPDATE: &str = "UPDATE inventory_stock SET available = ?, reorder_level = ?, reorder_quantity = ?, updated_at_ms = ? WHERE sku = ?";
    const INSERT: &str = "INSERT INTO inventory_stock (sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms) VALUES (?, ?, 0, ?, ?, ?)";
    let now = now_millis();
    on_connection!(tx, |connection| {
        let updated = sqlx::query(UPDATE)
            .bind(available)
            .bind(reorder_level)
            .bind(reorder_quantity)
            .bind(now)
            .bind(sku)
            .execute(&mut *connection)
            .await?
            .rows_affected();
        if updated == 0 {
            sqlx::query(INSERT)
                .bind(sku)
                .bind(available)
                .bind(reorder_level)
                .bind(reorder_quantity)
                .bind(now)
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    })
}

/// Adds `delta` to a SKU's available units unless that would go below zero; answers whether
/// it did. Records the adjustment.
pub async fn adjust_stock(
    tx: &mut DbTx,
    sku: &str,
    delta: i64,
    reason: &str,
    actor: &str,
) -> Result<bool, sqlx::Error> {
    const UPDATE: &str =
        "UPDATE inventory_stock SET available = available + ?, updated_at_ms = ? WHERE sku = ? AND available + ? >= 0";
    const RECORD: &str = "INSERT INTO inventory_adjustments (sku, delta, reason, actor, at_ms) VALUES (?, ?, ?, ?, ?)";
    let now = now_millis();
    on_connection!(tx, |connection| {
        let updated = sqlx::query(UPDATE)
            .bind(delta)
            .bind(now)
            .bind(sku)
            .bind(delta)
            .execute(&mut *connection)
            .await?
            .rows_affected();
        if updated == 1 {
            sqlx::query(RECORD)
                .bind(sku)
                .bind(delta)
                .bind(reason)
                .bind(actor)
                .bind(now)
                .execute(&mut *connection)
                .await?;
        }
        Ok(updated == 1)
    })
}

/// Moves `quantity` units of `sku` from available to reserved when at least that many are
/// available; answers whether it did.
pub async fn take_stock(tx: &mut DbTx, sku: &str, quantity: u32) -> Result<bool, sqlx::Error> {
    const UPDATE: &str = "UPDATE inventory_stock SET available = available - ?, reserved = reserved + ?, updated_at_ms = ? \
        WHERE sku = ? AND available >= ?";
    let quantity = quantity as i64;
    let now = now_millis();
    on_connection!(tx, |connection| {
        let updated = sqlx::query(UPDATE)
            .bind(quantity)
            .bind(quantity)
            .bind(now)
            .bind(sku)
            .bind(quantity)
            .execute(&mut *connection)
            .await?
            .rows_affected();
        Ok(updated == 1)
    })
}

/// Moves reserved units back to available (release) or out of stock (commit).
pub async fn settle_reserved(tx: &mut DbTx, sku: &str, quantity: u32, back_on_shelf: bool) -> Result<(), sqlx::Error> {
    const RELEASE: &str = "UPDATE inventory_stock SET available = available + ?, reserved = reserved - ?, updated_at_ms = ? WHERE sku = ?";
    const COMMIT: &str = "UPDATE inventory_stock SET reserved = reserved - ?, updated_at_ms = ? WHERE sku = ?";
    let quantity = quantity as i64;
    let now = now_millis();
    on_connection!(tx, |connection| {
        if back_on_shelf {
            sqlx::query(RELEASE).bind(quantity).bind(quantity).bind(now).bind(sku).execute(&mut *connection).await?;
        } else {
            sqlx::query(COMMIT).bind(quantity).bind(now).bind(sku).execute(&mut *connection).await?;
        }
        Ok(())
    })
}

/// The reservation of `order_id`, read inside `tx`.
pub async fn reservation(tx: &mut DbTx, order_id: &str) -> Result<Option<Reservation>, sqlx::Error> {
    const HEAD: &str = "SELECT status, expires_at_ms FROM inventory_reservations WHERE order_id = ?";
    const LINES: &str = "SELECT sku, quantity FROM inventory_reservation_lines WHERE order_id = ? ORDER BY sku";
    on_connection!(tx, |connection| {
        let Some(head) = sqlx::query(HEAD).bind(order_id).fetch_optional(&mut *connection).await? else {
            return Ok(None);
        };
        let status: String = head.try_get("status")?;
        let expires_at_ms: i64 = head.try_get("expires_at_ms")?;
        let mut lines = Vec::new();
        for row in sqlx::query(LINES).bind(order_id).fetch_all(&mut *connection).await? {
            lines.push(StockLine {
                sku: row.try_get("sku")?,
                quantity: row.try_get::<i64, _>("quantity")?.max(0) as u32,
            });
        }
        Ok(Some(Reservation {
            order_id: order_id.to_string(),
            status: status_of(&status),
            lines,
            expires_at: time_of(expires_at_ms),
        }))
    })
}

/// Records a new reservation. Fails with a unique violation when the order already has one.
pub async fn insert_reservation(tx: &mut DbTx, reservation: &Reservation) -> Result<(), sqlx::Error> {
    const HEAD: &str = "INSERT INTO inventory_reservations (order_id, status, created_at_ms, expires_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?)";
    const LINE: &str = "INSERT INTO inventory_reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)";
    let now = now_millis();
    on_connection!(tx, |connection| {
        sqlx::query(HEAD)
            .bind(&reservation.order_id)
            .bind(status_text(reservation.status))
            .bind(now)
            .bind(reservation.expires_at.timestamp_millis())
            .bind(now)
            .execute(&mut *connection)
            .await?;
        for line in &reservation.lines {
            sqlx::query(LINE)
                .bind(&reservation.order_id)
                .bind(&line.sku)
                .bind(line.quantity as i64)
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    })
}

/// Moves a reservation from RESERVED to `status`; answers whether it was RESERVED (so two
/// concurrent settlements cannot both move the stock).
pub async fn settle_reservation(tx: &mut DbTx, order_id: &str, status: ReservationStatus) -> Result<bool, sqlx::Error> {
    const UPDATE: &str =
        "UPDATE inventory_reservations SET status = ?, updated_at_ms = ? WHERE order_id = ? AND status = 'RESERVED'";
    let now = now_millis();
    on_connection!(tx, |connection| {
        let updated = sqlx::query(UPDATE)
            .bind(status_text(status))
            .bind(now)
            .bind(order_id)
            .execute(&mut *connection)
            .await?
            .rows_affected();
        Ok(updated == 1)
    })
}

/// Orders whose reservation is still RESERVED past its expiry, oldest first, at most `limit`.
pub async fn expired_reservations(database: &Database, now_ms: i64, limit: u32) -> Result<Vec<String>, sqlx::Error> {
    const SELECT: &str = "SELECT order_id FROM inventory_reservations WHERE status = 'RESERVED' AND expires_at_ms <= ? \
        ORDER BY expires_at_ms LIMIT ?";
    on_pool!(database, |pool| {
        let rows = sqlx::query(SELECT).bind(now_ms).bind(limit as i64).fetch_all(pool).await?;
        rows.iter().map(|row| row.try_get::<String, _>("order_id")).collect()
    })
}

/// Whether a database error is a unique-key violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}
