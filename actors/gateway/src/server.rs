//! Starting the gateway: its actor, its public HTTP server with every service's routes, and
//! its own routes (`/openapi.json`, `/api/v1/cluster/nodes`).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, middleware, web};
use emporium_cluster::admin::NodeAdminClient;
use emporium_cluster::edge::{AdminCaller, ApiError, error_response, json_config, path_config, query_config};
use emporium_cluster::edge_server::{self, EdgeServerOptions};
use emporium_cluster::node::RouteMount;
use emporium_cluster::registry_client::RegistryClient;
use emporium_cluster::routes_kit::{BearerSecurity, EdgeResponses};
use emporium_cluster::{Cluster, ServiceContext, ServiceHandle};
use emporium_contracts::ServiceError;
use emporium_contracts::registry::InstanceInfo;
use emporium_runtime::LocalEndpoint;
use serde::Serialize;
use utoipa::{Modify, OpenApi};

use crate::active_users::ActiveUsers;
use crate::dashboard::Dashboard;
use crate::dashboard::collector::Collector;
use crate::key_refresher::{self, KeyRefresher};
use crate::messages::{RefreshSigningKeys, SERVICE};
use crate::middleware::{EdgeState, edge};
use crate::settings::GatewaySettings;
use crate::verifier::TokenVerifier;

/// How the gateway is started.
pub struct GatewayOptions {
    /// The bound public listener (`--http`).
    pub listener: TcpListener,
    /// Routes of the services, mounted under the edge middleware.
    pub routes: Vec<RouteMount>,
    /// OpenAPI fragments of the services, merged into `/openapi.json`.
    pub openapi: Vec<utoipa::openapi::OpenApi>,
    /// The `[gateway]` section: limits, budgets and the user check's policy.
    pub settings: GatewaySettings,
    /// The registry, asked for fresh heartbeat times by `/api/v1/cluster/nodes` (the
    /// directory's copy is as of each instance's last change); `None`: the directory only.
    pub registry: Option<RegistryClient>,
}

/// A running gateway.
pub struct Gateway {
    /// The gateway's actors, to register as the `gateway` service.
    pub service: ServiceHandle,
    /// Stops the public server.
    pub server: ServerHandle,
    /// The public address it listens on.
    pub address: std::net::SocketAddr,
    /// The verification keys, for readiness (no keys yet: not ready).
    pub verifier: Arc<TokenVerifier>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Emporium", description = "The public API of an Emporium cluster, through its gateway."),
    servers((url = "/", description = "The gateway that serves this document")),
    paths(cluster_nodes, openapi_document),
    modifiers(&BearerSecurity)
)]
struct GatewayApi;

