//! The SQL database a service keeps its state, outbox and inbox in: MariaDB/MySQL in
//! production (`EMPORIUM_MYSQL_URL`), an embedded SQLite file otherwise.
//!
//! A service writes its state change and its events in one [`DbTx`]; committing a transaction
//! that enqueued events wakes the service's relay at once (see [`DbTx::commit`]).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, MySqlConnection, MySqlPool, SqliteConnection, SqlitePool};
use tokio::sync::Notify;

use crate::error::BusError;

/// The bus's migrations, as `(version, description, MySQL, SQLite)`. Versions of the bus live
/// in `1_000_001..=1_999_999` (see the crate documentation).
const BUS_MIGRATIONS: [(i64, &str, &str, &str); 3] = [
    (
        1_000_001,
        "bus outbox",
        include_str!("../migrations/mysql/1000001_bus_outbox.sql"),
        include_str!("../migrations/sqlite/1000001_bus_outbox.sql"),
    ),
    (
        1_000_002,
        "bus inbox",
        include_str!("../migrations/mysql/1000002_bus_inbox.sql"),
        include_str!("../migrations/sqlite/1000002_bus_inbox.sql"),
    ),
    (
        1_000_003,
        "bus dead letter",
        include_str!("../migrations/mysql/1000003_bus_dead_letter.sql"),
        include_str!("../migrations/sqlite/1000003_bus_dead_letter.sql"),
    ),
];

/// How long a SQLite statement waits for another writer before it fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which SQL dialect a [`Database`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MariaDB or MySQL.
    MySql,
    /// SQLite.
    Sqlite,
}

/// A pool of connections to the service's database. Cheap to clone; clones share the pool
/// and the relay wake-ups.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    outbox_signals: OutboxSignals,
}

