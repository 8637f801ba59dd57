//! The order service's failures and how they answer, by the edge's error policy
//! ([`emporium_cluster::edge`]): client mistakes are 4xx, a store that is unreachable or busy is
//! 503 `order_store_unavailable`, a dependency that cannot be asked 503 `catalog_unavailable` or
//! `inventory_unavailable`, anything else is a bug (500 `internal_error`).

use emporium_bus::error::BusError;
use emporium_cluster::edge::{internal_failure, store_failure, unavailable_dependency};
use emporium_contracts::order::SERVICE;
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_store::StoreError;

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
    /// A SKU is on two lines: well-formed, but not an order (422, like an unknown SKU).
    #[error("{0} appears twice; put it on one line")]
    DuplicateSku(String),
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
    /// The store failed: 503 when it is unreachable or busy, else a bug.
    #[error("order store failed: {0}")]
    Store(#[from] StoreError),
    /// The event bus (the outbox) failed: 503 when its database or broker is unavailable, else
    /// a bug.
    #[error("event bus failed: {0}")]
    Bus(#[from] BusError),
    /// A bug; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for OrderError {
    fn from(error: sqlx::Error) -> Self {
        OrderError::Store(StoreError::Database(error))
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
            OrderError::DuplicateSku(sku) => ServiceError::new(ErrorKind::Unprocessable, "duplicate_sku", message)
                .with_details(serde_json::json!([{"sku": sku}])),
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
            OrderError::Store(store_error) | OrderError::Bus(BusError::Database(store_error)) => {
                store_failure(SERVICE, &store_error)
            }
            OrderError::Bus(bus_error) => match bus_error.status_and_code() {
                (503, code) => unavailable_dependency(SERVICE, code, "the event bus", &bus_error),
                _ => internal_failure(SERVICE, &bus_error),
            },
            OrderError::Unexpected(cause) => internal_failure(SERVICE, cause.as_ref()),
        }
    }
}

impl From<OrderError> for emporium_runtime::HandlerError {
    fn from(error: OrderError) -> Self {
        emporium_runtime::HandlerError::Reply(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_are_503_when_transient_and_bugs_are_500_without_their_cause() {
        let closed = ServiceError::from(OrderError::from(sqlx::Error::PoolClosed));
        assert_eq!((closed.http_status(), closed.code.as_str()), (503, "order_store_unavailable"));
        let outbox = ServiceError::from(OrderError::from(BusError::from(sqlx::Error::PoolTimedOut)));
        assert_eq!((outbox.http_status(), outbox.code.as_str()), (503, "order_store_unavailable"));
        let bug = ServiceError::from(OrderError::from(sqlx::Error::ColumnNotFound("secret_column".into())));
        assert_eq!((bug.http_status(), bug.code.as_str()), (500, "internal_error"));
        assert!(!bug.message.contains("secret_column"));
        let missing =
            ServiceError::from(OrderError::Unexpected(anyhow::anyhow!("idempotency key names missing order")));
        assert_eq!((missing.http_status(), missing.code.as_str()), (500, "internal_error"));
        assert!(!missing.message.contains("idempotency"));
        let inventory = ServiceError::from(OrderError::InventoryUnavailable("breaker open".into()));
        assert_eq!((inventory.http_status(), inventory.code.as_str()), (503, "inventory_unavailable"));
    }
}
