//! A node's life: bind the cluster listener, start services, serve health, metrics,
//! supervision and the cluster transport, keep instances registered and the directory and
//! configuration current, and on shutdown fail readiness, deregister and drain.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Arbiter;
use actix_web::dev::Service;
use actix_web::{App, HttpRequest, HttpResponse, web};
use emporium_contracts::ServiceError;
use emporium_contracts::registry::{InstanceStatus, RegisterInstance};
use emporium_runtime::{ServiceGroup, ServiceHealth, ServiceSupervision, SupervisionTree, TaskContext, TaskHandle};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::watch;

use crate::admin::NodeAdmin;
use crate::context::{Lifecycle, ServiceContext, ServiceHandle};
use crate::credential::{ClusterSecret, OperatorAccess};
use crate::directory::Directory;
use crate::live_config::LiveConfig;
use crate::membership::{LocalInstance, Membership};
use crate::registry_client::RegistryClient;
use crate::service_ref::Cluster;
use crate::telemetry::Telemetry;
use crate::transport;

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Stable identity of the node.
    pub node_id: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// The cluster listener.
    pub listen: SocketAddr,
    /// The address other nodes use, when not the bound one.
    pub advertise: Option<String>,
    /// Registry URLs; empty means this node itself (it has the registry role).
    pub registry_urls: Vec<String>,
    /// Configuration profile.
    pub profile: String,
    /// The cluster credential.
    pub secret: ClusterSecret,
    /// `EMPORIUM__...` configuration overrides from the environment.
    pub env_overrides: Vec<(String, String)>,
    /// Build version.
    pub version: String,
    /// Upper bound on draining in-flight work at shutdown.
    pub drain_timeout: Duration,
    /// The service sections of the configuration this node knows.
    pub settings_schema: crate::settings::SettingsSchema,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Something else failed at start.
    #[error("{0}")]
    Start(String),
}

/// A check that readiness runs: `Err(reason)` makes the node not ready.
pub type ReadinessCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What `/health/ready` looks at.
#[derive(Clone, Default)]
pub struct Readiness {
    draining: Arc<AtomicBool>,
    parts: Arc<Mutex<ReadinessParts>>,
}

#[derive(Default)]
struct ReadinessParts {
    /// Instance id and whether the registry accepted it.
    registered: Vec<(String, Arc<AtomicBool>)>,
    /// Service name and its supervisor's verdict.
    health: Vec<(String, watch::Receiver<ServiceHealth>)>,
    /// Dependency checks by name.
    checks: Vec<(String, ReadinessCheck)>,
}

impl Readiness {
    /// Adds a dependency check (a store, the broker) named `name`.
    pub fn add_check(&self, name: &str, check: ReadinessCheck) {
        self.parts.lock().checks.push((name.to_string(), check));
    }

    /// Why the node is not ready; empty when it is.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.draining.load(Ordering::Acquire) {
            reasons.push("draining: the node is shutting down".to_string());
        }
        let parts = self.parts.lock();
        for (instance, registered) in &parts.registered {
            if !registered.load(Ordering::Acquire) {
                reasons.push(format!("{instance} is not registered with the registry yet"));
            }
        }
        for (service, health) in &parts.health {
            if let ServiceHealth::Down { reason } = &*health.borrow() {
                reasons.push(format!("{service} is down: {reason}"));
            }
        }
        for (name, check) in &parts.checks {
            if let Err(reason) = check() {
                reasons.push(format!("{name}: {reason}"));
            }
        }
        reasons
    }
}

