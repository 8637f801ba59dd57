//! What can go wrong in the database layer.

/// An error of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or a statement failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A crate's tables could not be created or updated.
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Another node held the migration lock for longer than the bound.
    #[error("the migration lock {lock:?} was not granted within {waited_secs} s: {reason}")]
    MigrationLock {
        /// The lock's name.
        lock: String,
        /// How long this node waited.
        waited_secs: u64,
        /// What the server answered.
        reason: String,
    },
    /// The URL is not one the layer knows (`mysql://`, `mariadb://`, `sqlite:`).
    #[error("unsupported database url {0:?}: expected mysql://, mariadb:// or sqlite:")]
    UnsupportedUrl(String),
    /// A file or directory of the embedded store could not be created.
    #[error("cannot create {path}: {reason}")]
    Filesystem {
        /// The path.
        path: String,
        /// The cause.
        reason: String,
    },
}

impl StoreError {
    /// Whether the failure is the database being unreachable or busy (a caller answers 503 and
    /// retries), rather than a statement or schema being wrong (a bug).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(error) => is_unavailable(error),
            StoreError::MigrationLock { .. } => true,
            _ => false,
        }
    }

    /// Whether the transaction was chosen as a deadlock victim (rolled back whole; running it
    /// again is safe).
    pub fn is_deadlock(&self) -> bool {
        matches!(self, StoreError::Database(error) if is_deadlock(error))
    }
}

/// Whether a sqlx error means "the database is unreachable, overloaded, busy or closing" (as
/// opposed to a constraint or a statement error): the caller answers 503 with `Retry-After`
/// and the client's retry (with its Idempotency-Key) is safe, since the transaction rolled
/// back. Busy covers a deadlock victim and a lock wait timeout (MariaDB 1213, 1205), too many
/// connections (1040, 1203) and SQLite's `BUSY`/`LOCKED` (5, 6 and their extended codes).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database_error) => is_busy(database_error.as_ref()),
        _ => false,
    }
}

/// Whether the server refused a statement because it is busy (see [`is_unavailable`]).
fn is_busy(error: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(mysql) = error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return is_mysql_busy(mysql.number());
    }
    error.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && error.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(is_sqlite_busy)
}

/// MariaDB/MySQL error numbers of a busy server.
fn is_mysql_busy(number: u16) -> bool {
    matches!(number, 1040 | 1203 | 1205 | 1213)
}

/// SQLite result codes of a busy database: `BUSY` (5) and `LOCKED` (6), whatever the extended
/// code in the upper bits.
fn is_sqlite_busy(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6)
}

/// Whether `error` is a deadlock victim (MariaDB 1213): the whole transaction was rolled back
/// and can be run again.
pub fn is_deadlock(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error)
        if database_error.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|mysql| mysql.number() == 1213))
}

/// Removes the password from a URL (`mysql://user:secret@host` -> `mysql://user:***@host`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!("{}://{}:***{}", &url[..scheme_end], &authority[..colon], &rest[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_codes_are_unavailable() {
        assert!(is_mysql_busy(1213) && is_mysql_busy(1205) && is_mysql_busy(1040));
        assert!(!is_mysql_busy(1062), "a duplicate key is the caller's answer, not a busy server");
        assert!(is_sqlite_busy(5) && is_sqlite_busy(517) && is_sqlite_busy(6) && is_sqlite_busy(262));
        assert!(!is_sqlite_busy(19), "a constraint is not busy");
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("mysql://root@127.0.0.1:3306/db"), "mysql://root@127.0.0.1:3306/db");
        assert_eq!(redact_url("sqlite:data/x.db"), "sqlite:data/x.db");
    }

    #[test]
    fn a_timed_out_pool_is_unavailable_and_a_bad_column_is_not() {
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::Database(sqlx::Error::ColumnNotFound("x".into())).is_unavailable());
    }
}
