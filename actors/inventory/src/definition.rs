//! How the inventory service declares itself to a node.

use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::settings::InventorySettings;
use crate::{InventoryOptions, openapi, routes};

/// The `inventory` service: stock and reservations.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("inventory", "stock and reservations", start_on_node)
        .with_settings::<InventorySettings>()
        .with_routes(routes, openapi)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let options = InventoryOptions {
            database: setup.database("inventory").await?,
            bus: Some(emporium_bus::node_bus(setup).await?),
        };
        let handle = crate::start(setup.context(), options).await?;
        setup.node().add_service(handle);
        Ok(())
    })
}
