//! How a service declares itself to a node, once: its name (the `--role` that runs it), its
//! settings section, its public routes and OpenAPI fragment, and its start function.
//!
//! A service crate exports `pub fn definition() -> ServiceDefinition`; the `emporium` binary
//! lists the definitions of every service it is built with, one line each, and derives from
//! that list the roles it accepts, the configuration sections it knows and the routes its
//! gateway mounts. A start function gets the [`NodeSetup`]: the node being assembled and what
//! the node provides to any service (its stores, secrets, files, shared resources such as the
//! event bus).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use emporium_store::Database;
use futures::future::LocalBoxFuture;
use parking_lot::Mutex;

use crate::context::ServiceContext;
use crate::node::{Node, RouteMount};
use crate::settings::{SectionSchema, ServiceSettings, SettingsSchema};

/// Starts a service on the node being set up.
pub type StartFn = for<'a> fn(&'a mut NodeSetup) -> LocalBoxFuture<'a, anyhow::Result<()>>;

/// Everything a node needs to know about a service, declared by the service's crate.
#[derive(Clone)]
pub struct ServiceDefinition {
    /// The service's name, which is also the `--role` that runs it.
    pub name: &'static str,
    /// One line for `--help` and the docs.
    pub summary: &'static str,
    /// Its section of the layered configuration, if it has settings.
    pub settings: Option<SectionSchema>,
    /// Its public routes, which every gateway mounts (wherever the service runs).
    pub routes: Option<RouteMount>,
    /// The OpenAPI fragment of those routes.
    pub openapi: Option<fn() -> utoipa::openapi::OpenApi>,
    /// Whether it serves the public HTTP listener (`--http`), which the node then binds
    /// before any service starts, so a taken port fails before any store is touched.
    pub opens_public_listener: bool,
    /// Starts it on a node.
    pub start: StartFn,
}

impl ServiceDefinition {
    /// A definition with no settings, routes or OpenAPI; add them with the `with_` methods.
    pub fn new(name: &'static str, summary: &'static str, start: StartFn) -> ServiceDefinition {
        ServiceDefinition {
            name,
            summary,
            settings: None,
            routes: None,
            openapi: None,
            opens_public_listener: false,
            start,
        }
    }

    /// Declares that the service serves the public HTTP listener ([`NodeSetup::public_listener`]).
    pub fn with_public_listener(mut self) -> ServiceDefinition {
        self.opens_public_listener = true;
        self
    }

    /// Declares `T` as the service's settings section.
    pub fn with_settings<T: ServiceSettings>(mut self) -> ServiceDefinition {
        self.settings = Some(SectionSchema::of::<T>());
        self
    }

    /// Declares the service's public routes and their OpenAPI fragment.
    pub fn with_routes(
        mut self,
        routes: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Sync + 'static,
        openapi: fn() -> utoipa::openapi::OpenApi,
    ) -> ServiceDefinition {
        self.routes = Some(Arc::new(routes));
        self.openapi = Some(openapi);
        self
    }
}

impl std::fmt::Debug for ServiceDefinition {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceDefinition")
            .field("name", &self.name)
            .field("settings", &self.settings.map(|section| section.name))
            .field("routes", &self.routes.is_some())
            .finish()
    }
}

/// The services one build of the binary knows.
#[derive(Debug, Clone, Default)]
pub struct ServiceCatalog {
    definitions: Vec<ServiceDefinition>,
}

impl ServiceCatalog {
    /// A catalog of `definitions`, in start order (a gateway last, so the services of its node
    /// are up when it opens).
    pub fn new(definitions: Vec<ServiceDefinition>) -> ServiceCatalog {
        ServiceCatalog { definitions }
    }