/// Starts the gateway's actor and its public server. Must run inside the node's actix System.
pub fn start(ctx: ServiceContext, options: GatewayOptions) -> anyhow::Result<Gateway> {
    let settings = &options.settings;
    let verifier = Arc::new(TokenVerifier::default());
    let mut group = ctx.group(SERVICE);
    let auth = ctx.service(emporium_contracts::auth::SERVICE);
    let refresher_verifier = verifier.clone();
    let refresher_auth = auth.clone();
    let keys = group.spawn("keys", move || KeyRefresher::new(refresher_auth.clone(), refresher_verifier.clone()));
    key_refresher::spawn_key_refresh(&ctx, &mut group, &keys);
    let supervision = group.finish();
    let endpoint =
        LocalEndpoint::builder(SERVICE, supervision.health.clone()).route::<RefreshSigningKeys, _>(&keys).build();
    let refresh_keys = endpoint.route::<RefreshSigningKeys>().expect("just routed").clone();

    let state = web::Data::new(EdgeState {
        verifier: verifier.clone(),
        refresh_keys,
        active_users: ActiveUsers::new(
            auth,
            Duration::from_millis(settings.user_check_ttl_millis),
            Duration::from_millis(settings.user_check_timeout_millis),
            settings.user_check_unanswered,
        ),
        body_limit: settings.body_limit_bytes,
        request_timeout: Duration::from_millis(settings.request_timeout_millis),
    });
    let mut document = GatewayApi::openapi();
    for fragment in options.openapi {
        document.merge(fragment);
    }
    EdgeResponses.modify(&mut document);
    let document = web::Data::new(serde_json::to_value(&document)?);
    let dashboard = options.registry.clone().map(|registry| {
        let nodes = NodeAdminClient::new(registry.secret().clone(), Duration::from_secs(2));
        let collector = Collector::new(registry.clone(), nodes.clone(), ctx.cluster.clone(), ctx.settings.clone());
        actix_web::rt::spawn(collector.clone().run());
        web::Data::new(Dashboard::new(collector, registry, nodes, ctx.service(emporium_contracts::auth::SERVICE)))
    });
    let cluster = web::Data::new(ctx.cluster.clone());
    let registry = web::Data::new(options.registry.clone());
    let routes = options.routes;
    let http_backends = crate::http_backends::BackendRoute::all(
        &options.settings.http_routes,
        &ctx.cluster,
        Duration::from_millis(options.settings.request_timeout_millis),
    )?;
    let body_limit = options.settings.body_limit_bytes;
    let address = options.listener.local_addr()?;
    let server_options = EdgeServerOptions {
        name: "gateway",
        workers: 2,
        client_request_timeout: Duration::from_secs(5),
        shutdown_timeout: Duration::from_secs(10),
        allow_half_closed: true,
    };
    let server = edge_server::serve(options.listener, server_options, None, move || {
        let mut app = App::new()
            .wrap(middleware::from_fn(edge))
            .app_data(state.clone())
            .app_data(cluster.clone())
            .app_data(registry.clone())
            .app_data(document.clone())
            .app_data(json_config(body_limit))
            .app_data(query_config())
            .app_data(path_config())
            .app_data(web::PayloadConfig::new(body_limit))
            .route("/openapi.json", web::get().to(openapi_document))
            .configure(crate::docs::configure)
            .route("/api/v1/cluster/nodes", web::get().to(cluster_nodes));
        if let Some(dashboard) = &dashboard {
            app = app.app_data(dashboard.clone()).configure(crate::dashboard::configure);
        }
        for mount in &routes {
            let mount = mount.clone();
            app = app.configure(move |config| mount(config));
        }
        app = app.configure(|config| crate::http_backends::configure(config, &http_backends));
        app.default_service(web::to(not_found))
    })?;
    let server_handle = server.handle();
    actix_web::rt::spawn(server);

    tracing::info!(http = %address, "gateway listening");
    Ok(Gateway { service: ServiceHandle::new(endpoint, supervision), server: server_handle, address, verifier })
}

/// No route answered: 405 `method_not_allowed` with `Allow` when the path is one of the
/// document's paths with other methods, else 404 `not_found`.
async fn not_found(request: HttpRequest, document: web::Data<serde_json::Value>) -> HttpResponse {
    let allowed = allowed_methods(&document, request.path());
    if !allowed.is_empty() {
        let allow = allowed.join(", ");
        let error = ServiceError::new(
            emporium_contracts::ErrorKind::InvalidInput,
            "method_not_allowed",
            format!("{} takes {allow}", request.path()),
        );
        let mut response = error_response(&error);
        *response.status_mut() = actix_web::http::StatusCode::METHOD_NOT_ALLOWED;
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
            response.headers_mut().insert(actix_web::http::header::ALLOW, value);
        }
        return response;
    }
    error_response(&ServiceError::not_found(
        "not_found",
        format!("no route for {} {}", request.method(), request.path()),
    ))
}

