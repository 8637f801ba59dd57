//! The registry's HTTP routes under `/registry/v1` (API.md section 3). Handlers only translate
//! between HTTP and the actor's messages; the cluster credential is checked before any body is
//! read.

use emporium_cluster::input_errors::{describe_json_error, describe_serde_message};
use emporium_cluster::registry_client::WATCHER_NODE_HEADER;
use std::collections::VecDeque;
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::Method;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::Bytes;
use emporium_contracts::registry::{
    ConfigAck, Heartbeat, JournalRecord, PeerSync, RegisterInstance, StatusOverride, WatchChange, WatchEvent,
};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::error::RegistryError;
use crate::handle::Registry;
use crate::messages::{
    AckConfig, Deregister, GetConfig, GetState, ListConfigAcks, ListInstances, ListJournal, MergePeerView,
    OverrideStatus, RecordInJournal, RefreshConfig, Register, RenewLease, Subscribe, Subscription, WatcherClosed,
};

/// The largest JSON body a registry route accepts.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The largest view a peer registry may send (the whole directory).
const MAX_PEER_SYNC_BYTES: usize = 32 * 1024 * 1024;

impl Registry {
    /// Mounts every `/registry/v1/...` route, the Spring Cloud Config routes under `/config`
    /// ([`crate::spring_config`]) and the Eureka routes under `/eureka` ([`crate::eureka`]),
    /// with the same credentials.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let registry = self.clone();
        cfg.service(
            crate::spring_config::routes(web::scope("/config").app_data(web::Data::new(self.clone())))
                .wrap(from_fn(move |request, next| authorize(registry.clone(), request, next)))
                .default_service(web::to(route_not_found)),
        );
        let registry = self.clone();
        let eureka = web::scope("/eureka").app_data(web::Data::new(self.clone())).app_data(
            web::QueryConfig::default()
                .error_handler(|error, _| RegistryError::InvalidQuery(query_error(error)).into()),
        );
        cfg.service(
            crate::eureka::routes(eureka)
                .wrap(from_fn(move |request, next| authorize(registry.clone(), request, next)))
                .default_service(web::to(route_not_found)),
        );
        let registry = self.clone();
        cfg.service(
            web::scope("/registry/v1")
                .app_data(web::Data::new(self.clone()))
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_BODY_BYTES)
                        .content_type_required(false)
                        .error_handler(|error, _| json_error(error).into()),
                )
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|error, _| RegistryError::InvalidQuery(query_error(error)).into()),
                )
                .wrap(from_fn(move |request, next| authorize(registry.clone(), request, next)))
                .service(web::resource("/instances").post(register).get(list_instances))
                .service(web::resource("/instances/{id}").delete(deregister))
                .service(web::resource("/instances/{id}/heartbeat").put(heartbeat))
                .service(web::resource("/instances/{id}/config-ack").put(ack_config))
                .service(web::resource("/instances/{id}/status").put(override_status))
                .service(web::resource("/journal").get(list_journal).post(record_in_journal))
                .service(web::resource("/state").get(state))
                .service(web::resource("/watch").get(watch))
                .service(web::resource("/config/acks").get(config_acks))
                .service(web::resource("/config/refresh").post(refresh_config))
                .service(web::resource("/config/{service}").get(config))
                .service(web::resource("/prometheus/targets").get(prometheus_targets))
                .service(
                    web::resource("/peers/sync")
                        .app_data(web::PayloadConfig::new(MAX_PEER_SYNC_BYTES))
                        .post(merge_peer_view),
                )
                .default_service(web::to(route_not_found)),
        );
    }
}

async fn route_not_found(request: HttpRequest) -> HttpResponse {
    RegistryError::RouteNotFound(format!("{} {}", request.method(), request.path())).error_response()
}