    /// Every definition, in start order.
    pub fn definitions(&self) -> &[ServiceDefinition] {
        &self.definitions
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&ServiceDefinition> {
        self.definitions.iter().find(|definition| definition.name == name)
    }

    /// The configuration sections of every service.
    pub fn settings_schema(&self) -> SettingsSchema {
        SettingsSchema::new(self.definitions.iter().filter_map(|definition| definition.settings).collect())
    }

    /// The public routes of every service.
    pub fn public_routes(&self) -> Vec<RouteMount> {
        self.definitions.iter().filter_map(|definition| definition.routes.clone()).collect()
    }

    /// The OpenAPI fragments of every service.
    pub fn public_openapi(&self) -> Vec<utoipa::openapi::OpenApi> {
        self.definitions.iter().filter_map(|definition| definition.openapi.map(|openapi| openapi())).collect()
    }
}

/// Where a node keeps its files and opens its listeners, from its command line.
#[derive(Debug, Clone)]
pub struct NodePaths {
    /// Embedded stores and generated keys (`--data-dir`).
    pub data_dir: PathBuf,
    /// The configuration repository (`--config-dir`), read by the registry; `None`: the
    /// built-in defaults (and `config/` if it appears later).
    pub config_dir: Option<PathBuf>,
    /// A git repository and label to read the configuration from instead (`--config-repo`,
    /// `--config-label`).
    pub config_repo: Option<(String, String)>,
    /// The configuration profile (`--profile`).
    pub profile: String,
    /// The public HTTP listener (`--http`), opened by the gateway.
    pub http: SocketAddr,
}

/// The operator's environment as the node read it at start: where secrets and store URLs come
/// from. Services ask [`NodeSetup::secret`]; they never read the process environment.
#[derive(Clone, Default)]
pub struct Environment {
    variables: Vec<(String, String)>,
    /// Secrets read from Vault at start: `NAME` -> (value, where).
    from_vault: std::sync::Arc<std::collections::BTreeMap<String, (String, String)>>,
}

impl Environment {
    /// An environment of `variables` (the process's, or a test's).
    pub fn new(variables: Vec<(String, String)>) -> Environment {
        Environment { variables, from_vault: Default::default() }
    }

    /// The same environment, with the secrets read from Vault ([`crate::vault::read_secrets`]).
    pub fn with_vault_secrets(mut self, secrets: std::collections::BTreeMap<String, (String, String)>) -> Environment {
        self.from_vault = std::sync::Arc::new(secrets);
        self
    }

