//! Fresh databases for tests (feature `testing`, a dev-dependency only): a new database per
//! test on the machine's MariaDB (`EMPORIUM_TEST_MYSQL_URL`, which `ops/test.sh` sets) or a new
//! SQLite file. A MariaDB that cannot be reached fails the test with the reason; nothing skips.
#![allow(missing_docs)]

use std::path::PathBuf;

use crate::Database;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A fresh database on the machine's MariaDB.
    MariaDb,
    /// A fresh SQLite file.
    Sqlite,
}

impl StoreKind {
    /// Both kinds, for tests that run the same body on each.
    pub const BOTH: [StoreKind; 2] = [StoreKind::MariaDb, StoreKind::Sqlite];
}

/// The server URL tests create their databases on (no database name).
pub fn mysql_url() -> String {
    std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

/// A fresh database, removed by [`TestDatabase::drop_now`].
pub struct TestDatabase {
    pub database: Database,
    pub kind: StoreKind,
    mysql_name: Option<String>,
    sqlite_path: Option<PathBuf>,
}

impl TestDatabase {
    /// Creates a database named after `prefix` and a unique suffix.
    pub async fn create(kind: StoreKind, prefix: &str) -> TestDatabase {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match kind {
            StoreKind::MariaDb => {
                let name = format!("{prefix}_test_{}", &unique[..16]);
                let admin = admin().await;
                admin.execute(&format!("CREATE DATABASE {name}")).await.expect("create the test database");
                admin.close().await;
                let database = Database::connect(&format!("{}/{name}", mysql_url())).await.expect("connect to it");
                TestDatabase { database, kind, mysql_name: Some(name), sqlite_path: None }
            }
            StoreKind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{prefix}-test-{unique}.db"));
                let database = Database::open_sqlite_file(&path).await.expect("open the test SQLite file");
                TestDatabase { database, kind, mysql_name: None, sqlite_path: Some(path) }
            }
        }
    }

    /// The URL of this database (`EMPORIUM_MYSQL_URL` for a node started on it).
    pub fn url(&self) -> String {
        match (&self.mysql_name, &self.sqlite_path) {
            (Some(name), _) => format!("{}/{name}", mysql_url()),
            (_, Some(path)) => format!("sqlite:{}", path.display()),
            _ => unreachable!("a test database is MariaDB or SQLite"),
        }
    }

    /// Another pool on the same database (as a second instance of a service would have).
    pub async fn reopen(&self) -> Database {
        Database::connect(&self.url()).await.expect("reopen the test database")
    }

    /// Closes the pool and removes the database.
    pub async fn drop_now(self) {
        self.database.close().await;
        if let Some(name) = self.mysql_name {
            let admin = admin().await;
            admin.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.expect("drop the test database");
            admin.close().await;
        }
        if let Some(path) = self.sqlite_path {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

async fn admin() -> Database {
    Database::connect(&format!("{}/mysql", mysql_url())).await.unwrap_or_else(|error| {
        panic!("MariaDB is needed at {} (EMPORIUM_TEST_MYSQL_URL; ops/test.sh starts it): {error}", mysql_url())
    })
}
