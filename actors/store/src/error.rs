//! What can go wrong in the database layer.

/// An error of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or a statement failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A crate's tables could not be created or updated.
    #[error("database migration failed: {0}")]
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
}

/// Whether a sqlx error means "the database is unreachable, overloaded or closing" (as opposed
/// to a constraint or a statement error).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    )
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
