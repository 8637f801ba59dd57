//! The node's supervision tree: every service, its policy and health, its actors' snapshots,
//! and the node's recent faults. `GET /admin/v1/supervision` serves [`TreeSnapshot`].

use std::sync::Arc;
use std::time::Instant;

use actix::Recipient;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::watch;

use crate::control::{ControlError, OperatorControl};
use crate::fault::{Fault, FaultLog};
use crate::monitor::{ActorMonitor, ActorSnapshot};
use crate::policy::{RestartStrategy, RestartType, RestartWindow, SupervisionPolicy};
use crate::supervisor::ReviveService;

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

/// One actor of a service: what it reports and how an operator reaches it.
pub struct SupervisedActor {
    /// Its live state.
    pub monitor: Arc<ActorMonitor>,
    /// Where an operator's instructions go.
    pub control: Recipient<OperatorControl>,
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
    pub actors: Vec<SupervisedActor>,
    /// The supervisor's restart window (the intensity used up).
    pub window: Arc<Mutex<RestartWindow>>,
    /// Restarts every actor and clears the window (an operator's "restart the service").
    pub revive: Recipient<ReviveService>,
}

/// A supervisor's policy as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// Which children restart together.
    pub strategy: RestartStrategy,
    /// When children restart.
    pub restart: RestartType,
    /// How many restarts before escalating, within which period.
    pub intensity: IntensityView,
}

/// The intensity in plain numbers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntensityView {
    /// Restarts allowed within the period.
    pub max_restarts: u32,
    /// The sliding period, in milliseconds.
    pub period_millis: u64,
}

impl From<SupervisionPolicy> for PolicyView {
    fn from(policy: SupervisionPolicy) -> Self {
        PolicyView {
            strategy: policy.strategy,
            restart: policy.restart,
            intensity: IntensityView {
                max_restarts: policy.intensity.max_restarts,
                period_millis: policy.intensity.period.as_millis() as u64,
            },
        }
    }
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
    pub policy: PolicyView,
    /// Restarts within the intensity's period now (the supervisor gives up past the maximum).
    pub restarts_in_window: usize,
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
            for actor in &service.actors {
                let snapshot = actor.monitor.snapshot();
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

    /// Sends an operator's instruction to the actor at `path` and waits for its answer.
    pub async fn control_actor(&self, path: &str, control: OperatorControl) -> Result<(), ControlError> {
        let recipient = self
            .inner
            .services
            .read()
            .iter()
            .flat_map(|service| service.actors.iter())
            .find(|actor| actor.monitor.path() == path)
            .map(|actor| actor.control.clone())
            .ok_or_else(|| ControlError::UnknownActor(path.to_string()))?;
        match recipient.send(control).await {
            Ok(answer) => answer.map_err(ControlError::Refused),
            Err(_) => Err(ControlError::Refused(format!("{path} did not take the instruction"))),
        }
    }

    /// Restarts every actor of `service` and clears its restart window, bringing it back up
    /// when its supervisor had given up.
    pub fn restart_service(&self, service: &str) -> Result<(), ControlError> {
        let services = self.inner.services.read();
        let found = services.iter().find(|node| node.service == service);
        let node = found.ok_or_else(|| ControlError::UnknownService(service.to_string()))?;
        node.revive.do_send(ReviveService);
        Ok(())
    }

    /// A serializable copy of the whole tree.
    pub fn snapshot(&self) -> TreeSnapshot {
        let now = Instant::now();
        let services = self
            .inner
            .services
            .read()
            .iter()
            .map(|service| ServiceSnapshot {
                service: service.service.clone(),
                health: service.health.borrow().clone(),
                policy: service.policy.into(),
                restarts_in_window: service.window.lock().num_within(now),
                actors: service.actors.iter().map(|actor| actor.monitor.snapshot()).collect(),
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
