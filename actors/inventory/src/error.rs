//! The inventory's failures and how they answer.

use emporium_contracts::{ErrorKind, ServiceError};

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
    /// A store failure; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for InventoryError {
    fn from(error: sqlx::Error) -> Self {
        InventoryError::Unexpected(error.into())
    }
}

impl From<emporium_store::StoreError> for InventoryError {
    fn from(error: emporium_store::StoreError) -> Self {
        InventoryError::Unexpected(error.into())
    }
}

impl From<emporium_bus::error::BusError> for InventoryError {
    fn from(error: emporium_bus::error::BusError) -> Self {
        InventoryError::Unexpected(anyhow::anyhow!(error))
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
            InventoryError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "inventory store failure");
                ServiceError::unavailable("inventory_store_unavailable", "the inventory store failed; retry")
            }
        }
    }
}

impl From<InventoryError> for emporium_runtime::HandlerError {
    fn from(error: InventoryError) -> Self {
        emporium_runtime::HandlerError::Reply(error.into())
    }
}