    /// Every variable, in the order given.
    pub fn variables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.variables.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The non-empty value of `name`, the last one when set twice.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .rev()
            .find(|(key, value)| key == name && !value.trim().is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// A value the operator provides in the environment (`NAME`), in a file (`NAME_FILE`, as
    /// Docker and Kubernetes mount secrets) or in Vault (`NAME_VAULT`, read at start: see
    /// [`crate::vault`]); `None` when none is set, an error when two are or the file cannot be
    /// read. The value is never logged: only where it came from.
    pub fn secret(&self, name: &str) -> anyhow::Result<Option<String>> {
        let file_variable = format!("{name}_FILE");
        let vault_variable = format!("{name}{}", crate::vault::VAULT_SUFFIX);
        if self.get(&vault_variable).is_some() {
            if self.get(name).is_some() || self.get(&file_variable).is_some() {
                anyhow::bail!("set one of {name}, {file_variable} and {vault_variable}, not several");
            }
            let (value, _) = self
                .from_vault
                .get(name)
                .with_context(|| format!("{vault_variable} is set but the secret was not read from Vault"))?;
            return Ok(Some(value.clone()));
        }
        match (self.get(name), self.get(&file_variable)) {
            (Some(_), Some(_)) => anyhow::bail!("set {name} or {file_variable}, not both"),
            (Some(value), None) => {
                tracing::info!(secret = name, source = "environment", "secret provided");
                Ok(Some(value.to_string()))
            }
            (None, Some(path)) => {
                let value = std::fs::read_to_string(path)
                    .with_context(|| format!("{file_variable}: cannot read {path}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                tracing::info!(secret = name, source = "file", path, "secret provided");
                Ok(Some(value))
            }
            (None, None) => Ok(None),
        }
    }

    /// The `EMPORIUM__SECTION__KEY` configuration overrides.
    pub fn config_overrides(&self) -> Vec<(String, String)> {
        self.variables
            .iter()
            .filter(|(name, _)| name.starts_with(crate::settings::ENV_OVERRIDE_PREFIX))
            .cloned()
            .collect()
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.variables.iter().map(|(name, _)| name.as_str()).collect();
        formatter.debug_struct("Environment").field("names", &names).finish()
    }
}

/// Runs after every service of the node started.
pub type FinishHook = Box<dyn FnOnce(&mut Node)>;

/// The node being assembled, as a service's start function sees it.
pub struct NodeSetup {
    node: Node,
    catalog: ServiceCatalog,
    paths: NodePaths,
    environment: Environment,
    roles: Vec<&'static str>,
    shared: HashMap<TypeId, Box<dyn Any>>,
    finish_hooks: Vec<FinishHook>,
    public_listener: Option<std::net::TcpListener>,
}

impl NodeSetup {
    /// Prepares to start the services `roles` of `catalog` on `node`.
    pub fn new(
        node: Node,
        catalog: ServiceCatalog,
        roles: Vec<&'static str>,
        paths: NodePaths,
        environment: Environment,
    ) -> NodeSetup {
        NodeSetup {
            node,
            catalog,
            paths,
            environment,
            roles,
            shared: HashMap::new(),
            finish_hooks: Vec::new(),
            public_listener: None,
        }
    }

    /// Starts every role's service, in the catalog's order, runs the finish hooks, and gives
    /// the node back, ready to run.
    pub async fn start_all(mut self) -> anyhow::Result<Node> {
        let definitions: Vec<ServiceDefinition> = self
            .catalog
            .definitions()
            .iter()
            .filter(|definition| self.roles.contains(&definition.name))
            .cloned()
            .collect();
        if definitions.iter().any(|definition| definition.opens_public_listener) {
            let http = self.paths.http;
            let listener = std::net::TcpListener::bind(http)
                .map_err(|error| anyhow::anyhow!("cannot listen on {http} (--http): {error}"))?;
            self.public_listener = Some(listener);
        }
        for definition in definitions {
            (definition.start)(&mut self)
                .await
                .with_context(|| format!("the {} service could not start", definition.name))?;
        }
        let mut node = self.node;
        for hook in self.finish_hooks {
            hook(&mut node);
        }
        Ok(node)
    }

    /// The node, to add services, routes, readiness checks and shutdown hooks.
    pub fn node(&mut self) -> &mut Node {
        &mut self.node
    }

    /// The context a service's actors start with.
    pub fn context(&mut self) -> ServiceContext {
        self.node.service_context()
    }

    /// The current value of the service settings section `T`.
    pub fn settings<T: ServiceSettings>(&self) -> T {
        self.node.live_config().current().section::<T>()
    }

    /// The services this build knows (the gateway mounts all their routes).
    pub fn catalog(&self) -> &ServiceCatalog {
        &self.catalog
    }

    /// Whether this node also runs `role`.
    pub fn runs(&self, role: &str) -> bool {
        self.roles.contains(&role)
    }

    /// The node's files and listeners.
    pub fn paths(&self) -> &NodePaths {
        &self.paths
    }

    /// The public HTTP listener (`--http`), bound before any service started; `None` once
    /// taken, or when no service of the node declared it.
    pub fn public_listener(&mut self) -> Option<std::net::TcpListener> {
        self.public_listener.take()
    }

    /// The directory for the embedded stores and generated files.
    pub fn data_dir(&self) -> &Path {
        &self.paths.data_dir
    }

    /// A secret the operator provides (see [`Environment::secret`]).
    pub fn secret(&self, name: &str) -> anyhow::Result<Option<String>> {
        self.environment.secret(name)
    }

    /// The SQL database of `service`: MariaDB/MySQL when `EMPORIUM_MYSQL_URL` is set (every
    /// service in the same database, each in its own tables), otherwise an embedded SQLite file
    /// `<service>.db` under the data directory. A URL that is set but unreachable is an error,
    /// never a silent fallback. Readiness follows the database (a supervised monitor task).
    pub async fn database(&mut self, service: &str) -> anyhow::Result<Database> {
        let mysql_url = self.secret("EMPORIUM_MYSQL_URL")?;
        let database = Database::open_for_service(service, mysql_url.as_deref(), &self.paths.data_dir).await?;
        let monitored = database.clone();
        self.monitor(&format!("{service} database"), move || {
            let database = monitored.clone();
            Box::pin(async move { database.ping().await.map_err(|error| error.to_string()) })
        });
        Ok(database)
    }

    /// Makes readiness follow `ping`, run every two seconds by a supervised node task
    /// (`node/<name>-monitor`, spaces as dashes): while it fails or takes longer than two seconds, the node is
    /// not ready and says why.
    pub fn monitor<F>(&mut self, name: &str, ping: F)
    where
        F: Fn() -> LocalBoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        let healthy = Arc::new(AtomicBool::new(true));
        let reason = Arc::new(Mutex::new(String::new()));
        let (healthy_check, reason_check) = (healthy.clone(), reason.clone());
        self.node.readiness().add_check(
            name,
            Box::new(
                move || if healthy_check.load(Ordering::Acquire) { Ok(()) } else { Err(reason_check.lock().clone()) },
            ),
        );
        let ping = Arc::new(ping);
        self.node.spawn_node_task(&format!("{}-monitor", name.replace(' ', "-")), move |task| {
            let (ping, healthy, reason) = (ping.clone(), healthy.clone(), reason.clone());
            Box::pin(async move {
                loop {
                    let outcome = tokio::time::timeout(MONITOR_INTERVAL, ping()).await;
                    match outcome {
                        Ok(Ok(())) => healthy.store(true, Ordering::Release),
                        Ok(Err(error)) => {
                            *reason.lock() = format!("unreachable: {error}");
                            healthy.store(false, Ordering::Release);
                        }
                        Err(_) => {
                            *reason.lock() = format!("no answer within {} s", MONITOR_INTERVAL.as_secs());
                            healthy.store(false, Ordering::Release);
                        }
                    }
                    tokio::select! {
                        () = task.stop_requested() => return Ok(()),
                        () = tokio::time::sleep(MONITOR_INTERVAL) => {}
                    }
                }
            })
        });
    }

    /// A resource the node's services share (the event bus), if a service created it already.
    pub fn shared<T: Clone + 'static>(&self) -> Option<T> {
        self.shared.get(&TypeId::of::<T>()).and_then(|value| value.downcast_ref::<T>()).cloned()
    }

    /// Shares `value` with the services that start after this one.
    pub fn share<T: Clone + 'static>(&mut self, value: T) {
        self.shared.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// Runs `hook` once every service of the node started.
    pub fn on_finish(&mut self, hook: FinishHook) {
        self.finish_hooks.push(hook);
    }
}

/// How often a store monitor pings, and how long a ping may take.
const MONITOR_INTERVAL: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> Environment {
        Environment::new(pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect())
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_its_file_never_both() {
        let file = std::env::temp_dir().join(format!("secret-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, "from-the-file\n").unwrap();
        let path = file.to_str().unwrap();

        assert_eq!(environment(&[]).secret("EMPORIUM_X").unwrap(), None);
        assert_eq!(environment(&[("EMPORIUM_X", "  ")]).secret("EMPORIUM_X").unwrap(), None, "blank is unset");
        assert_eq!(environment(&[("EMPORIUM_X", "value")]).secret("EMPORIUM_X").unwrap().as_deref(), Some("value"));
        assert_eq!(
            environment(&[("EMPORIUM_X_FILE", path)]).secret("EMPORIUM_X").unwrap().as_deref(),
            Some("from-the-file"),
            "the file's trailing newline is not part of the secret"
        );
        let both = environment(&[("EMPORIUM_X", "value"), ("EMPORIUM_X_FILE", path)]).secret("EMPORIUM_X");
        assert!(both.unwrap_err().to_string().contains("not both"));
        let missing = environment(&[("EMPORIUM_X_FILE", "/nonexistent/secret")]).secret("EMPORIUM_X");
        assert!(missing.unwrap_err().to_string().contains("EMPORIUM_X_FILE"));
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn overrides_are_the_double_underscore_variables_and_debug_shows_no_values() {
        let environment =
            environment(&[("EMPORIUM__LOG__LEVEL", "debug"), ("EMPORIUM_MYSQL_URL", "mysql://u:pw@h/db")]);
        assert_eq!(environment.config_overrides(), vec![("EMPORIUM__LOG__LEVEL".to_string(), "debug".to_string())]);
        let printed = format!("{environment:?}");
        assert!(printed.contains("EMPORIUM_MYSQL_URL") && !printed.contains("pw"), "{printed}");
    }
}
