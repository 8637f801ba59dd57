//! The notification service's failures and how they answer.

use emporium_contracts::ServiceError;

/// Why a notification request, or the service's start, failed.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// `EMPORIUM_SMTP_URL` is not a usable SMTP URL (shown without its password).
    #[error("invalid smtp url {0}")]
    InvalidSmtpUrl(String),
    /// The sender address is not an email address.
    #[error("invalid sender address {0:?} (EMPORIUM_SMTP_FROM): {1}")]
    InvalidFromAddress(String, String),
    /// The delivery settings are not usable.
    #[error("invalid delivery settings: {0}")]
    InvalidSettings(String),
    /// Some emails could not be sent in a delivery round (they are retried or failed).
    #[error("{num_unsent} email(s) not sent: {last_error}")]
    SmtpUnavailable {
        /// Sends that failed in the round.
        num_unsent: u32,
        /// The last failure.
        last_error: String,
    },
    /// A store failure; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for NotificationError {
    fn from(error: sqlx::Error) -> Self {
        NotificationError::Unexpected(error.into())
    }
}

impl From<emporium_store::StoreError> for NotificationError {
    fn from(error: emporium_store::StoreError) -> Self {
        NotificationError::Unexpected(error.into())
    }
}

impl From<emporium_bus::BusError> for NotificationError {
    fn from(error: emporium_bus::BusError) -> Self {
        NotificationError::Unexpected(anyhow::anyhow!(error))
    }
}

impl From<NotificationError> for ServiceError {
    fn from(error: NotificationError) -> Self {
        let message = error.to_string();
        match error {
            NotificationError::InvalidSmtpUrl(_)
            | NotificationError::InvalidFromAddress(..)
            | NotificationError::InvalidSettings(_) => ServiceError::internal(message),
            NotificationError::SmtpUnavailable { .. } => ServiceError::unavailable("smtp_unavailable", message),
            NotificationError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "notification store failure");
                ServiceError::unavailable("notification_store_unavailable", "the notification store failed; retry")
            }
        }
    }
}

impl From<NotificationError> for emporium_runtime::HandlerError {
    fn from(error: NotificationError) -> Self {
        emporium_runtime::HandlerError::Reply(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_outages_are_503_and_store_causes_stay_in_the_logs() {
        let outage: ServiceError =
            NotificationError::SmtpUnavailable { num_unsent: 2, last_error: "connection refused".into() }.into();
        assert_eq!((outage.http_status(), outage.code.as_str()), (503, "smtp_unavailable"));
        assert_eq!(outage.message, "2 email(s) not sent: connection refused");
        let store: ServiceError = NotificationError::Unexpected(anyhow::anyhow!("password=secret")).into();
        assert_eq!(store.http_status(), 503);
        assert!(!store.message.contains("secret"));
    }
}
