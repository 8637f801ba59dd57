//! Roles and the wiring from roles to services. This is the only place that knows every
//! service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use emporium_cluster::{ClusterSecret, Node, NodeOptions, Telemetry};

use crate::cli::{Cli, RoleList};
use crate::stores;

/// What a node can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Discovery and configuration.
    Registry,
    /// The public HTTP entry.
    Gateway,
    /// Stock and reservations.
    Inventory,
    /// The diagnostic echo service (builds with the `test-services` feature only).
    #[cfg(feature = "test-services")]
    Echo,
    /// The diagnostic probe service, which asks `echo` through `ServiceRef`.
    #[cfg(feature = "test-services")]
    Probe,
}

/// Roles the contract names that this build cannot run yet.
const PLANNED_ROLES: [&str; 5] = ["auth", "product", "order", "payment", "notification"];

impl Role {
    /// Every role `all` stands for.
    const ALL: [Role; 3] = [Role::Registry, Role::Gateway, Role::Inventory];

    /// The role's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Registry => "registry",
            Role::Gateway => "gateway",
            Role::Inventory => "inventory",
            #[cfg(feature = "test-services")]
            Role::Echo => "echo",
            #[cfg(feature = "test-services")]
            Role::Probe => "probe",
        }
    }

    /// Parses `--role`: comma-separated names, `all` for every production role.
    pub fn parse_list(text: &str) -> Result<RoleList, String> {
        let mut roles = Vec::new();
        for name in text.split(',').map(str::trim) {
            match name {
                "all" => roles.extend(Role::ALL),
                "registry" => roles.push(Role::Registry),
                "gateway" => roles.push(Role::Gateway),
                "inventory" => roles.push(Role::Inventory),
                #[cfg(feature = "test-services")]
                "echo" => roles.push(Role::Echo),
                #[cfg(feature = "test-services")]
                "probe" => roles.push(Role::Probe),
                planned if PLANNED_ROLES.contains(&planned) => {
                    return Err(format!("role {planned:?} is not available in this build yet"));
                }
                "" => return Err("empty role name".to_string()),
                unknown => {
                    return Err(format!(
                        "unknown role {unknown:?} (expected registry, gateway, auth, product, inventory, order, payment, notification or all)"
                    ));
                }
            }
        }
        roles.sort();
        roles.dedup();
        Ok(RoleList(roles))
    }
}

fn generated_node_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("node-{}", &id[..8])
}