/// Refuses writes without the cluster credential, and reads (unless `registry.public_reads`)
/// without the credential or an admin access token. Runs before the body is read.
async fn authorize(
    registry: Registry,
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    let authorized = if is_read {
        registry.public_reads() || registry.access.authorizes(request.request())
    } else {
        registry.access.secret().authorizes(request.request())
    };
    if authorized {
        return next.call(request).await.map(ServiceResponse::map_into_left_body);
    }
    tracing::debug!(method = %request.method(), path = request.path(), "registry request refused: no cluster credential");
    let response = RegistryError::CredentialRequired.error_response();
    Ok(request.into_response(response).map_into_right_body())
}

fn json_error(error: JsonPayloadError) -> RegistryError {
    match error {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            RegistryError::PayloadTooLarge(format!("the body must be at most {limit} bytes"))
        }
        JsonPayloadError::Deserialize(error) => RegistryError::MalformedJson(describe_json_error(&error).1),
        _ => RegistryError::MalformedJson("the body could not be read".to_string()),
    }
}

fn query_error(error: QueryPayloadError) -> String {
    match error {
        QueryPayloadError::Deserialize(error) => {
            format!("malformed query string: {}", describe_serde_message(&error.to_string()))
        }
        _ => "malformed query string".to_string(),
    }
}

#[tracing::instrument(skip_all, fields(instance_id = %body.id, service = %body.service))]
async fn register(
    registry: web::Data<Registry>,
    body: web::Json<RegisterInstance>,
) -> Result<HttpResponse, RegistryError> {
    let lease = registry.addr.send(Register(body.into_inner())).await??;
    Ok(HttpResponse::Ok().json(lease))
}

#[tracing::instrument(skip_all, fields(instance_id = %path.as_str()))]
async fn heartbeat(
    registry: web::Data<Registry>,
    path: web::Path<String>,
    body: Bytes,
) -> Result<HttpResponse, RegistryError> {
    let heartbeat = if body.iter().all(u8::is_ascii_whitespace) {
        Heartbeat::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| RegistryError::MalformedJson(describe_json_error(&error).1))?
    };
    let lease = registry.addr.send(RenewLease { instance_id: path.into_inner(), heartbeat }).await??;
    Ok(HttpResponse::Ok().json(lease))
}

