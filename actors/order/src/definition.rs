//! How the order service declares itself to a node.

use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::{OrderOptions, openapi, routes};

/// The `order` service: orders, placed with a stock check and paid through events.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("order", "orders", start_on_node).with_routes(routes, openapi)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let options =
            OrderOptions { database: setup.database("order").await?, bus: emporium_bus::node_bus(setup).await? };
        let handle = crate::start(setup.context(), options).await?;
        setup.node().add_service(handle);
        Ok(())
    })
}
