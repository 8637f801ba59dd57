//! The payment service's SQL: one text for MariaDB/MySQL and SQLite, run through
//! `emporium_store`'s one pool type. Amounts are integer minor units, times epoch milliseconds.
//!
//! One payment per order: `order_id` is unique. The charging transaction first claims the
//! order with a `PENDING` row (a concurrent claim of the same order waits on the unique index
//! and then fails), charges, and settles the row to `SUCCEEDED` or `FAILED` before it commits:
//! `PENDING` is never committed.

use chrono::{DateTime, TimeZone, Utc};
use emporium_contracts::money::{Money, decimals_of};
use emporium_contracts::page::PageRequest;
use emporium_contracts::payment::{PaymentStatus, PaymentView};
use emporium_store::{AnyRow, Database, DbTx, Migrations, Row, StoreError};

/// Migrations of the payment service: versions `5_000_001..=5_999_999` (see `emporium_store`
/// for the convention).
const MIGRATIONS: Migrations = Migrations {
    owner: "payment",
    list: &[(
        5_000_001,
        "payments",
        include_str!("../migrations/mysql/5000001_payments.sql"),
        include_str!("../migrations/sqlite/5000001_payments.sql"),
    )],
};

/// Creates or updates the payment tables (and the bus's, which the outbox and inbox need).
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

/// A payment as stored: the API's view and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    /// What the API shows.
    pub view: PaymentView,
    /// The user who placed the order.
    pub user_id: String,
}

/// A new claim on an order, before the charge.
#[derive(Debug, Clone)]
pub struct PaymentClaim<'a> {
    /// The payment's id.
    pub id: &'a str,
    /// The order.
    pub order_id: &'a str,
    /// Who placed it.
    pub user_id: &'a str,
    /// The amount, in minor units of `currency`.
    pub amount: Money,
    /// ISO 4217 code (at most 8 characters are kept).
    pub currency: &'a str,
    /// The payment method (at most 32 characters are kept).
    pub method: &'a str,
    /// When.
    pub created_at_ms: i64,
}

fn status_text(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Succeeded => "SUCCEEDED",
        PaymentStatus::Failed => "FAILED",
    }
}

fn status_of(text: &str) -> PaymentStatus {
    // Only SUCCEEDED and FAILED are ever committed.
    if text == "SUCCEEDED" { PaymentStatus::Succeeded } else { PaymentStatus::Failed }
}

/// The amount text of `minor_units` of `currency` (2 decimals for a currency Emporium does
/// not know, which only a refused payment can have).
pub fn amount_text(minor_units: i64, currency: &str) -> String {
    Money::from_minor_units(minor_units, decimals_of(currency).unwrap_or(2)).to_string()
}

const COLUMNS: &str =
    "id, order_id, user_id, amount_minor, currency, method, status, failure_reason, provider_ref, created_at_ms";

fn payment_of_row(row: &AnyRow) -> Result<StoredPayment, sqlx::Error> {
    let currency: String = row.try_get("currency")?;
    let status: String = row.try_get("status")?;
    Ok(StoredPayment {
        user_id: row.try_get("user_id")?,
        view: PaymentView {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            amount: amount_text(row.try_get("amount_minor")?, &currency),
            currency,
            method: row.try_get("method")?,
            status: status_of(&status),
            failure_reason: row.try_get("failure_reason")?,
            provider_ref: row.try_get("provider_ref")?,
            created_at: time_of(row.try_get("created_at_ms")?),
        },
    })
}

/// The payment of `order_id`, read inside `tx`.
pub async fn payment_of_order(tx: &mut DbTx, order_id: &str) -> Result<Option<StoredPayment>, sqlx::Error> {
    let select = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM payments WHERE order_id = ?"));
    let row = sqlx::query(select).bind(order_id).fetch_optional(tx.connection()).await?;
    row.as_ref().map(payment_of_row).transpose()
}

