//! How the product service declares itself to a node.

use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::{ProductOptions, ProductStore, openapi, routes};

/// The `product` service: the catalog, on MongoDB when the secret `EMPORIUM_MONGODB_URL` is
/// set, else in the embedded `product.db` (whatever `EMPORIUM_MYSQL_URL` says).
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("product", "the catalog", start_on_node).with_routes(routes, openapi)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let mongodb_url = setup.secret("EMPORIUM_MONGODB_URL")?;
        let store = ProductStore::open_for_node(mongodb_url, setup.data_dir()).await?;
        let monitored = store.clone();
        setup.monitor("product store", move || {
            let store = monitored.clone();
            Box::pin(async move { store.ping().await.map_err(|error| format!("{error:#}")) })
        });
        let handle = crate::start(setup.context(), ProductOptions { store }).await?;
        setup.node().add_service(handle);
        Ok(())
    })
}