/// Adds routes to the cluster listener (the registry's, for example).
pub type RouteMount = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Work to do at shutdown, after deregistration and before the cluster listener stops (a
/// gateway stopping its public server, for example).
pub type ShutdownHook = Box<dyn FnOnce() -> futures::future::LocalBoxFuture<'static, ()>>;

/// Shared state of the node's HTTP handlers.
pub(crate) struct NodeState {
    pub(crate) node_id: String,
    pub(crate) tree: SupervisionTree,
    pub(crate) cluster: Cluster,
    pub(crate) readiness: Readiness,
    pub(crate) telemetry: Telemetry,
    pub(crate) live_config: LiveConfig,
    pub(crate) operator_access: OperatorAccess,
    pub(crate) admin: NodeAdmin,
}

/// A node being assembled, then run.
pub struct Node {
    options: NodeOptions,
    listener: TcpListener,
    advertise: String,
    tree: SupervisionTree,
    cluster: Cluster,
    live_config: LiveConfig,
    readiness: Readiness,
    telemetry: Telemetry,
    registry_client: RegistryClient,
    mounts: Vec<RouteMount>,
    instances: Vec<LocalInstance>,
    arbiters: Vec<Arbiter>,
    config_version_tx: watch::Sender<u64>,
    shutdown_hooks: Vec<ShutdownHook>,
    service_resources: Vec<Box<dyn std::any::Any>>,
    lifecycle: Lifecycle,
    node_group: Option<ServiceGroup>,
    node_supervision: Option<ServiceSupervision>,
    ready_hooks: Vec<Box<dyn FnOnce()>>,
    operator_access: OperatorAccess,
    admin: NodeAdmin,
}

/// The supervision group of the node's own tasks.
pub const NODE_GROUP: &str = "node";

impl Node {
    /// Binds the cluster listener and prepares the node. Must run inside an actix System.
    pub fn bind(options: NodeOptions, telemetry: Telemetry) -> Result<Node, NodeError> {
        let listener =
            TcpListener::bind(options.listen).map_err(|source| NodeError::Bind { address: options.listen, source })?;
        let bound = listener.local_addr().map_err(|source| NodeError::Bind { address: options.listen, source })?;
        let advertise = options.advertise.clone().unwrap_or_else(|| {
            if bound.ip().is_unspecified() { format!("127.0.0.1:{}", bound.port()) } else { bound.to_string() }
        });
        let registry_urls = if options.registry_urls.is_empty() {
            vec![format!("http://{advertise}")]
        } else {
            options.registry_urls.clone()
        };
        let registry_client = RegistryClient::new(registry_urls, options.secret.clone());
        let live_config = LiveConfig::new(
            registry_client.clone(),
            &options.profile,
            options.env_overrides.clone(),
            options.settings_schema.clone(),
        )
        .map_err(NodeError::Start)?;
        let settings = live_config.current();
        let tree = SupervisionTree::new(&options.node_id, 256, settings.supervision.flight_recorder_len);
        let cluster = Cluster::new(&options.node_id, Directory::new(), options.secret.clone());
        cluster.call_sites().report_faults_to(tree.faults());
        let options_secret = options.secret.clone();
        cluster.call_sites().apply(&settings.resilience);
        let (config_version_tx, _) = watch::channel(0);
        Ok(Node {
            options,
            listener,
            advertise,
            tree,
            cluster,
            live_config,
            readiness: Readiness::default(),
            telemetry,
            registry_client,
            mounts: Vec::new(),
            instances: Vec::new(),
            arbiters: Vec::new(),
            config_version_tx,
            shutdown_hooks: Vec::new(),
            service_resources: Vec::new(),
            lifecycle: Lifecycle::new(),
            node_group: None,
            node_supervision: None,
            ready_hooks: Vec::new(),
            operator_access: OperatorAccess::new(options_secret),
            admin: NodeAdmin::default(),
        })
    }

    /// The address other nodes reach this one at.
    pub fn advertise_address(&self) -> &str {
        &self.advertise
    }

    /// The bound cluster listener address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The node's supervision tree as `/admin/v1/supervision` shows it.
    pub fn supervision_snapshot(&self) -> emporium_runtime::tree::TreeSnapshot {
        self.tree.snapshot()
    }

    /// The cluster credential.
    pub fn secret(&self) -> &ClusterSecret {
        &self.options.secret
    }

    /// The client of the registry this node follows.
    pub fn registry_client(&self) -> &RegistryClient {
        &self.registry_client
    }

    /// Who may read the operator endpoints: the cluster credential, and admin access tokens
    /// once a service (the gateway) installs its check.
    pub fn operator_access(&self) -> &OperatorAccess {
        &self.operator_access
    }

    /// The configuration sections this node knows.
    pub fn settings_schema(&self) -> &crate::settings::SettingsSchema {
        &self.options.settings_schema
    }

    /// What services add to the operator endpoints (status sections, dead-letter controls).
    pub fn admin(&self) -> &NodeAdmin {
        &self.admin
    }

    /// The cluster view.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The live configuration.
    pub fn live_config(&self) -> &LiveConfig {
        &self.live_config
    }

    /// Readiness, to add dependency checks.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Fetches the configuration once before services start (see [`LiveConfig::prefetch`]).
    pub async fn prefetch_config(&self, within: Duration) {
        self.live_config.prefetch(within).await;
        let settings = self.live_config.current();
        self.cluster.call_sites().apply(&settings.resilience);
    }

    /// The context a service's `start` takes. The node's services share one arbiter (thread),
    /// so a local ask between them never crosses threads; the HTTP listeners have their own
    /// workers, and CPU-heavy work goes to blocking threads (`spawn_blocking`).
    pub fn service_context(&mut self) -> ServiceContext {
        if self.arbiters.is_empty() {
            self.arbiters.push(Arbiter::new());
        }
        let handle = self.arbiters[0].handle();
        ServiceContext {
            node_id: self.options.node_id.clone(),
            tree: self.tree.clone(),
            cluster: self.cluster.clone(),
            settings: self.live_config.subscribe(),
            arbiter: handle,
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// The node's stop signal and the tasks it waits for at shutdown.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Starts a node-level loop (a store monitor, a broker watcher) as a supervised task of
    /// the node's own group (`node/<name>` in the supervision tree), stopped at shutdown.
    pub fn spawn_node_task<F>(&mut self, name: &str, factory: F) -> TaskHandle
    where
        F: Fn(TaskContext) -> futures::future::LocalBoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        if self.node_group.is_none() {
            let context = self.service_context();
            self.node_group = Some(context.group(NODE_GROUP));
        }
        let context = self.service_context();
        let group = self.node_group.as_mut().expect("created above");
        context.spawn_task(group, name, factory)
    }

    /// Adds a started service: reachable locally and remotely, registered as an instance.
    pub fn add_service(&mut self, handle: ServiceHandle) {
        self.add_service_with_metadata(handle, BTreeMap::new());
    }

    /// Adds a started service whose instance carries `metadata` (a gateway's public address).
    pub fn add_service_with_metadata(&mut self, handle: ServiceHandle, metadata: BTreeMap<String, String>) {
        let service = handle.endpoint.service().to_string();
        self.service_resources.extend(handle.resources);
        self.cluster.add_local(handle.endpoint);
        self.readiness.parts.lock().health.push((service.clone(), handle.supervision.health.clone()));
        self.add_instance(&service, Some(handle.supervision.health), metadata);
    }

    /// Runs `hook` once the node is serving and ready (or has tried for 30 s): for what an
    /// operator must see after the start (a generated admin password).
    pub fn after_ready(&mut self, hook: Box<dyn FnOnce()>) {
        self.ready_hooks.push(hook);
    }

    /// Runs `hook` at shutdown, after deregistration.
    pub fn on_shutdown(&mut self, hook: ShutdownHook) {
        self.shutdown_hooks.push(hook);
    }

    /// Registers an instance of `service` on this node (for services without actors of their
    /// own, such as the registry).
    pub fn add_instance(
        &mut self,
        service: &str,
        health: Option<watch::Receiver<ServiceHealth>>,
        metadata: BTreeMap<String, String>,
    ) {
        let registered = Arc::new(AtomicBool::new(false));
        let id = format!("{service}@{}", self.options.node_id);
        self.readiness.parts.lock().registered.push((id.clone(), registered.clone()));
        self.instances.push(LocalInstance {
            registration: RegisterInstance {
                id,
                service: service.to_string(),
                node_id: self.options.node_id.clone(),
                address: self.advertise.clone(),
                status: InstanceStatus::Starting,
                roles: self.options.roles.clone(),
                version: self.options.version.clone(),
                metadata,
                lease_millis: None,
            },
            health,
            registered,
        });
    }

    /// Adds routes to the cluster listener.
    pub fn mount(&mut self, mount: RouteMount) {
        self.mounts.push(mount);
    }

    /// Serves until `shutdown` resolves, then fails readiness, deregisters, drains and returns.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), NodeError> {
        if let Some(group) = self.node_group.take() {
            self.node_supervision = Some(group.finish());
        }
        let settings = self.live_config.current();
        let telemetry = self.telemetry.clone();
        let call_sites_cluster = self.cluster.clone();
        self.live_config
            .add_applier(Box::new(move |settings| telemetry.set_level(&settings.log.level)))
            .map_err(NodeError::Start)?;
        self.live_config
            .add_applier(Box::new(move |settings| {
                call_sites_cluster.call_sites().apply(&settings.resilience);
                call_sites_cluster.set_transport(settings.cluster.transport);
                Ok(())
            }))
            .map_err(NodeError::Start)?;
        self.live_config
            .set_instances(self.instances.iter().map(|instance| instance.registration.id.clone()).collect());

        let state = web::Data::new(NodeState {
            node_id: self.options.node_id.clone(),
            tree: self.tree.clone(),
            cluster: self.cluster.clone(),
            readiness: self.readiness.clone(),
            telemetry: self.telemetry.clone(),
            live_config: self.live_config.clone(),
            operator_access: self.operator_access.clone(),
            admin: self.admin.clone(),
        });
        let cluster_data = web::Data::new(self.cluster.clone());
        let secret_data = web::Data::new(self.options.secret.clone());
        let mounts = self.mounts.clone();
        let server_options = crate::edge_server::EdgeServerOptions {
            name: "cluster",
            workers: 2,
            client_request_timeout: Duration::from_secs(5),
            shutdown_timeout: self.options.drain_timeout,
            // A peer's end of file ends its connection at once: the registry learns that a
            // node's watch connection closed without waiting for the next ping to fail.
            allow_half_closed: false,
        };
        let (frame_server, frame_server_stop) =
            crate::frame_server::FrameServer::new(self.cluster.clone(), self.options.secret.clone());
        let server = crate::edge_server::serve(self.listener, server_options, Some(frame_server), move || {
            let mut app = App::new()
                .wrap_fn(|request, service| {
                    let started = std::time::Instant::now();
                    let method = crate::telemetry::method_label(request.method());
                    let route = route_label(request.path());
                    let response = service.call(request);
                    async move {
                        let response = response.await?;
                        // An error actix-web answered itself gets the envelope too.
                        let response = if crate::edge::is_bare_error(&response) {
                            let (http_request, bare) = response.into_parts();
                            let envelope = crate::edge::envelope_for(bare.status());
                            actix_web::dev::ServiceResponse::new(http_request, envelope).map_into_right_body()
                        } else {
                            response.map_into_left_body()
                        };
                        let status = response.status().as_u16().to_string();
                        metrics::histogram!("emporium_http_request_duration_seconds", "listener" => "cluster", "route" => route, "method" => method)
                            .record(started.elapsed().as_secs_f64());
                        metrics::counter!("emporium_http_requests_total", "listener" => "cluster", "route" => route, "method" => method, "status" => status)
                            .increment(1);
                        Ok(response)
                    }
                })
                .app_data(state.clone())
                .app_data(cluster_data.clone())
                .app_data(secret_data.clone())
                .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
                .route("/health/live", web::get().to(live))
                .route("/health/ready", web::get().to(ready))
                .route("/metrics", web::get().to(metrics))
                .route("/admin/v1/supervision", web::get().to(crate::admin::supervision))
                .route("/admin/v1/actions", web::post().to(crate::admin::act))
                .route("/admin/v1/traces/{trace_id}", web::get().to(crate::admin::trace))
                .route("/cluster/v1/ask/{service}/{message}", web::post().to(transport::serve_ask));
            for mount in &mounts {
                let mount = mount.clone();
                app = app.configure(move |config| mount(config));
            }
            app.default_service(web::to(not_found))
        })
        .map_err(|error| NodeError::Start(format!("cannot serve the cluster listener: {error}")))?;
        let server_handle = server.handle();
        let server_task = actix_web::rt::spawn(server);

        let (draining_tx, draining_rx) = watch::channel(false);
        let heartbeat = Duration::from_millis(settings.registry.heartbeat_millis);
        let membership = Membership::start(
            self.registry_client.clone(),
            self.instances,
            heartbeat,
            draining_rx,
            self.live_config.clone(),
        );
        let watcher = crate::watcher::start(
            self.registry_client.clone(),
            self.cluster.clone(),
            self.config_version_tx.clone(),
            Duration::from_millis(settings.registry.watch_ping_millis),
            self.options.node_id.clone(),
        );
        let config_follower = self.live_config.follow(self.config_version_tx.subscribe());
        let tree = self.tree.clone();
        let gauges = actix_web::rt::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                interval.tick().await;
                tree.export_gauges();
            }
        });

        tracing::info!(
            node_id = %self.options.node_id,
            roles = %self.options.roles.join(","),
            listen = %self.advertise,
            "node started"
        );
        let ready_hooks = std::mem::take(&mut self.ready_hooks);
        let readiness = self.readiness.clone();
        let after_ready = actix_web::rt::spawn(async move {
            if ready_hooks.is_empty() {
                return;
            }
            let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
            while !readiness.reasons().is_empty() && tokio::time::Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for hook in ready_hooks {
                hook();
            }
        });
        shutdown.await;
        after_ready.abort();

        tracing::info!(node_id = %self.options.node_id, "shutting down: readiness off, deregistering, draining");
        self.readiness.draining.store(true, Ordering::Release);
        draining_tx.send_replace(true);
        membership.deregister_all(Duration::from_secs(2)).await;
        for hook in self.shutdown_hooks {
            hook().await;
        }
        let still_running = self.lifecycle.stop(self.options.drain_timeout).await;
        if !still_running.is_empty() {
            tracing::warn!(tasks = %still_running.join(", "), "tasks still running after the drain bound");
        }
        // Whatever else services keep (relays, consumers) stops when dropped.
        drop(self.service_resources);
        drop(self.node_supervision);
        watcher.abort();
        config_follower.abort();
        gauges.abort();
        frame_server_stop.stop();
        server_handle.stop(true).await;
        let _ = server_task.await;
        for arbiter in self.arbiters {
            arbiter.stop();
        }
        tracing::info!(node_id = %self.options.node_id, "node stopped");
        Ok(())
    }
}

