//! The notification service's SQL: one text for MariaDB/MySQL and SQLite, run through
//! `emporium_store`'s one pool type. Times are epoch milliseconds.
//!
//! Rows are written by the event handler inside the bus's transaction (one per event: the
//! unique `event_id`), and moved along by the mailer outside of it: a due `PENDING` row is
//! first leased (its `next_attempt_at_ms` pushed past the send's timeout by a conditional
//! update, so two mailers never send it at once), then marked `SENT`, scheduled again with
//! its error, or `FAILED`.

use chrono::{DateTime, TimeZone, Utc};
use emporium_contracts::notification::{NotificationChannel, NotificationKind, NotificationStatus, NotificationView};
use emporium_contracts::page::PageRequest;
use emporium_store::{AnyRow, Database, DbTx, Migrations, Row, StoreError};

/// Migrations of the notification service: versions `6_000_001..=6_999_999` (see
/// `emporium_store` for the convention).
const MIGRATIONS: Migrations = Migrations {
    owner: "notification",
    list: &[(
        6_000_001,
        "notifications and recipients",
        include_str!("../migrations/mysql/6000001_notifications.sql"),
        include_str!("../migrations/sqlite/6000001_notifications.sql"),
    )],
};

/// Longest subject kept.
pub const MAX_SUBJECT_CHARS: usize = 255;
/// Longest body kept.
pub const MAX_BODY_CHARS: usize = 60_000;
/// Longest error text kept.
pub const MAX_ERROR_CHARS: usize = 1000;
/// Longest email address kept.
pub const MAX_EMAIL_CHARS: usize = 320;

/// Creates or updates the notification tables (and the bus's, which the inbox needs).
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

fn bounded(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The stored text of `channel`.
pub fn channel_text(channel: NotificationChannel) -> &'static str {
    match channel {
        NotificationChannel::Email => "email",
        NotificationChannel::Stored => "stored",
    }
}

fn channel_of(text: &str) -> NotificationChannel {
    if text == "email" { NotificationChannel::Email } else { NotificationChannel::Stored }
}

/// The stored text of `status`.
pub fn status_text(status: NotificationStatus) -> &'static str {
    match status {
        NotificationStatus::Pending => "PENDING",
        NotificationStatus::Sent => "SENT",
        NotificationStatus::Failed => "FAILED",
        NotificationStatus::Stored => "STORED",
    }
}

fn status_of(text: &str) -> NotificationStatus {
    match text {
        "PENDING" => NotificationStatus::Pending,
        "SENT" => NotificationStatus::Sent,
        "FAILED" => NotificationStatus::Failed,
        _ => NotificationStatus::Stored,
    }
}

/// A notification to record.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    /// Its id.
    pub id: &'a str,
    /// The event it is made from.
    pub event_id: &'a str,
    /// Whose it is.
    pub user_id: &'a str,
    /// What it tells.
    pub kind: NotificationKind,
    /// `email` or `stored`.
    pub channel: NotificationChannel,
    /// The email address, when known.
    pub recipient: Option<&'a str>,
    /// Subject line.
    pub subject: &'a str,
    /// Plain-text body.
    pub body: &'a str,
    /// `PENDING` (to email) or `STORED`.
    pub status: NotificationStatus,
    /// When.
    pub created_at_ms: i64,
}

/// Whether a notification was already made from `event_id` (read inside `tx`).
pub async fn exists_for_event(tx: &mut DbTx, event_id: &str) -> Result<bool, sqlx::Error> {
    const SELECT: &str = "SELECT COUNT(*) AS found FROM notifications WHERE event_id = ?";
    let found: i64 = sqlx::query(SELECT).bind(event_id).fetch_one(tx.connection()).await?.try_get("found")?;
    Ok(found > 0)
}

