//! The idempotent inbox (`bus_inbox`): which events a consumer has applied, written in the
//! transaction of its effects; and the in-process bus's dead letters (`bus_dead_letter`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use emporium_store::{Database, DbTx, Dialect, Row};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use crate::error::BusError;
use crate::outbox::{db_time, parse_db_time, placeholders};

/// Of `event_ids`, those `consumer` has already applied (as seen by `tx`).
pub async fn already_applied(tx: &mut DbTx, consumer: &str, event_ids: &[&str]) -> Result<HashSet<String>, BusError> {
    if event_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "SELECT event_id FROM bus_inbox WHERE consumer = ? AND event_id IN ({})",
        placeholders(event_ids.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(consumer);
    for event_id in event_ids {
        query = query.bind(*event_id);
    }
    let mut applied = HashSet::new();
    for row in query.fetch_all(tx.connection()).await? {
        applied.insert(row.try_get::<String, _>("event_id")?);
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
    let now = db_time(tx.dialect(), Utc::now());
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for event_id in event_ids {
        query = query.bind(consumer).bind(*event_id).bind(now.clone());
    }
    query.execute(tx.connection()).await?;
    Ok(())
}

/// Deletes up to `limit` inbox rows of `consumer` older than `before`.
pub(crate) async fn purge_applied(
    database: &Database,
    consumer: &str,
    before: DateTime<Utc>,
    limit: usize,
) -> Result<u64, BusError> {
    let sql = match database.dialect() {
        Dialect::MySql => "DELETE FROM bus_inbox WHERE consumer = ? AND processed_at < ? LIMIT ?",
        // `bus_inbox` is a WITHOUT ROWID table on SQLite: select the oldest rows by key.
        Dialect::Sqlite => {
            "DELETE FROM bus_inbox WHERE consumer = ? AND event_id IN \
             (SELECT event_id FROM bus_inbox WHERE consumer = ? AND processed_at < ? LIMIT ?)"
        }
    };
    let mut query = sqlx::query(sql).bind(consumer);
    if database.dialect() == Dialect::Sqlite {
        query = query.bind(consumer);
    }
    let deleted = query
        .bind(db_time(database.dialect(), before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(database.pool())
        .await?
        .rows_affected();
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
    sqlx::query(INSERT)
        .bind(&letter.consumer)
        .bind(&letter.queue)
        .bind(&letter.event_id)
        .bind(&letter.body)
        .bind(&letter.reason)
        .bind(i64::from(letter.attempts))
        .bind(db_time(database.dialect(), letter.dead_lettered_at))
        .execute(database.pool())
        .await?;
    Ok(())
}

/// The dead letters `consumer` stored in `database` (in-process bus), oldest first.
pub async fn list_dead_letters(database: &Database, consumer: &str) -> Result<Vec<DeadLetter>, BusError> {
    let sql = match database.dialect() {
        Dialect::MySql => {
            "SELECT consumer, queue_name, event_id, body, reason, attempts, \
             DATE_FORMAT(dead_lettered_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS dead_lettered_at \
             FROM bus_dead_letter WHERE consumer = ? ORDER BY id"
        }
        Dialect::Sqlite => {
            "SELECT consumer, queue_name, event_id, body, reason, attempts, dead_lettered_at \
             FROM bus_dead_letter WHERE consumer = ? ORDER BY id"
        }
    };
    let mut letters = Vec::new();
    for row in sqlx::query(sql).bind(consumer).fetch_all(database.pool()).await? {
        let at: String = row.try_get("dead_lettered_at")?;
        letters.push(DeadLetter {
            consumer: row.try_get("consumer")?,
            queue: row.try_get("queue_name")?,
            event_id: row.try_get("event_id")?,
            body: row.try_get("body")?,
            reason: row.try_get("reason")?,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?.max(0)).unwrap_or(u32::MAX),
            dead_lettered_at: parse_db_time(&at).unwrap_or_default(),
        });
    }
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use super::*;

    use emporium_store::testing::{StoreKind, TestDatabase};

    /// The inbox purge works on both stores (SQLite's `bus_inbox` has no rowid, MariaDB's
    /// `DELETE` takes a `LIMIT`): old rows go in bounded passes, so the inbox stays bounded.
    #[tokio::test]
    async fn old_inbox_rows_are_purged_on_both_stores() {
        for kind in StoreKind::BOTH {
            let test_database = TestDatabase::create(kind, "bus_inbox").await;
            let database = &test_database.database;
            crate::schema::migrate(database).await.unwrap();
            let mut tx = database.begin().await.unwrap();
            record_applied(&mut tx, "notification", &["e1", "e2", "e3"]).await.unwrap();
            record_applied(&mut tx, "payment", &["e1"]).await.unwrap();
            tx.commit().await.unwrap();
            let earlier = Utc::now() - chrono::Duration::seconds(60);
            assert_eq!(
                purge_applied(database, "notification", earlier, 10).await.unwrap(),
                0,
                "{kind:?}: recent rows stay"
            );
            let later = Utc::now() + chrono::Duration::seconds(1);
            assert_eq!(purge_applied(database, "notification", later, 2).await.unwrap(), 2, "{kind:?}");
            assert_eq!(purge_applied(database, "notification", later, 10).await.unwrap(), 1, "{kind:?}");
            assert_eq!(purge_applied(database, "notification", later, 10).await.unwrap(), 0, "{kind:?}");
            let mut tx = database.begin().await.unwrap();
            let kept = already_applied(&mut tx, "payment", &["e1"]).await.unwrap();
            assert_eq!(kept.len(), 1, "{kind:?}: other consumers keep theirs");
            tx.rollback().await.unwrap();
            test_database.drop_now().await;
        }
    }
}
