//! Roles to services: the only place that knows every service. Each role's service gets its
//! store (MariaDB when `EMPORIUM_MYSQL_URL` is set, else embedded), the event bus (RabbitMQ
//! when `EMPORIUM_AMQP_URL` is set, else in process) and its context, and the gateway mounts
//! every service's routes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use emporium_bus::{Bus, BusConfig};
use emporium_cluster::node::RouteMount;
use emporium_cluster::{ClusterSecret, Node};

use crate::cli::Cli;
use crate::roles::Role;
use crate::stores;

/// What the roles of one node share while they start.
pub struct Wiring {
    config_dir: PathBuf,
    profile: String,
    http: std::net::SocketAddr,
    data_dir: PathBuf,
    mysql_url: Option<String>,
    amqp_url: Option<String>,
    mongodb_url: Option<String>,
    env: Vec<(String, String)>,
    secret: ClusterSecret,
    bus: Option<Bus>,
}

impl Wiring {
    /// Reads what the services need from the flags and the environment.
    pub fn new(cli: &Cli, env: Vec<(String, String)>, secret: ClusterSecret) -> Wiring {
        let lookup = |name: &str| {
            env.iter().find(|(key, value)| key == name && !value.is_empty()).map(|(_, value)| value.clone())
        };
        Wiring {
            config_dir: cli.config_dir.clone(),
            profile: cli.profile.clone(),
            http: cli.http,
            data_dir: cli.data_dir.clone(),
            mysql_url: lookup("EMPORIUM_MYSQL_URL"),
            amqp_url: lookup("EMPORIUM_AMQP_URL"),
            mongodb_url: lookup("EMPORIUM_MONGODB_URL"),
            env,
            secret,
            bus: None,
        }
    }

    /// The node's event bus, connected on first use.
    async fn bus(&mut self, node: &Node) -> anyhow::Result<Bus> {
        if let Some(bus) = &self.bus {
            return Ok(bus.clone());
        }
        let config = match &self.amqp_url {
            Some(url) => BusConfig::amqp(url),
            None => BusConfig::default(),
        };
        let bus = Bus::connect(config).await.context("EMPORIUM_AMQP_URL is set but RabbitMQ cannot be reached")?;
        let readiness_bus = bus.clone();
        node.readiness().add_check("event bus", Box::new(move || readiness_bus.readiness()));
        self.bus = Some(bus.clone());
        Ok(bus)
    }

    async fn database(&self, node: &Node, service: &str) -> anyhow::Result<emporium_store::Database> {
        let database = stores::sql_database(service, self.mysql_url.as_deref(), &self.data_dir).await?;
        stores::watch_database(node.readiness(), service, database.clone());
        Ok(database)
    }