/// Records a notification. Fails with a unique violation when its event already has one.
pub async fn insert(tx: &mut DbTx, notification: &NewNotification<'_>) -> Result<(), sqlx::Error> {
    const INSERT: &str = "INSERT INTO notifications \
        (id, event_id, user_id, kind, channel, recipient, subject, body, status, attempts, last_error, \
         next_attempt_at_ms, created_at_ms, sent_at_ms) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, ?, ?, NULL)";
    let subject = bounded(notification.subject, MAX_SUBJECT_CHARS);
    let body = bounded(notification.body, MAX_BODY_CHARS);
    sqlx::query(INSERT)
        .bind(notification.id)
        .bind(notification.event_id)
        .bind(notification.user_id)
        .bind(notification.kind.event_type())
        .bind(channel_text(notification.channel))
        .bind(notification.recipient)
        .bind(&subject)
        .bind(&body)
        .bind(status_text(notification.status))
        .bind(notification.created_at_ms)
        .bind(notification.created_at_ms)
        .execute(tx.connection())
        .await?;
    Ok(())
}

/// Remembers (or updates) where to email `user_id`.
pub async fn remember_recipient(tx: &mut DbTx, user_id: &str, email: &str) -> Result<(), sqlx::Error> {
    const UPDATE: &str = "UPDATE notification_recipients SET email = ?, updated_at_ms = ? WHERE user_id = ?";
    const INSERT: &str = "INSERT INTO notification_recipients (user_id, email, updated_at_ms) VALUES (?, ?, ?)";
    let now = now_millis();
    let updated =
        sqlx::query(UPDATE).bind(email).bind(now).bind(user_id).execute(tx.connection()).await?.rows_affected();
    if updated == 0 {
        sqlx::query(INSERT).bind(user_id).bind(email).bind(now).execute(tx.connection()).await?;
    }
    Ok(())
}

/// Where to email `user_id`, when known (read inside `tx`).
pub async fn recipient_of(tx: &mut DbTx, user_id: &str) -> Result<Option<String>, sqlx::Error> {
    const SELECT: &str = "SELECT email FROM notification_recipients WHERE user_id = ?";
    match sqlx::query(SELECT).bind(user_id).fetch_optional(tx.connection()).await? {
        Some(row) => Ok(Some(row.try_get("email")?)),
        None => Ok(None),
    }
}

const VIEW_COLUMNS: &str = "id, event_id, kind, channel, subject, body, status, created_at_ms";

fn view_of_row(row: &AnyRow) -> Result<NotificationView, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let channel: String = row.try_get("channel")?;
    let status: String = row.try_get("status")?;
    Ok(NotificationView {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        kind: NotificationKind::of_event_type(&kind).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "kind".into(),
            source: format!("unknown notification kind {kind:?}").into(),
        })?,
        channel: channel_of(&channel),
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        status: status_of(&status),
        created_at: time_of(row.try_get("created_at_ms")?),
    })
}

/// A page of `user_id`'s notifications, newest first, and how many they have.
pub async fn list_for_user(
    database: &Database,
    user_id: &str,
    page: PageRequest,
) -> Result<(Vec<NotificationView>, u64), sqlx::Error> {
    const COUNT: &str = "SELECT COUNT(*) AS total FROM notifications WHERE user_id = ?";
    let select = sqlx::AssertSqlSafe(format!(
        "SELECT {VIEW_COLUMNS} FROM notifications WHERE user_id = ? ORDER BY created_at_ms DESC, id DESC LIMIT ? OFFSET ?"
    ));
    let pool = database.pool();
    let total: i64 = sqlx::query(COUNT).bind(user_id).fetch_one(pool).await?.try_get("total")?;
    let rows = sqlx::query(select)
        .bind(user_id)
        .bind(i64::from(page.size))
        .bind(i64::try_from(page.offset()).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    let items = rows.iter().map(view_of_row).collect::<Result<Vec<_>, _>>()?;
    Ok((items, total.max(0) as u64))
}

/// A `PENDING` notification whose time to be sent has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueNotification {
    /// Its id.
    pub id: String,
    /// The address to send it to.
    pub recipient: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Sends tried so far.
    pub attempts: u32,
    /// The time it was due at (the lease is taken on this value).
    pub next_attempt_at_ms: i64,
}

