//! A pool of connections to one service's database, and transactions on it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::spans::{SpanKind, SpanTimer};
use parking_lot::Mutex;
use sqlx::AnyConnection;
use sqlx::Connection as _;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe, Executor};
use tokio::sync::Notify;

use crate::error::{StoreError, redact_url};

/// How long a SQLite statement waits for another writer before it fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections a MariaDB/MySQL pool opens at most.
const MYSQL_MAX_CONNECTIONS: u32 = 16;

/// How long a caller waits for a connection of a MariaDB/MySQL pool (a free one, checked with
/// a ping, or a new one) before the pool answers "unavailable" (503 with `Retry-After`): a
/// database that stopped answering costs a request at most this, well under a second.
const MYSQL_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(750);

/// How long the first connection to a MariaDB/MySQL server may take when a node starts (many
/// nodes may be starting on one machine and server at once).
const MYSQL_START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a connection of the embedded SQLite pool. Its connections are
/// local and cannot hang on a network, so the wait is only other writers' turns.
const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which SQL dialect a [`Database`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MariaDB or MySQL.
    MySql,
    /// SQLite.
    Sqlite,
}

/// A pool of connections to a service's database. Cheap to clone; clones share the pool and
/// the commit signals.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
    commit_signals: CommitSignals,
}

/// Named wake-ups raised when a transaction that asked for them commits.
#[derive(Clone, Default)]
struct CommitSignals {
    by_name: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl CommitSignals {
    fn get(&self, name: &str) -> Arc<Notify> {
        self.by_name.lock().entry(name.to_string()).or_default().clone()
    }
}

impl Database {
    /// Connects to `url`: `mysql://` or `mariadb://` (MariaDB/MySQL), or `sqlite:PATH`
    /// (created when missing; WAL journal, busy timeout). Fails when the server is unreachable.
    pub async fn connect(url: &str) -> Result<Database, StoreError> {
        if let Some(rest) = url.strip_prefix("mariadb://") {
            return Self::connect_mysql(&format!("mysql://{rest}")).await;
        }
        if url.starts_with("mysql://") {
            return Self::connect_mysql(url).await;
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            return Self::open_sqlite_file(Path::new(path)).await;
        }
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }

