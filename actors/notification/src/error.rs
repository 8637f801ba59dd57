//! The notification service's failures and how they answer, by the edge's error policy
//! ([`emporium_cluster::edge`]): an SMTP server or a store that is unreachable or busy is 503
//! (`smtp_unavailable`, `notification_store_unavailable`), anything else is a bug (500
//! `internal_error`).

use emporium_bus::BusError;
use emporium_cluster::edge::{internal_failure, store_failure, unavailable_dependency};
use emporium_contracts::ServiceError;
use emporium_contracts::notification::SERVICE;
use emporium_store::StoreError;

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
    /// The store failed: 503 when it is unreachable or busy, else a bug.
    #[error("notification store failed: {0}")]
    Store(#[from] StoreError),
    /// The event bus failed: 503 when its database or broker is unavailable, else a bug.
    #[error("event bus failed: {0}")]
    Bus(#[from] BusError),
    /// A bug; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for NotificationError {
    fn from(error: sqlx::Error) -> Self {
        NotificationError::Store(StoreError::Database(error))
    }
}

impl From<NotificationError> for ServiceError {
    fn from(error: NotificationError) -> Self {
        match error {
            NotificationError::InvalidSmtpUrl(_)
            | NotificationError::InvalidFromAddress(..)
            | NotificationError::InvalidSettings(_) => internal_failure(SERVICE, &error),
            NotificationError::SmtpUnavailable { .. } => {
                ServiceError::unavailable("smtp_unavailable", error.to_string())
            }
            NotificationError::Store(store_error) | NotificationError::Bus(BusError::Database(store_error)) => {
                store_failure(SERVICE, &store_error)
            }
            NotificationError::Bus(bus_error) => match bus_error.status_and_code() {
                (503, code) => unavailable_dependency(SERVICE, code, "the event bus", &bus_error),
                _ => internal_failure(SERVICE, &bus_error),
            },
            NotificationError::Unexpected(cause) => internal_failure(SERVICE, cause.as_ref()),
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
        let bug: ServiceError = NotificationError::Unexpected(anyhow::anyhow!("password=secret")).into();
        assert_eq!((bug.http_status(), bug.code.as_str()), (500, "internal_error"));
        assert!(!bug.message.contains("secret"));
        let closed: ServiceError = NotificationError::from(sqlx::Error::PoolClosed).into();
        assert_eq!((closed.http_status(), closed.code.as_str()), (503, "notification_store_unavailable"));
        let settings: ServiceError = NotificationError::InvalidSmtpUrl("smtp://user:***@host".into()).into();
        assert_eq!((settings.http_status(), settings.code.as_str()), (500, "internal_error"));
        assert!(!settings.message.contains("smtp"));
    }
}
