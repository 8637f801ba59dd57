//! The bus's errors and their mapping to an HTTP status and a stable code.

use emporium_contracts::ServiceError;
use emporium_contracts::events::EnvelopeError;

/// What can go wrong in the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// RabbitMQ could not be reached or refused the connection.
    #[error("rabbitmq unreachable at {url}: {reason}")]
    BrokerUnreachable {
        /// The broker URL, password removed.
        url: String,
        /// The cause.
        reason: String,
    },
    /// A broker operation failed (connection lost, channel closed, publish refused).
    #[error("rabbitmq operation failed: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker did not answer in time.
    #[error("rabbitmq did not answer in time: {0}")]
    BrokerTimeout(String),
    /// The broker refused (nacked) a publish.
    #[error("rabbitmq refused to take a message: {0}")]
    PublishRefused(String),
    /// The database could not be reached or a statement failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The bus's tables could not be created or updated.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database URL is not one the bus knows (`mysql://`, `mariadb://`, `sqlite:`).
    #[error("unsupported database url {0:?}: expected mysql://, mariadb:// or sqlite:")]
    UnsupportedDatabase(String),
    /// An event could not be written or read.
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
    /// The configuration is not usable.
    #[error("invalid bus configuration: {0}")]
    InvalidConfig(String),
    /// A bus actor answered with an error or is down.
    #[error("bus actor failed: {0}")]
    Actor(#[from] ServiceError),
    /// The bus was stopped.
    #[error("the bus is shutting down")]
    ShuttingDown,
    /// Anything else, with its cause chain for the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl BusError {
    /// The HTTP status and stable code of this error, for readiness answers and callers that
    /// surface it: 503 for an unavailable dependency, 500 for everything else.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            BusError::BrokerUnreachable { .. } => (503, "broker_unavailable"),
            BusError::Broker(_) | BusError::PublishRefused(_) | BusError::BrokerTimeout(_) => {
                (503, "broker_unavailable")
            }
            BusError::Database(_) => (503, "database_unavailable"),
            BusError::ShuttingDown => (503, "shutting_down"),
            BusError::Actor(error) if error.is_transient() => (503, "bus_unavailable"),
            BusError::Migration(_) => (500, "migration_failed"),
            BusError::UnsupportedDatabase(_) | BusError::InvalidConfig(_) => (500, "invalid_configuration"),
            BusError::Envelope(_) => (500, "invalid_event"),
            BusError::Actor(_) | BusError::Unexpected(_) => (500, "internal_error"),
        }
    }

    /// The error as a reply of a bus actor: transient failures are `unavailable`, the rest
    /// internal.
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            BusError::Actor(error) => error.clone(),
            other => {
                let (status, code) = other.status_and_code();
                if status == 503 {
                    ServiceError::unavailable(code, other.to_string())
                } else {
                    ServiceError::internal(other.to_string())
                }
            }
        }
    }
}

/// Removes the password from a URL (`amqp://user:secret@host` -> `amqp://user:***@host`).
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
    fn unreachable_broker_is_503_with_a_stable_code() {
        let error = BusError::BrokerUnreachable { url: "amqp://h".into(), reason: "refused".into() };
        assert_eq!(error.status_and_code(), (503, "broker_unavailable"));
        assert_eq!(error.to_string(), "rabbitmq unreachable at amqp://h: refused");
        assert_eq!(error.to_service_error().http_status(), 503);
        assert_eq!(BusError::InvalidConfig("x".into()).status_and_code().0, 500);
    }

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("mysql://root@127.0.0.1:3306/db"), "mysql://root@127.0.0.1:3306/db");
        assert_eq!(redact_url("sqlite:data/x.db"), "sqlite:data/x.db");
    }
}
