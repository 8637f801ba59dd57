//! Why the gateway refuses a request.

use emporium_contracts::{ErrorKind, ServiceError};

/// A refusal at the edge, before any service is asked.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("the authorization header must be: Bearer <access token>")]
    MalformedAuthorization,
    /// The token failed verification.
    #[error("the access token is not valid: {0}")]
    InvalidToken(String),
    /// The token expired.
    #[error("the access token expired; refresh it")]
    TokenExpired,
    /// The token's user no longer exists.
    #[error("the user of this token no longer exists")]
    UnknownUser,
    /// The token names a key this gateway does not hold and the auth service, which would
    /// know it, cannot be reached: the token may well be valid, so this is never a 401.
    #[error("the auth service cannot be reached to verify this token; retry shortly")]
    AuthUnavailable,
    /// The auth service did not say within its budget whether the token's user still exists,
    /// and `[gateway] user_check_unanswered = "refuse"`.
    #[error("the auth service cannot confirm this user now; retry shortly")]
    UserCheckUnanswered,
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
}

impl GatewayError {
    /// The stable code and HTTP status of this refusal, as a [`ServiceError`].
    pub fn to_service_error(&self) -> ServiceError {
        let (kind, code) = match self {
            GatewayError::MalformedAuthorization => (ErrorKind::Unauthenticated, "invalid_token"),
            GatewayError::InvalidToken(_) => (ErrorKind::Unauthenticated, "invalid_token"),
            GatewayError::TokenExpired => (ErrorKind::Unauthenticated, "token_expired"),
            GatewayError::UnknownUser => (ErrorKind::Unauthenticated, "user_not_found"),
            GatewayError::AuthUnavailable | GatewayError::UserCheckUnanswered => {
                (ErrorKind::Unavailable, "auth_unavailable")
            }
            GatewayError::PayloadTooLarge { .. } => (ErrorKind::InvalidInput, "payload_too_large"),
        };
        ServiceError::new(kind, code, self.to_string())
    }

    /// The HTTP status (413 for bodies, else the kind's).
    pub fn http_status(&self) -> u16 {
        match self {
            GatewayError::PayloadTooLarge { .. } => 413,
            _ => self.to_service_error().http_status(),
        }
    }
}
