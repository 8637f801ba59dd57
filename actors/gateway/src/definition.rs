//! How the gateway declares itself to a node.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::messages::SERVICE;
use crate::server::{GatewayOptions, start};
use crate::settings::GatewaySettings;

/// The `gateway` service: the public HTTP entry (`--http`), which mounts the routes of every
/// service of the build, wherever those services run.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new(SERVICE, "the public HTTP entry", start_on_node)
        .with_settings::<GatewaySettings>()
        .with_public_listener()
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let listener = setup.public_listener().context("the public listener is bound once, for one gateway")?;
        let settings = setup.settings::<GatewaySettings>();
        let options = GatewayOptions {
            listener,
            routes: setup.catalog().public_routes(),
            openapi: setup.catalog().public_openapi(),
            body_limit: settings.body_limit_bytes,
            request_timeout: Duration::from_millis(settings.request_timeout_millis),
            user_check_ttl: Duration::from_millis(settings.user_check_ttl_millis),
        };
        let gateway = start(setup.context(), options)?;
        let metadata = BTreeMap::from([("http".to_string(), gateway.address.to_string())]);
        setup.node().add_service_with_metadata(gateway.service, metadata);
        let server = gateway.server;
        setup.node().on_shutdown(Box::new(move || Box::pin(async move { server.stop(true).await })));
        Ok(())
    })
}