/// The pool of one dialect.
#[derive(Clone)]
pub enum Pool {
    /// MariaDB or MySQL.
    MySql(MySqlPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// One wake-up per service whose relay reads this database.
#[derive(Clone, Default)]
pub(crate) struct OutboxSignals {
    by_service: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl OutboxSignals {
    pub(crate) fn for_service(&self, service: &str) -> Arc<Notify> {
        self.by_service.lock().entry(service.to_string()).or_default().clone()
    }
}

impl Database {
    /// Connects to `url`: `mysql://` or `mariadb://` (MariaDB/MySQL), or `sqlite:PATH`
    /// (created when missing; WAL journal, busy timeout). Fails when the server is unreachable.
    pub async fn connect(url: &str) -> Result<Database, BusError> {
        if let Some(rest) = url.strip_prefix("mariadb://") {
            return Self::connect_mysql(&format!("mysql://{rest}")).await;
        }
        if url.starts_with("mysql://") {
            return Self::connect_mysql(url).await;
        }
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?;
            return Self::connect_sqlite(options).await;
        }
        Err(BusError::UnsupportedDatabase(crate::error::redact_url(url)))
    }

    /// Opens (creating it when missing) the embedded SQLite database at `path`.
    pub async fn open_sqlite_file(path: &Path) -> Result<Database, BusError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                BusError::Unexpected(anyhow::anyhow!("cannot create {}: {error}", parent.display()))
            })?;
        }
        Self::connect_sqlite(SqliteConnectOptions::new().filename(path)).await
    }

    async fn connect_mysql(url: &str) -> Result<Database, BusError> {
        let options = MySqlConnectOptions::from_str(url)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Database { pool: Pool::MySql(pool), outbox_signals: OutboxSignals::default() })
    }

    async fn connect_sqlite(options: SqliteConnectOptions) -> Result<Database, BusError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Database { pool: Pool::Sqlite(pool), outbox_signals: OutboxSignals::default() })
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::MySql(_) => Dialect::MySql,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The pool, for statements outside a transaction.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates or updates the bus's tables (`bus_outbox`, `bus_inbox`, `bus_dead_letter`).
    /// Migrations of other crates in the same database are left alone.
    pub async fn migrate_bus(&self) -> Result<(), BusError> {
        let migrator = bus_migrator(self.dialect());
        match &self.pool {
            Pool::MySql(pool) => migrator.run(pool).await?,
            Pool::Sqlite(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Begins a transaction (SQLite: `BEGIN IMMEDIATE`, so two writers queue instead of
    /// failing on a lock upgrade).
    pub async fn begin(&self) -> Result<DbTx, BusError> {
        let inner = match &self.pool {
            Pool::MySql(pool) => TxInner::MySql(pool.begin().await?),
            Pool::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        };
        Ok(DbTx { inner, outbox_signals: self.outbox_signals.clone(), enqueued_services: Vec::new() })
    }

    /// Runs one statement without parameters outside a transaction (set-up and tests).
    pub async fn execute(&self, sql: &str) -> Result<u64, BusError> {
        let sql = AssertSqlSafe(sql.to_string());
        let rows = match &self.pool {
            Pool::MySql(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await?.rows_affected(),
        };
        Ok(rows)
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        match &self.pool {
            Pool::MySql(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    pub(crate) fn outbox_signal(&self, service: &str) -> Arc<Notify> {
        self.outbox_signals.for_service(service)
    }
}

/// The bus's migrator for `dialect`: embedded at compile time, ignoring migrations of other
/// crates that share the database.
fn bus_migrator(dialect: Dialect) -> Migrator {
    crate::schema::migrator(dialect, &BUS_MIGRATIONS)
}

/// A borrowed connection inside a transaction, by dialect, for a service's own statements.
pub enum DbConnection<'tx> {
    /// MariaDB or MySQL.
    MySql(&'tx mut MySqlConnection),
    /// SQLite.
    Sqlite(&'tx mut SqliteConnection),
}

enum TxInner {
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// An open transaction. A service runs its own statements through [`DbTx::connection`] (or
/// [`DbTx::mysql`] / [`DbTx::sqlite`]) and enqueues its events with
/// [`crate::outbox::enqueue`] in the same transaction. Dropping it without committing rolls
/// it back.
pub struct DbTx {
    inner: TxInner,
    outbox_signals: OutboxSignals,
    enqueued_services: Vec<String>,
}

impl DbTx {
    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::MySql(_) => Dialect::MySql,
            TxInner::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The connection, by dialect.
    pub fn connection(&mut self) -> DbConnection<'_> {
        match &mut self.inner {
            TxInner::MySql(tx) => DbConnection::MySql(tx),
            TxInner::Sqlite(tx) => DbConnection::Sqlite(tx),
        }
    }

    /// The MariaDB/MySQL connection, when that is the dialect.
    pub fn mysql(&mut self) -> Option<&mut MySqlConnection> {
        match &mut self.inner {
            TxInner::MySql(tx) => Some(tx),
            TxInner::Sqlite(_) => None,
        }
    }

    /// The SQLite connection, when that is the dialect.
    pub fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Some(tx),
            TxInner::MySql(_) => None,
        }
    }

    /// Runs one statement without parameters in the transaction.
    pub async fn execute(&mut self, sql: &str) -> Result<u64, BusError> {
        let sql = AssertSqlSafe(sql.to_string());
        let rows = match &mut self.inner {
            TxInner::MySql(tx) => sqlx::query(sql).execute(&mut **tx).await?.rows_affected(),
            TxInner::Sqlite(tx) => sqlx::query(sql).execute(&mut **tx).await?.rows_affected(),
        };
        Ok(rows)
    }

    /// Commits; then, when events were enqueued, wakes the relays of their services.
    pub async fn commit(self) -> Result<(), BusError> {
        match self.inner {
            TxInner::MySql(tx) => tx.commit().await?,
            TxInner::Sqlite(tx) => tx.commit().await?,
        }
        for service in &self.enqueued_services {
            self.outbox_signals.for_service(service).notify_one();
        }
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), BusError> {
        match self.inner {
            TxInner::MySql(tx) => tx.rollback().await?,
            TxInner::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    pub(crate) fn record_enqueued(&mut self, service: &str) {
        if !self.enqueued_services.iter().any(|known| known == service) {
            self.enqueued_services.push(service.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_migrations_are_in_the_reserved_range_and_ordered() {
        let mut previous = 1_000_000;
        for (version, _, mysql, sqlite) in BUS_MIGRATIONS {
            assert!(version > previous && version < 2_000_000, "{version}");
            assert!(mysql.contains("CREATE TABLE") && sqlite.contains("CREATE TABLE"));
            previous = version;
        }
        assert!(bus_migrator(Dialect::Sqlite).ignore_missing);
    }

    #[tokio::test]
    async fn sqlite_migrates_twice_and_commits_wake_the_relay() {
        let path = std::env::temp_dir().join(format!("bus-unit-{}.db", uuid::Uuid::new_v4()));
        let database = Database::open_sqlite_file(&path).await.unwrap();
        database.migrate_bus().await.unwrap();
        database.migrate_bus().await.unwrap();
        let signal = database.outbox_signal("order");
        let mut tx = database.begin().await.unwrap();
        tx.execute("INSERT INTO bus_inbox (consumer, event_id, processed_at) VALUES ('c', 'e', 'now')").await.unwrap();
        tx.record_enqueued("order");
        tx.commit().await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), signal.notified()).await.expect("the commit notified the relay");
        database.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
