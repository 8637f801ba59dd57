//! What a service's `start` receives and what it gives back.

use std::sync::Arc;

use actix::ArbiterHandle;
use emporium_runtime::{LocalEndpoint, ServiceGroup, ServiceSupervision, SupervisionTree};
use tokio::sync::watch;

use crate::service_ref::{Cluster, ServiceRef};
use crate::settings::Settings;

/// Everything a service needs from its node: its identity, the supervision tree to hang its
/// actors on, the arbiter (thread) they run on, the cluster to ask other services through,
/// and the live settings.
#[derive(Clone)]
pub struct ServiceContext {
    /// The node's id.
    pub node_id: String,
    /// The node's supervision tree.
    pub tree: SupervisionTree,
    /// The cluster view, for [`ServiceRef`]s to other services.
    pub cluster: Cluster,
    /// The live settings.
    pub settings: watch::Receiver<Arc<Settings>>,
    /// The arbiter this service's actors run on.
    pub arbiter: ArbiterHandle,
}

impl ServiceContext {
    /// A context for a service started on its own, outside a node (tests, tools): a fresh
    /// supervision tree, a cluster view that only knows local services, the given settings,
    /// and the current arbiter. Must run inside an actix System.
    pub fn standalone(node_id: &str, settings: watch::Receiver<Arc<Settings>>) -> ServiceContext {
        let tree = SupervisionTree::new(node_id, 256, settings.borrow().supervision.flight_recorder_len);
        let cluster = Cluster::new(node_id, crate::directory::Directory::new(), crate::ClusterSecret::generate());
        ServiceContext { node_id: node_id.to_string(), tree, cluster, settings, arbiter: actix::Arbiter::current() }
    }

    /// Starts building the supervision group of `service` with the configured policy.
    pub fn group(&self, service: &str) -> ServiceGroup {
        let policy = self.settings.borrow().supervision.policy();
        ServiceGroup::new(&self.tree, service, policy, self.arbiter.clone())
    }

    /// A reference to another service, wherever it runs.
    pub fn service(&self, service: &str) -> ServiceRef {
        self.cluster.service(service)
    }
}

/// A started service: its message table, its supervisor, and what must live as long as it
/// (its outbox relay and event consumers, which stop when dropped).
pub struct ServiceHandle {
    /// The service's messages, for local callers and the transport.
    pub endpoint: LocalEndpoint,
    /// Its supervisor and health.
    pub supervision: ServiceSupervision,
    /// Kept until the node shuts down, then dropped (stopping relays and consumers).
    pub resources: Vec<Box<dyn std::any::Any>>,
}

impl ServiceHandle {
    /// A handle with no resources.
    pub fn new(endpoint: LocalEndpoint, supervision: ServiceSupervision) -> Self {
        ServiceHandle { endpoint, supervision, resources: Vec::new() }
    }

    /// Keeps `resource` alive as long as the service.
    pub fn keep(mut self, resource: impl std::any::Any) -> Self {
        self.resources.push(Box::new(resource));
        self
    }
}
