//! Location-transparent request-reply.
//!
//! A caller holds a [`ServiceRef`] for a service, not an address. `ask` goes straight to the
//! local actor when the service runs (and is up) in this node, with no serialization, and
//! otherwise over the cluster transport to a healthy instance from the directory, under the
//! call site's timeout, concurrency limit, circuit breaker and retry policy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use emporium_contracts::{ErrorKind, Request, ServiceError};
use emporium_runtime::spans::{SpanKind, SpanTimer};
use emporium_runtime::{CallMeta, LocalEndpoint};
use parking_lot::RwLock;

use crate::call_site::{CallSite, CallSites};
use crate::credential::ClusterSecret;
use crate::directory::Directory;
use crate::settings::ClusterTransport;
use crate::transport::{AttemptError, OutgoingAsk, RemoteTransport};

struct ClusterInner {
    node_id: String,
    local: RwLock<HashMap<String, LocalEndpoint>>,
    directory: Directory,
    call_sites: CallSites,
    transport: RemoteTransport,
}

/// This node's view of the cluster: its local services, the directory, the call sites and the
/// transport. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

impl Cluster {
    /// A cluster view for node `node_id` that calls other nodes with `secret`.
    pub fn new(node_id: &str, directory: Directory, secret: ClusterSecret) -> Self {
        Cluster {
            inner: Arc::new(ClusterInner {
                node_id: node_id.to_string(),
                local: RwLock::new(HashMap::new()),
                directory,
                call_sites: CallSites::default(),
                transport: RemoteTransport::new(secret),
            }),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Makes a service of this node reachable, locally and through the transport.
    pub fn add_local(&self, endpoint: LocalEndpoint) {
        self.inner.local.write().insert(endpoint.service().to_string(), endpoint);
    }

    /// The local endpoint of `service`, when this node runs it.
    pub fn local(&self, service: &str) -> Option<LocalEndpoint> {
        self.inner.local.read().get(service).cloned()
    }

    /// The services this node runs.
    pub fn local_services(&self) -> Vec<String> {
        let mut services: Vec<_> = self.inner.local.read().keys().cloned().collect();
        services.sort();
        services
    }

    /// The directory cache.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// The call sites.
    pub fn call_sites(&self) -> &CallSites {
        &self.inner.call_sites
    }

    /// How asks leave this node for others from now on (`cluster.transport`).
    pub fn set_transport(&self, kind: ClusterTransport) {
        self.inner.transport.set_kind(kind);
    }

    /// A reference to `service`, wherever it runs.
    pub fn service(&self, service: &str) -> ServiceRef {
        ServiceRef { cluster: self.clone(), service: service.to_string() }
    }

    /// Asks `M`'s service, wherever it runs.
    pub async fn ask<M: Request>(&self, message: M, meta: CallMeta) -> Result<M::Reply, ServiceError> {
        let site = self.inner.call_sites.get(M::SERVICE);
        let timeout = Duration::from_millis(site.settings().timeout_millis);
        let budget = Instant::now() + timeout;
        let deadline = meta.deadline.map_or(budget, |deadline| deadline.min(budget));
        let meta = CallMeta { deadline: Some(deadline), trace: meta.trace };
        if let Some(endpoint) = self.local(M::SERVICE).filter(LocalEndpoint::is_up) {
            return self.ask_local(&endpoint, message, meta).await;
        }
        self.ask_remote(&site, message, meta).await
    }

    async fn ask_local<M: Request>(
        &self,
        endpoint: &LocalEndpoint,
        message: M,
        meta: CallMeta,
    ) -> Result<M::Reply, ServiceError> {
        let Some(route) = endpoint.route::<M>() else {
            return Err(ServiceError::not_found(
                "unknown_message",
                format!("{} has no message {}", M::SERVICE, M::NAME),
            ));
        };
        let started = Instant::now();
        let deadline = meta.deadline.expect("ask sets a deadline");
        let result = match tokio::time::timeout_at(deadline.into(), route.ask(message, meta)).await {
            Ok(result) => result,
            Err(_) => Err(ServiceError::timeout(format!("{}/{} timed out", M::SERVICE, M::NAME))),
        };
        record_ask(M::SERVICE, M::NAME, "local", started, &result);
        result
    }

    async fn ask_remote<M: Request>(
        &self,
        site: &CallSite,
        message: M,
        meta: CallMeta,
    ) -> Result<M::Reply, ServiceError> {
        let started = Instant::now();
        let deadline = meta.deadline.expect("ask sets a deadline");
        let result = self.ask_remote_guarded(site, message, deadline, meta).await;
        record_ask(M::SERVICE, M::NAME, "remote", started, &result);
        result
    }

    async fn ask_remote_guarded<M: Request>(
        &self,
        site: &CallSite,
        message: M,
        deadline: Instant,
        meta: CallMeta,
    ) -> Result<M::Reply, ServiceError> {
        let Some(_slot) = site.enter_bulkhead(deadline).await else {
            return Err(ServiceError::unavailable(
                format!("{}_unavailable", M::SERVICE),
                format!("too many calls to {} in flight", M::SERVICE),
            ));
        };
        if let Err(rejected) = site.try_pass_breaker() {
            let mut error = ServiceError::unavailable(
                format!("{}_unavailable", M::SERVICE),
                format!("circuit breaker for {} is open", M::SERVICE),
            );
            error.retry_after_secs = Some(rejected.retry_after.as_secs().max(1) as u32);
            return Err(error);
        }
        let body = match serde_json::to_vec(&message) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                site.record_outcome(None);
                return Err(ServiceError::internal(format!("{} not serializable: {error}", M::NAME)));
            }
        };
        let result = self.attempt_with_retries::<M>(site, body, deadline, meta).await;
        let target_healthy = Some(match &result {
            Ok(_) => true,
            Err(error) => !target_failed(M::SERVICE, error),
        });
        site.record_outcome(target_healthy);
        let reply = result?;
        serde_json::from_slice(&reply)
            .map_err(|error| ServiceError::internal(format!("unreadable reply to {}: {error}", M::NAME)))
    }

