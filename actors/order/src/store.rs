//! The order service's SQL: one text for MariaDB/MySQL and SQLite, times in epoch
//! milliseconds, money in minor units of the order's currency.

use chrono::{DateTime, TimeZone, Utc};
use emporium_contracts::money::{Money, decimals_of};
use emporium_contracts::order::{OrderItemView, OrderStatus, OrderView};
use emporium_contracts::page::PageRequest;
use emporium_store::{AnyRow, Database, DbTx, Migrations, Row, StoreError};

/// Migrations of the order service: versions `4_000_001..=4_999_999`.
const MIGRATIONS: Migrations = Migrations {
    owner: "order",
    list: &[(
        4_000_001,
        "orders, items and idempotency keys",
        include_str!("../migrations/mysql/4000001_orders.sql"),
        include_str!("../migrations/sqlite/4000001_orders.sql"),
    )],
};

/// Creates or updates the order service's tables (and the bus's).
pub async fn migrate(database: &Database) -> Result<(), StoreError> {
    emporium_bus::migrate(database).await?;
    database.migrate(&MIGRATIONS).await
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

fn time_of(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default()
}

/// A line as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// The SKU.
    pub sku: String,
    /// The product's name when ordered.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in minor units.
    pub unit_price_minor: i64,
    /// `unit_price_minor * quantity`.
    pub line_total_minor: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// Id.
    pub id: String,
    /// Who placed it.
    pub user_id: String,
    /// Status.
    pub status: OrderStatus,
    /// Currency.
    pub currency: String,
    /// Total in minor units.
    pub total_minor: i64,
    /// Why it was cancelled.
    pub cancellation_reason: Option<String>,
    /// Placed, epoch ms.
    pub created_at_ms: i64,
    /// Last changed, epoch ms.
    pub updated_at_ms: i64,
    /// The lines.
    pub lines: Vec<StoredLine>,
}

impl StoredOrder {
    /// The API view.
    pub fn view(&self) -> OrderView {
        let decimals = decimals_of(&self.currency).unwrap_or(2);
        let amount = |minor: i64| Money::from_minor_units(minor, decimals).to_string();
        OrderView {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            status: self.status,
            items: self
                .lines
                .iter()
                .map(|line| OrderItemView {
                    sku: line.sku.clone(),
                    name: line.name.clone(),
                    quantity: line.quantity,
                    unit_price: amount(line.unit_price_minor),
                    line_total: amount(line.line_total_minor),
                })
                .collect(),
            total: amount(self.total_minor),
            currency: self.currency.clone(),
            cancellation_reason: self.cancellation_reason.clone(),
            created_at: time_of(self.created_at_ms),
            updated_at: time_of(self.updated_at_ms),
        }
    }
}

/// An order row, without its lines.
fn order_of_row(row: &AnyRow) -> Result<StoredOrder, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(StoredOrder {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        status: OrderStatus::parse(&status).unwrap_or(OrderStatus::PendingPayment),
        currency: row.try_get("currency")?,
        total_minor: row.try_get("total_minor")?,
        cancellation_reason: row.try_get("cancellation_reason")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        lines: Vec::new(),
    })
}

/// An `order_items` row.
fn line_of_row(row: &AnyRow) -> Result<StoredLine, sqlx::Error> {
    Ok(StoredLine {
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        quantity: u32::try_from(row.try_get::<i64, _>("quantity")?).unwrap_or(0),
        unit_price_minor: row.try_get("unit_price_minor")?,
        line_total_minor: row.try_get("line_total_minor")?,
    })
}

const ORDER_COLUMNS: &str =
    "id, user_id, status, currency, total_minor, cancellation_reason, created_at_ms, updated_at_ms";

/// Inserts a new order with its lines.
pub async fn insert_order(tx: &mut DbTx, order: &StoredOrder) -> Result<(), sqlx::Error> {
    const ORDER: &str = "INSERT INTO orders (id, user_id, status, currency, total_minor, cancellation_reason, created_at_ms, updated_at_ms) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    const LINE: &str = "INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price_minor, line_total_minor) \
        VALUES (?, ?, ?, ?, ?, ?, ?)";
    let connection = tx.connection();
    sqlx::query(ORDER)
        .bind(&order.id)
        .bind(&order.user_id)
        .bind(order.status.as_str())
        .bind(&order.currency)
        .bind(order.total_minor)
        .bind(&order.cancellation_reason)
        .bind(order.created_at_ms)
        .bind(order.updated_at_ms)
        .execute(&mut *connection)
        .await?;
    for (line_no, line) in order.lines.iter().enumerate() {
        sqlx::query(LINE)
            .bind(&order.id)
            .bind(i64::try_from(line_no).unwrap_or(i64::MAX))
            .bind(&line.sku)
            .bind(&line.name)
            .bind(i64::from(line.quantity))
            .bind(line.unit_price_minor)
            .bind(line.line_total_minor)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// The order `id` with its lines, read inside `tx`.
pub async fn order_in(tx: &mut DbTx, id: &str) -> Result<Option<StoredOrder>, sqlx::Error> {
    let select = sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"));
    const LINES: &str = "SELECT sku, name, quantity, unit_price_minor, line_total_minor FROM order_items WHERE order_id = ? ORDER BY line_no";
    let connection = tx.connection();
    let Some(row) = sqlx::query(select).bind(id).fetch_optional(&mut *connection).await? else { return Ok(None) };
    let mut order = order_of_row(&row)?;
    let lines = sqlx::query(LINES).bind(id).fetch_all(&mut *connection).await?;
    order.lines = lines.iter().map(line_of_row).collect::<Result<_, _>>()?;
    Ok(Some(order))
}

/// The order `id` with its lines.
pub async fn order(database: &Database, id: &str) -> Result<Option<StoredOrder>, sqlx::Error> {
    let select = sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"));
    const LINES: &str = "SELECT sku, name, quantity, unit_price_minor, line_total_minor FROM order_items WHERE order_id = ? ORDER BY line_no";
    let Some(row) = sqlx::query(select).bind(id).fetch_optional(database.pool()).await? else { return Ok(None) };
    let mut order = order_of_row(&row)?;
    let lines = sqlx::query(LINES).bind(id).fetch_all(database.pool()).await?;
    order.lines = lines.iter().map(line_of_row).collect::<Result<_, _>>()?;
    Ok(Some(order))
}

/// What the order list is filtered by.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Only this user's orders (customers), or everyone's (`None`, admins).
    pub user_id: Option<String>,
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Placed at or after, epoch ms.
    pub from_ms: Option<i64>,
    /// Placed before, epoch ms.
    pub to_ms: Option<i64>,
}

