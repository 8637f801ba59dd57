//! What a service's public HTTP routes use at the edge: errors as API.md's JSON, the verified
//! caller and the request context the gateway put on the request, and extractor settings that
//! turn bad input into clear 4xx answers instead of 500s. The helpers route handlers share
//! (asking their service, list queries, OpenAPI pieces) are in [`crate::routes_kit`].
//!
//! **Error policy.** Every error is answered as `{"error": {"code", "message", ...}}`
//! ([`crate::routes_kit::ErrorBody`]), by its [`ErrorKind`]:
//! - a client mistake is a 4xx with the code the service chose (`invalid_page`,
//!   `order_not_found`, ...), never a 500;
//! - an unavailable dependency (a database that is unreachable or busy, the broker, another
//!   service) is 503 `<dependency>_unavailable` with `Retry-After` ([`unavailable_dependency`],
//!   [`store_failure`]);
//! - a bug ([`ErrorKind::Internal`], [`ErrorKind::Fault`]) is 500 `internal_error` with a fixed
//!   message and the request id as `requestId`. Its cause is logged at error level where it
//!   happened ([`internal_failure`]) and never reaches the client.

use std::error::Error as StdError;
use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_runtime::{CallMeta, TraceParent};
use emporium_store::StoreError;

use crate::input_errors::{describe_json_error, describe_serde_message};

/// Default largest body the edge accepts.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The code every bug is answered with.
pub const INTERNAL_ERROR: &str = "internal_error";

/// The message every bug is answered with: it names nothing of the cause.
pub const INTERNAL_ERROR_MESSAGE: &str = "the server failed to handle the request";

/// A [`ServiceError`] answered over HTTP as an `ErrorBody`, with the id of the request it
/// answers when the handler knew it (a 500 shows it as `requestId`).
#[derive(Debug)]
pub struct ApiError {
    /// The failure.
    pub error: ServiceError,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
}

impl ApiError {
    /// `error`, for the request of `context`.
    pub fn for_request(error: ServiceError, context: &RequestContext) -> ApiError {
        let request_id = Some(context.request_id.clone()).filter(|request_id| !request_id.is_empty());
        ApiError { error, request_id }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.error)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError { error, request_id: None }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.error)
    }

    fn error_response(&self) -> HttpResponse {
        request_error_response(&self.error, self.request_id.as_deref())
    }
}

fn status_of(error: &ServiceError) -> StatusCode {
    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The JSON response for `error` when the request id is unknown; see
/// [`request_error_response`].
pub fn error_response(error: &ServiceError) -> HttpResponse {
    request_error_response(error, None)
}

/// Whether `response` is an error whose body is not JSON: none of ours, actix-web's own (a body
/// over the limit while it is read, say). Both listeners rewrite those with [`envelope_for`].
pub fn is_bare_error<B>(response: &actix_web::dev::ServiceResponse<B>) -> bool {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    response.status().as_u16() >= 400 && !is_json
}

/// The code and message of the envelope for a status actix-web or actix-http answered with on
/// its own.
pub fn bare_error_words(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        413 => ("payload_too_large", "the body is larger than the limit"),
        415 => ("unsupported_media_type", "send the body as application/json"),
        404 => ("not_found", "no such resource"),
        405 => ("method_not_allowed", "this path does not take this method"),
        408 => ("request_timeout", "the request took too long to arrive"),
        414 => ("uri_too_long", "the request's path and query are longer than the limit"),
        431 => ("headers_too_large", "the request's headers are larger than the limit"),
        400..=499 => ("bad_request", "the request could not be read as HTTP"),
        _ => ("internal_error", INTERNAL_ERROR_MESSAGE),
    }
}

/// The error envelope for a status actix-web answered with on its own.
pub fn envelope_for(status: StatusCode) -> HttpResponse {
    let (code, message) = bare_error_words(status);
    let mut response = error_response(&ServiceError::new(ErrorKind::from_http_status(status.as_u16()), code, message));
    *response.status_mut() = status;
    response
}