    /// The database of `service` on a node: MariaDB/MySQL at `mysql_url` when it is given
    /// (every service in the same database, each in its own tables), otherwise the embedded
    /// SQLite file `<service>.db` under `data_dir`. A URL that is given but unreachable is an
    /// error, never a silent fallback to the embedded store.
    pub async fn open_for_service(service: &str, mysql_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Database> {
        use anyhow::Context as _;
        match mysql_url {
            Some(url) => Database::connect(url)
                .await
                .with_context(|| format!("{service}: EMPORIUM_MYSQL_URL is set but the database cannot be reached")),
            None => {
                let path = data_dir.join(format!("{service}.db"));
                Database::open_sqlite_file(&path)
                    .await
                    .with_context(|| format!("{service}: cannot open the embedded store {}", path.display()))
            }
        }
    }

    /// Opens (creating it when missing) the embedded SQLite database at `path`.
    pub async fn open_sqlite_file(path: &Path) -> Result<Database, StoreError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| StoreError::Filesystem {
                path: parent.display().to_string(),
                reason: error.to_string(),
            })?;
        }
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", percent_encode_path(&path.to_string_lossy()));
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(SQLITE_ACQUIRE_TIMEOUT)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA journal_mode = WAL".to_string(),
                        "PRAGMA synchronous = NORMAL".to_string(),
                        format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()),
                        "PRAGMA foreign_keys = ON".to_string(),
                    ] {
                        connection.execute(AssertSqlSafe(pragma)).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Database { pool, dialect: Dialect::Sqlite, commit_signals: CommitSignals::default() })
    }

    /// Checks that the server answers (with the patience of a start), then opens the pool,
    /// whose waits are short ([`MYSQL_ACQUIRE_TIMEOUT`]).
    async fn connect_mysql(url: &str) -> Result<Database, StoreError> {
        sqlx::any::install_default_drivers();
        let first = tokio::time::timeout(MYSQL_START_TIMEOUT, AnyConnection::connect(url))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        first.close().await?;
        let pool = AnyPoolOptions::new()
            .max_connections(MYSQL_MAX_CONNECTIONS)
            .acquire_timeout(MYSQL_ACQUIRE_TIMEOUT)
            .connect_lazy(url)?;
        Ok(Database { pool, dialect: Dialect::MySql, commit_signals: CommitSignals::default() })
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The pool, for statements outside a transaction: `sqlx::query(..).execute(database.pool())`.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction (SQLite: `BEGIN IMMEDIATE`, so two writers queue instead of
    /// failing on a lock upgrade).
    pub async fn begin(&self) -> Result<DbTx, StoreError> {
        let transaction = match self.dialect {
            Dialect::MySql => self.pool.begin().await?,
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        };
        Ok(DbTx {
            transaction,
            dialect: self.dialect,
            commit_signals: self.commit_signals.clone(),
            signals_on_commit: Vec::new(),
            span: TransactionSpan::start(self.dialect),
        })
    }

    /// Runs one statement without parameters outside a transaction (set-up and tests).
    pub async fn execute(&self, sql: &str) -> Result<u64, StoreError> {
        let result = sqlx::query(AssertSqlSafe(sql.to_string())).execute(&self.pool).await?;
        Ok(result.rows_affected())
    }

    /// Whether the database answers a trivial query (readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The wake-up raised after each commit of a transaction that named `name` in
    /// [`DbTx::signal_on_commit`].
    pub fn commit_signal(&self, name: &str) -> Arc<Notify> {
        self.commit_signals.get(name)
    }
}

/// An open transaction. A store function runs its statements on [`DbTx::connection`]; dropping
/// the transaction without committing rolls it back.
pub struct DbTx {
    transaction: sqlx::Transaction<'static, sqlx::Any>,
    dialect: Dialect,
    commit_signals: CommitSignals,
    signals_on_commit: Vec<String>,
    span: TransactionSpan,
}

/// The CLIENT span of a transaction begun while a traced message is handled (OpenTelemetry's
/// database conventions: `db.system.name`, `db.operation.name`), ended by the commit, or by the
/// rollback when the transaction is dropped or rolled back.
struct TransactionSpan(Option<SpanTimer>);

impl TransactionSpan {
    fn start(dialect: Dialect) -> TransactionSpan {
        let span = emporium_runtime::spans::current().and_then(|handling| {
            let mut span = SpanTimer::start("TRANSACTION", SpanKind::Client, handling.child(), Some(handling.span_id))?;
            let system = match dialect {
                Dialect::MySql => "mysql",
                Dialect::Sqlite => "sqlite",
            };
            span.attribute("db.system.name", system).attribute("db.operation.name", "TRANSACTION");
            Some(span)
        });
        TransactionSpan(span)
    }

    fn finish(&mut self, outcome: &'static str, error: Option<String>) {
        if let Some(mut span) = self.0.take() {
            span.attribute("emporium.db.transaction.outcome", outcome);
            span.finish(error);
        }
    }
}

impl Drop for TransactionSpan {
    fn drop(&mut self) {
        self.finish("rollback", None);
    }
}

impl DbTx {
    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The transaction's connection: `sqlx::query(..).execute(tx.connection())`.
    pub fn connection(&mut self) -> &mut AnyConnection {
        &mut self.transaction
    }

    /// Runs one statement without parameters in the transaction.
    pub async fn execute(&mut self, sql: &str) -> Result<u64, StoreError> {
        let result = sqlx::query(AssertSqlSafe(sql.to_string())).execute(&mut *self.transaction).await?;
        Ok(result.rows_affected())
    }

    /// Raises the commit signal `name` once this transaction commits (not when it rolls back).
    pub fn signal_on_commit(&mut self, name: &str) {
        if !self.signals_on_commit.iter().any(|known| known == name) {
            self.signals_on_commit.push(name.to_string());
        }
    }

    /// Commits; then raises the signals the transaction named.
    pub async fn commit(self) -> Result<(), StoreError> {
        let DbTx { transaction, commit_signals, signals_on_commit, mut span, .. } = self;
        if let Err(error) = transaction.commit().await {
            span.finish("commit_failed", Some(error.to_string()));
            return Err(error.into());
        }
        span.finish("commit", None);
        for name in &signals_on_commit {
            commit_signals.get(name).notify_one();
        }
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.transaction.rollback().await?;
        Ok(())
    }
}

/// Escapes the characters of a file path that mean something in a URL (`%`, `?`, `#`, space).
fn percent_encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for character in path.chars() {
        match character {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            ' ' => encoded.push_str("%20"),
            other => encoded.push(other),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("store-unit-{}", uuid::Uuid::new_v4())).join(name)
    }

    #[tokio::test]
    async fn a_sqlite_file_with_odd_characters_opens_and_commits_raise_their_signal() {
        let path = temp_path("odd ?#% name.db");
        let database = Database::open_sqlite_file(&path).await.unwrap();
        assert_eq!(database.dialect(), Dialect::Sqlite);
        database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await.unwrap();
        let signal = database.commit_signal("relay");
        let mut tx = database.begin().await.unwrap();
        sqlx::query("INSERT INTO t (id, name) VALUES (?, ?)")
            .bind(7_i64)
            .bind("seven")
            .execute(tx.connection())
            .await
            .unwrap();
        tx.signal_on_commit("relay");
        tx.commit().await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), signal.notified()).await.expect("the commit raised the signal");
        let row = sqlx::query("SELECT id, name FROM t").fetch_one(database.pool()).await.unwrap();
        assert_eq!(row.try_get::<i64, _>("id").unwrap(), 7);
        assert_eq!(row.try_get::<String, _>("name").unwrap(), "seven");
        assert!(path.exists(), "{}", path.display());
        database.close().await;
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn a_rolled_back_transaction_leaves_nothing_and_raises_nothing() {
        let path = temp_path("rollback.db");
        let database = Database::connect(&format!("sqlite:{}", path.display())).await.unwrap();
        database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").await.unwrap();
        let signal = database.commit_signal("relay");
        let mut tx = database.begin().await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES (1)").await.unwrap();
        tx.signal_on_commit("relay");
        tx.rollback().await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), signal.notified()).await.is_err());
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(database.pool()).await.unwrap();
        assert_eq!(count, 0);
        database.close().await;
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_without_its_password() {
        let error = Database::connect("postgres://user:secret@host/db").await.err().unwrap();
        assert!(matches!(error, StoreError::UnsupportedUrl(_)));
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
