//! The supervisor dashboard, served by the gateway (docs/OPERATIONS.md, "The supervisor
//! dashboard"):
//!
//! - `GET /dashboard` and `/dashboard/assets/*`: the page, its script, styles and charts, all
//!   compiled into the binary (`actors/gateway/assets/dashboard/`; no build step, no CDN). The
//!   page signs in through the auth API and keeps its tokens in the tab's session storage.
//! - `GET /api/v1/dashboard/stream`: server-sent events, one [`view::ClusterView`] a second
//!   from the shared [`collector::Collector`]; `GET /api/v1/dashboard/snapshot`: one view.
//! - `GET /api/v1/dashboard/traces/{trace_id}`: every log line and span the nodes still hold of
//!   a trace.
//! - `POST /api/v1/dashboard/actions`: an operator's action on a node or an instance, done
//!   through the node's `/admin/v1/actions` or the registry, and recorded in the registry's
//!   journal with who, when, what and the result.
//!
//! The data routes are for admins only (401 without a token, 403 without the role).

pub mod collector;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use emporium_cluster::ServiceRef;
use emporium_cluster::admin::{NodeAction, NodeAdminClient};
use emporium_cluster::edge::{AdminCaller, ApiError};
use emporium_cluster::registry_client::RegistryClient;
use emporium_contracts::auth::GetCurrentUser;
use emporium_contracts::registry::{InstanceStatus, JournalEntry, JournalRecord};
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_runtime::CallMeta;
use futures::future::join_all;
use serde::Deserialize;
use serde_json::{Value, json};

use self::collector::Collector;

/// A stream sends a comment this often when nothing changed, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long the trace lookup waits for each node.
const TRACE_BUDGET: Duration = Duration::from_secs(1);

/// What the dashboard's routes share.
pub struct Dashboard {
    collector: Arc<Collector>,
    registry: RegistryClient,
    nodes: NodeAdminClient,
    auth: ServiceRef,
}

impl Dashboard {
    /// The dashboard over `collector`; `auth` names the operators in the journal.
    pub fn new(collector: Arc<Collector>, registry: RegistryClient, nodes: NodeAdminClient, auth: ServiceRef) -> Self {
        Dashboard { collector, registry, nodes, auth }
    }
}

/// Mounts the page, its assets and the data routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/dashboard", web::get().to(page))
        .route("/dashboard/", web::get().to(page))
        .route("/dashboard/assets/{file}", web::get().to(asset))
        .route("/api/v1/dashboard/stream", web::get().to(stream))
        .route("/api/v1/dashboard/snapshot", web::get().to(snapshot))
        .route("/api/v1/dashboard/traces/{trace_id}", web::get().to(trace))
        .route("/api/v1/dashboard/actions", web::post().to(act));
}

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../../assets/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../assets/dashboard/dashboard.css");
const CHARTS_JS: &str = include_str!("../../assets/dashboard/charts.js");

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Same-origin only: the page loads nothing from elsewhere.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ))
        .body(INDEX_HTML)
}

async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, content_type) = match file.as_str() {
        "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "charts.js" => (CHARTS_JS, "text/javascript; charset=utf-8"),
        "dashboard.css" => (DASHBOARD_CSS, "text/css; charset=utf-8"),
        _ => {
            return Err(ServiceError::not_found("not_found", format!("no dashboard asset {}", file.as_str())).into());
        }
    };
    Ok(HttpResponse::Ok().content_type(content_type).insert_header((header::CACHE_CONTROL, "no-cache")).body(body))
}

/// `GET /api/v1/dashboard/snapshot`: one view, assembled now.
async fn snapshot(_admin: AdminCaller, dashboard: web::Data<Dashboard>) -> HttpResponse {
    HttpResponse::Ok().json(dashboard.collector.collect().await)
}

