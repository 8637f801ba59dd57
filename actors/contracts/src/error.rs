//! The error every request-reply message may answer with.

use serde::{Deserialize, Serialize};

/// The class of a failure: it decides the HTTP status and whether a caller may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or invalid (400).
    InvalidInput,
    /// No or bad credentials (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// The thing asked for does not exist (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// Valid but unacceptable (422).
    Unprocessable,
    /// Too many requests (429).
    RateLimited,
    /// A dependency or the service itself is unavailable; retry later (503).
    Unavailable,
    /// The deadline passed before an answer came (504).
    Timeout,
    /// The handler crashed; the fault was recorded and the actor restarted (500).
    Fault,
    /// Anything else that is the server's fault (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind maps to.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Unprocessable => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Fault | ErrorKind::Internal => 500,
        }
    }

    /// The kind a bare HTTP status stands for, for replies that carry no error body.
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            400 | 413 | 415 => ErrorKind::InvalidInput,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            422 => ErrorKind::Unprocessable,
            429 => ErrorKind::RateLimited,
            503 => ErrorKind::Unavailable,
            504 => ErrorKind::Timeout,
            _ => ErrorKind::Internal,
        }
    }
}

/// A failure answered to a caller: a kind, a stable snake_case code, a human message and
/// optional structured details (for example the failing lines of an order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
#[serde(rename_all = "camelCase")]
pub struct ServiceError {
    /// The class of the failure.
    pub kind: ErrorKind,
    /// Stable machine-readable code, such as `out_of_stock`.
    pub code: String,
    /// Lowercase human-readable message, without a trailing period.
    pub message: String,
    /// Structured details for the client, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Seconds after which a retry may succeed (429 and 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u32>,
}

impl ServiceError {
    /// A new error of `kind` with `code` and `message`.
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError { kind, code: code.into(), message: message.into(), details: None, retry_after_secs: None }
    }

    /// 400 with `code`.
    pub fn invalid(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, code, message)
    }

    /// 404 with `code`.
    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    /// 409 with `code`.
    pub fn conflict(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    /// 503 with `code` and a `Retry-After` hint.
    pub fn unavailable(code: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new(ErrorKind::Unavailable, code, message);
        error.retry_after_secs = Some(1);
        error
    }

    /// The deadline of the call passed.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, "deadline_exceeded", message)
    }

    /// The handler crashed (panic or fatal error); the fault is recorded on the node.
    pub fn fault(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Fault, "actor_fault", message)
    }

    /// A server-side failure whose cause stays in the logs.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal_error", message)
    }

    /// The same error with structured `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }

    /// Whether trying again later (or elsewhere) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    /// The public body of this error ([`ErrorBody`]), without a request id.
    pub fn public_body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.clone(),
                message: self.message.clone(),
                details: self.details.clone(),
                request_id: None,
            },
        }
    }

    /// The public JSON body of API.md: `{"error": {"code", "message", "details"}}`.
    pub fn to_public_body(&self) -> serde_json::Value {
        self.public_body().to_json()
    }
}

/// The body of every error answer (API.md section 4):
/// `{"error": {"code", "message", "details", "requestId"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// A stable snake_case code (`out_of_stock`, `internal_error`).
    pub code: String,
    /// A human-readable message; for a 500 a fixed sentence that names no internals.
    pub message: String,
    /// Structured details, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// The `x-request-id` of the request, on a 500, so that a report can be matched with the
    /// server's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorBody {
    /// The same body naming the request it answers.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> ErrorBody {
        self.error.request_id = Some(request_id.into());
        self
    }

    /// The body as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_and_keeps_details() {
        let error = ServiceError::conflict("out_of_stock", "not enough stock")
            .with_details(serde_json::json!([{"sku": "A", "available": 0}]));
        let text = serde_json::to_string(&error).unwrap();
        let back: ServiceError = serde_json::from_str(&text).unwrap();
        assert_eq!(back, error);
        assert_eq!(back.http_status(), 409);
        assert_eq!(error.to_public_body()["error"]["code"], "out_of_stock");
    }

    #[test]
    fn the_public_body_has_code_message_and_optional_details_and_request_id() {
        let plain = ServiceError::not_found("order_not_found", "no such order").to_public_body();
        assert_eq!(plain, serde_json::json!({"error": {"code": "order_not_found", "message": "no such order"}}));
        let bug = ServiceError::internal("the server failed").public_body().with_request_id("req-1").to_json();
        assert_eq!(bug["error"]["requestId"], "req-1");
        assert_eq!(bug["error"]["code"], "internal_error");
        let back: ErrorBody = serde_json::from_value(bug).unwrap();
        assert_eq!(back.error.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn unavailable_carries_retry_after_and_is_transient() {
        let error = ServiceError::unavailable("inventory_unavailable", "breaker open");
        assert_eq!(error.retry_after_secs, Some(1));
        assert!(error.is_transient());
        assert!(!ServiceError::invalid("bad", "bad").is_transient());
    }
}
