//! How the registry declares itself to a node.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::{ConfigRepo, RegistryOptions, start};

/// Where the registry looks for configuration when none was named: served as the built-in
/// defaults while it does not exist.
const BUILT_IN_CONFIG_DIR: &str = "config";

/// The `registry` role: discovery and configuration, served on the node's cluster listener.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("registry", "discovery and configuration", start_on_node)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let config_repo = setup.paths().config_repo.clone().map(|(location, label)| ConfigRepo {
            location,
            label,
            data_dir: setup.paths().data_dir.clone(),
        });
        let built_in_when_missing = setup.paths().config_dir.is_none() && config_repo.is_none();
        let config_dir = match setup.paths().config_dir.clone() {
            _ if config_repo.is_some() => std::path::PathBuf::new(),
            Some(dir) if dir.is_dir() => dir,
            Some(dir) => bail!("the configuration directory {} does not exist (see --config-dir)", dir.display()),
            None => {
                tracing::info!(
                    "no configuration directory: serving the built-in defaults (a `config` directory created here later is picked up)"
                );
                std::path::PathBuf::from(BUILT_IN_CONFIG_DIR)
            }
        };
        // The registries named by --registry are this one's peers (its own URL, when there,
        // is left out here or found out by the peers' sender).
        let own_url = format!("http://{}", setup.node().advertise_address());
        let peers: Vec<String> =
            setup.node().registry_client().urls().iter().filter(|url| **url != own_url).cloned().collect();
        let registry = start(RegistryOptions {
            config_dir,
            profile: setup.paths().profile.clone(),
            access: setup.node().operator_access().clone(),
            schema: setup.catalog().settings_schema(),
            built_in_when_missing,
            peers,
            config_repo,
        })
        .context("the registry could not start")?;
        setup.node().live_config().seed(&registry.settings().await).map_err(anyhow::Error::msg)?;
        let routes = registry.clone();
        setup.node().mount(Arc::new(move |config| routes.configure(config)));
        setup.node().add_instance("registry", None, BTreeMap::new());
        Ok(())
    })
}