/// `GET /api/v1/dashboard/stream`: the shared views as server-sent events.
async fn stream(_admin: AdminCaller, dashboard: web::Data<Dashboard>) -> HttpResponse {
    let views_rx = dashboard.collector.subscribe();
    let events = futures::stream::unfold(views_rx, |mut views_rx| async move {
        let frame = loop {
            match tokio::time::timeout(KEEP_ALIVE, views_rx.changed()).await {
                Ok(Err(_)) => return None,
                Ok(Ok(())) => {
                    // None: the collector has not built its first view yet.
                    if let Some(view) = views_rx.borrow_and_update().clone() {
                        break format!("event: snapshot\ndata: {view}\n\n");
                    }
                }
                Err(_) => break ": keep-alive\n\n".to_string(),
            }
        };
        Some((Ok::<_, actix_web::Error>(Bytes::from(frame)), views_rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events)
}

/// `GET /api/v1/dashboard/traces/{trace_id}`: what every node holds of one trace.
async fn trace(
    _admin: AdminCaller,
    dashboard: web::Data<Dashboard>,
    trace_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let trace_id = trace_id.into_inner().to_ascii_lowercase();
    if trace_id.len() != 32 || !trace_id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ServiceError::new(
            ErrorKind::InvalidInput,
            "invalid_trace_id",
            "a trace id is 32 hexadecimal digits",
        )
        .into());
    }
    let addresses = dashboard.collector.node_addresses().await;
    let reads = addresses.iter().map(|(node_id, address)| {
        let (nodes, trace_id) = (dashboard.nodes.clone(), trace_id.clone());
        async move {
            let records = tokio::time::timeout(TRACE_BUDGET, nodes.trace(address, &trace_id)).await;
            (node_id.clone(), records.ok().and_then(Result::ok))
        }
    });
    let (mut logs, mut spans, mut unreachable) = (Vec::new(), Vec::new(), Vec::new());
    for (node_id, records) in join_all(reads).await {
        let Some(records) = records else {
            unreachable.push(node_id);
            continue;
        };
        for line in records["logs"].as_array().into_iter().flatten() {
            logs.push(log_entry(&node_id, line));
        }
        for span in records["spans"].as_array().into_iter().flatten() {
            let mut span = span.clone();
            span["nodeId"] = Value::from(node_id.clone());
            spans.push(span);
        }
    }
    let time = |entry: &Value, key: &str| entry[key].as_str().unwrap_or_default().to_string();
    logs.sort_by_key(|entry| time(entry, "at"));
    spans.sort_by_key(|span| time(span, "start"));
    Ok(HttpResponse::Ok().json(json!({
        "traceId": trace_id,
        "logs": logs,
        "spans": spans,
        "unreachableNodes": unreachable,
    })))
}

/// A node's log line as the trace view lists it.
fn log_entry(node_id: &str, line: &Value) -> Value {
    let message = line["fields"]["message"].as_str().or_else(|| line["message"].as_str()).unwrap_or_default();
    json!({
        "nodeId": node_id,
        "at": line["timestamp"],
        "level": line["level"],
        "target": line["target"],
        "message": message,
        "spanId": line["span_id"],
        "fields": line.get("fields").cloned().unwrap_or_else(|| line.clone()),
    })
}

/// An action on one node: the node's own action, and which node.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeActionRequest {
    node_id: String,
    #[serde(flatten)]
    action: NodeAction,
}

/// Taking an instance out of service, or putting it back.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceStatusRequest {
    instance_id: String,
    status: InstanceStatus,
}