/// At most `limit` `PENDING` notifications due at `now_ms`, longest waiting first.
pub async fn due(database: &Database, now_ms: i64, limit: u32) -> Result<Vec<DueNotification>, sqlx::Error> {
    const SELECT: &str = "SELECT id, recipient, subject, body, attempts, next_attempt_at_ms FROM notifications \
        WHERE status = 'PENDING' AND next_attempt_at_ms <= ? ORDER BY next_attempt_at_ms, id LIMIT ?";
    let rows = sqlx::query(SELECT).bind(now_ms).bind(i64::from(limit)).fetch_all(database.pool()).await?;
    rows.iter().map(due_of_row).collect()
}

fn due_of_row(row: &AnyRow) -> Result<DueNotification, sqlx::Error> {
    let attempts: i64 = row.try_get("attempts")?;
    Ok(DueNotification {
        id: row.try_get("id")?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
    })
}

/// Takes the lease on a due notification: moves its next attempt to `lease_until_ms` if it is
/// still `PENDING` and due at `due_at_ms`; answers whether this caller got it.
pub async fn lease(database: &Database, id: &str, due_at_ms: i64, lease_until_ms: i64) -> Result<bool, sqlx::Error> {
    const UPDATE: &str = "UPDATE notifications SET next_attempt_at_ms = ? \
        WHERE id = ? AND status = 'PENDING' AND next_attempt_at_ms = ?";
    let updated = sqlx::query(UPDATE)
        .bind(lease_until_ms)
        .bind(id)
        .bind(due_at_ms)
        .execute(database.pool())
        .await?
        .rows_affected();
    Ok(updated == 1)
}

/// How a send attempt ended, for [`record_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The SMTP server took it.
    Sent {
        /// When.
        at_ms: i64,
    },
    /// It failed; try again at `next_attempt_at_ms`.
    Retry {
        /// Why it failed.
        error: String,
        /// When to try again.
        next_attempt_at_ms: i64,
    },
    /// It failed for good.
    Failed {
        /// Why.
        error: String,
    },
}

/// Records attempt number `attempts` of notification `id`.
pub async fn record_attempt(
    database: &Database,
    id: &str,
    attempts: u32,
    outcome: &AttemptOutcome,
) -> Result<(), sqlx::Error> {
    const SENT: &str = "UPDATE notifications SET status = 'SENT', attempts = ?, sent_at_ms = ?, last_error = NULL \
        WHERE id = ? AND status = 'PENDING'";
    const RETRY: &str = "UPDATE notifications SET attempts = ?, last_error = ?, next_attempt_at_ms = ? \
        WHERE id = ? AND status = 'PENDING'";
    const FAILED: &str =
        "UPDATE notifications SET status = 'FAILED', attempts = ?, last_error = ? WHERE id = ? AND status = 'PENDING'";
    let attempts = i64::from(attempts);
    let pool = database.pool();
    match outcome {
        AttemptOutcome::Sent { at_ms } => {
            sqlx::query(SENT).bind(attempts).bind(*at_ms).bind(id).execute(pool).await?;
        }
        AttemptOutcome::Retry { error, next_attempt_at_ms } => {
            sqlx::query(RETRY)
                .bind(attempts)
                .bind(bounded(error, MAX_ERROR_CHARS))
                .bind(*next_attempt_at_ms)
                .bind(id)
                .execute(pool)
                .await?;
        }
        AttemptOutcome::Failed { error } => {
            sqlx::query(FAILED).bind(attempts).bind(bounded(error, MAX_ERROR_CHARS)).bind(id).execute(pool).await?;
        }
    }
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
    fn migrations_are_in_the_notification_range_and_texts_round_trip() {
        MIGRATIONS.check().unwrap();
        for (version, _, mysql, sqlite) in MIGRATIONS.list {
            assert!((6_000_001..7_000_000).contains(version));
            assert!(mysql.contains("UNIQUE KEY notifications_event (event_id)"));
            assert!(sqlite.contains("UNIQUE INDEX IF NOT EXISTS notifications_event"));
        }
        for status in [
            NotificationStatus::Pending,
            NotificationStatus::Sent,
            NotificationStatus::Failed,
            NotificationStatus::Stored,
        ] {
            assert_eq!(status_of(status_text(status)), status);
        }
        for channel in [NotificationChannel::Email, NotificationChannel::Stored] {
            assert_eq!(channel_of(channel_text(channel)), channel);
        }
    }
}
