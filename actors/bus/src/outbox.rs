//! The transactional outbox: `bus_outbox` rows written in a service's own transaction, read
//! and marked sent by its relay.
//!
//! For events of one aggregate to leave in order, a service enqueues them after it wrote (and
//! so locked) the aggregate's row in the same transaction: the ids then follow the order in
//! which the transactions took the lock.

use std::sync::LazyLock;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};
use emporium_contracts::EventEnvelope;
use emporium_contracts::events::exchange_of;
use emporium_store::{AnyRow, Database, DbTx, Dialect, Row};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::error::BusError;

/// An outbox row waiting to be published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// Publish order.
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// The exchange, without namespace (`order-events`).
    pub exchange: String,
    /// The routing key: the event type.
    pub routing_key: String,
    /// The aggregate the event is about.
    pub subject: String,
    /// The CloudEvents JSON, as stored.
    pub envelope: String,
    /// The W3C trace context of the transaction that wrote it.
    pub traceparent: Option<String>,
}

/// How far a service's relay is behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxLag {
    /// Rows not yet published.
    pub num_unsent: u64,
    /// Age of the oldest of them, in seconds (0 when there is none).
    pub oldest_unsent_age_secs: f64,
}

/// Writes `envelope` into the outbox of `service` within `tx`, to be published to the
/// exchange of its type (see [`emporium_contracts::events::exchange_of`]) once `tx` commits.
pub async fn enqueue(
    tx: &mut DbTx,
    service: &str,
    envelope: &EventEnvelope,
    traceparent: Option<String>,
) -> Result<(), BusError> {
    let exchange = exchange_of(&envelope.event_type).ok_or_else(|| {
        BusError::InvalidConfig(format!("event type {} belongs to no known exchange", envelope.event_type))
    })?;
    enqueue_to(tx, service, exchange, envelope, traceparent).await
}

/// Writes `envelope` into the outbox of `service` within `tx`, to be published to `exchange`
/// with the event type as routing key.
#[tracing::instrument(skip(tx, envelope, traceparent), fields(event_id = %envelope.id, event_type = %envelope.event_type))]
pub async fn enqueue_to(
    tx: &mut DbTx,
    service: &str,
    exchange: &str,
    envelope: &EventEnvelope,
    traceparent: Option<String>,
) -> Result<(), BusError> {
    let body = String::from_utf8(envelope.to_json()?)
        .map_err(|error| BusError::Unexpected(anyhow::anyhow!("envelope is not utf-8: {error}")))?;
    let now = Utc::now();
    const INSERT: &str = "INSERT INTO bus_outbox \
        (service, event_id, exchange_name, routing_key, subject, envelope, traceparent, created_at, attempts) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)";
    sqlx::query(INSERT)
        .bind(service)
        .bind(&envelope.id)
        .bind(exchange)
        .bind(&envelope.event_type)
        .bind(&envelope.subject)
        .bind(&body)
        .bind(&traceparent)
        .bind(db_time(tx.dialect(), now))
        .execute(tx.connection())
        .await?;
    tx.signal_on_commit(&relay_signal_name(service));
    Ok(())
}

/// Up to `limit` unsent rows of `service`, oldest first.
pub(crate) async fn fetch_pending(
    database: &Database,
    service: &str,
    limit: usize,
) -> Result<Vec<OutboxRow>, BusError> {
    const SELECT: &str = "SELECT id, event_id, exchange_name, routing_key, subject, envelope, traceparent \
        FROM bus_outbox WHERE service = ? AND sent_at IS NULL ORDER BY id LIMIT ?";
    let rows = sqlx::query(SELECT)
        .bind(service)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(database.pool())
        .await?;
    rows.iter().map(read_row).collect()
}

fn read_row(row: &AnyRow) -> Result<OutboxRow, BusError> {
    Ok(OutboxRow {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        exchange: row.try_get("exchange_name")?,
        routing_key: row.try_get("routing_key")?,
        subject: row.try_get("subject")?,
        envelope: row.try_get("envelope")?,
        traceparent: row.try_get("traceparent")?,
    })
}

/// Marks rows `ids` published.
pub(crate) async fn mark_sent(database: &Database, ids: &[i64]) -> Result<(), BusError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql =
        format!("UPDATE bus_outbox SET sent_at = ?, attempts = attempts + 1 WHERE id IN ({})", placeholders(ids.len()));
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(db_time(database.dialect(), Utc::now()));
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(database.pool()).await?;
    Ok(())
}

