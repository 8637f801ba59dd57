//! How the diagnostic services declare themselves to a node.

use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::{openapi, routes};

/// The `echo` service: answers what it is asked (diagnostics and tests).
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("echo", "the diagnostic echo service", start_echo).with_routes(routes, openapi)
}

/// The `probe` service: asks `echo` through a `ServiceRef` (diagnostics and tests).
pub fn probe_definition() -> ServiceDefinition {
    ServiceDefinition::new("probe", "the diagnostic probe, which asks echo", start_probe)
}

fn start_echo(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let handle = crate::start(setup.context())?;
        setup.node().add_service(handle);
        Ok(())
    })
}

fn start_probe(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let handle = crate::start_probe(setup.context())?;
        setup.node().add_service(handle);
        Ok(())
    })
}