/// The metrics label of a cluster-listener path: its route pattern, found without matching
/// the router a second time (the hot path is the cluster transport).
fn route_label(path: &str) -> &'static str {
    match path {
        _ if path.starts_with("/cluster/v1/ask/") => "/cluster/v1/ask/{service}/{message}",
        _ if path.starts_with("/registry/v1/instances") => "/registry/v1/instances",
        _ if path.starts_with("/registry/v1/watch") => "/registry/v1/watch",
        _ if path.starts_with("/registry/v1/config") => "/registry/v1/config",
        _ if path.starts_with("/registry/") => "/registry",
        "/health/live" => "/health/live",
        "/health/ready" => "/health/ready",
        "/metrics" => "/metrics",
        "/admin/v1/supervision" => "/admin/v1/supervision",
        "/admin/v1/actions" => "/admin/v1/actions",
        _ if path.starts_with("/admin/v1/traces/") => "/admin/v1/traces/{trace_id}",
        _ => "other",
    }
}

pub(crate) fn json_error(error: &ServiceError) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(error.http_status())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(error.to_public_body())
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    json_error(&ServiceError::not_found("not_found", format!("no route for {} {}", request.method(), request.path())))
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "live" }))
}

/// `/health/ready`: 200 or 503 with the reasons. `registry` says whether the registry is
/// reachable: a node that registered once keeps serving from its cached directory while the
/// registry is away, and stays ready (API.md section 2).
async fn ready(state: web::Data<NodeState>) -> HttpResponse {
    let reasons = state.readiness.reasons();
    let directory = state.cluster.directory();
    let registry = if directory.is_stale() {
        "unreachable"
    } else if directory.is_synced() {
        "reachable"
    } else {
        "connecting"
    };
    if reasons.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ready", "nodeId": state.node_id, "registry": registry }))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "status": "not_ready", "nodeId": state.node_id, "registry": registry, "reasons": reasons }))
    }
}

async fn metrics(state: web::Data<NodeState>) -> HttpResponse {
    state.tree.export_gauges();
    let directory = state.cluster.directory().snapshot();
    metrics::gauge!("emporium_directory_instances").set(directory.instances.len() as f64);
    metrics::gauge!("emporium_directory_stale").set(if directory.stale { 1.0 } else { 0.0 });
    metrics::gauge!("emporium_config_version_applied").set(state.live_config.applied_version() as f64);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.telemetry.render_metrics())
}
