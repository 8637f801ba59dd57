//! The bus's errors and their mapping to an HTTP status and a stable code.

use emporium_contracts::ServiceError;
use emporium_contracts::events::EnvelopeError;
use emporium_store::StoreError;
pub use emporium_store::redact_url;

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
    /// Events a consumer of the topology wants reached no queue (RabbitMQ returned them, or
    /// no in-process queue took them); they stay in the outbox and are published again.
    #[error(
        "{num_unroutable} event(s) reached no queue and stay in the outbox (first: {first_event_type} \
         {first_event_id} to {exchange}); is the topology declared in this namespace?"
    )]
    Unroutable {
        /// How many rows of the batch.
        num_unroutable: usize,
        /// The broker name of the exchange of the first of them.
        exchange: String,
        /// The type (routing key) of the first of them.
        first_event_type: String,
        /// The event id of the first of them.
        first_event_id: String,
    },
    /// The database could not be reached, a statement failed, or the bus's tables could not
    /// be created.
    #[error(transparent)]
    Database(#[from] StoreError),
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
            BusError::Unroutable { .. } => (503, "events_unroutable"),
            BusError::Database(error) if error.is_unavailable() => (503, "database_unavailable"),
            BusError::Database(_) => (500, "internal_error"),
            BusError::ShuttingDown => (503, "shutting_down"),
            BusError::Actor(error) if error.is_transient() => (503, "bus_unavailable"),
            BusError::InvalidConfig(_) => (500, "invalid_configuration"),
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

impl From<sqlx::Error> for BusError {
    fn from(error: sqlx::Error) -> Self {
        BusError::Database(StoreError::Database(error))
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
    fn unroutable_events_are_a_transient_failure_that_names_the_first() {
        let error = BusError::Unroutable {
            num_unroutable: 2,
            exchange: "t1.order-events".into(),
            first_event_type: "order.created".into(),
            first_event_id: "e1".into(),
        };
        assert_eq!(error.status_and_code(), (503, "events_unroutable"));
        assert!(error.to_service_error().is_transient());
        assert_eq!(
            error.to_string(),
            "2 event(s) reached no queue and stay in the outbox (first: order.created e1 to t1.order-events); \
             is the topology declared in this namespace?"
        );
    }
}
