//! The registry's errors and their HTTP mapping.

use actix_web::http::StatusCode;
use actix_web::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use emporium_cluster::credential::CLUSTER_AUTH_SCHEME;
use emporium_contracts::{ErrorKind, ServiceError};

/// Everything a registry operation or route can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No instance with this id is registered (never was, deregistered or evicted).
    #[error("no instance {0} is registered")]
    UnknownInstance(String),
    /// A registration that misses a field or carries a malformed one.
    #[error("{0}")]
    InvalidInstance(String),
    /// A service or profile name that is not `^[a-z][a-z0-9-]{{0,62}}$`.
    #[error("{0}")]
    InvalidName(String),
    /// A request body that is not the JSON the route expects.
    #[error("{0}")]
    MalformedJson(String),
    /// A query string that does not parse.
    #[error("{0}")]
    InvalidQuery(String),
    /// A body larger than the route accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The files under `config/` do not load; the previous version keeps being served.
    #[error("{0}")]
    InvalidConfig(String),
    /// The request carries no valid cluster credential.
    #[error("the cluster credential is required (authorization: cluster <secret>)")]
    CredentialRequired,
    /// No registry route has this path.
    #[error("no registry route {0}")]
    RouteNotFound(String),
    /// A configuration label (branch or tag) the configuration source does not have.
    #[error("{0}")]
    NoSuchLabel(String),
    /// The registry actor is not running.
    #[error("the registry is not running")]
    Unavailable,
    /// Anything else; the cause chain stays in the logs.
    #[error("unexpected registry error")]
    Unexpected(#[from] anyhow::Error),
}

impl RegistryError {
    /// The HTTP status and the stable `code` of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            RegistryError::UnknownInstance(_) => (StatusCode::NOT_FOUND, "unknown_instance"),
            RegistryError::InvalidInstance(_) => (StatusCode::BAD_REQUEST, "invalid_instance"),
            RegistryError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            RegistryError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            RegistryError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            RegistryError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            RegistryError::InvalidConfig(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_config"),
            RegistryError::CredentialRequired => (StatusCode::UNAUTHORIZED, "cluster_credential_required"),
            RegistryError::RouteNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            RegistryError::NoSuchLabel(_) => (StatusCode::NOT_FOUND, "no_such_label"),
            RegistryError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "registry_unavailable"),
            RegistryError::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The error as callers see it: kind, code and a message that never carries internals.
    pub fn to_service_error(&self) -> ServiceError {
        let (status, code) = self.status_and_code();
        let mut error = ServiceError::new(ErrorKind::from_http_status(status.as_u16()), code, self.to_string());
        if matches!(self, RegistryError::Unavailable) {
            error.retry_after_secs = Some(1);
        }
        error
    }
}

impl From<RegistryError> for ServiceError {
    fn from(error: RegistryError) -> Self {
        error.to_service_error()
    }
}

impl From<actix::MailboxError> for RegistryError {
    fn from(_: actix::MailboxError) -> Self {
        RegistryError::Unavailable
    }
}

impl ResponseError for RegistryError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        if let RegistryError::Unexpected(cause) = self {
            tracing::error!(error = ?cause, "registry request failed");
        }
        let error = self.to_service_error();
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = error.retry_after_secs {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        if matches!(self, RegistryError::CredentialRequired) {
            response.insert_header((WWW_AUTHENTICATE, CLUSTER_AUTH_SCHEME));
        }
        response.json(error.to_public_body())
    }
}
