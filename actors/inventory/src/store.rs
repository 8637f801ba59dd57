//! The inventory's SQL: one implementation for MariaDB/MySQL and SQLite through
//! `emporium_store` (the statements are the same text in both dialects). Times are epoch
//! milliseconds.
//!
//! No oversell: stock is taken with a conditional update (`available >= requested`) inside the
//! reservation's transaction, so concurrent reservations serialize on the row and the
//! `available >= 0` check constraint backs it up.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use emporium_contracts::events::StockLine;
use emporium_contracts::inventory::{Reservation, ReservationStatus, StockView};
use emporium_contracts::page::PageRequest;
use emporium_store::{AnyRow, Database, DbTx, Dialect, Migrations, Row, StoreError};

/// Migrations of the inventory: versions `3_000_001..=3_999_999` (see `emporium_store` for the
/// convention).
const MIGRATIONS: Migrations = Migrations {
    owner: "inventory",
    list: &[(
        3_000_001,
        "inventory stock and reservations",
        include_str!("../migrations/mysql/3000001_inventory.sql"),
        include_str!("../migrations/sqlite/3000001_inventory.sql"),
    )],
};

/// Creates or updates the inventory's tables (and the bus's, which the outbox needs).
pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    emporium_bus::migrate(database).await?;
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

/// A non-negative count read as `i64` (counts are `BIGINT`/`INTEGER` columns).
fn count_of(row: &AnyRow, column: &str) -> Result<u64, sqlx::Error> {
    Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
}

fn stock_of_row(row: &AnyRow) -> Result<StockView, sqlx::Error> {
    Ok(StockView {
        sku: row.try_get("sku")?,
        available: count_of(row, "available")?,
        reserved: count_of(row, "reserved")?,
        reorder_level: count_of(row, "reorder_level")?,
        reorder_quantity: count_of(row, "reorder_quantity")?,
        updated_at: time_of(row.try_get("updated_at_ms")?),
    })
}

/// The stock of `sku`, read inside `tx`.
pub async fn stock_in(tx: &mut DbTx, sku: &str) -> Result<Option<StockView>, sqlx::Error> {
    const SELECT: &str = "SELECT sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms FROM inventory_stock WHERE sku = ?";
    let row = sqlx::query(SELECT).bind(sku).fetch_optional(tx.connection()).await?;
    row.as_ref().map(stock_of_row).transpose()
}

/// The stock of `sku`.
pub async fn stock(database: &Database, sku: &str) -> Result<Option<StockView>, sqlx::Error> {
    const SELECT: &str = "SELECT sku, available, reserved, reorder_level, reorder_quantity, updated_at_ms FROM inventory_stock WHERE sku = ?";
    let row = sqlx::query(SELECT).bind(sku).fetch_optional(database.pool()).await?;
    row.as_ref().map(stock_of_row).transpose()
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
    let total: i64 = sqlx::query(count).fetch_one(database.pool()).await?.try_get("total")?;
    let rows = sqlx::query(select)
        .bind(i64::from(page.size))
        .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX))
        .fetch_all(database.pool())
        .await?;
    let items = rows.iter().map(stock_of_row).collect::<Result<Vec<_>, _>>()?;
    Ok((items, u64::try_from(total).unwrap_or(0)))
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
    let connection = tx.connection();
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
    let connection = tx.connection();
    let updated = sqlx::query(UPDATE)
        .bind(delta)
        .bind(now)
        .bind(sku)
        .bind(delta)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    if updated == 1 {
        sqlx::query(RECORD).bind(sku).bind(delta).bind(reason).bind(actor).bind(now).execute(&mut *connection).await?;
    }
    Ok(updated == 1)
}