    /// Starts the service of `role` on `node`.
    pub async fn start(&mut self, node: &mut Node, role: Role) -> anyhow::Result<()> {
        let bus = if role.uses_the_bus() { Some(self.bus(node).await?) } else { None };
        match role {
            Role::Registry => {
                if !self.config_dir.is_dir() {
                    bail!(
                        "the configuration directory {} does not exist (see --config-dir)",
                        self.config_dir.display()
                    );
                }
                let registry = emporium_registry::start(emporium_registry::RegistryOptions {
                    config_dir: self.config_dir.clone(),
                    profile: self.profile.clone(),
                    secret: self.secret.clone(),
                    schema: Default::default(),
                })
                .context("the registry could not start")?;
                node.live_config().seed(&registry.settings().await).map_err(anyhow::Error::msg)?;
                let routes = registry.clone();
                node.mount(Arc::new(move |config| routes.configure(config)));
                node.add_instance("registry", None, BTreeMap::new());
            }
            Role::Auth => {
                let settings = node.live_config().current().auth.clone();
                let mut options = emporium_auth::AuthOptions::new(self.database(node, "auth").await?, &self.data_dir)
                    .with_env(&self.env)?;
                options.access_token_lifetime = Duration::from_secs(settings.access_token_lifetime_secs);
                options.refresh_token_lifetime = Duration::from_secs(settings.refresh_token_lifetime_secs);
                options.bus = bus;
                let handle = emporium_auth::start(node.service_context(), options).await?;
                node.add_service(handle);
            }
            Role::Product => {
                let store = stores::product_store(self.mongodb_url.as_deref(), &self.data_dir).await?;
                stores::watch_product_store(node.readiness(), store.clone());
                let handle =
                    emporium_product::start(node.service_context(), emporium_product::ProductOptions { store }).await?;
                node.add_service(handle);
            }
            Role::Inventory => {
                let options =
                    emporium_inventory::InventoryOptions { database: self.database(node, "inventory").await?, bus };
                let handle = emporium_inventory::start(node.service_context(), options).await?;
                node.add_service(handle);
            }
            Role::Order => {
                let bus = bus.expect("the order role uses the bus");
                let options = emporium_order::OrderOptions { database: self.database(node, "order").await?, bus };
                let handle = emporium_order::start(node.service_context(), options).await?;
                node.add_service(handle);
            }
            Role::Payment => {
                let bus = bus.expect("the payment role uses the bus");
                let options = emporium_payment::PaymentOptions { database: self.database(node, "payment").await?, bus };
                let handle = emporium_payment::start(node.service_context(), options).await?;
                node.add_service(handle);
            }
            Role::Notification => {
                let bus = bus.expect("the notification role uses the bus");
                let smtp = emporium_notification::SmtpSettings::from_env(&self.env)?;
                let options = emporium_notification::NotificationOptions {
                    database: self.database(node, "notification").await?,
                    bus,
                    smtp,
                    from_address: emporium_notification::from_address_from_env(&self.env),
                    delivery: emporium_notification::DeliverySettings::default(),
                };
                let handle = emporium_notification::start(node.service_context(), options).await?;
                node.add_service(handle);
            }
            Role::Gateway => {
                let listener = std::net::TcpListener::bind(self.http)
                    .map_err(|error| anyhow::anyhow!("cannot listen on {} (--http): {error}", self.http))?;
                let settings = node.live_config().current().gateway.clone();
                let gateway = emporium_gateway::start(
                    node.service_context(),
                    emporium_gateway::GatewayOptions {
                        listener,
                        routes: public_routes(),
                        openapi: public_openapi(),
                        body_limit: settings.body_limit_bytes,
                        request_timeout: Duration::from_millis(settings.request_timeout_millis),
                        user_check_ttl: Duration::from_millis(settings.user_check_ttl_millis),
                    },
                )?;
                let metadata = BTreeMap::from([("http".to_string(), gateway.address.to_string())]);
                node.add_service_with_metadata(gateway.service, metadata);
                let server = gateway.server;
                node.on_shutdown(Box::new(move || Box::pin(async move { server.stop(true).await })));
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
        Ok(())
    }

    /// After every role started: open in-process delivery, and warn when events of a
    /// multi-node cluster would stay in this process.
    pub fn finish(&self, _node: &Node, has_registry: bool) {
        if let Some(bus) = &self.bus {
            bus.start_delivery();
            if !has_registry && let Some(warning) = bus.multi_node_warning() {
                tracing::warn!("{warning}");
            }
        }
    }
}

/// The public routes of every service in this build; the gateway mounts them all, wherever
/// the services run. (Pushes depend on features, hence the lint exception.)
#[allow(clippy::vec_init_then_push)]
fn public_routes() -> Vec<RouteMount> {
    let mut routes: Vec<RouteMount> = Vec::new();
    routes.push(Arc::new(emporium_auth::routes));
    routes.push(Arc::new(emporium_product::routes));
    routes.push(Arc::new(emporium_inventory::routes));
    routes.push(Arc::new(emporium_order::routes));
    routes.push(Arc::new(emporium_payment::routes));
    routes.push(Arc::new(emporium_notification::routes));
    #[cfg(feature = "test-services")]
    routes.push(Arc::new(emporium_echo::routes));
    routes
}

/// The OpenAPI fragments of the services in this build.
#[allow(clippy::vec_init_then_push, unused_mut)]
fn public_openapi() -> Vec<utoipa::openapi::OpenApi> {
    let mut fragments = Vec::new();
    fragments.push(emporium_auth::openapi());
    fragments.push(emporium_product::openapi());
    fragments.push(emporium_inventory::openapi());
    fragments.push(emporium_order::openapi());
    fragments.push(emporium_payment::openapi());
    fragments.push(emporium_notification::openapi());
    #[cfg(feature = "test-services")]
    fragments.push(emporium_echo::openapi());
    fragments
}
