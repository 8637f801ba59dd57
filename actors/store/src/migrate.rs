//! Migrations of the crates that share a service's database.
//!
//! Each crate embeds its SQL for both dialects at compile time ([`Migrations`]) in its own
//! version range and applies it with [`Database::migrate`], leaving the other crates' versions
//! in the shared `_sqlx_migrations` table alone.
//!
//! On MariaDB/MySQL the whole run holds a server-wide named lock, `GET_LOCK` with a positive
//! timeout on the connection that migrates: nodes started at the same moment on a fresh
//! database take turns, and the later ones find the tables made. (sqlx's own lock asks for
//! `GET_LOCK(name, -1)`, which MariaDB answers with NULL and warning 1411 instead of waiting,
//! so it is turned off here.) A lock not granted within [`MIGRATION_LOCK_WAIT`] fails the start
//! with the reason.

use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::database::{Database, Dialect};
use crate::error::StoreError;

/// The longest a node waits for another node's migrations before it gives up.
pub const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(60);

/// One migration: `(version, description, MySQL SQL, SQLite SQL)`.
pub type SqlMigration = (i64, &'static str, &'static str, &'static str);

/// A crate's migrations: its name (for logs) and its versions, in order, all within the
/// crate's own million (the bus `1_000_001..=1_999_999`, auth `2_000_001..`, and so on).
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// The crate that owns them.
    pub owner: &'static str,
    /// The migrations, in version order.
    pub list: &'static [SqlMigration],
}

impl Migrations {
    /// The migrator for `dialect`: embedded SQL, ignoring versions it does not know, without
    /// sqlx's own lock (see the module documentation).
    fn migrator(&self, dialect: Dialect) -> Migrator {
        let migrations = self
            .list
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
        migrator.set_locking(false);
        migrator
    }

    /// Checks that the versions are ordered and inside one million (a unit test of each crate
    /// calls this on its own list).
    pub fn check(&self) -> Result<(), String> {
        let Some(first) = self.list.first() else { return Ok(()) };
        let million = first.0 / 1_000_000;
        let mut previous = million * 1_000_000;
        for (version, description, mysql, sqlite) in self.list {
            if *version <= previous || version / 1_000_000 != million {
                return Err(format!("{}: migration {version} ({description}) is out of order or range", self.owner));
            }
            if mysql.trim().is_empty() || sqlite.trim().is_empty() {
                return Err(format!("{}: migration {version} lacks the SQL of a dialect", self.owner));
            }
            previous = *version;
        }
        Ok(())
    }
}

impl Database {
    /// Applies `migrations` to this database, under the migration lock on MariaDB/MySQL.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), StoreError> {
        let migrator = migrations.migrator(self.dialect());
        match self.dialect() {
            Dialect::Sqlite => migrator.run(self.pool()).await?,
            Dialect::MySql => {
                // The lock lives on its own connection; the migrator takes others from the pool.
                let mut lock_connection = self.pool().acquire().await?;
                take_migration_lock(&mut lock_connection, MIGRATION_LOCK_WAIT).await?;
                let outcome = migrator.run(self.pool()).await;
                let released =
                    sqlx::query("SELECT RELEASE_LOCK(CONCAT('emporium_migrations:', SHA1(COALESCE(DATABASE(), ''))))")
                        .execute(&mut *lock_connection)
                        .await;
                if released.is_err() {
                    // A connection that may still hold the lock must not go back to the pool.
                    lock_connection.detach();
                }
                outcome?;
                tracing::debug!(owner = migrations.owner, "migrations applied");
            }
        }
        Ok(())
    }
}

/// Takes this database's migration lock on `connection`, waiting at most `wait`.
async fn take_migration_lock(connection: &mut AnyConnection, wait: Duration) -> Result<(), StoreError> {
    let granted: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('emporium_migrations:', SHA1(COALESCE(DATABASE(), ''))), ?)")
            .bind(wait.as_secs().max(1) as i64)
            .fetch_one(&mut *connection)
            .await?;
    match granted {
        Some(1) => Ok(()),
        Some(_) => Err(StoreError::MigrationLock {
            lock: "emporium_migrations:<database>".to_string(),
            waited_secs: wait.as_secs(),
            reason: "another node is still migrating this database".to_string(),
        }),
        None => Err(StoreError::MigrationLock {
            lock: "emporium_migrations:<database>".to_string(),
            waited_secs: wait.as_secs(),
            reason: "the server refused the lock (GET_LOCK returned NULL)".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: Migrations = Migrations {
        owner: "test",
        list: &[
            (7_000_001, "one", "CREATE TABLE a (id BIGINT)", "CREATE TABLE a (id INTEGER)"),
            (7_000_002, "two", "CREATE TABLE b (id BIGINT)", "CREATE TABLE b (id INTEGER)"),
        ],
    };

    #[test]
    fn ordered_versions_in_one_million_pass_the_check() {
        GOOD.check().unwrap();
        let out_of_range =
            Migrations { owner: "test", list: &[(7_000_001, "one", "x", "x"), (8_000_001, "two", "x", "x")] };
        assert!(out_of_range.check().unwrap_err().contains("8000001"));
        let unordered =
            Migrations { owner: "test", list: &[(7_000_002, "one", "x", "x"), (7_000_001, "two", "x", "x")] };
        assert!(unordered.check().is_err());
    }

    #[tokio::test]
    async fn sqlite_migrates_twice_and_ignores_other_crates_versions() {
        let path = std::env::temp_dir().join(format!("store-migrate-{}.db", uuid::Uuid::new_v4()));
        let database = Database::open_sqlite_file(&path).await.unwrap();
        database.migrate(&GOOD).await.unwrap();
        database.migrate(&GOOD).await.unwrap();
        let other = Migrations {
            owner: "other",
            list: &[(8_000_001, "c", "CREATE TABLE c (id BIGINT)", "CREATE TABLE c (id INTEGER)")],
        };
        database.migrate(&other).await.unwrap();
        database.migrate(&GOOD).await.unwrap();
        database.execute("INSERT INTO c (id) VALUES (1)").await.unwrap();
        database.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
