//! The cluster transport: request-reply between nodes, on the node's cluster listener, over
//! frame links ([`crate::frames`]: one persistent connection per peer and calling thread, many
//! asks at once, binary frames around JSON bodies) unless `cluster.transport = "http"`, or over
//! HTTP/1.1 keep-alive: `POST /cluster/v1/ask/{service}/{message}` (what a node of an older
//! build, curl and debugging use).
//!
//! Every call carries the cluster credential (per request over HTTP, once per link over
//! frames), the caller's remaining time budget (`x-emporium-deadline-ms`) and its W3C trace
//! context. The reply is the handler's typed `Result`: over HTTP 200 with the reply, or the
//! error's status with the full `ServiceError`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_runtime::spans::{SpanKind, SpanTimer};
use emporium_runtime::{CallMeta, TraceParent};
use tracing::Instrument;

use crate::credential::ClusterSecret;
use crate::frame_link::FrameLinks;
use crate::service_ref::Cluster;
use crate::settings::ClusterTransport;

/// The header that carries the caller's remaining time budget, in milliseconds.
pub const DEADLINE_HEADER: &str = "x-emporium-deadline-ms";

/// How one attempt to reach a remote instance failed.
#[derive(Debug)]
pub enum AttemptError {
    /// The connection could not be made: the request was never delivered.
    Connect(String),
    /// The connection broke or timed out after sending: the request may have been handled.
    Transport(String),
    /// The instance answered with an error.
    Reply(ServiceError),
}

/// One ask on its way to another node.
#[derive(Debug, Clone)]
pub struct OutgoingAsk<'a> {
    /// The node's cluster listener, `host:port`.
    pub address: &'a str,
    /// The service.
    pub service: &'a str,
    /// The message's name.
    pub message: &'a str,
    /// The message, JSON.
    pub body: Bytes,
    /// When the caller stops waiting.
    pub deadline: Instant,
    /// The caller's trace context.
    pub trace: Option<TraceParent>,
}

/// The client side of the transport.
#[derive(Clone)]
pub struct RemoteTransport {
    http: reqwest::Client,
    secret: ClusterSecret,
    frames: Arc<FrameLinks>,
    /// Whether asks go over frame links (`cluster.transport`, applied live).
    use_frames: Arc<AtomicBool>,
}

impl RemoteTransport {
    /// A transport that sends `secret` with every call.
    pub fn new(secret: ClusterSecret) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(300))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .http1_only()
            .build()
            .expect("a plain HTTP client builds");
        RemoteTransport {
            http,
            frames: Arc::new(FrameLinks::new(secret.clone())),
            secret,
            use_frames: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Chooses how asks leave this node from now on.
    pub fn set_kind(&self, kind: ClusterTransport) {
        self.use_frames.store(kind == ClusterTransport::Frames, Ordering::Relaxed);
    }

    /// Sends one ask to its node: over this thread's frame link to it, or over HTTP when
    /// `cluster.transport = "http"` or that node speaks only HTTP.
    pub async fn send(&self, ask: OutgoingAsk<'_>) -> Result<Bytes, AttemptError> {
        if self.use_frames.load(Ordering::Relaxed)
            && let Some(result) = self.frames.send(&ask).await
        {
            return result;
        }
        self.send_http(ask).await
    }

    /// Sends one ask to its node over HTTP.
    async fn send_http(&self, ask: OutgoingAsk<'_>) -> Result<Bytes, AttemptError> {
        let OutgoingAsk { address, service, message, body, deadline, trace } = ask;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(AttemptError::Reply(ServiceError::timeout("deadline passed before sending")));
        }
        let mut request = self
            .http
            .post(format!("http://{address}/cluster/v1/ask/{service}/{message}"))
            .header(reqwest::header::AUTHORIZATION, self.secret.header_value())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DEADLINE_HEADER, remaining.as_millis().max(1).to_string())
            .timeout(remaining)
            .body(body);
        if let Some(trace) = trace {
            request = request.header("traceparent", trace.to_string());
        }
        let response = request.send().await.map_err(|error| {
            if error.is_connect() {
                AttemptError::Connect(format!("{address}: {error}"))
            } else if error.is_timeout() {
                AttemptError::Reply(ServiceError::timeout(format!("{service} at {address} did not answer in time")))
            } else {
                AttemptError::Transport(format!("{address}: {error}"))
            }
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| AttemptError::Transport(format!("{address}: {error}")))?;
        if status.is_success() {
            return Ok(body);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            tracing::error!(
                address,
                "a node refused this node's cluster credential: every node of a cluster needs the same EMPORIUM_CLUSTER_SECRET"
            );
        }
        let error = read_error_reply(&body).unwrap_or_else(|| {
            ServiceError::new(
                ErrorKind::from_http_status(status.as_u16()),
                "remote_error",
                format!("{service} at {address} answered {status}"),
            )
        });
        Err(AttemptError::Reply(error))
    }
}

