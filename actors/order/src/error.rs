//! The order service's failures and how they answer.

use emporium_contracts::{ErrorKind, ServiceError};

/// Why an order request failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// Bad input: the code says what.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Some SKUs are not in the catalog.
    #[error("unknown skus: {}", .0.join(", "))]
    UnknownSkus(Vec<String>),
    /// A product is not priced in the order's currency.
    #[error("{sku} is priced in {product_currency}, not {order_currency}")]
    CurrencyMismatch {
        /// The SKU.
        sku: String,
        /// Its currency.
        product_currency: String,
        /// The order's.
        order_currency: String,
    },
    /// The idempotency key was used with another request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// No such order (or not the caller's).
    #[error("order {0} not found")]
    NotFound(String),
    /// The order is confirmed or already cancelled.
    #[error("order {id} is {status} and can no longer be cancelled")]
    NotCancellable {
        /// The order.
        id: String,
        /// Its status.
        status: &'static str,
    },
    /// A dependency answered with an error to pass on as it is (out of stock, ...).
    #[error("{0}")]
    Dependency(ServiceError),
    /// The catalog cannot be asked now.
    #[error("the catalog is unavailable: {0}")]
    CatalogUnavailable(String),
    /// The inventory cannot be asked now.
    #[error("the inventory is unavailable: {0}")]
    InventoryUnavailable(String),
    /// A store failure; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for OrderError {
    fn from(error: sqlx::Error) -> Self {
        OrderError::Unexpected(error.into())
    }
}

impl From<emporium_store::StoreError> for OrderError {
    fn from(error: emporium_store::StoreError) -> Self {
        OrderError::Unexpected(error.into())
    }
}

impl From<emporium_bus::error::BusError> for OrderError {
    fn from(error: emporium_bus::error::BusError) -> Self {
        OrderError::Unexpected(anyhow::anyhow!(error))
    }
}

impl From<OrderError> for ServiceError {
    fn from(error: OrderError) -> Self {
        let message = error.to_string();
        match error {
            OrderError::Invalid { code, .. } => ServiceError::invalid(code, message),
            OrderError::UnknownSkus(skus) => ServiceError::new(ErrorKind::Unprocessable, "unknown_sku", message)
                .with_details(serde_json::json!(
                    skus.iter().map(|sku| serde_json::json!({"sku": sku})).collect::<Vec<_>>()
                )),
            OrderError::CurrencyMismatch { .. } => {
                ServiceError::new(ErrorKind::Unprocessable, "currency_mismatch", message)
            }
            OrderError::IdempotencyKeyReused => {
                ServiceError::new(ErrorKind::Unprocessable, "idempotency_key_reused", message)
            }
            OrderError::NotFound(_) => ServiceError::not_found("order_not_found", message),
            OrderError::NotCancellable { .. } => ServiceError::conflict("order_not_cancellable", message),
            OrderError::Dependency(error) => error,
            OrderError::CatalogUnavailable(_) => ServiceError::unavailable("catalog_unavailable", message),
            OrderError::InventoryUnavailable(_) => ServiceError::unavailable("inventory_unavailable", message),
            OrderError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "order store failure");
                ServiceError::unavailable("order_store_unavailable", "the order store failed; retry")
            }
        }
    }
}

impl From<OrderError> for emporium_runtime::HandlerError {
    fn from(error: OrderError) -> Self {
        emporium_runtime::HandlerError::Reply(error.into())
    }
}