    async fn attempt_with_retries<M: Request>(
        &self,
        site: &CallSite,
        body: Bytes,
        deadline: Instant,
        meta: CallMeta,
    ) -> Result<Bytes, ServiceError> {
        let mut tried: Vec<String> = Vec::new();
        let mut delays = site.retry_delays();
        loop {
            let Some(endpoint) = self.pick_remote(M::SERVICE, &tried) else {
                let reason = if tried.is_empty() { "no healthy instance is known" } else { "every instance failed" };
                return Err(ServiceError::unavailable(
                    format!("{}_unavailable", M::SERVICE),
                    format!("{} is unavailable: {reason}", M::SERVICE),
                ));
            };
            let _in_flight = endpoint.track();
            let trace = meta.trace.map(|trace| trace.child());
            let client_span = trace.and_then(|trace| {
                let name = format!("{}/{}", M::SERVICE, M::NAME);
                let mut span =
                    SpanTimer::start(name, SpanKind::Client, trace, meta.trace.map(|caller| caller.span_id))?;
                span.attribute("rpc.system", "emporium")
                    .attribute("rpc.service", M::SERVICE)
                    .attribute("rpc.method", M::NAME)
                    .attribute("server.address", endpoint.instance.address.as_str())
                    .attribute("emporium.instance", endpoint.instance.id.as_str());
                Some(span)
            });
            let ask = OutgoingAsk {
                address: &endpoint.instance.address,
                service: M::SERVICE,
                message: M::NAME,
                body: body.clone(),
                deadline,
                trace,
            };
            let outcome = self.inner.transport.send(ask).await;
            if let Some(span) = client_span {
                span.finish(outcome.as_ref().err().and_then(span_error));
            }
            let error = match outcome {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            let (retryable, service_error) = match error {
                AttemptError::Connect(reason) => {
                    tracing::debug!(instance = %endpoint.instance.id, reason = %reason, "connection failed; setting the instance aside");
                    self.inner.directory.set_aside(&endpoint.instance.id);
                    (true, ServiceError::unavailable(format!("{}_unavailable", M::SERVICE), reason))
                }
                AttemptError::Transport(reason) => {
                    (M::IDEMPOTENT, ServiceError::unavailable(format!("{}_unavailable", M::SERVICE), reason))
                }
                AttemptError::Reply(error) => {
                    // Another instance is worth a try when this one did not handle the message,
                    // or (idempotent messages) when it failed itself; not when it answered that
                    // one of its dependencies is unavailable (`order_store_unavailable`): every
                    // instance shares that dependency, and the client is better told at once.
                    let not_handled = matches!(error.code.as_str(), "service_down" | "unknown_service");
                    let failed_itself = error.kind == ErrorKind::Unavailable && target_failed(M::SERVICE, &error);
                    let retryable = not_handled || (M::IDEMPOTENT && failed_itself);
                    (retryable, error)
                }
            };
            tried.push(endpoint.instance.id.clone());
            let Some(delay) = delays.next().filter(|_| retryable) else { return Err(service_error) };
            if Instant::now() + delay >= deadline {
                return Err(service_error);
            }
            site.record_retry();
            tracing::debug!(service = M::SERVICE, message = M::NAME, instance = %endpoint.instance.id, "retrying on another instance");
            tokio::time::sleep(delay).await;
        }
    }

    fn pick_remote(&self, service: &str, tried: &[String]) -> Option<crate::directory::Endpoint> {
        let directory = &self.inner.directory;
        let own_node = |endpoint: &crate::directory::Endpoint| endpoint.instance.node_id == self.inner.node_id;
        directory
            .pick(service, tried)
            .filter(|endpoint| !own_node(endpoint))
            .or_else(|| directory.candidates(service, tried).into_iter().find(|endpoint| !own_node(endpoint)))
            .or_else(|| {
                // Everything was tried once: a second round may find an instance that recovered.
                directory.pick(service, &[]).filter(|endpoint| !own_node(endpoint) && !tried.is_empty())
            })
    }
}

/// Whether `error` says the target service itself failed (what its breaker counts), as opposed
/// to a clear answer from it. A 503 that the target answered about one of *its* dependencies
/// (`inventory_unavailable` from the order service) is an answer: the target is healthy.
fn target_failed(service: &str, error: &ServiceError) -> bool {
    let transport_failure = error.code == format!("{service}_unavailable");
    let not_serving = matches!(error.code.as_str(), "service_down" | "actor_restarted" | "unknown_service");
    let crashed_or_slow = matches!(error.kind, ErrorKind::Timeout | ErrorKind::Fault | ErrorKind::Internal);
    transport_failure || not_serving || crashed_or_slow
}

fn record_ask<T>(
    service: &'static str,
    message: &'static str,
    path: &'static str,
    started: Instant,
    result: &Result<T, ServiceError>,
) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(error) if error.is_transient() => "unavailable",
        Err(_) => "error",
    };
    metrics::histogram!("emporium_ask_duration_seconds", "service" => service, "message" => message, "path" => path)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("emporium_asks_total", "service" => service, "message" => message, "path" => path, "outcome" => outcome)
        .increment(1);
}

