//! The node's operator endpoints on its cluster listener, what the gateway's supervisor
//! dashboard reads and acts through (cluster credential, or an admin access token):
//!
//! - `GET /admin/v1/supervision`: the supervision tree, call sites, process facts (uptime,
//!   memory, CPU), the log level, whether chaos is enabled, and the sections services add
//!   (the bus's outbox lag and consumers).
//! - `POST /admin/v1/actions`: one [`NodeAction`] (restart an actor or a service, change the
//!   log level, force a breaker, inject a fault where `chaos.enabled`, retry or discard dead
//!   letters). Each is logged with the operator the caller names in `x-emporium-operator`.
//! - `GET /admin/v1/traces/{trace_id}`: the log lines and spans this node still holds of a
//!   trace ([`crate::recent`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_runtime::control::{ControlError, InjectedFault, OperatorControl};
use futures::future::BoxFuture;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::call_site::ForcedBreaker;
use crate::node::NodeState;

/// The header in which the gateway names the operator behind an action (for the log).
pub const OPERATOR_HEADER: &str = "x-emporium-operator";

/// The longest a breaker may be forced, and the longest an actor may be stalled.
const MAX_FORCE: Duration = Duration::from_secs(3600);
const MAX_STALL: Duration = Duration::from_secs(60);

/// A fault to inject, as the dashboard names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultName {
    /// The actor panics.
    Panic,
    /// The actor fails with a fatal error.
    Error,
    /// The actor stops taking messages for `millis`.
    Stall,
}

/// What to do with a consumer's dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterOperation {
    /// Put them back on the consumer's queue, to be handled again.
    Retry,
    /// Drop them for good.
    Discard,
}

/// An operator's action on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum NodeAction {
    /// Restart one actor with fresh state.
    RestartActor {
        /// Its path (`order/saga`).
        actor: String,
    },
    /// Restart every actor of a service and clear its restart window (revives a DOWN one).
    RestartService {
        /// The service.
        service: String,
    },
    /// Change the log filter until the next configuration change or restart.
    SetLogLevel {
        /// A tracing filter (`debug`, `info,emporium_bus=debug`).
        level: String,
    },
    /// Hold the breaker of the calls to `service` open or closed for `seconds`.
    ForceBreaker {
        /// The called service.
        service: String,
        /// `open` or `closed`.
        state: ForcedBreaker,
        /// For how long (at most an hour).
        seconds: u64,
    },
    /// Inject a fault into an actor (only where `chaos.enabled`).
    InjectFault {
        /// Its path.
        actor: String,
        /// Which fault.
        fault: FaultName,
        /// How long a stall lasts (default 2000, at most 60000).
        #[serde(default)]
        millis: Option<u64>,
    },
    /// Put a consumer queue's dead letters back on it.
    RetryDeadLetters {
        /// The consumer's queue.
        queue: String,
    },
    /// Drop a consumer queue's dead letters.
    DiscardDeadLetters {
        /// The consumer's queue.
        queue: String,
    },
}

/// A section a service adds to the supervision snapshot (the bus: `outbox`, `consumers`).
pub type StatusSection = Arc<dyn Fn() -> Value + Send + Sync>;

/// Retries or discards the dead letters of one consumer queue; answers how many.
pub type DeadLetterControl = Arc<dyn Fn(DeadLetterOperation) -> BoxFuture<'static, Result<u64, String>> + Send + Sync>;

/// What services add to the node's operator endpoints.
#[derive(Clone)]
pub struct NodeAdmin {
    inner: Arc<AdminInner>,
}

struct AdminInner {
    started: Instant,
    sections: RwLock<BTreeMap<String, StatusSection>>,
    dead_letters: RwLock<BTreeMap<String, DeadLetterControl>>,
}

impl Default for NodeAdmin {
    fn default() -> Self {
        NodeAdmin {
            inner: Arc::new(AdminInner {
                started: Instant::now(),
                sections: RwLock::default(),
                dead_letters: RwLock::default(),
            }),
        }
    }
}

impl NodeAdmin {
    /// Adds `name` to the supervision snapshot, computed by `section` on each read. A later
    /// section of the same name replaces the earlier one.
    pub fn add_section(&self, name: &str, section: StatusSection) {
        self.inner.sections.write().insert(name.to_string(), section);
    }

    /// Lets operators retry or discard the dead letters of the consumer queue `queue`.
    pub fn add_dead_letters(&self, queue: &str, control: DeadLetterControl) {
        self.inner.dead_letters.write().insert(queue.to_string(), control);
    }

    fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

/// The gateway's client of the nodes' operator endpoints, with the cluster credential.
#[derive(Clone)]
pub struct NodeAdminClient {
    http: reqwest::Client,
    secret: crate::credential::ClusterSecret,
}

impl NodeAdminClient {
    /// A client sending `secret`; every call gives up after `timeout`.
    pub fn new(secret: crate::credential::ClusterSecret, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_millis(500)))
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .expect("a plain HTTP client builds");
        NodeAdminClient { http, secret }
    }

    /// `GET /admin/v1/supervision` of the node at `address`.
    pub async fn supervision(&self, address: &str) -> Result<Value, ServiceError> {
        self.call(reqwest::Method::GET, address, "/admin/v1/supervision", None, None).await
    }

    /// `GET /admin/v1/traces/{trace_id}` of the node at `address`.
    pub async fn trace(&self, address: &str, trace_id: &str) -> Result<Value, ServiceError> {
        self.call(reqwest::Method::GET, address, &format!("/admin/v1/traces/{trace_id}"), None, None).await
    }

    /// `POST /admin/v1/actions` on the node at `address`, on behalf of `operator`; answers the
    /// node's account of what it did, or its refusal.
    pub async fn act(&self, address: &str, action: &NodeAction, operator: &str) -> Result<String, ServiceError> {
        let body = serde_json::to_value(action).expect("actions serialize");
        let answer = self.call(reqwest::Method::POST, address, "/admin/v1/actions", Some(body), Some(operator)).await?;
        Ok(answer["detail"].as_str().unwrap_or_default().to_string())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        address: &str,
        path: &str,
        body: Option<Value>,
        operator: Option<&str>,
    ) -> Result<Value, ServiceError> {
        let mut request = self
            .http
            .request(method, format!("http://{address}{path}"))
            .header(reqwest::header::AUTHORIZATION, self.secret.header_value());
        if let Some(operator) = operator {
            request = request.header(OPERATOR_HEADER, operator);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unreachable = |error: reqwest::Error| {
            ServiceError::unavailable("node_unreachable", format!("the node at {address} did not answer: {error}"))
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.map_err(unreachable)?;
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let code = answer["error"]["code"].as_str().unwrap_or("node_error").to_string();
        let message = answer["error"]["message"].as_str().unwrap_or("the node refused").to_string();
        Err(ServiceError::new(ErrorKind::from_http_status(status), code, message))
    }
}

fn refused(status: ErrorKind, code: &'static str, message: impl Into<String>) -> HttpResponse {
    crate::node::json_error(&ServiceError::new(status, code, message))
}

fn unauthorized() -> HttpResponse {
    refused(
        ErrorKind::Unauthenticated,
        "cluster_credential_required",
        "the operator endpoints need the cluster credential or an admin access token",
    )
}

/// `GET /admin/v1/supervision`.
pub(crate) async fn supervision(request: HttpRequest, state: web::Data<NodeState>) -> HttpResponse {
    if !state.operator_access.authorizes(&request) {
        return unauthorized();
    }
    let directory = state.cluster.directory().snapshot();
    let process = crate::telemetry::ProcessStats::read();
    let sections: BTreeMap<String, Value> =
        state.admin.inner.sections.read().iter().map(|(name, section)| (name.clone(), section())).collect();
    HttpResponse::Ok().json(json!({
        "node": state.tree.snapshot(),
        "callSites": state.cluster.call_sites().snapshot(),
        "localServices": state.cluster.local_services(),
        "directory": { "version": directory.version, "stale": directory.stale, "lastSyncedAt": directory.last_synced_at, "numInstances": directory.instances.len() },
        "configVersion": state.live_config.applied_version(),
        "uptimeSeconds": state.admin.uptime().as_secs_f64(),
        "process": process.map(|process| json!({
            "rssBytes": process.resident_bytes,
            "cpuSeconds": process.cpu_seconds,
            "threads": process.threads,
            "openFds": process.open_fds,
        })),
        "logLevel": state.telemetry.level(),
        "chaosEnabled": state.live_config.current().chaos.enabled,
        "sections": sections,
    }))
}

/// `GET /admin/v1/traces/{trace_id}`.
pub(crate) async fn trace(request: HttpRequest, state: web::Data<NodeState>, path: web::Path<String>) -> HttpResponse {
    if !state.operator_access.authorizes(&request) {
        return unauthorized();
    }
    let trace_id = path.into_inner().to_ascii_lowercase();
    if trace_id.len() != 32 || !trace_id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return refused(ErrorKind::InvalidInput, "invalid_trace_id", "a trace id is 32 hexadecimal digits");
    }
    HttpResponse::Ok().json(crate::recent::lookup(&trace_id))
}

