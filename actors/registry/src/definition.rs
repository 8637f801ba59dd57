//! How the registry declares itself to a node.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::{RegistryOptions, start};

/// The `registry` role: discovery and configuration, served on the node's cluster listener.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("registry", "discovery and configuration", start_on_node)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let config_dir = setup.paths().config_dir.clone();
        if !config_dir.is_dir() {
            bail!("the configuration directory {} does not exist (see --config-dir)", config_dir.display());
        }
        let registry = start(RegistryOptions {
            config_dir,
            profile: setup.paths().profile.clone(),
            secret: setup.node().secret().clone(),
            schema: setup.catalog().settings_schema(),
        })
        .context("the registry could not start")?;
        setup.node().live_config().seed(&registry.settings().await).map_err(anyhow::Error::msg)?;
        let routes = registry.clone();
        setup.node().mount(Arc::new(move |config| routes.configure(config)));
        setup.node().add_instance("registry", None, BTreeMap::new());
        Ok(())
    })
}