/// Moves `quantity` units of `sku` from available to reserved when at least that many are
/// available; answers whether it did.
pub async fn take_stock(tx: &mut DbTx, sku: &str, quantity: u32) -> Result<bool, sqlx::Error> {
    const UPDATE: &str = "UPDATE inventory_stock SET available = available - ?, reserved = reserved + ?, updated_at_ms = ? \
        WHERE sku = ? AND available >= ?";
    let quantity = i64::from(quantity);
    let now = now_millis();
    let updated = sqlx::query(UPDATE)
        .bind(quantity)
        .bind(quantity)
        .bind(now)
        .bind(sku)
        .bind(quantity)
        .execute(tx.connection())
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// Moves reserved units back to available (release) or out of stock (commit).
pub async fn settle_reserved(tx: &mut DbTx, sku: &str, quantity: u32, back_on_shelf: bool) -> Result<(), sqlx::Error> {
    const RELEASE: &str = "UPDATE inventory_stock SET available = available + ?, reserved = reserved - ?, updated_at_ms = ? WHERE sku = ?";
    const COMMIT: &str = "UPDATE inventory_stock SET reserved = reserved - ?, updated_at_ms = ? WHERE sku = ?";
    let quantity = i64::from(quantity);
    let now = now_millis();
    if back_on_shelf {
        sqlx::query(RELEASE).bind(quantity).bind(quantity).bind(now).bind(sku).execute(tx.connection()).await?;
    } else {
        sqlx::query(COMMIT).bind(quantity).bind(now).bind(sku).execute(tx.connection()).await?;
    }
    Ok(())
}

/// The reservation of `order_id`, read inside `tx`.
pub async fn reservation(tx: &mut DbTx, order_id: &str) -> Result<Option<Reservation>, sqlx::Error> {
    const HEAD: &str = "SELECT status, expires_at_ms FROM inventory_reservations WHERE order_id = ?";
    const LINES: &str = "SELECT sku, quantity FROM inventory_reservation_lines WHERE order_id = ? ORDER BY sku";
    let connection = tx.connection();
    let Some(head) = sqlx::query(HEAD).bind(order_id).fetch_optional(&mut *connection).await? else {
        return Ok(None);
    };
    let status: String = head.try_get("status")?;
    let expires_at_ms: i64 = head.try_get("expires_at_ms")?;
    let mut lines = Vec::new();
    for row in sqlx::query(LINES).bind(order_id).fetch_all(&mut *connection).await? {
        lines.push(StockLine {
            sku: row.try_get("sku")?,
            quantity: u32::try_from(row.try_get::<i64, _>("quantity")?).unwrap_or(0),
        });
    }
    Ok(Some(Reservation {
        order_id: order_id.to_string(),
        status: status_of(&status),
        lines,
        expires_at: time_of(expires_at_ms),
    }))
}

/// Locks the stock rows of the SKUs reserved for `order_ids`, one by one in SKU order
/// (MariaDB/MySQL; SQLite's `BEGIN IMMEDIATE` already holds the whole database). A batch that
/// settles several orders takes its rows in the same order as a reservation does, so the two
/// cannot deadlock.
pub async fn lock_reserved_stock(tx: &mut DbTx, order_ids: &[String]) -> Result<(), sqlx::Error> {
    const SKUS: &str = "SELECT DISTINCT sku FROM inventory_reservation_lines WHERE order_id = ?";
    const LOCK: &str = "SELECT sku FROM inventory_stock WHERE sku = ? FOR UPDATE";
    if tx.dialect() != Dialect::MySql {
        return Ok(());
    }
    let mut skus = BTreeSet::new();
    for order_id in order_ids {
        for row in sqlx::query(SKUS).bind(order_id).fetch_all(tx.connection()).await? {
            skus.insert(row.try_get::<String, _>("sku")?);
        }
    }
    for sku in &skus {
        sqlx::query(LOCK).bind(sku).fetch_optional(tx.connection()).await?;
    }
    Ok(())
}

/// Records a new reservation. Fails with a unique violation when the order already has one.
pub async fn insert_reservation(tx: &mut DbTx, reservation: &Reservation) -> Result<(), sqlx::Error> {
    const HEAD: &str = "INSERT INTO inventory_reservations (order_id, status, created_at_ms, expires_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?)";
    const LINE: &str = "INSERT INTO inventory_reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)";
    let now = now_millis();
    let connection = tx.connection();
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
            .bind(i64::from(line.quantity))
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Moves a reservation from RESERVED to `status`; answers whether it was RESERVED (so two
/// concurrent settlements cannot both move the stock).
pub async fn settle_reservation(tx: &mut DbTx, order_id: &str, status: ReservationStatus) -> Result<bool, sqlx::Error> {
    const UPDATE: &str =
        "UPDATE inventory_reservations SET status = ?, updated_at_ms = ? WHERE order_id = ? AND status = 'RESERVED'";
    let now = now_millis();
    let updated = sqlx::query(UPDATE)
        .bind(status_text(status))
        .bind(now)
        .bind(order_id)
        .execute(tx.connection())
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// Orders whose reservation is still RESERVED past its expiry, oldest first, at most `limit`.
pub async fn expired_reservations(database: &Database, now_ms: i64, limit: u32) -> Result<Vec<String>, sqlx::Error> {
    const SELECT: &str = "SELECT order_id FROM inventory_reservations WHERE status = 'RESERVED' AND expires_at_ms <= ? \
        ORDER BY expires_at_ms LIMIT ?";
    let rows = sqlx::query(SELECT).bind(now_ms).bind(i64::from(limit)).fetch_all(database.pool()).await?;
    rows.iter().map(|row| row.try_get::<String, _>("order_id")).collect()
}

/// Whether a database error is a unique-key violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_are_ordered_and_in_the_inventory_range() {
        MIGRATIONS.check().unwrap();
    }
}