/// Counts a failed publish attempt of rows `ids` (they stay unsent).
pub(crate) async fn record_failed_attempt(database: &Database, ids: &[i64]) -> Result<(), BusError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!("UPDATE bus_outbox SET attempts = attempts + 1 WHERE id IN ({})", placeholders(ids.len()));
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(database.pool()).await?;
    Ok(())
}

/// How many rows of `service` wait, and for how long the oldest has.
pub async fn measure_lag(database: &Database, service: &str) -> Result<OutboxLag, BusError> {
    let sql = match database.dialect() {
        Dialect::MySql => {
            "SELECT COUNT(*) AS num_unsent, DATE_FORMAT(MIN(created_at), '%Y-%m-%dT%H:%i:%s.%fZ') AS oldest \
             FROM bus_outbox WHERE service = ? AND sent_at IS NULL"
        }
        Dialect::Sqlite => {
            "SELECT COUNT(*) AS num_unsent, MIN(created_at) AS oldest FROM bus_outbox WHERE service = ? AND sent_at IS NULL"
        }
    };
    let now = Utc::now();
    let row = sqlx::query(sql).bind(service).fetch_one(database.pool()).await?;
    let num_unsent: i64 = row.try_get("num_unsent")?;
    let oldest = row.try_get::<Option<String>, _>("oldest")?.and_then(|text| parse_db_time(&text));
    let oldest_unsent_age_secs =
        oldest.map(|oldest| (now - oldest).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6).unwrap_or(0.0);
    Ok(OutboxLag { num_unsent: num_unsent.max(0) as u64, oldest_unsent_age_secs })
}

/// Deletes up to `limit` rows of `service` sent before `before`; answers how many went.
pub(crate) async fn purge_sent(
    database: &Database,
    service: &str,
    before: DateTime<Utc>,
    limit: usize,
) -> Result<u64, BusError> {
    let sql = match database.dialect() {
        Dialect::MySql => {
            "DELETE FROM bus_outbox WHERE service = ? AND sent_at IS NOT NULL AND sent_at < ? ORDER BY id LIMIT ?"
        }
        Dialect::Sqlite => {
            "DELETE FROM bus_outbox WHERE id IN (SELECT id FROM bus_outbox \
             WHERE service = ? AND sent_at IS NOT NULL AND sent_at < ? ORDER BY id LIMIT ?)"
        }
    };
    let deleted = sqlx::query(sql)
        .bind(service)
        .bind(db_time(database.dialect(), before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(database.pool())
        .await?
        .rows_affected();
    Ok(deleted)
}

/// `?, ?, ?` for `count` parameters.
pub(crate) fn placeholders(count: usize) -> String {
    let mut text = String::with_capacity(count * 3);
    for index in 0..count {
        if index > 0 {
            text.push_str(", ");
        }
        text.push('?');
    }
    text
}

/// The name of the commit signal that wakes the relay of `service` (see
/// [`Database::commit_signal`]).
pub(crate) fn relay_signal_name(service: &str) -> String {
    format!("bus-relay:{service}")
}

/// A time as the bus's tables store it: `DATETIME(6)` text on MariaDB/MySQL, fixed-width
/// RFC 3339 UTC text on SQLite (so that its text order is time order).
pub(crate) fn db_time(dialect: Dialect, time: DateTime<Utc>) -> String {
    // Parsed once: a format string is parsed again at every `format` call.
    static MYSQL_DATETIME: LazyLock<Vec<Item<'static>>> =
        LazyLock::new(|| StrftimeItems::new("%Y-%m-%d %H:%M:%S%.6f").parse_to_owned().expect("a valid format"));
    match dialect {
        Dialect::MySql => time.format_with_items(MYSQL_DATETIME.iter()).to_string(),
        Dialect::Sqlite => time.to_rfc3339_opts(SecondsFormat::Micros, true),
    }
}

/// Reads a time selected as RFC 3339 text (MariaDB's `DATE_FORMAT(.., '%Y-%m-%dT%H:%i:%s.%fZ')`
/// or SQLite's stored text).
pub(crate) fn parse_db_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_times_are_well_formed() {
        assert_eq!(placeholders(1), "?");
        assert_eq!(placeholders(3), "?, ?, ?");
        let time = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        assert_eq!(db_time(Dialect::Sqlite, time), "2026-01-02T03:04:05.000000Z");
        assert_eq!(db_time(Dialect::MySql, time), "2026-01-02 03:04:05.000000");
        assert_eq!(parse_db_time("2026-01-02T03:04:05.000000Z"), Some(time));
    }
}