/// A page of orders, newest first, with the total count.
pub async fn list_orders(
    database: &Database,
    query: &OrderQuery,
    page: PageRequest,
) -> Result<(Vec<StoredOrder>, u64), sqlx::Error> {
    // Only fixed clause texts are concatenated; every value is a bound parameter.
    let mut clauses = Vec::new();
    if query.user_id.is_some() {
        clauses.push("user_id = ?");
    }
    if query.status.is_some() {
        clauses.push("status = ?");
    }
    if query.from_ms.is_some() {
        clauses.push("created_at_ms >= ?");
    }
    if query.to_ms.is_some() {
        clauses.push("created_at_ms < ?");
    }
    let filter = if clauses.is_empty() { String::new() } else { format!(" WHERE {}", clauses.join(" AND ")) };
    let count_sql = format!("SELECT COUNT(*) AS total FROM orders{filter}");
    let select_sql = format!("SELECT id FROM orders{filter} ORDER BY created_at_ms DESC, id LIMIT ? OFFSET ?");
    macro_rules! bind_filters {
        ($statement:expr) => {{
            let mut statement = $statement;
            if let Some(user_id) = &query.user_id {
                statement = statement.bind(user_id.clone());
            }
            if let Some(status) = query.status {
                statement = statement.bind(status.as_str());
            }
            if let Some(from_ms) = query.from_ms {
                statement = statement.bind(from_ms);
            }
            if let Some(to_ms) = query.to_ms {
                statement = statement.bind(to_ms);
            }
            statement
        }};
    }
    let total: i64 = bind_filters!(sqlx::query(sqlx::AssertSqlSafe(count_sql)))
        .fetch_one(database.pool())
        .await?
        .try_get("total")?;
    let rows = bind_filters!(sqlx::query(sqlx::AssertSqlSafe(select_sql)))
        .bind(i64::from(page.size))
        .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX))
        .fetch_all(database.pool())
        .await?;
    let ids = rows.iter().map(|row| row.try_get::<String, _>("id")).collect::<Result<Vec<_>, _>>()?;
    let mut orders = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(order) = order(database, &id).await? {
            orders.push(order);
        }
    }
    Ok((orders, u64::try_from(total).unwrap_or(0)))
}

/// Moves an order from PENDING_PAYMENT to `status`; answers whether it was pending.
pub async fn finish_pending(
    tx: &mut DbTx,
    id: &str,
    status: OrderStatus,
    cancellation_reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    const UPDATE: &str = "UPDATE orders SET status = ?, cancellation_reason = ?, updated_at_ms = ? \
        WHERE id = ? AND status = 'PENDING_PAYMENT'";
    let updated = sqlx::query(UPDATE)
        .bind(status.as_str())
        .bind(cancellation_reason)
        .bind(now_millis())
        .bind(id)
        .execute(tx.connection())
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// The order made with an idempotency key, and the hash of the request it came with.
pub async fn idempotency_key(
    database: &Database,
    user_id: &str,
    key: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    const SELECT: &str =
        "SELECT request_hash, order_id FROM order_idempotency_keys WHERE user_id = ? AND idempotency_key = ?";
    match sqlx::query(SELECT).bind(user_id).bind(key).fetch_optional(database.pool()).await? {
        Some(row) => Ok(Some((row.try_get("request_hash")?, row.try_get("order_id")?))),
        None => Ok(None),
    }
}

/// Records an idempotency key; a unique violation means another request took it first.
pub async fn insert_idempotency_key(
    tx: &mut DbTx,
    user_id: &str,
    key: &str,
    request_hash: &str,
    order_id: &str,
) -> Result<(), sqlx::Error> {
    const INSERT: &str = "INSERT INTO order_idempotency_keys (user_id, idempotency_key, request_hash, order_id, created_at_ms) \
        VALUES (?, ?, ?, ?, ?)";
    sqlx::query(INSERT)
        .bind(user_id)
        .bind(key)
        .bind(request_hash)
        .bind(order_id)
        .bind(now_millis())
        .execute(tx.connection())
        .await?;
    Ok(())
}

/// Whether a database error is a unique-key violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_are_ordered_and_in_the_order_range() {
        MIGRATIONS.check().unwrap();
    }
}