#[tracing::instrument(skip_all, fields(instance_id = %path.as_str()))]
async fn deregister(registry: web::Data<Registry>, path: web::Path<String>) -> Result<HttpResponse, RegistryError> {
    registry.addr.send(Deregister { instance_id: path.into_inner() }).await??;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /registry/v1/instances/{id}/status` `{"status": "OUT_OF_SERVICE" | "UP"}`: an
/// operator's override, as Eureka's `PUT .../status?value=`.
#[tracing::instrument(skip_all, fields(instance_id = %path.as_str()))]
async fn override_status(
    registry: web::Data<Registry>,
    path: web::Path<String>,
    body: web::Json<StatusOverride>,
) -> Result<HttpResponse, RegistryError> {
    let message = OverrideStatus { instance_id: path.into_inner(), status: body.into_inner().status };
    Ok(HttpResponse::Ok().json(registry.addr.send(message).await??))
}

/// The query of `GET /registry/v1/journal`.
#[derive(Debug, Deserialize)]
struct JournalQuery {
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
}

/// `GET /registry/v1/journal?since=&limit=`: the event journal, newest first.
#[tracing::instrument(skip_all)]
async fn list_journal(
    registry: web::Data<Registry>,
    query: web::Query<JournalQuery>,
) -> Result<HttpResponse, RegistryError> {
    let JournalQuery { since, limit } = query.into_inner();
    let limit = limit.unwrap_or(200).min(crate::journal::JOURNAL_CAPACITY);
    Ok(HttpResponse::Ok().json(registry.addr.send(ListJournal { since, limit }).await??))
}

/// `POST /registry/v1/journal`: a gateway records an operator's action.
#[tracing::instrument(skip_all)]
async fn record_in_journal(
    registry: web::Data<Registry>,
    body: web::Json<JournalRecord>,
) -> Result<HttpResponse, RegistryError> {
    let entry = registry.addr.send(RecordInJournal(body.into_inner())).await??;
    Ok(HttpResponse::Created().json(entry))
}

/// The query of `GET /registry/v1/instances`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    service: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list_instances(
    registry: web::Data<Registry>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, RegistryError> {
    let instances = registry.addr.send(ListInstances { service: query.into_inner().service }).await??;
    Ok(HttpResponse::Ok().json(instances))
}

/// `GET /registry/v1/prometheus/targets`: every node's metrics endpoint in the Prometheus HTTP
/// service-discovery format, one target group per node (see `ops/prometheus/prometheus.yml`).
#[tracing::instrument(skip_all)]
async fn prometheus_targets(registry: web::Data<Registry>) -> Result<HttpResponse, RegistryError> {
    let instances = registry.addr.send(ListInstances { service: None }).await??;
    Ok(HttpResponse::Ok().json(crate::scrape_targets::target_groups(&instances)))
}

#[tracing::instrument(skip_all)]
async fn state(registry: web::Data<Registry>) -> Result<HttpResponse, RegistryError> {
    Ok(HttpResponse::Ok().json(registry.addr.send(GetState).await??))
}

/// The query of `GET /registry/v1/config/{service}`.
#[derive(Debug, Deserialize)]
struct ConfigQuery {
    profile: Option<String>,
}

#[tracing::instrument(skip_all, fields(service = %path.as_str()))]
async fn config(
    registry: web::Data<Registry>,
    path: web::Path<String>,
    query: web::Query<ConfigQuery>,
) -> Result<HttpResponse, RegistryError> {
    let message = GetConfig { service: path.into_inner(), profile: query.into_inner().profile };
    Ok(HttpResponse::Ok().json(registry.addr.send(message).await??))
}

/// A peer registry's view (`crate::peers`): merged, answered with this registry's id.
async fn merge_peer_view(registry: web::Data<Registry>, body: Bytes) -> Result<HttpResponse, RegistryError> {
    let view: PeerSync =
        serde_json::from_slice(&body).map_err(|error| RegistryError::MalformedJson(describe_json_error(&error).1))?;
    Ok(HttpResponse::Ok().json(registry.addr.send(MergePeerView(view)).await??))
}

#[tracing::instrument(skip_all)]
async fn refresh_config(registry: web::Data<Registry>) -> Result<HttpResponse, RegistryError> {
    Ok(HttpResponse::Ok().json(registry.addr.send(RefreshConfig).await??))
}

#[tracing::instrument(skip_all, fields(instance_id = %path.as_str(), config_version = body.version))]
async fn ack_config(
    registry: web::Data<Registry>,
    path: web::Path<String>,
    body: web::Json<ConfigAck>,
) -> Result<HttpResponse, RegistryError> {
    registry.addr.send(AckConfig { instance_id: path.into_inner(), ack: body.into_inner() }).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[tracing::instrument(skip_all)]
async fn config_acks(registry: web::Data<Registry>) -> Result<HttpResponse, RegistryError> {
    Ok(HttpResponse::Ok().json(registry.addr.send(ListConfigAcks).await??))
}

/// The query of `GET /registry/v1/watch`.
#[derive(Debug, Deserialize)]
struct WatchQuery {
    since: Option<u64>,
}

/// Server-sent events: a snapshot (or the backlog after `since`, or after the standard
/// `Last-Event-ID` header of a reconnecting client), then every change, with a ping comment
/// every `registry.watch_ping_millis`. A watcher that falls behind the broadcast buffer is cut
/// off; it reconnects and starts again from a snapshot.
#[tracing::instrument(skip_all)]
async fn watch(
    registry: web::Data<Registry>,
    request: HttpRequest,
    query: web::Query<WatchQuery>,
) -> Result<HttpResponse, RegistryError> {
    let since = query
        .since
        .or_else(|| request.headers().get("last-event-id").and_then(|value| value.to_str().ok()?.trim().parse().ok()));
    let subscription = registry.addr.send(Subscribe { since }).await??;
    let ping_period = Duration::from_millis(registry.settings.read().registry.watch_ping_millis.max(1));
    let watcher = request
        .headers()
        .get(WATCHER_NODE_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|node_id| !node_id.is_empty() && node_id.len() <= 128)
        .map(|node_id| WatcherGuard { registry: registry.get_ref().clone(), node_id: node_id.to_string() });
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(watch_stream(subscription, since.unwrap_or(0), ping_period, watcher)))
}

/// Lives as long as a node's watch stream; when the connection closes (the node reconnects,
/// or its process died), tells the registry, which checks which of the two it was.
struct WatcherGuard {
    registry: Registry,
    node_id: String,
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.registry.addr.do_send(WatcherClosed { node_id: std::mem::take(&mut self.node_id) });
    }
}

/// Where a watch stream is.
struct WatchCursor {
    pending: VecDeque<WatchEvent>,
    events_rx: broadcast::Receiver<WatchEvent>,
    ping: tokio::time::Interval,
    last_version: u64,
    _watcher: Option<WatcherGuard>,
}

fn watch_stream(
    subscription: Subscription,
    since: u64,
    ping_period: Duration,
    watcher: Option<WatcherGuard>,
) -> impl futures::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_period, ping_period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cursor = WatchCursor {
        pending: subscription.initial_events.into(),
        events_rx: subscription.events_rx,
        ping,
        last_version: since,
        _watcher: watcher,
    };
    futures::stream::unfold(cursor, |mut cursor| async move {
        if let Some(event) = cursor.pending.pop_front() {
            cursor.last_version = event.version;
            return Some((Ok(encode_event(&event)), cursor));
        }
        loop {
            tokio::select! {
                received = cursor.events_rx.recv() => match received {
                    // Already sent in the backlog.
                    Ok(event) if event.version <= cursor.last_version => continue,
                    Ok(event) => {
                        cursor.last_version = event.version;
                        return Some((Ok(encode_event(&event)), cursor));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "watcher fell behind; closing its stream so that it resumes from a snapshot");
                        return None;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = cursor.ping.tick() => return Some((Ok(Bytes::from_static(b": ping\n\n")), cursor)),
            }
        }
    })
}

/// The SSE event type of a change: the `type` tag of its JSON.
pub(crate) fn change_type(change: &WatchChange) -> &'static str {
    match change {
        WatchChange::Snapshot { .. } => "snapshot",
        WatchChange::InstanceUpserted { .. } => "instance_upserted",
        WatchChange::InstanceRemoved { .. } => "instance_removed",
        WatchChange::ConfigChanged { .. } => "config_changed",
        WatchChange::StateChanged { .. } => "state_changed",
    }
}

/// `id: <version>\nevent: <type>\ndata: <json>\n\n`.
fn encode_event(event: &WatchEvent) -> Bytes {
    // Serializing these types cannot fail (string keys, finite numbers); should it, the
    // watcher still gets a well-formed event it can report.
    let data = serde_json::to_string(event).unwrap_or_else(|error| {
        tracing::error!(error = %error, version = event.version, "cannot serialize a watch event");
        serde_json::json!({ "version": event.version, "type": change_type(&event.change) }).to_string()
    });
    Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", event.version, change_type(&event.change)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use emporium_contracts::registry::{RegistryState, RemovalReason};

    #[test]
    fn sse_event_types_are_the_json_type_tags() {
        let changes = [
            WatchChange::Snapshot { instances: vec![], state: RegistryState::default() },
            WatchChange::InstanceRemoved { id: "a".into(), service: "b".into(), reason: RemovalReason::Deregistered },
            WatchChange::ConfigChanged { config_version: 2 },
            WatchChange::StateChanged { state: RegistryState::default() },
        ];
        for change in changes {
            let json = serde_json::to_value(&change).unwrap();
            assert_eq!(json["type"], change_type(&change));
        }
        let event = WatchEvent { version: 9, change: WatchChange::ConfigChanged { config_version: 2 } };
        assert_eq!(
            encode_event(&event),
            "id: 9\nevent: config_changed\ndata: {\"version\":9,\"type\":\"config_changed\",\"configVersion\":2}\n\n"
        );
    }
}
