//! What a service's public HTTP routes use at the edge: errors as API.md's JSON, the verified
//! caller and the request context the gateway put on the request, and extractor settings that
//! turn bad input into clear 4xx answers instead of 500s.

use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_runtime::{CallMeta, TraceParent};

/// Default largest body the edge accepts.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A [`ServiceError`] answered over HTTP as `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError(error)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        error_response(&self.0)
    }
}

/// The JSON response for `error`. Internal failures keep their cause out of the body.
pub fn error_response(error: &ServiceError) -> HttpResponse {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if let Some(seconds) = error.retry_after_secs {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    } else if matches!(error.kind, ErrorKind::Unavailable | ErrorKind::RateLimited) {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    let public = match error.kind {
        ErrorKind::Fault | ErrorKind::Internal => {
            tracing::error!(code = %error.code, message = %error.message, "internal error answered as 500");
            ServiceError::new(error.kind, error.code.clone(), "the server failed to handle the request")
        }
        _ => error.clone(),
    };
    response.json(public.to_public_body())
}

/// The result of a route handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Request-scoped facts the gateway established: request id, trace, deadline, client address.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The `x-request-id` of the request.
    pub request_id: String,
    /// The trace this request belongs to.
    pub trace: Option<TraceParent>,
    /// When the gateway stops waiting.
    pub deadline: Option<Instant>,
    /// The client's address as the gateway saw it.
    pub client_address: Option<String>,
}

impl RequestContext {
    /// The call metadata for asks made on behalf of this request.
    pub fn call_meta(&self) -> CallMeta {
        CallMeta { deadline: self.deadline, trace: self.trace }
    }
}

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let context = request.extensions().get::<RequestContext>().cloned().unwrap_or_else(|| RequestContext {
            request_id: String::new(),
            trace: None,
            deadline: None,
            client_address: request.peer_addr().map(|address| address.ip().to_string()),
        });
        ready(Ok(context))
    }
}

/// The signed-in caller; 401 when the request carried no valid access token.
impl FromRequest for AuthenticatedCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(match request.extensions().get::<Caller>() {
            Some(caller) => Ok(AuthenticatedCaller(caller.clone())),
            None => Err(ApiError(missing_token())),
        })
    }
}

/// A signed-in caller (any role).
#[derive(Debug, Clone)]
pub struct AuthenticatedCaller(pub Caller);

/// A signed-in caller with the `admin` role; 401 without a token, 403 without the role.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(match request.extensions().get::<Caller>() {
            Some(caller) if caller.has_role(Role::Admin) => Ok(AdminCaller(caller.clone())),
            Some(_) => {
                Err(ApiError(ServiceError::new(ErrorKind::Forbidden, "forbidden", "this route needs the admin role")))
            }
            None => Err(ApiError(missing_token())),
        })
    }
}

fn missing_token() -> ServiceError {
    ServiceError::new(
        ErrorKind::Unauthenticated,
        "missing_token",
        "sign in first: send Authorization: Bearer <access token>",
    )
}

/// JSON bodies: at most `limit` bytes; malformed JSON, wrong types, missing fields, unknown
/// fields, wrong content type and oversize bodies get 400, 415 and 413 with clear codes.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(|error, _request| {
        let service_error = match &error {
            JsonPayloadError::OverflowKnownLength { length, limit } => ServiceError::new(
                ErrorKind::InvalidInput,
                "payload_too_large",
                format!("the body has {length} bytes; at most {limit} are accepted"),
            ),
            JsonPayloadError::Overflow { limit } => ServiceError::new(
                ErrorKind::InvalidInput,
                "payload_too_large",
                format!("the body is larger than {limit} bytes"),
            ),
            JsonPayloadError::ContentType => ServiceError::new(
                ErrorKind::InvalidInput,
                "unsupported_media_type",
                "send the body as application/json",
            ),
            JsonPayloadError::Deserialize(serde_error) if serde_error.is_data() => {
                ServiceError::invalid("invalid_body", format!("the body does not fit: {serde_error}"))
            }
            JsonPayloadError::Deserialize(serde_error) => {
                ServiceError::invalid("malformed_json", format!("the body is not valid JSON: {serde_error}"))
            }
            other => ServiceError::invalid("malformed_body", format!("the body could not be read: {other}")),
        };
        let status = match service_error.code.as_str() {
            "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        let response = HttpResponse::build(status).json(service_error.to_public_body());
        actix_web::error::InternalError::from_response(error, response).into()
    })
}

/// Query strings: a bad value or an unknown parameter gets 400 `invalid_query`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _request| {
        let message = match &error {
            QueryPayloadError::Deserialize(inner) => format!("the query string does not fit: {inner}"),
            other => format!("the query string could not be read: {other}"),
        };
        let response =
            HttpResponse::BadRequest().json(ServiceError::invalid("invalid_query", message).to_public_body());
        actix_web::error::InternalError::from_response(error, response).into()
    })
}

/// Path parameters: a value of the wrong type gets 400 `invalid_path` (not a 404 or 500).
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _request| {
        let message = match &error {
            PathError::Deserialize(inner) => format!("the path does not fit: {inner}"),
            other => format!("the path could not be read: {other}"),
        };
        let response = HttpResponse::BadRequest().json(ServiceError::invalid("invalid_path", message).to_public_body());
        actix_web::error::InternalError::from_response(error, response).into()
    })
}