/// A refused ask, in the public envelope (`{"error": {...}}`) with the whole [`ServiceError`]
/// inside (its `kind`, `details` and `retryAfterSecs` too), so the calling node rebuilds it.
fn error_response(error: &ServiceError) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(error.http_status())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(ErrorReply { error: error.clone() })
}

/// The body of a refused ask.
#[derive(serde::Serialize, serde::Deserialize)]
struct ErrorReply {
    error: ServiceError,
}

/// The [`ServiceError`] of a refused ask's body: the envelope, or (from a node of an older
/// version) the bare error.
fn read_error_reply(body: &[u8]) -> Option<ServiceError> {
    serde_json::from_slice::<ErrorReply>(body)
        .map(|reply| reply.error)
        .or_else(|_| serde_json::from_slice::<ServiceError>(body))
        .ok()
}

/// Hands one ask that came from another node (over HTTP or a frame link) to the local service
/// and records it: the server span, the `cluster_ask` log span, the cluster request metrics.
pub(crate) async fn answer_ask(
    cluster: &Cluster,
    service: String,
    message: String,
    body: Vec<u8>,
    deadline: Option<Instant>,
    caller_trace: Option<TraceParent>,
    started: Instant,
) -> Result<Vec<u8>, ServiceError> {
    let trace = caller_trace.map(|caller| caller.child());
    let Some(endpoint) = cluster.local(&service) else {
        return Err(ServiceError::unavailable("unknown_service", format!("this node does not run service {service}")));
    };
    if !endpoint.is_up() {
        return Err(ServiceError::unavailable("service_down", format!("{service} is down on this node")));
    }
    let span = tracing::info_span!(
        "cluster_ask",
        service = %service,
        message = %message,
        trace_id = trace.map(|trace| trace.trace_id_hex()).unwrap_or_default(),
        span_id = trace.map(|trace| trace.span_id_hex()).unwrap_or_default(),
    );
    let server_span = trace.and_then(|trace| {
        let name = format!("{service}/{message}");
        let mut span = SpanTimer::start(name, SpanKind::Server, trace, caller_trace.map(|caller| caller.span_id))?;
        span.attribute("rpc.system", "emporium")
            .attribute("rpc.service", service.as_str())
            .attribute("rpc.method", message.as_str());
        Some(span)
    });
    let meta = CallMeta { deadline, trace };
    let answer = endpoint.ask_json(&message, body, meta);
    let result = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), answer).instrument(span).await {
            Ok(result) => result,
            Err(_) => {
                Err(ServiceError::timeout(format!("{service}/{message} did not finish within the caller's deadline")))
            }
        },
        None => answer.instrument(span).await,
    };
    if let Some(span) = server_span {
        span.finish(result.as_ref().err().filter(|error| error.http_status() >= 500).map(|error| error.code.clone()));
    }
    let status_label = match &result {
        Ok(_) => "200".to_string(),
        Err(error) => error.http_status().to_string(),
    };
    // Message names come from the URL: an unknown one is labelled as such, so the label set
    // stays the set of messages the services define.
    let message = match &result {
        Err(error) if error.code == "unknown_message" => "unknown".to_string(),
        _ => message,
    };
    metrics::histogram!("emporium_cluster_request_duration_seconds", "service" => service.clone(), "message" => message.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("emporium_cluster_requests_total", "service" => service, "message" => message, "status" => status_label)
        .increment(1);
    result
}

/// `POST /cluster/v1/ask/{service}/{message}`: hands the message to the local service.
pub async fn serve_ask(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    cluster: web::Data<Cluster>,
    secret: web::Data<ClusterSecret>,
) -> HttpResponse {
    let (service, message) = path.into_inner();
    if !secret.authorizes(&request) {
        let error = ServiceError::new(
            ErrorKind::Unauthenticated,
            "cluster_credential_required",
            "cluster endpoints need the cluster credential",
        );
        return error_response(&error);
    }
    let started = Instant::now();
    let deadline = request
        .headers()
        .get(DEADLINE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .map(|millis| started + Duration::from_millis(millis));
    let caller_trace =
        request.headers().get("traceparent").and_then(|value| value.to_str().ok()).and_then(TraceParent::parse);
    let result = answer_ask(&cluster, service, message, body.to_vec(), deadline, caller_trace, started).await;
    match result {
        Ok(reply) => HttpResponse::Ok().content_type("application/json").body(reply),
        Err(error) => error_response(&error),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    #[test]
    fn a_refused_ask_is_the_public_envelope_and_reads_back_whole() {
        let mut error = ServiceError::new(ErrorKind::Unavailable, "inventory_unavailable", "no instance");
        error.retry_after_secs = Some(2);
        let response = error_response(&error);
        assert_eq!(response.status().as_u16(), 503);
        let body = response.into_body().try_into_bytes().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], "inventory_unavailable");
        assert_eq!(read_error_reply(&body), Some(error.clone()));
        assert_eq!(read_error_reply(&serde_json::to_vec(&error).unwrap()), Some(error), "an older node's bare error");
        assert_eq!(read_error_reply(b"<html>"), None);
    }
}
