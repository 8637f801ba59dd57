//! The product service's failures and how they answer, by the edge's error policy
//! ([`emporium_cluster::edge`]): client mistakes are 4xx, a store that is unreachable or busy is
//! 503 `product_store_unavailable`, anything else is a bug (500 `internal_error`).

use emporium_cluster::edge::{internal_failure, store_failure, unavailable_dependency};
use emporium_contracts::product::SERVICE;
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_store::StoreError;
use mongodb::error::ErrorKind as MongoErrorKind;

/// Why a product request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// Bad input: the code says what.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No product has this id (a malformed id included).
    #[error("no product has id {0:?}")]
    NotFound(String),
    /// Another product already has this SKU.
    #[error("another product already has sku {0}")]
    SkuTaken(String),
    /// The caller is not an admin.
    #[error("changing the catalog needs the admin role")]
    Forbidden,
    /// The embedded SQL store failed: 503 when it is unreachable or busy, else a bug.
    #[error("product store failed: {0}")]
    Store(#[from] StoreError),
    /// MongoDB failed: 503 when it cannot be reached, else a bug.
    #[error("mongodb failed: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// A bug; the cause stays in the logs.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ProductError {
    /// A 400 with `code`.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ProductError::Invalid { code, message: message.into() }
    }
}

impl From<sqlx::Error> for ProductError {
    fn from(error: sqlx::Error) -> Self {
        ProductError::Store(StoreError::Database(error))
    }
}

/// Whether a MongoDB failure is the server being unreachable (no server selected, the
/// connection lost or its pool cleared) rather than a bug.
fn is_mongo_unavailable(error: &mongodb::error::Error) -> bool {
    matches!(
        *error.kind,
        MongoErrorKind::ServerSelection { .. } | MongoErrorKind::Io(_) | MongoErrorKind::ConnectionPoolCleared { .. }
    ) || error.contains_label("RetryableWriteError")
        || error.contains_label("TransientTransactionError")
}

impl From<ProductError> for ServiceError {
    fn from(error: ProductError) -> Self {
        let message = error.to_string();
        match error {
            ProductError::Invalid { code, .. } => ServiceError::invalid(code, message),
            ProductError::NotFound(_) => ServiceError::not_found("product_not_found", message),
            ProductError::SkuTaken(_) => ServiceError::conflict("sku_taken", message),
            ProductError::Forbidden => ServiceError::new(ErrorKind::Forbidden, "forbidden", message),
            ProductError::Store(store_error) => store_failure(SERVICE, &store_error),
            ProductError::Mongo(mongo_error) if is_mongo_unavailable(&mongo_error) => {
                unavailable_dependency(SERVICE, "product_store_unavailable", "the product store", &mongo_error)
            }
            ProductError::Mongo(mongo_error) => internal_failure(SERVICE, &mongo_error),
            ProductError::Unexpected(cause) => internal_failure(SERVICE, cause.as_ref()),
        }
    }
}

impl From<ProductError> for emporium_runtime::HandlerError {
    fn from(error: ProductError) -> Self {
        emporium_runtime::HandlerError::Reply(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_status_and_code() {
        let answer = |error: ProductError| {
            let error = ServiceError::from(error);
            (error.http_status(), error.code)
        };
        assert_eq!(answer(ProductError::invalid("invalid_sku", "bad")), (400, "invalid_sku".into()));
        assert_eq!(answer(ProductError::NotFound("x".into())), (404, "product_not_found".into()));
        assert_eq!(answer(ProductError::SkuTaken("A".into())), (409, "sku_taken".into()));
        assert_eq!(answer(ProductError::Forbidden), (403, "forbidden".into()));
        let unexpected = ServiceError::from(ProductError::Unexpected(anyhow::anyhow!("password=secret")));
        assert_eq!((unexpected.http_status(), unexpected.code.as_str()), (500, "internal_error"));
        assert!(!unexpected.message.contains("secret"), "the cause stays in the logs");
        let closed = ServiceError::from(ProductError::from(sqlx::Error::PoolClosed));
        assert_eq!((closed.http_status(), closed.code.as_str()), (503, "product_store_unavailable"));
        let bug = ServiceError::from(ProductError::from(sqlx::Error::ColumnNotFound("secret_column".into())));
        assert_eq!((bug.http_status(), bug.code.as_str()), (500, "internal_error"));
        assert!(!bug.message.contains("secret_column"));
        let unreachable = mongodb::error::Error::from(std::io::Error::other("connection refused"));
        let answer = ServiceError::from(ProductError::Mongo(unreachable));
        assert_eq!((answer.http_status(), answer.code.as_str()), (503, "product_store_unavailable"));
        let bug = ServiceError::from(ProductError::Mongo(mongodb::error::Error::custom("odd reply")));
        assert_eq!((bug.http_status(), bug.code.as_str()), (500, "internal_error"));
    }
}