/// `POST /admin/v1/actions`.
pub(crate) async fn act(request: HttpRequest, state: web::Data<NodeState>, body: web::Bytes) -> HttpResponse {
    if !state.operator_access.authorizes(&request) {
        return unauthorized();
    }
    let action: NodeAction = match serde_json::from_slice(&body) {
        Ok(action) => action,
        Err(error) => {
            let (_, message) = crate::input_errors::describe_json_error(&error);
            return refused(ErrorKind::InvalidInput, "invalid_action", message);
        }
    };
    let operator = request
        .headers()
        .get(OPERATOR_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("cluster credential")
        .to_string();
    let outcome = perform(&state, &action).await;
    match &outcome {
        Ok(detail) => tracing::warn!(operator = %operator, ?action, detail = %detail, "operator action done"),
        Err(_) => tracing::warn!(operator = %operator, ?action, "operator action refused"),
    }
    match outcome {
        Ok(detail) => HttpResponse::Ok().json(json!({ "detail": detail })),
        Err(response) => response,
    }
}

async fn perform(state: &NodeState, action: &NodeAction) -> Result<String, HttpResponse> {
    match action {
        NodeAction::RestartActor { actor } => {
            state.tree.control_actor(actor, OperatorControl::Restart).await.map_err(control_refusal)?;
            Ok(format!("{actor} restarted"))
        }
        NodeAction::RestartService { service } => {
            state.tree.restart_service(service).map_err(control_refusal)?;
            Ok(format!("every actor of {service} restarted"))
        }
        NodeAction::SetLogLevel { level } => {
            state
                .telemetry
                .set_level(level)
                .map_err(|error| refused(ErrorKind::InvalidInput, "invalid_log_level", error))?;
            Ok(format!("log level {level}"))
        }
        NodeAction::ForceBreaker { service, state: forced, seconds } => {
            let duration = Duration::from_secs(*seconds);
            if duration.is_zero() || duration > MAX_FORCE {
                return Err(refused(ErrorKind::InvalidInput, "invalid_action", "seconds must be between 1 and 3600"));
            }
            let site = state.cluster.call_sites().existing(service).ok_or_else(|| {
                refused(ErrorKind::NotFound, "unknown_call_site", format!("this node has made no call to {service}"))
            })?;
            site.force(*forced, duration);
            Ok(format!("breaker for calls to {service} held {forced:?} for {seconds} s").to_lowercase())
        }
        NodeAction::InjectFault { actor, fault, millis } => {
            if !state.live_config.current().chaos.enabled {
                return Err(refused(
                    ErrorKind::Conflict,
                    "chaos_disabled",
                    "fault injection is off on this node: set chaos.enabled (EMPORIUM__CHAOS__ENABLED=true)",
                ));
            }
            let injected = match fault {
                FaultName::Panic => InjectedFault::Panic,
                FaultName::Error => InjectedFault::Error,
                FaultName::Stall => {
                    let stall = Duration::from_millis(millis.unwrap_or(2000));
                    if stall.is_zero() || stall > MAX_STALL {
                        return Err(refused(
                            ErrorKind::InvalidInput,
                            "invalid_action",
                            "millis must be between 1 and 60000",
                        ));
                    }
                    InjectedFault::Stall(stall)
                }
            };
            state.tree.control_actor(actor, OperatorControl::Inject(injected)).await.map_err(control_refusal)?;
            Ok(format!("{fault:?} injected into {actor}").to_lowercase())
        }
        NodeAction::RetryDeadLetters { queue } => dead_letters(state, queue, DeadLetterOperation::Retry).await,
        NodeAction::DiscardDeadLetters { queue } => dead_letters(state, queue, DeadLetterOperation::Discard).await,
    }
}

async fn dead_letters(state: &NodeState, queue: &str, operation: DeadLetterOperation) -> Result<String, HttpResponse> {
    let control = state.admin.inner.dead_letters.read().get(queue).cloned().ok_or_else(|| {
        refused(ErrorKind::NotFound, "unknown_queue", format!("no consumer queue {queue} on this node"))
    })?;
    let count = control(operation).await.map_err(|error| {
        refused(ErrorKind::Unavailable, "dead_letters_unavailable", format!("the dead letters of {queue}: {error}"))
    })?;
    Ok(match operation {
        DeadLetterOperation::Retry => format!("{count} dead letter(s) put back on {queue}"),
        DeadLetterOperation::Discard => format!("{count} dead letter(s) of {queue} discarded"),
    })
}

fn control_refusal(error: ControlError) -> HttpResponse {
    match error {
        ControlError::UnknownActor(_) => refused(ErrorKind::NotFound, "unknown_actor", error.to_string()),
        ControlError::UnknownService(_) => refused(ErrorKind::NotFound, "unknown_service", error.to_string()),
        ControlError::Refused(_) => refused(ErrorKind::Conflict, "action_refused", error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_the_dashboard_sends_them() {
        let action: NodeAction = serde_json::from_value(
            json!({"action": "inject_fault", "actor": "order/saga", "fault": "stall", "millis": 500}),
        )
        .unwrap();
        assert_eq!(
            action,
            NodeAction::InjectFault { actor: "order/saga".into(), fault: FaultName::Stall, millis: Some(500) }
        );
        let action: NodeAction = serde_json::from_value(
            json!({"action": "force_breaker", "service": "inventory", "state": "open", "seconds": 30}),
        )
        .unwrap();
        assert_eq!(
            action,
            NodeAction::ForceBreaker { service: "inventory".into(), state: ForcedBreaker::Open, seconds: 30 }
        );
        assert!(serde_json::from_value::<NodeAction>(json!({"action": "format_disk"})).is_err());
    }
}