/// The methods the OpenAPI `document` lists for the path template `path` matches (`{name}`
/// matches one segment), upper case.
fn allowed_methods(document: &serde_json::Value, path: &str) -> Vec<String> {
    let Some(paths) = document.get("paths").and_then(|paths| paths.as_object()) else { return Vec::new() };
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    // A literal path (`/api/v1/inventory/availability`) wins over a template it also fits.
    let exact = paths.contains_key(path);
    let mut methods: Vec<String> = paths
        .iter()
        .filter(|(template, _)| {
            if exact {
                return template.as_str() == path;
            }
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| {
                    (part.starts_with('{') && part.ends_with('}') && !segment.is_empty()) || part == segment
                })
        })
        .flat_map(|(_, item)| item.as_object().into_iter().flat_map(|operations| operations.keys()))
        .filter(|method| matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch"))
        .map(|method| method.to_uppercase())
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3 document")))]
async fn openapi_document(document: web::Data<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(document.get_ref())
}

/// One node of the cluster and its service instances.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClusterNode {
    node_id: String,
    address: String,
    roles: Vec<String>,
    version: String,
    #[schema(value_type = Vec<Object>)]
    instances: Vec<InstanceInfo>,
}

/// `GET /api/v1/cluster/nodes`: the directory as this gateway sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClusterNodes {
    /// The registry could not be reached lately: this is the last directory it sent.
    stale: bool,
    /// Where the instances come from: `registry` (asked now: heartbeat times are fresh) or
    /// `directory` (this gateway's copy, when the registry did not answer within 500 ms).
    source: &'static str,
    /// The version of the registry's state this directory reflects.
    registry_version: u64,
    /// The registry paused evictions because most leases lapsed at once.
    self_preservation: bool,
    /// Every node with its instances.
    nodes: Vec<ClusterNode>,
}

/// The cluster's nodes, roles, instances and their status, from this gateway's directory.
#[utoipa::path(
    get,
    path = "/api/v1/cluster/nodes",
    tag = "cluster",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Nodes and their instances", body = ClusterNodes),
        (status = 401, description = "No or bad token"),
        (status = 403, description = "Not an admin"),
    )
)]
async fn cluster_nodes(
    _admin: AdminCaller,
    cluster: web::Data<Cluster>,
    registry: web::Data<Option<RegistryClient>>,
) -> Result<HttpResponse, ApiError> {
    let directory = cluster.directory().snapshot();
    let fresh = match registry.get_ref() {
        Some(registry) => {
            tokio::time::timeout(Duration::from_millis(500), registry.instances()).await.ok().and_then(Result::ok)
        }
        None => None,
    };
    let source = if fresh.is_some() { "registry" } else { "directory" };
    let mut nodes: BTreeMap<String, ClusterNode> = BTreeMap::new();
    for instance in fresh.unwrap_or(directory.instances) {
        let node = nodes.entry(instance.node_id.clone()).or_insert_with(|| ClusterNode {
            node_id: instance.node_id.clone(),
            address: instance.address.clone(),
            roles: instance.roles.clone(),
            version: instance.version.clone(),
            instances: Vec::new(),
        });
        node.instances.push(instance);
    }
    Ok(HttpResponse::Ok().json(ClusterNodes {
        stale: directory.stale,
        source,
        registry_version: directory.version,
        self_preservation: directory.registry.self_preservation,
        nodes: nodes.into_values().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;

    #[test]
    fn a_known_path_with_another_method_names_the_methods_it_takes() {
        let document = serde_json::json!({"paths": {
            "/api/v1/orders": {"get": {}, "post": {}},
            "/api/v1/orders/{id}": {"get": {}, "parameters": []},
            "/api/v1/orders/{id}/cancel": {"post": {}},
            "/api/v1/orders/mine": {"get": {}},
        }});
        assert_eq!(allowed_methods(&document, "/api/v1/orders/mine"), ["GET"], "the literal path wins");
        assert_eq!(allowed_methods(&document, "/api/v1/orders"), ["GET", "POST"]);
        assert_eq!(allowed_methods(&document, "/api/v1/orders/"), ["GET", "POST"]);
        assert_eq!(allowed_methods(&document, "/api/v1/orders/42"), ["GET"]);
        assert_eq!(allowed_methods(&document, "/api/v1/orders/42/cancel"), ["POST"]);
        assert!(allowed_methods(&document, "/api/v1/orders/42/refund").is_empty());
        assert!(allowed_methods(&document, "/api/v1/orders//cancel").is_empty());
        assert!(allowed_methods(&document, "/nothing").is_empty());
    }
}
