//! The edge middleware every public request passes: request id, trace, deadline, body limit,
//! token check, RED metrics, the access log line, and the `x-request-id` and `traceparent`
//! response headers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};
use emporium_cluster::edge::{RequestContext, envelope_for, error_response, is_bare_error};
use emporium_runtime::spans::{SpanKind, SpanTimer};
use emporium_runtime::{CallMeta, LocalRoute, TraceParent};
use tracing::Instrument;

use crate::active_users::{ActiveUsers, UserCheck};
use crate::error::GatewayError;
use crate::messages::RefreshSigningKeys;
use crate::verifier::{TokenVerifier, Verdict};

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The W3C trace context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the edge middleware needs.
pub struct EdgeState {
    /// Verifies access tokens.
    pub verifier: Arc<TokenVerifier>,
    /// Asks the key refresher actor for fresh keys.
    pub refresh_keys: LocalRoute<RefreshSigningKeys>,
    /// Whether users still exist.
    pub active_users: ActiveUsers,
    /// Largest body accepted.
    pub body_limit: usize,
    /// Time budget of one request.
    pub request_timeout: Duration,
}

fn request_id_of(request: &ServiceRequest) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 128 && value.bytes().all(|byte| byte.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn decorate(response: &mut HttpResponse, request_id: &str, trace: &TraceParent) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
        headers.insert(TRACEPARENT, value);
    }
}

/// Verifies the bearer token of the request, if any: `Ok(None)` without one.
async fn authenticate(
    state: &EdgeState,
    request: &ServiceRequest,
    meta: &CallMeta,
) -> Result<Option<emporium_contracts::identity::Caller>, GatewayError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| GatewayError::MalformedAuthorization)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(GatewayError::MalformedAuthorization)?;
    let caller = match state.verifier.verify(token) {
        Verdict::Valid(caller) => caller,
        Verdict::Invalid(error) => return Err(error),
        Verdict::UnknownKey(kid) => {
            // The keys may have rotated, or this gateway has just started: ask auth for the
            // JWKS (rate limited by the refresher). When auth cannot answer, the token may be
            // valid, so the answer is 503 `auth_unavailable`, never 401.
            if let Err(error) = state.refresh_keys.ask(RefreshSigningKeys {}, meta.clone()).await {
                tracing::warn!(code = %error.code, "could not refresh the verification keys");
                return Err(GatewayError::AuthUnavailable);
            }
            match state.verifier.verify(token) {
                Verdict::Valid(caller) => caller,
                Verdict::Invalid(error) => return Err(error),
                Verdict::UnknownKey(_) => {
                    return Err(GatewayError::InvalidToken(format!("unknown signing key {kid:?}")));
                }
            }
        }
    };
    match state.active_users.check(&caller.user_id, meta).await {
        UserCheck::Active => Ok(Some(caller)),
        UserCheck::Gone => Err(GatewayError::UnknownUser),
        UserCheck::Unanswered => Err(GatewayError::UserCheckUnanswered),
    }
}

/// The middleware (for `actix_web::middleware::from_fn`).
pub async fn edge(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let started = Instant::now();
    let state = request.app_data::<web::Data<EdgeState>>().cloned().expect("the gateway installs its state");
    let request_id = request_id_of(&request);
    let caller_trace =
        request.headers().get(&TRACEPARENT).and_then(|value| value.to_str().ok()).and_then(TraceParent::parse);
    let trace = caller_trace.map(|caller| caller.child()).unwrap_or_else(TraceParent::new_root);
    let method = emporium_cluster::telemetry::method_label(request.method());
    let request_method = request.method().clone();
    let request_path = truncated(request.path(), 256).to_string();
    let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let mut server_span = emporium_runtime::spans::enabled()
        .then(|| {
            let name = if route == "unmatched" { method.to_string() } else { format!("{method} {route}") };
            SpanTimer::start(name, SpanKind::Server, trace, caller_trace.map(|caller| caller.span_id))
        })
        .flatten();
    let deadline = started + state.request_timeout;
    let meta = CallMeta { deadline: Some(deadline), trace: Some(trace) };

    let refusal = match request.headers().get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()) {
        Some(length) if length.parse::<usize>().map_or(true, |length| length > state.body_limit) => {
            Some(GatewayError::PayloadTooLarge { limit: state.body_limit })
        }
        _ => None,
    };
    let mut user_id = None;
    let refusal = match refusal {
        Some(refusal) => Some(refusal),
        None => match authenticate(&state, &request, &meta).await {
            Ok(Some(caller)) => {
                user_id = Some(caller.user_id.clone());
                request.extensions_mut().insert(caller);
                None
            }
            Ok(None) => None,
            Err(error) => Some(error),
        },
    };
    let response = if let Some(refusal) = refusal {
        let mut response = error_response(&refusal.to_service_error());
        if refusal.http_status() == 413 {
            *response.status_mut() = actix_web::http::StatusCode::PAYLOAD_TOO_LARGE;
        }
        if refusal.http_status() == 401 {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        decorate(&mut response, &request_id, &trace);
        request.into_response(response).map_into_right_body()
    } else {
        let client_address = request.peer_addr().map(|address| address.ip().to_string());
        request.extensions_mut().insert(RequestContext {
            request_id: request_id.clone(),
            trace: Some(trace),
            deadline: Some(deadline),
            client_address,
        });
        let span = tracing::info_span!(
            "http_request",
            method = %method,
            route = %route,
            request_id = %request_id,
            trace_id = %trace.trace_id_hex(),
            span_id = %trace.span_id_hex(),
        );
        // The deadline travels with every ask made for this request (RequestContext), so a
        // slow dependency answers 504 on its own; no second timer is needed here.
        let response = next.call(request).instrument(span).await?;
        let mut response = if is_bare_error(&response) {
            // An error actix-web answered itself (a body over the limit without a
            // Content-Length, say): the envelope, like every other error.
            let (http_request, bare) = response.into_parts();
            ServiceResponse::new(http_request, envelope_for(bare.status())).map_into_right_body()
        } else {
            response.map_into_left_body()
        };
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID, value);
        }
        if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
            headers.insert(TRACEPARENT, value);
        }
        response
    };
    let elapsed = started.elapsed();
    // The access log: one line per public request. `emporium::access=warn` in the log level
    // silences it.
    tracing::info!(
        target: "emporium::access",
        method = %request_method,
        route = %route,
        path = %request_path,
        status = response.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %request_id,
        trace_id = %trace.trace_id_hex(),
        span_id = %trace.span_id_hex(),
        user_id = user_id.as_deref(),
        "request"
    );
    if let Some(mut span) = server_span.take() {
        let status = response.status().as_u16();
        span.attribute("http.request.method", method)
            .attribute("http.route", route.as_str())
            .attribute("url.path", request_path.as_str())
            .attribute("http.response.status_code", i64::from(status))
            .attribute("emporium.request_id", request_id.as_str());
        if let Some(user_id) = &user_id {
            span.attribute("enduser.id", user_id.as_str());
        }
        span.finish((status >= 500).then(|| status.to_string()));
    }
    let status = response.status().as_u16().to_string();
    metrics::histogram!("emporium_http_request_duration_seconds", "listener" => "public", "route" => route.clone(), "method" => method)
        .record(elapsed.as_secs_f64());
    metrics::counter!("emporium_http_requests_total", "listener" => "public", "route" => route, "method" => method, "status" => status)
        .increment(1);
    Ok(response)
}