/// The JSON response for `error`, answering the request `request_id_opt`, by the module's error
/// policy: 429 and 503 carry `Retry-After`; a bug (500) is answered as `internal_error` with a
/// fixed message and `requestId`, and logged at error level.
pub fn request_error_response(error: &ServiceError, request_id_opt: Option<&str>) -> HttpResponse {
    let mut response = HttpResponse::build(status_of(error));
    if let Some(seconds) = error.retry_after_secs {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    } else if matches!(error.kind, ErrorKind::Unavailable | ErrorKind::RateLimited) {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    let body = match error.kind {
        ErrorKind::Fault | ErrorKind::Internal => {
            let request_id = request_id_opt.unwrap_or_default();
            tracing::error!(
                request_id,
                code = %error.code,
                message = %error.message,
                "a bug answered as 500 internal_error"
            );
            let public = ServiceError::new(error.kind, INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE).public_body();
            match request_id_opt {
                Some(request_id) => public.with_request_id(request_id),
                None => public,
            }
        }
        _ => error.public_body(),
    };
    response.json(body.to_json())
}

/// 500 `internal_error` for a bug of `service` (a statement the database refused, a broken
/// invariant, anything unexpected): `cause` and its chain are logged at error level here, and
/// the answer names none of it.
pub fn internal_failure(service: &str, cause: &(dyn StdError + 'static)) -> ServiceError {
    tracing::error!(service, error = %cause_chain(cause), "request failed on a bug");
    ServiceError::internal(INTERNAL_ERROR_MESSAGE)
}

/// 503 `code` with `Retry-After` for a dependency of `service` that is unavailable now
/// (`dependency` says which, in the message: "the order store"); `cause` is logged at warn level
/// and stays out of the answer.
pub fn unavailable_dependency(
    service: &str,
    code: impl Into<String>,
    dependency: &str,
    cause: &(dyn StdError + 'static),
) -> ServiceError {
    let code = code.into();
    tracing::warn!(service, code = %code, error = %cause_chain(cause), "a dependency is unavailable");
    ServiceError::unavailable(code, format!("{dependency} is unavailable; try again shortly"))
}

/// A failure of `service`'s SQL store: 503 `<service>_store_unavailable` when the database is
/// unreachable or busy ([`is_store_unavailable`]), else a bug (500 `internal_error`).
pub fn store_failure(service: &str, error: &StoreError) -> ServiceError {
    if is_store_unavailable(error) {
        unavailable_dependency(service, format!("{service}_store_unavailable"), &format!("the {service} store"), error)
    } else {
        internal_failure(service, error)
    }
}

/// Whether a store failure may go away on a retry: the database is unreachable, overloaded or
/// closing ([`StoreError::is_unavailable`]), or it gave up on this transaction because another
/// one was in the way ([`is_busy_database_code`]). A failed statement or a schema surprise is a
/// bug instead.
pub fn is_store_unavailable(error: &StoreError) -> bool {
    if error.is_unavailable() {
        return true;
    }
    match error {
        StoreError::Database(database_error) => database_error
            .as_database_error()
            .and_then(|server_error| server_error.code())
            .is_some_and(|code| is_busy_database_code(&code)),
        _ => false,
    }
}

/// Whether the error code a database server answered with means "busy, try again": on
/// MariaDB/MySQL (SQLSTATE) a connection exception (class `08`: too many connections, server
/// shutting down) or a deadlock victim (`40001`); on SQLite (extended result codes) a busy or
/// locked database (`5`, `6`, `261`, `517`).
pub fn is_busy_database_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "40001" | "5" | "6" | "261" | "517")
}

/// `error` and its sources, `: `-separated, for a log line.
fn cause_chain(error: &(dyn StdError + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Errors that print their source in their own message would repeat it.
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
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
            None => Err(missing_token().into()),
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
                Err(ServiceError::new(ErrorKind::Forbidden, "forbidden", "this route needs the admin role").into())
            }
            None => Err(missing_token().into()),
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
            JsonPayloadError::Deserialize(serde_error) => {
                let (code, message) = describe_json_error(serde_error);
                ServiceError::invalid(code, message)
            }
            _ => ServiceError::invalid("malformed_body", "the body could not be read"),
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
        let response = HttpResponse::BadRequest().json(invalid_query(&error).to_public_body());
        actix_web::error::InternalError::from_response(error, response).into()
    })
}

/// 400 `invalid_query` for a query string that does not fit what the route reads.
pub fn invalid_query(error: &QueryPayloadError) -> ServiceError {
    let message = match error {
        QueryPayloadError::Deserialize(inner) => {
            format!("the query string does not fit: {}", describe_serde_message(&inner.to_string()))
        }
        _ => "the query string could not be read".to_string(),
    };
    ServiceError::invalid("invalid_query", message)
}

