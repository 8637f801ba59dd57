//! The payment service's failures and how they answer.

use emporium_contracts::ServiceError;

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
    /// A store failure; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for PaymentError {
    fn from(error: sqlx::Error) -> Self {
        PaymentError::Unexpected(error.into())
    }
}

impl From<emporium_store::StoreError> for PaymentError {
    fn from(error: emporium_store::StoreError) -> Self {
        PaymentError::Unexpected(error.into())
    }
}

impl From<emporium_bus::BusError> for PaymentError {
    fn from(error: emporium_bus::BusError) -> Self {
        PaymentError::Unexpected(anyhow::anyhow!(error))
    }
}

impl From<PaymentError> for ServiceError {
    fn from(error: PaymentError) -> Self {
        let message = error.to_string();
        match error {
            PaymentError::Invalid { code, .. } => ServiceError::invalid(code, message),
            PaymentError::NotFound(_) => ServiceError::not_found("payment_not_found", message),
            PaymentError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "payment store failure");
                ServiceError::unavailable("payment_store_unavailable", "the payment store failed; retry")
            }
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
        let store: ServiceError = PaymentError::Unexpected(anyhow::anyhow!("password=secret")).into();
        assert_eq!(store.http_status(), 503);
        assert!(!store.message.contains("secret"));
    }
}
