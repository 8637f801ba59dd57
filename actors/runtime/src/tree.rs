//! The node's supervision tree: every service, its policy and health, its actors' snapshots,
//! and the node's recent faults. `GET /admin/v1/supervision` serves [`TreeSnapshot`].

use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::watch;

use crate::fault::{Fault, FaultLog};
use crate::monitor::{ActorMonitor, ActorSnapshot};
use crate::policy::SupervisionPolicy;

/// A service's health as its supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceHealth {
    /// Serving.
    Up,
    /// The supervisor gave up; the instance is DOWN in the registry.
    Down {
        /// Why.
        reason: String,
    },
}

/// One service in the tree.
pub struct ServiceNode {
    /// The service name.
    pub service: String,
    /// Its supervisor's policy.
    pub policy: SupervisionPolicy,
    /// Its health.
    pub health: watch::Receiver<ServiceHealth>,
    /// Its actors.
    pub monitors: Vec<Arc<ActorMonitor>>,
}

/// The serializable tree of one service.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSnapshot {
    /// The service name.
    pub service: String,
    /// Its health.
    pub health: ServiceHealth,
    /// Its supervisor's policy.
    pub policy: SupervisionPolicy,
    /// Its actors.
    pub actors: Vec<ActorSnapshot>,
}

/// The serializable tree of the node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeSnapshot {
    /// The node.
    pub node_id: String,
    /// Every service on it.
    pub services: Vec<ServiceSnapshot>,
    /// Faults recorded since start.
    pub num_faults: u64,
    /// The most recent faults, oldest first.
    pub faults: Vec<Fault>,
}

struct TreeInner {
    node_id: String,
    services: RwLock<Vec<ServiceNode>>,
    faults: Arc<FaultLog>,
    recorder_capacity: usize,
}

/// The node's supervision tree; cheap to clone.
#[derive(Clone)]
pub struct SupervisionTree {
    inner: Arc<TreeInner>,
}

impl SupervisionTree {
    /// An empty tree for node `node_id`, keeping `fault_capacity` faults and
    /// `recorder_capacity` messages per actor.
    pub fn new(node_id: &str, fault_capacity: usize, recorder_capacity: usize) -> Self {
        crate::fault::install_panic_hook();
        SupervisionTree {
            inner: Arc::new(TreeInner {
                node_id: node_id.to_string(),
                services: RwLock::new(Vec::new()),
                faults: Arc::new(FaultLog::new(fault_capacity)),
                recorder_capacity,
            }),
        }
    }

    /// The node's fault log.
    pub fn faults(&self) -> Arc<FaultLog> {
        self.inner.faults.clone()
    }

    pub(crate) fn recorder_capacity(&self) -> usize {
        self.inner.recorder_capacity
    }

    pub(crate) fn add_service(&self, service: ServiceNode) {
        self.inner.services.write().push(service);
    }

    /// Publishes the actors' gauges (mailbox depth, in flight) and restart counters to the
    /// metrics recorder.
    pub fn export_gauges(&self) {
        for service in self.inner.services.read().iter() {
            for monitor in &service.monitors {
                let snapshot = monitor.snapshot();
                metrics::gauge!("emporium_actor_mailbox_depth", "actor" => snapshot.path.clone())
                    .set(snapshot.mailbox_depth as f64);
                metrics::gauge!("emporium_actor_in_flight", "actor" => snapshot.path.clone())
                    .set(snapshot.num_in_flight as f64);
                // A counter from 0 for every actor, so `increase()` sees the first restart too.
                metrics::counter!("emporium_actor_restarts_total", "actor" => snapshot.path)
                    .absolute(snapshot.num_restarts);
            }
        }
    }

    /// A serializable copy of the whole tree.
    pub fn snapshot(&self) -> TreeSnapshot {
        let services = self
            .inner
            .services
            .read()
            .iter()
            .map(|service| ServiceSnapshot {
                service: service.service.clone(),
                health: service.health.borrow().clone(),
                policy: service.policy,
                actors: service.monitors.iter().map(|monitor| monitor.snapshot()).collect(),
            })
            .collect();
        TreeSnapshot {
            node_id: self.inner.node_id.clone(),
            services,
            num_faults: self.inner.faults.num_recorded(),
            faults: self.inner.faults.list(),
        }
    }
}
