//! How the payment service declares itself to a node.

use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::{PaymentOptions, openapi, routes};

/// The `payment` service: payments through the payment provider.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("payment", "payments through the payment provider", start_on_node)
        .with_routes(routes, openapi)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let options =
            PaymentOptions { database: setup.database("payment").await?, bus: emporium_bus::node_bus(setup).await? };
        let handle = crate::start(setup.context(), options).await?;
        setup.node().add_service(handle);
        Ok(())
    })
}
