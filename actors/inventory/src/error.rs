//! The inventory's failures and how they answer, by the edge's error policy
//! ([`emporium_cluster::edge`]): client mistakes are 4xx, a store that is unreachable or busy
//! (a deadlock victim included) is 503 `inventory_store_unavailable`, anything else is a bug
//! (500 `internal_error`).

use emporium_bus::error::BusError;
use emporium_cluster::edge::{internal_failure, store_failure, unavailable_dependency};
use emporium_contracts::inventory::SERVICE;
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_store::StoreError;

/// Why an inventory request failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Bad input: the code says what.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The SKU has no stock record.
    #[error("unknown sku {0}")]
    UnknownSku(String),
    /// Some lines asked for SKUs that do not exist.
    #[error("unknown skus: {}", .0.join(", "))]
    UnknownSkus(Vec<String>),
    /// Not enough stock for some lines.
    #[error("not enough stock for {} line(s)", .0.len())]
    OutOfStock(Vec<emporium_contracts::inventory::Shortage>),
    /// The adjustment would take stock below zero.
    #[error("stock of {sku} cannot go below zero ({available} available, delta {delta})")]
    InsufficientStock {
        /// The SKU.
        sku: String,
        /// Units available.
        available: u64,
        /// The delta asked for.
        delta: i64,
    },
    /// The order already has a reservation with other lines.
    #[error("order {0} already has a reservation with other lines")]
    ReservationMismatch(String),
    /// The order has no reservation.
    #[error("order {0} has no reservation")]
    NoReservation(String),
    /// The reservation was released (cancelled or expired) and cannot be committed.
    #[error("the reservation of order {0} was released")]
    ReservationReleased(String),
    /// The store failed: 503 when it is unreachable or busy, else a bug.
    #[error("inventory store failed: {0}")]
    Store(#[from] StoreError),
    /// The event bus (the outbox) failed: 503 when its database or broker is unavailable, else
    /// a bug.
    #[error("event bus failed: {0}")]
    Bus(#[from] BusError),
    /// A bug; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl InventoryError {
    /// Whether the store chose this transaction as a deadlock victim: it was rolled back whole
    /// and may run again.
    pub fn is_deadlock(&self) -> bool {
        match self {
            InventoryError::Store(error) | InventoryError::Bus(BusError::Database(error)) => error.is_deadlock(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for InventoryError {
    fn from(error: sqlx::Error) -> Self {
        InventoryError::Store(StoreError::Database(error))
    }
}

impl From<InventoryError> for ServiceError {
    fn from(error: InventoryError) -> Self {
        let message = error.to_string();
        match error {
            InventoryError::Invalid { code, .. } => ServiceError::invalid(code, message),
            InventoryError::UnknownSku(_) => ServiceError::not_found("unknown_sku", message),
            InventoryError::UnknownSkus(skus) => ServiceError::new(ErrorKind::Unprocessable, "unknown_sku", message)
                .with_details(serde_json::json!(
                    skus.iter().map(|sku| serde_json::json!({"sku": sku})).collect::<Vec<_>>()
                )),
            InventoryError::OutOfStock(shortages) => ServiceError::conflict("out_of_stock", message)
                .with_details(serde_json::to_value(shortages).unwrap_or_default()),
            InventoryError::InsufficientStock { .. } => ServiceError::conflict("insufficient_stock", message),
            InventoryError::ReservationMismatch(_) => ServiceError::conflict("reservation_mismatch", message),
            InventoryError::NoReservation(_) => ServiceError::not_found("no_reservation", message),
            InventoryError::ReservationReleased(_) => ServiceError::conflict("reservation_released", message),
            InventoryError::Store(store_error) | InventoryError::Bus(BusError::Database(store_error)) => {
                store_failure(SERVICE, &store_error)
            }
            InventoryError::Bus(bus_error) => match bus_error.status_and_code() {
                (503, code) => unavailable_dependency(SERVICE, code, "the event bus", &bus_error),
                _ => internal_failure(SERVICE, &bus_error),
            },
            InventoryError::Unexpected(cause) => internal_failure(SERVICE, cause.as_ref()),
        }
    }
}

impl From<InventoryError> for emporium_runtime::HandlerError {
    fn from(error: InventoryError) -> Self {
        emporium_runtime::HandlerError::Reply(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_503_when_transient_and_bugs_are_500_without_their_cause() {
        let closed = ServiceError::from(InventoryError::from(sqlx::Error::PoolClosed));
        assert_eq!((closed.http_status(), closed.code.as_str()), (503, "inventory_store_unavailable"));
        let outbox = ServiceError::from(InventoryError::from(BusError::from(sqlx::Error::PoolTimedOut)));
        assert_eq!((outbox.http_status(), outbox.code.as_str()), (503, "inventory_store_unavailable"));
        let bug = ServiceError::from(InventoryError::from(sqlx::Error::ColumnNotFound("secret_column".into())));
        assert_eq!((bug.http_status(), bug.code.as_str()), (500, "internal_error"));
        assert!(!bug.message.contains("secret_column"));
        let unexpected = ServiceError::from(InventoryError::Unexpected(anyhow::anyhow!("password=secret")));
        assert_eq!((unexpected.http_status(), unexpected.code.as_str()), (500, "internal_error"));
        assert!(!unexpected.message.contains("secret"));
    }
}
