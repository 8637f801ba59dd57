//! The `auth_login_failures` table: one row per refused sign-in, counted per account key, per
//! client address, and per account and client together.

use chrono::{DateTime, Utc};
use emporium_store::{DbTx, Row};

use super::{AuthStore, from_millis, millis};
use crate::error::AuthError;

/// What failures are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureScope<'a> {
    /// One account (`user:<id>` or `login:<hash>`).
    Account(&'a str),
    /// One client address.
    Address(&'a str),
}

impl AuthStore {
    /// Records a refused sign-in of `account_key` from `address` at `at`.
    #[tracing::instrument(skip_all)]
    pub async fn record_login_failure(
        &self,
        tx: &mut DbTx,
        account_key: &str,
        address: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        const INSERT: &str =
            "INSERT INTO auth_login_failures (account_key, client_address, failed_at) VALUES (?, ?, ?)";
        sqlx::query(INSERT).bind(account_key).bind(address).bind(millis(at)).execute(tx.connection()).await?;
        Ok(())
    }

    /// The time of the `nth` most recent failure (1 = the latest) in `scope` after `since`,
    /// when there were at least `nth`.
    #[tracing::instrument(skip(self))]
    pub async fn nth_latest_login_failure(
        &self,
        scope: FailureScope<'_>,
        since: DateTime<Utc>,
        nth: u32,
    ) -> Result<Option<DateTime<Utc>>, AuthError> {
        let (sql, key) = match scope {
            FailureScope::Account(key) => (
                "SELECT failed_at FROM auth_login_failures WHERE account_key = ? AND failed_at > ? \
                 ORDER BY failed_at DESC LIMIT 1 OFFSET ?",
                key,
            ),
            FailureScope::Address(address) => (
                "SELECT failed_at FROM auth_login_failures WHERE client_address = ? AND failed_at > ? \
                 ORDER BY failed_at DESC LIMIT 1 OFFSET ?",
                address,
            ),
        };
        let offset = i64::from(nth.max(1) - 1);
        let row =
            sqlx::query(sql).bind(key).bind(millis(since)).bind(offset).fetch_optional(self.database.pool()).await?;
        let found: Option<i64> = row.map(|row| row.try_get("failed_at")).transpose()?;
        Ok(found.map(from_millis))
    }

    /// How many failures of `account_key` from `address` (`None`: an unknown client) came after
    /// `since`, and when the latest was.
    #[tracing::instrument(skip(self))]
    pub async fn client_login_failures(
        &self,
        account_key: &str,
        address: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<(u32, Option<DateTime<Utc>>), AuthError> {
        let sql = if address.is_some() {
            "SELECT COUNT(*) AS num_failures, MAX(failed_at) AS latest FROM auth_login_failures \
             WHERE account_key = ? AND failed_at > ? AND client_address = ?"
        } else {
            "SELECT COUNT(*) AS num_failures, MAX(failed_at) AS latest FROM auth_login_failures \
             WHERE account_key = ? AND failed_at > ? AND client_address IS NULL"
        };
        let mut query = sqlx::query(sql).bind(account_key).bind(millis(since));
        if let Some(address) = address {
            query = query.bind(address);
        }
        let row = query.fetch_one(self.database.pool()).await?;
        let num_failures: i64 = row.try_get("num_failures")?;
        let latest: Option<i64> = row.try_get("latest")?;
        Ok((u32::try_from(num_failures).unwrap_or(u32::MAX), latest.map(from_millis)))
    }

    /// Forgets the failures of `account_key` (after a successful sign-in).
    pub async fn clear_login_failures(&self, tx: &mut DbTx, account_key: &str) -> Result<(), AuthError> {
        const DELETE: &str = "DELETE FROM auth_login_failures WHERE account_key = ?";
        sqlx::query(DELETE).bind(account_key).execute(tx.connection()).await?;
        Ok(())
    }

    /// Deletes failures older than `before` (housekeeping; no limit looks that far back).
    pub async fn purge_login_failures(&self, tx: &mut DbTx, before: DateTime<Utc>) -> Result<u64, AuthError> {
        const DELETE: &str = "DELETE FROM auth_login_failures WHERE failed_at < ?";
        let deleted = sqlx::query(DELETE).bind(millis(before)).execute(tx.connection()).await?;
        Ok(deleted.rows_affected())
    }
}
