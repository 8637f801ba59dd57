//! The auth service's SQL store: users, refresh tokens, failed sign-ins and published signing
//! keys, on MariaDB/MySQL or SQLite.
//!
//! [`AuthStore`] is one repository over one [`Database`] of `emporium-store`, whose pool speaks
//! either dialect: every statement is written once (both dialects take `?` parameters and the
//! schema keeps to portable types) and runs on [`Database::pool`] or, for a change, on the
//! connection of a [`DbTx`](emporium_store::DbTx), so that the events of a change go to the
//! bus's outbox in the same transaction. Times are `BIGINT` milliseconds since the epoch, which
//! order and compare the same way in both dialects.
//!
//! Migrations live in `migrations/{mysql,sqlite}`, embedded at compile time, versions
//! `2_000_001..=2_999_999` (the auth range; other crates' migrations in the same database are
//! left alone).

mod login_failures;
mod refresh_tokens;
mod signing_keys;
mod users;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use emporium_store::{Database, Migrations};

pub use login_failures::FailureScope;
pub use refresh_tokens::RefreshRecord;
pub use users::UserRecord;

/// The auth migrations, as `(version, description, MySQL, SQLite)`.
pub const MIGRATIONS: Migrations = Migrations {
    owner: "auth",
    list: &[
        (
            2_000_001,
            "auth users",
            include_str!("../../migrations/mysql/2000001_auth_users.sql"),
            include_str!("../../migrations/sqlite/2000001_auth_users.sql"),
        ),
        (
            2_000_002,
            "auth refresh tokens",
            include_str!("../../migrations/mysql/2000002_auth_refresh_tokens.sql"),
            include_str!("../../migrations/sqlite/2000002_auth_refresh_tokens.sql"),
        ),
        (
            2_000_003,
            "auth login failures",
            include_str!("../../migrations/mysql/2000003_auth_login_failures.sql"),
            include_str!("../../migrations/sqlite/2000003_auth_login_failures.sql"),
        ),
        (
            2_000_004,
            "auth signing keys",
            include_str!("../../migrations/mysql/2000004_auth_signing_keys.sql"),
            include_str!("../../migrations/sqlite/2000004_auth_signing_keys.sql"),
        ),
    ],
};

/// The auth repository over the service's database. Cheap to clone.
#[derive(Clone)]
pub struct AuthStore {
    database: Database,
}

impl AuthStore {
    /// A store over `database` (run [`AuthStore::migrate`] once before use).
    pub fn new(database: Database) -> AuthStore {
        AuthStore { database }
    }

    /// The database, for transactions.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Creates or updates the auth tables (and leaves other crates' migrations alone).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.database
            .migrate(&MIGRATIONS)
            .await
            .map_err(|error| anyhow::Error::new(error).context("auth migrations failed"))
    }
}

/// `time` as stored: milliseconds since the epoch.
pub fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A stored time back as a `DateTime`.
pub fn from_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}
