//! The payment service's failures and how they answer, by the edge's error policy
//! ([`emporium_cluster::edge`]): client mistakes are 4xx, a store that is unreachable or busy is
//! 503 `payment_store_unavailable`, anything else is a bug (500 `internal_error`).

use emporium_bus::BusError;
use emporium_cluster::edge::{internal_failure, store_failure, unavailable_dependency};
use emporium_contracts::ServiceError;
use emporium_contracts::payment::SERVICE;
use emporium_store::StoreError;

/// Why a payment request failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Bad input: the code says what.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such payment, or not one the caller may see.
    #[error("payment {0} not found")]
    NotFound(String),
    /// The store failed: 503 when it is unreachable or busy, else a bug.
    #[error("payment store failed: {0}")]
    Store(#[from] StoreError),
    /// The event bus (the outbox) failed: 503 when its database or broker is unavailable, else
    /// a bug.
    #[error("event bus failed: {0}")]
    Bus(#[from] BusError),
    /// A bug; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for PaymentError {
    fn from(error: sqlx::Error) -> Self {
        PaymentError::Store(StoreError::Database(error))
    }
}

impl From<PaymentError> for ServiceError {
    fn from(error: PaymentError) -> Self {
        let message = error.to_string();
        match error {
            PaymentError::Invalid { code, .. } => ServiceError::invalid(code, message),
            PaymentError::NotFound(_) => ServiceError::not_found("payment_not_found", message),
            PaymentError::Store(store_error) | PaymentError::Bus(BusError::Database(store_error)) => {
                store_failure(SERVICE, &store_error)
            }
            PaymentError::Bus(bus_error) => match bus_error.status_and_code() {
                (503, code) => unavailable_dependency(SERVICE, code, "the event bus", &bus_error),
                _ => internal_failure(SERVICE, &bus_error),
            },
            PaymentError::Unexpected(cause) => internal_failure(SERVICE, cause.as_ref()),
        }
    }
}

impl From<PaymentError> for emporium_runtime::HandlerError {
    fn from(error: PaymentError) -> Self {
        emporium_runtime::HandlerError::Reply(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_answer_with_stable_codes_and_hide_store_causes() {
        let not_found: ServiceError = PaymentError::NotFound("p1".into()).into();
        assert_eq!((not_found.http_status(), not_found.code.as_str()), (404, "payment_not_found"));
        let invalid: ServiceError = PaymentError::Invalid { code: "invalid_id", message: "bad".into() }.into();
        assert_eq!((invalid.http_status(), invalid.code.as_str()), (400, "invalid_id"));
        let bug: ServiceError = PaymentError::Unexpected(anyhow::anyhow!("password=secret")).into();
        assert_eq!((bug.http_status(), bug.code.as_str()), (500, "internal_error"));
        assert!(!bug.message.contains("secret"));
        let closed: ServiceError = PaymentError::from(sqlx::Error::PoolClosed).into();
        assert_eq!((closed.http_status(), closed.code.as_str()), (503, "payment_store_unavailable"));
        let statement: ServiceError = PaymentError::from(sqlx::Error::ColumnNotFound("secret_column".into())).into();
        assert_eq!((statement.http_status(), statement.code.as_str()), (500, "internal_error"));
        assert!(!statement.message.contains("secret_column"));
    }
}