/// Claims `claim.order_id` with a `PENDING` payment. Fails with a unique violation when the
/// order already has a payment (or another transaction is claiming it and commits).
pub async fn claim(tx: &mut DbTx, claim: &PaymentClaim<'_>) -> Result<(), sqlx::Error> {
    const INSERT: &str = "INSERT INTO payments \
        (id, order_id, user_id, amount_minor, currency, method, status, failure_reason, provider_ref, created_at_ms) \
        VALUES (?, ?, ?, ?, ?, ?, 'PENDING', NULL, NULL, ?)";
    let currency: String = claim.currency.chars().take(8).collect();
    let method: String = claim.method.chars().take(32).collect();
    sqlx::query(INSERT)
        .bind(claim.id)
        .bind(claim.order_id)
        .bind(claim.user_id)
        .bind(claim.amount.minor_units)
        .bind(&currency)
        .bind(&method)
        .bind(claim.created_at_ms)
        .execute(tx.connection())
        .await?;
    Ok(())
}

/// Settles the claimed payment `id` with its outcome.
pub async fn settle(
    tx: &mut DbTx,
    id: &str,
    status: PaymentStatus,
    failure_reason: Option<&str>,
    provider_ref: Option<&str>,
) -> Result<(), sqlx::Error> {
    const UPDATE: &str = "UPDATE payments SET status = ?, failure_reason = ?, provider_ref = ? WHERE id = ?";
    let failure_reason = failure_reason.map(|reason| reason.chars().take(64).collect::<String>());
    let provider_ref = provider_ref.map(|reference| reference.chars().take(128).collect::<String>());
    sqlx::query(UPDATE)
        .bind(status_text(status))
        .bind(&failure_reason)
        .bind(&provider_ref)
        .bind(id)
        .execute(tx.connection())
        .await?;
    Ok(())
}

/// The payment `id`.
pub async fn payment(database: &Database, id: &str) -> Result<Option<StoredPayment>, sqlx::Error> {
    let select = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM payments WHERE id = ? AND status <> 'PENDING'"));
    let row = sqlx::query(select).bind(id).fetch_optional(database.pool()).await?;
    row.as_ref().map(payment_of_row).transpose()
}

/// A page of payments, newest first, optionally only `user_id`'s and only `order_id`'s; with
/// the number of payments that match.
pub async fn list_payments(
    database: &Database,
    user_id: Option<&str>,
    order_id: Option<&str>,
    page: PageRequest,
) -> Result<(Vec<StoredPayment>, u64), sqlx::Error> {
    let mut filter = String::from(" WHERE status <> 'PENDING'");
    let mut values: Vec<&str> = Vec::new();
    if let Some(user_id) = user_id {
        filter.push_str(" AND user_id = ?");
        values.push(user_id);
    }
    if let Some(order_id) = order_id {
        filter.push_str(" AND order_id = ?");
        values.push(order_id);
    }
    let count = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS total FROM payments{filter}"));
    let select = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments{filter} ORDER BY created_at_ms DESC, id DESC LIMIT ? OFFSET ?"
    ));
    let pool = database.pool();
    let mut count_query = sqlx::query(count);
    let mut select_query = sqlx::query(select);
    for value in &values {
        count_query = count_query.bind(*value);
        select_query = select_query.bind(*value);
    }
    let total: i64 = count_query.fetch_one(pool).await?.try_get("total")?;
    let rows = select_query
        .bind(i64::from(page.size))
        .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    let items = rows.iter().map(payment_of_row).collect::<Result<Vec<_>, _>>()?;
    Ok((items, total.max(0) as u64))
}

/// Whether a database error is a unique-key violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_the_payment_range() {
        MIGRATIONS.check().unwrap();
        for (version, _, mysql, sqlite) in MIGRATIONS.list {
            assert!((5_000_001..6_000_000).contains(version));
            assert!(mysql.contains("UNIQUE KEY payments_order (order_id)"));
            assert!(sqlite.contains("UNIQUE INDEX IF NOT EXISTS payments_order ON payments (order_id)"));
        }
    }

    #[test]
    fn amounts_print_in_their_currency() {
        assert_eq!(amount_text(1999, "USD"), "19.99");
        assert_eq!(amount_text(1500, "JPY"), "1500");
        assert_eq!(amount_text(0, "XXX"), "0.00");
        assert_eq!(status_of("SUCCEEDED"), PaymentStatus::Succeeded);
        assert_eq!(status_of(status_text(PaymentStatus::Failed)), PaymentStatus::Failed);
    }
}