/// `POST /api/v1/dashboard/actions`.
async fn act(admin: AdminCaller, dashboard: web::Data<Dashboard>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let request: Value = serde_json::from_slice(&body).map_err(invalid_action)?;
    let action_name = request["action"].as_str().unwrap_or_default().to_string();
    let operator = operator_name(&dashboard.auth, &admin).await;
    let (target, outcome) = if action_name == "set_instance_status" {
        let request: InstanceStatusRequest = serde_json::from_value(request).map_err(invalid_action)?;
        if !matches!(request.status, InstanceStatus::Up | InstanceStatus::OutOfService) {
            return Err(
                ServiceError::new(ErrorKind::InvalidInput, "invalid_action", "status is UP or OUT_OF_SERVICE").into()
            );
        }
        let outcome = dashboard
            .registry
            .override_status(&request.instance_id, request.status)
            .await
            .map(|instance| format!("{} is {}", instance.id, status_name(instance.status)))
            .map_err(|error| match error {
                emporium_cluster::registry_client::RegistryError::Rejected { status: 404, .. } => {
                    ServiceError::not_found(
                        "unknown_instance",
                        format!("no instance {} is registered", request.instance_id),
                    )
                }
                other => other.into(),
            });
        (request.instance_id, outcome)
    } else {
        let request: NodeActionRequest = serde_json::from_value(request).map_err(invalid_action)?;
        let Some(address) = dashboard.collector.node_address(&request.node_id).await else {
            return Err(
                ServiceError::not_found("unknown_node", format!("no node {} is registered", request.node_id)).into()
            );
        };
        let target = match &request.action {
            NodeAction::RestartActor { actor } | NodeAction::InjectFault { actor, .. } => {
                format!("{} {actor}", request.node_id)
            }
            NodeAction::RestartService { service } | NodeAction::ForceBreaker { service, .. } => {
                format!("{} {service}", request.node_id)
            }
            NodeAction::RetryDeadLetters { queue } | NodeAction::DiscardDeadLetters { queue } => {
                format!("{} {queue}", request.node_id)
            }
            NodeAction::SetLogLevel { .. } => request.node_id.clone(),
        };
        (target, dashboard.nodes.act(&address, &request.action, &operator).await)
    };
    let record = JournalRecord {
        who: operator,
        action: action_name,
        target,
        result: if outcome.is_ok() { "ok" } else { "failed" }.to_string(),
        detail: match &outcome {
            Ok(detail) => detail.clone(),
            Err(error) => error.message.clone(),
        },
    };
    let entry = audit(&dashboard.registry, record).await;
    match outcome {
        Ok(_) => Ok(HttpResponse::Ok().json(json!({ "entry": entry }))),
        Err(error) => Err(error.into()),
    }
}

/// A status as the registry spells it (`OUT_OF_SERVICE`).
fn status_name(status: InstanceStatus) -> String {
    serde_json::to_value(status).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default()
}

fn invalid_action(error: serde_json::Error) -> ApiError {
    // An error reading a parsed value has no position to tell.
    let message = if error.line() == 0 {
        emporium_cluster::input_errors::describe_serde_message(&error.to_string())
    } else {
        emporium_cluster::input_errors::describe_json_error(&error).1
    };
    ServiceError::new(ErrorKind::InvalidInput, "invalid_action", message).into()
}

/// The admin's email, asked of auth (its user id when auth does not answer in time).
async fn operator_name(auth: &ServiceRef, admin: &AdminCaller) -> String {
    let meta = CallMeta { deadline: Some(std::time::Instant::now() + Duration::from_secs(1)), trace: None };
    match auth.ask_with(GetCurrentUser { caller: admin.0.clone() }, meta).await {
        Ok(user) => user.email,
        Err(_) => admin.0.user_id.clone(),
    }
}

/// Records the action in the registry's journal; when the registry cannot take it, the log
/// line (which carries every field) is the audit record and the entry says so.
async fn audit(registry: &RegistryClient, record: JournalRecord) -> JournalEntry {
    tracing::warn!(
        target: "emporium::audit",
        who = %record.who,
        action = %record.action,
        target_of_action = %record.target,
        result = %record.result,
        detail = %record.detail,
        "operator action"
    );
    match registry.record_in_journal(&record).await {
        Ok(entry) => entry,
        Err(error) => {
            tracing::error!(error = %error, "the registry did not record the operator action in its journal");
            JournalEntry {
                id: 0,
                at: chrono::Utc::now(),
                who: record.who,
                action: record.action,
                target: record.target,
                result: record.result,
                detail: format!("{} (not in the registry's journal: {error})", record.detail),
            }
        }
    }
}