/// Path parameters: a value of the wrong type gets 400 `invalid_path` (not a 404 or 500).
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _request| {
        let message = match &error {
            PathError::Deserialize(inner) => {
                format!("the path does not fit: {}", describe_serde_message(&inner.to_string()))
            }
            _ => "the path could not be read".to_string(),
        };
        let response = HttpResponse::BadRequest().json(ServiceError::invalid("invalid_path", message).to_public_body());
        actix_web::error::InternalError::from_response(error, response).into()
    })
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    fn answer(response: HttpResponse) -> (u16, Option<String>, serde_json::Value) {
        let status = response.status().as_u16();
        let retry_after =
            response.headers().get(header::RETRY_AFTER).and_then(|value| value.to_str().ok()).map(str::to_string);
        let bytes = response.into_body().try_into_bytes().unwrap_or_default();
        (status, retry_after, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn a_bug_is_500_internal_error_with_the_request_id_and_without_its_cause() {
        for error in [ServiceError::internal("column secret_column missing"), ServiceError::fault("panicked at x.rs")] {
            let (status, retry_after, body) = answer(request_error_response(&error, Some("req-7")));
            assert_eq!((status, retry_after), (500, None));
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "requestId": "req-7"}})
            );
        }
        let (_, _, body) = answer(error_response(&ServiceError::internal("x")));
        assert!(body["error"].get("requestId").is_none());
    }

    #[test]
    fn an_api_error_for_a_request_names_it_on_a_500_only() {
        let context = RequestContext { request_id: "req-8".into(), trace: None, deadline: None, client_address: None };
        let bug = ApiError::for_request(ServiceError::internal("x"), &context);
        assert_eq!(answer(bug.error_response()).2["error"]["requestId"], "req-8");
        let mistake = ApiError::for_request(ServiceError::invalid("invalid_page", "size must be 1 to 100"), &context);
        assert_eq!(
            answer(mistake.error_response()),
            (400, None, serde_json::json!({"error": {"code": "invalid_page", "message": "size must be 1 to 100"}}))
        );
        let unknown = RequestContext { request_id: String::new(), ..context };
        assert_eq!(ApiError::for_request(ServiceError::internal("x"), &unknown).request_id, None);
    }

    #[test]
    fn an_unavailable_dependency_is_503_with_retry_after() {
        let error = ServiceError::new(ErrorKind::Unavailable, "inventory_unavailable", "no instance");
        let (status, retry_after, body) = answer(error_response(&error));
        assert_eq!(
            (status, retry_after.as_deref(), body["error"]["code"].as_str()),
            (503, Some("1"), Some("inventory_unavailable"))
        );
    }

    #[tokio::test]
    async fn store_failures_are_503_when_the_database_is_away_or_busy_and_500_otherwise() {
        let path = std::env::temp_dir().join(format!("edge-test-{}.db", uuid::Uuid::new_v4().simple()));
        let database = emporium_store::Database::open_sqlite_file(&path).await.unwrap();
        database.close().await;
        let pool_closed = database.begin().await.err().unwrap();
        let _ = std::fs::remove_file(&path);
        let closed = store_failure("order", &pool_closed);
        assert_eq!((closed.http_status(), closed.code.as_str()), (503, "order_store_unavailable"));
        assert_eq!(closed.retry_after_secs, Some(1));
        assert_eq!(closed.message, "the order store is unavailable; try again shortly");
        let bug = store_failure("order", &StoreError::UnsupportedUrl("postgres://secret@host".into()));
        assert_eq!(
            (bug.http_status(), bug.code.as_str(), bug.message.as_str()),
            (500, "internal_error", INTERNAL_ERROR_MESSAGE)
        );
        for code in ["40001", "08004", "08S01", "5", "517"] {
            assert!(is_busy_database_code(code), "{code}");
        }
        for code in ["23000", "42S02", "HY000", "1", "19"] {
            assert!(!is_busy_database_code(code), "{code}");
        }
    }

    #[test]
    fn the_cause_chain_is_complete_and_not_repeated() {
        let inner = std::io::Error::other("connection refused");
        let outer = anyhow::Error::new(inner).context("connecting to the order store");
        assert_eq!(cause_chain(outer.as_ref()), "connecting to the order store: connection refused");
    }
}