/// A handle on one service, wherever its instances run.
#[derive(Clone)]
pub struct ServiceRef {
    cluster: Cluster,
    service: String,
}

impl ServiceRef {
    /// The service this refers to.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Asks the service and waits for its answer, with the call site's default deadline.
    pub async fn ask<M: Request>(&self, message: M) -> Result<M::Reply, ServiceError> {
        self.ask_with(message, CallMeta::default()).await
    }

    /// Asks with an explicit deadline and trace.
    pub async fn ask_with<M: Request>(&self, message: M, meta: CallMeta) -> Result<M::Reply, ServiceError> {
        if M::SERVICE != self.service {
            return Err(ServiceError::internal(format!("{} is not a message of {}", M::NAME, self.service)));
        }
        self.cluster.ask(message, meta).await
    }
}

/// What marks a client span failed: the call never got an answer, or the answer was a
/// server-side error (5xx); a refusal (4xx) is an answer.
fn span_error(error: &AttemptError) -> Option<String> {
    match error {
        AttemptError::Connect(reason) | AttemptError::Transport(reason) => Some(reason.clone()),
        AttemptError::Reply(error) if error.http_status() >= 500 => Some(error.code.clone()),
        AttemptError::Reply(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_target_count_against_its_breaker() {
        assert!(target_failed("order", &ServiceError::unavailable("order_unavailable", "no instance")));
        assert!(target_failed("order", &ServiceError::unavailable("service_down", "down")));
        assert!(target_failed("order", &ServiceError::timeout("slow")));
        assert!(target_failed("order", &ServiceError::fault("panicked")));
        assert!(!target_failed("order", &ServiceError::unavailable("inventory_unavailable", "its dependency")));
        assert!(!target_failed("order", &ServiceError::conflict("out_of_stock", "answered")));
    }
}
