//! The idempotent inbox (`bus_inbox`): which events a consumer has applied, written in the
//! transaction of its effects; and the in-process bus's dead letters (`bus_dead_letter`).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use crate::database::{Database, DbConnection, DbTx, Pool};
use crate::error::BusError;
use crate::outbox::{placeholders, sqlite_time};

/// Of `event_ids`, those `consumer` has already applied (as seen by `tx`).
pub async fn already_applied(tx: &mut DbTx, consumer: &str, event_ids: &[&str]) -> Result<HashSet<String>, BusError> {
    if event_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "SELECT event_id FROM bus_inbox WHERE consumer = ? AND event_id IN ({})",
        placeholders(event_ids.len())
    );
    let mut applied = HashSet::new();
    match tx.connection() {
        DbConnection::MySql(connection) => {
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(consumer);
            for event_id in event_ids {
                query = query.bind(*event_id);
            }
            for row in query.fetch_all(connection).await? {
                applied.insert(row.try_get::<String, _>("event_id")?);
            }
        }
        DbConnection::Sqlite(connection) => {
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(consumer);
            for event_id in event_ids {
                query = query.bind(*event_id);
            }
            for row in query.fetch_all(connection).await? {
                applied.insert(row.try_get::<String, _>("event_id")?);
            }
        }
    }
    Ok(applied)
}

/// Records that `consumer` applied `event_ids`, within `tx`.
pub async fn record_applied(tx: &mut DbTx, consumer: &str, event_ids: &[&str]) -> Result<(), BusError> {
    if event_ids.is_empty() {
        return Ok(());
    }
    let values = vec!["(?, ?, ?)"; event_ids.len()].join(", ");
    let sql = format!("INSERT INTO bus_inbox (consumer, event_id, processed_at) VALUES {values}");
    let now = Utc::now();
    match tx.connection() {
        DbConnection::MySql(connection) => {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for event_id in event_ids {
                query = query.bind(consumer).bind(*event_id).bind(now.naive_utc());
            }
            query.execute(connection).await?;
        }
        DbConnection::Sqlite(connection) => {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            let now = sqlite_time(now);
            for event_id in event_ids {
                query = query.bind(consumer).bind(*event_id).bind(now.clone());
            }
            query.execute(connection).await?;
        }
    }
    Ok(())
}

/// Deletes up to `limit` inbox rows of `consumer` older than `before`.
pub(crate) async fn purge_applied(
    database: &Database,
    consumer: &str,
    before: DateTime<Utc>,
    limit: usize,
) -> Result<u64, BusError> {
    let limit = limit as i64;
    let deleted = match database.pool() {
        Pool::MySql(pool) => sqlx::query("DELETE FROM bus_inbox WHERE consumer = ? AND processed_at < ? LIMIT ?")
            .bind(consumer)
            .bind(before.naive_utc())
            .bind(limit)
            .execute(pool)
            .await?
            .rows_affected(),
        Pool::Sqlite(pool) => sqlx::query(
            "DELETE FROM bus_inbox WHERE rowid IN (SELECT rowid FROM bus_inbox WHERE consumer = ? AND processed_at < ? LIMIT ?)",
        )
        .bind(consumer)
        .bind(sqlite_time(before))
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(deleted)
}

/// A message set aside because it could not be read or its handler failed too often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The consumer that gave up on it.
    pub consumer: String,
    /// Its queue (with namespace).
    pub queue: String,
    /// The event id, when the message could be read.
    pub event_id: Option<String>,
    /// The message body (lossy UTF-8).
    pub body: String,
    /// Why.
    pub reason: String,
    /// How many times the handler ran on it.
    pub attempts: u32,
    /// When.
    pub dead_lettered_at: DateTime<Utc>,
}

/// Stores `letter` in `bus_dead_letter`.
pub(crate) async fn store_dead_letter(database: &Database, letter: &DeadLetter) -> Result<(), BusError> {
    const INSERT: &str = "INSERT INTO bus_dead_letter \
        (consumer, queue_name, event_id, body, reason, attempts, dead_lettered_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
    match database.pool() {
        Pool::MySql(pool) => {
            sqlx::query(INSERT)
                .bind(&letter.consumer)
                .bind(&letter.queue)
                .bind(&letter.event_id)
                .bind(&letter.body)
                .bind(&letter.reason)
                .bind(letter.attempts as i64)
                .bind(letter.dead_lettered_at.naive_utc())
                .execute(pool)
                .await?;
        }
        Pool::Sqlite(pool) => {
            sqlx::query(INSERT)
                .bind(&letter.consumer)
                .bind(&letter.queue)
                .bind(&letter.event_id)
                .bind(&letter.body)
                .bind(&letter.reason)
                .bind(letter.attempts as i64)
                .bind(sqlite_time(letter.dead_lettered_at))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// The dead letters `consumer` stored in `database` (in-process bus), oldest first.
pub async fn list_dead_letters(database: &Database, consumer: &str) -> Result<Vec<DeadLetter>, BusError> {
    const SELECT: &str = "SELECT consumer, queue_name, event_id, body, reason, attempts, dead_lettered_at \
        FROM bus_dead_letter WHERE consumer = ? ORDER BY id";
    let mut letters = Vec::new();
    match database.pool() {
        Pool::MySql(pool) => {
            for row in sqlx::query(SELECT).bind(consumer).fetch_all(pool).await? {
                let at: NaiveDateTime = row.try_get("dead_lettered_at")?;
                letters.push(DeadLetter {
                    consumer: row.try_get("consumer")?,
                    queue: row.try_get("queue_name")?,
                    event_id: row.try_get("event_id")?,
                    body: row.try_get("body")?,
                    reason: row.try_get("reason")?,
                    attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
                    dead_lettered_at: at.and_utc(),
                });
            }
        }
        Pool::Sqlite(pool) => {
            for row in sqlx::query(SELECT).bind(consumer).fetch_all(pool).await? {
                let at: String = row.try_get("dead_lettered_at")?;
                letters.push(DeadLetter {
                    consumer: row.try_get("consumer")?,
                    queue: row.try_get("queue_name")?,
                    event_id: row.try_get("event_id")?,
                    body: row.try_get("body")?,
                    reason: row.try_get("reason")?,
                    attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                    dead_lettered_at: DateTime::parse_from_rfc3339(&at)
                        .map(|time| time.with_timezone(&Utc))
                        .unwrap_or_default(),
                });
            }
        }
    }
    Ok(letters)
}
