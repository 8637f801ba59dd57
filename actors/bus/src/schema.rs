//! Migrations of the crates that share a service's database: each crate embeds its SQL for
//! both dialects at compile time and runs it with [`Database::migrate`], in its own version
//! range, leaving the other crates' migrations alone.

use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::database::{Database, Dialect, Pool};
use crate::error::BusError;

/// One migration: `(version, description, MySQL SQL, SQLite SQL)`.
pub type SqlMigration = (i64, &'static str, &'static str, &'static str);

/// A migrator for `dialect` over `migrations`, ignoring versions it does not know.
pub fn migrator(dialect: Dialect, migrations: &[SqlMigration]) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|(version, description, mysql, sqlite)| {
            let sql = match dialect {
                Dialect::MySql => *mysql,
                Dialect::Sqlite => *sqlite,
            };
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(sql),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.set_ignore_missing(true);
    migrator
}

impl Database {
    /// Applies `migrations` (a crate's own, in its version range) to this database.
    pub async fn migrate(&self, migrations: &[SqlMigration]) -> Result<(), BusError> {
        let migrator = migrator(self.dialect(), migrations);
        match self.pool() {
            Pool::MySql(pool) => migrator.run(pool).await?,
            Pool::Sqlite(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }
}

impl Database {
    /// Whether the database answers a trivial query (readiness checks).
    pub async fn ping(&self) -> Result<(), BusError> {
        match self.pool() {
            Pool::MySql(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ())?,
            Pool::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ())?,
        }
        Ok(())
    }
}

/// Runs `$body` with `$connection` bound to the transaction's connection, whatever its
/// dialect: the same SQL text (both dialects take `?` placeholders) runs on either.
///
/// ```text
/// emporium_bus::on_connection!(tx, |connection| {
///     sqlx::query("UPDATE t SET n = n + 1 WHERE id = ?").bind(id).execute(&mut *connection).await
/// })
/// ```
#[macro_export]
macro_rules! on_connection {
    ($tx:expr, |$connection:ident| $body:expr) => {
        match $tx.connection() {
            $crate::database::DbConnection::MySql($connection) => $body,
            $crate::database::DbConnection::Sqlite($connection) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the database's pool, whatever its dialect.
#[macro_export]
macro_rules! on_pool {
    ($database:expr, |$pool:ident| $body:expr) => {
        match $database.pool() {
            $crate::database::Pool::MySql($pool) => $body,
            $crate::database::Pool::Sqlite($pool) => $body,
        }
    };
}