/// Runs one node with the roles of `cli` until SIGTERM or Ctrl-C.
pub async fn run_node(cli: Cli) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let env_overrides: Vec<(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(emporium_cluster::settings::ENV_OVERRIDE_PREFIX))
        .cloned()
        .collect();
    let initial_level = env_overrides
        .iter()
        .find(|(name, _)| name == "EMPORIUM__LOG__LEVEL")
        .map_or("info", |(_, level)| level.as_str());
    let telemetry = Telemetry::init(initial_level).map_err(anyhow::Error::msg)?;

    let roles = cli.role.0.clone();
    let has_registry = roles.contains(&Role::Registry);
    let registry_urls = if !cli.registry.is_empty() {
        cli.registry.clone()
    } else if has_registry {
        Vec::new()
    } else {
        vec!["http://127.0.0.1:8761".to_string()]
    };
    let secret = match std::env::var("EMPORIUM_CLUSTER_SECRET") {
        Ok(secret) if !secret.is_empty() => ClusterSecret::new(secret).map_err(anyhow::Error::msg)?,
        _ => {
            if !registry_urls.is_empty() {
                tracing::warn!(
                    "EMPORIUM_CLUSTER_SECRET is unset: this node made up its own secret, so the registry and other nodes will refuse it"
                );
            }
            ClusterSecret::generate()
        }
    };
    let listen = cli.listen.unwrap_or_else(|| {
        if has_registry {
            "0.0.0.0:8761".parse().expect("valid address")
        } else {
            "127.0.0.1:0".parse().expect("valid address")
        }
    });
    let options = NodeOptions {
        node_id: cli.node_id.clone().unwrap_or_else(generated_node_id),
        roles: roles.iter().map(|role| role.name().to_string()).collect(),
        listen,
        advertise: cli.advertise.clone(),
        registry_urls,
        profile: cli.profile.clone(),
        secret: secret.clone(),
        env_overrides,
        version: env!("CARGO_PKG_VERSION").to_string(),
        drain_timeout: Duration::from_secs(10),
    };
    let mysql_url = std::env::var("EMPORIUM_MYSQL_URL").ok().filter(|url| !url.is_empty());
    let mut node = Node::bind(options, telemetry)?;
    if !has_registry {
        node.prefetch_config(Duration::from_secs(1)).await;
    }

    for role in &roles {
        match role {
            Role::Registry => {
                if !cli.config_dir.is_dir() {
                    bail!("the configuration directory {} does not exist (see --config-dir)", cli.config_dir.display());
                }
                let registry = emporium_registry::start(emporium_registry::RegistryOptions {
                    config_dir: cli.config_dir.clone(),
                    profile: cli.profile.clone(),
                    secret: secret.clone(),
                })
                .context("the registry could not start")?;
                node.live_config().seed(&registry.settings().await).map_err(anyhow::Error::msg)?;
                let routes = registry.clone();
                node.mount(Arc::new(move |config| routes.configure(config)));
                node.add_instance("registry", None, BTreeMap::new());
            }
            Role::Gateway => {
                let listener = std::net::TcpListener::bind(cli.http)
                    .map_err(|error| anyhow::anyhow!("cannot listen on {} (--http): {error}", cli.http))?;
                let gateway = emporium_gateway::start(
                    node.service_context(),
                    emporium_gateway::GatewayOptions {
                        listener,
                        routes: public_routes(),
                        openapi: public_openapi(),
                        body_limit: emporium_cluster::edge::DEFAULT_BODY_LIMIT,
                        request_timeout: Duration::from_secs(10),
                        user_check_ttl: Duration::from_secs(5),
                    },
                )?;
                let metadata = BTreeMap::from([("http".to_string(), gateway.address.to_string())]);
                node.add_service_with_metadata(gateway.service, metadata);
                let server = gateway.server;
                node.on_shutdown(Box::new(move || Box::pin(async move { server.stop(true).await })));
            }
            Role::Inventory => {
                let database = stores::sql_database("inventory", mysql_url.as_deref(), &cli.data_dir).await?;
                stores::watch_database(node.readiness(), "inventory", database.clone());
                let options = emporium_inventory::InventoryOptions { database };
                let handle = emporium_inventory::start(node.service_context(), options).await?;
                node.add_service(handle);
            }
            #[cfg(feature = "test-services")]
            Role::Echo => {
                let handle = emporium_echo::start(node.service_context())?;
                node.add_service(handle);
            }
            #[cfg(feature = "test-services")]
            Role::Probe => {
                let handle = emporium_echo::start_probe(node.service_context())?;
                node.add_service(handle);
            }
        }
    }

    node.run(shutdown_signal()).await?;
    Ok(())
}

/// The public routes of every service in this build; the gateway mounts them all, wherever
/// the services run. (Pushes depend on features, hence the lint exception.)
#[allow(clippy::vec_init_then_push)]
fn public_routes() -> Vec<emporium_cluster::node::RouteMount> {
    let mut routes: Vec<emporium_cluster::node::RouteMount> = Vec::new();
    routes.push(Arc::new(emporium_inventory::routes));
    #[cfg(feature = "test-services")]
    routes.push(Arc::new(emporium_echo::routes));
    routes
}

/// The OpenAPI fragments of the services in this build.
#[allow(clippy::vec_init_then_push, unused_mut)]
fn public_openapi() -> Vec<utoipa::openapi::OpenApi> {
    let mut fragments = Vec::new();
    fragments.push(emporium_inventory::openapi());
    #[cfg(feature = "test-services")]
    fragments.push(emporium_echo::openapi());
    fragments
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => futures_pending().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn futures_pending() {
    std::future::pending::<()>().await
}
