//! The product service's failures and how they answer.

use emporium_contracts::{ErrorKind, ServiceError};

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
    /// A store failure; the cause stays in the logs.
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
        ProductError::Unexpected(error.into())
    }
}

impl From<mongodb::error::Error> for ProductError {
    fn from(error: mongodb::error::Error) -> Self {
        ProductError::Unexpected(error.into())
    }
}

impl From<emporium_store::StoreError> for ProductError {
    fn from(error: emporium_store::StoreError) -> Self {
        ProductError::Unexpected(error.into())
    }
}

impl From<ProductError> for ServiceError {
    fn from(error: ProductError) -> Self {
        let message = error.to_string();
        match error {
            ProductError::Invalid { code, .. } => ServiceError::invalid(code, message),
            ProductError::NotFound(_) => ServiceError::not_found("product_not_found", message),
            ProductError::SkuTaken(_) => ServiceError::conflict("sku_taken", message),
            ProductError::Forbidden => ServiceError::new(ErrorKind::Forbidden, "forbidden", message),
            ProductError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "product store failure");
                ServiceError::unavailable("product_store_unavailable", "the product store failed; retry")
            }
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
        assert_eq!((unexpected.http_status(), unexpected.code.as_str()), (503, "product_store_unavailable"));
        assert!(!unexpected.message.contains("secret"), "the cause stays in the logs");
    }
}
