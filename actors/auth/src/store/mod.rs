//! The auth service's SQL store: users, refresh tokens, failed sign-ins and published signing
//! keys, on MariaDB/MySQL or SQLite.
//!
//! [`AuthStore`] is one repository with one implementation per dialect: every statement is
//! written once (both dialects take `?` parameters and the schema keeps to portable types),
//! and [`on_pool!`]/[`on_tx!`] expand it once for each concrete sqlx driver, so the same code
//! is type-checked against both. Times are `BIGINT` milliseconds since the epoch, which order
//! and compare the same way in both dialects. Statements that change state run inside a
//! [`DbTx`] of the bus, so that the events of a change go to the outbox in the same
//! transaction.
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
use emporium_bus::SqlMigration;
use emporium_bus::database::Database;

pub use login_failures::FailureScope;
pub use refresh_tokens::RefreshRecord;
pub use users::UserRecord;

/// Runs `$body` with `$pool` bound to the concrete pool of `$database`'s dialect.
macro_rules! on_pool {
    ($database:expr, |$pool:ident| $body:expr) => {
        match $database.pool() {
            emporium_bus::database::Pool::MySql($pool) => $body,
            emporium_bus::database::Pool::Sqlite($pool) => $body,
        }
    };
}

/// Runs `$body` with `$connection` bound to the concrete connection of transaction `$tx`.
macro_rules! on_tx {
    ($tx:expr, |$connection:ident| $body:expr) => {
        match $tx.connection() {
            emporium_bus::database::DbConnection::MySql($connection) => $body,
            emporium_bus::database::DbConnection::Sqlite($connection) => $body,
        }
    };
}

pub(crate) use {on_pool, on_tx};

/// The auth migrations, as `(version, description, MySQL, SQLite)`.
pub const AUTH_MIGRATIONS: [SqlMigration; 4] = [
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
];

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
            .migrate(&AUTH_MIGRATIONS)
            .await
            .map_err(|error| anyhow::anyhow!("auth migrations failed: {error}"))
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
