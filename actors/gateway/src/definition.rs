//! How the gateway declares itself to a node.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::messages::SERVICE;
use crate::server::{GatewayOptions, start};
use crate::settings::GatewaySettings;
use crate::verifier::Verdict;

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
        let options = GatewayOptions {
            listener,
            routes: setup.catalog().public_routes(),
            openapi: setup.catalog().public_openapi(),
            settings: setup.settings::<GatewaySettings>(),
            registry: Some(setup.node().registry_client().clone()),
        };
        let gateway = start(setup.context(), options)?;
        // Public traffic is answered from the start (503 `auth_unavailable` with Retry-After
        // for a bearer token while no keys are held), but the gateway reports ready only once
        // it holds auth's keys and the registry's directory.
        let (verifier, directory) = (gateway.verifier.clone(), setup.context().cluster.directory().clone());
        setup.node().readiness().add_check(
            SERVICE,
            Box::new(move || {
                if verifier.num_keys() == 0 {
                    Err("no verification keys from auth yet".to_string())
                } else if !directory.is_synced() {
                    Err("no directory from the registry yet".to_string())
                } else {
                    Ok(())
                }
            }),
        );
        // The node's operator endpoints (supervision, registry reads) take an admin's access
        // token too, checked with the keys this gateway holds.
        let verifier = gateway.verifier.clone();
        setup.node().operator_access().accept_admin_tokens(Arc::new(
            move |token| matches!(verifier.verify(token), Verdict::Valid(caller) if caller.is_admin()),
        ));
        let metadata = BTreeMap::from([("http".to_string(), gateway.address.to_string())]);
        setup.node().add_service_with_metadata(gateway.service, metadata);
        let server = gateway.server;
        setup.node().on_shutdown(Box::new(move || Box::pin(async move { server.stop(true).await })));
        Ok(())
    })
}
