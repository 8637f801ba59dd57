//! The service supervisor: one per service instance, it owns the service's cells, applies the
//! restart strategy and intensity, and escalates to the node (the instance goes DOWN) when
//! its children keep failing.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix::prelude::*;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cell::{Behavior, Cell, CellSetup, Factory};
use crate::control::OperatorControl;
use crate::fault::{Fault, FaultKind, FaultLog};
use crate::monitor::{ActorMonitor, ActorStatus};
use crate::policy::{RestartWindow, SupervisionPolicy};
use crate::task::{TaskCell, TaskContext, TaskHandle, TaskSetup};
use crate::tree::{ServiceHealth, ServiceNode, SupervisedActor, SupervisionTree};

/// A cell reports a fault to its supervisor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ChildFaulted {
    /// Which child failed.
    pub child_index: usize,
    /// The fault recorded on the node.
    pub fault_id: u64,
}

/// The message type of the fault a supervisor records when it gives up.
pub const ESCALATION: &str = "Escalation";

/// The supervisor tells a cell to restart (one-for-all, rest-for-one).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RestartChild;

/// An operator revives a service that its supervisor gave up on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReviveService;

struct Child {
    monitor: Arc<ActorMonitor>,
    restart: Recipient<RestartChild>,
    control: Recipient<OperatorControl>,
}

/// The supervisor actor of one service.
pub struct ServiceSupervisor {
    service: String,
    policy: SupervisionPolicy,
    /// Shared with the tree, which shows how much of the intensity is left.
    window: Arc<Mutex<RestartWindow>>,
    children: Vec<Child>,
    health_tx: watch::Sender<ServiceHealth>,
    faults: Arc<FaultLog>,
}

impl Actor for ServiceSupervisor {
    type Context = Context<Self>;
}

impl Handler<ChildFaulted> for ServiceSupervisor {
    type Result = ();

    fn handle(&mut self, fault: ChildFaulted, _ctx: &mut Self::Context) {
        let Some(child) = self.children.get(fault.child_index) else { return };
        if !self.policy.restart.restarts(true) {
            child.monitor.set_status(ActorStatus::Terminated);
            tracing::warn!(service = %self.service, actor = child.monitor.path(), "temporary child stopped for good");
            return;
        }
        if !self.window.lock().admit(Instant::now()) {
            let reason = format!(
                "more than {} restarts in {:?} (last: fault {} in {})",
                self.policy.intensity.max_restarts,
                self.policy.intensity.period,
                fault.fault_id,
                child.monitor.path()
            );
            for child in &self.children {
                child.monitor.set_status(ActorStatus::Terminated);
            }
            tracing::error!(service = %self.service, reason = %reason, "supervisor gave up; service instance is DOWN");
            self.faults.record(Fault {
                id: 0,
                at: chrono::Utc::now(),
                actor_path: self.service.clone(),
                message_type: ESCALATION,
                kind: FaultKind::Escalation,
                error: reason.clone(),
                backtrace: None,
                trace_id: None,
                flight_record: child.monitor.recent_messages(16),
            });
            self.health_tx.send_replace(ServiceHealth::Down { reason });
            return;
        }
        for sibling in self.policy.strategy.siblings_to_restart(fault.child_index, self.children.len()) {
            self.children[sibling].restart.do_send(RestartChild);
        }
    }
}

impl Handler<ReviveService> for ServiceSupervisor {
    type Result = ();

    fn handle(&mut self, _message: ReviveService, _ctx: &mut Self::Context) {
        *self.window.lock() = RestartWindow::new(self.policy.intensity);
        for child in &self.children {
            child.monitor.set_status(ActorStatus::Running);
            child.restart.do_send(RestartChild);
        }
        tracing::info!(service = %self.service, "service revived by an operator");
        self.health_tx.send_replace(ServiceHealth::Up);
    }
}

/// A handle on a running cell: its address and its monitor.
pub struct CellHandle<B: Behavior> {
    /// The cell's address; it stays valid across restarts.
    pub addr: Addr<Cell<B>>,
    /// The cell's live state.
    pub monitor: Arc<ActorMonitor>,
}

impl<B: Behavior> CellHandle<B> {
    /// The typed route to this cell's handler of `M`, for a task of the same group: the
    /// service's endpoint exists only once the group is finished, after its tasks are spawned.
    pub fn route<M>(&self) -> crate::endpoint::LocalRoute<M>
    where
        M: emporium_contracts::Request,
        B: crate::cell::ServiceHandler<M>,
    {
        crate::endpoint::LocalRoute::new(self.addr.clone().recipient(), self.monitor.clone())
    }
}

impl<B: Behavior> Clone for CellHandle<B> {
    fn clone(&self) -> Self {
        CellHandle { addr: self.addr.clone(), monitor: self.monitor.clone() }
    }
}

/// Builds a service's supervision subtree: spawn its cells, then [`ServiceGroup::finish`].
pub struct ServiceGroup {
    service: String,
    policy: SupervisionPolicy,
    arbiter: ArbiterHandle,
    tree: SupervisionTree,
    faults: Arc<FaultLog>,
    supervisor_slot: Arc<OnceLock<Recipient<ChildFaulted>>>,
    children: Vec<Child>,
    recorder_capacity: usize,
}

impl ServiceGroup {
    /// Starts building the group of `service` under `tree`; its cells run on `arbiter`.
    pub fn new(tree: &SupervisionTree, service: &str, policy: SupervisionPolicy, arbiter: ArbiterHandle) -> Self {
        ServiceGroup {
            service: service.to_string(),
            policy,
            arbiter,
            tree: tree.clone(),
            faults: tree.faults(),
            supervisor_slot: Arc::new(OnceLock::new()),
            children: Vec::new(),
            recorder_capacity: tree.recorder_capacity(),
        }
    }

    /// Starts a supervised cell named `name` whose state `factory` builds (again after each
    /// restart).
    pub fn spawn<B, F>(&mut self, name: &str, factory: F) -> CellHandle<B>
    where
        B: Behavior,
        F: Fn() -> B + Send + Sync + 'static,
    {
        let monitor = Arc::new(ActorMonitor::new(format!("{}/{name}", self.service), self.recorder_capacity));
        let factory: Factory<B> = Arc::new(factory);
        let setup = CellSetup {
            monitor: monitor.clone(),
            faults: self.faults.clone(),
            child_index: self.children.len(),
            supervisor: self.supervisor_slot.clone(),
            backoff: self.policy.backoff,
            intensity: self.policy.intensity,
        };
        let addr = Supervisor::start_in_arbiter(&self.arbiter, move |_ctx| Cell::new(factory, setup));
        self.children.push(Child {
            monitor: monitor.clone(),
            restart: addr.clone().recipient(),
            control: addr.clone().recipient(),
        });
        CellHandle { addr, monitor }
    }

    /// Starts a supervised task named `name`: `factory` builds its future at start and after
    /// each restart; `stop_rx` turning true ends it for good (see [`crate::task`]).
    pub fn spawn_task<F>(&mut self, name: &str, stop_rx: watch::Receiver<bool>, factory: F) -> TaskHandle
    where
        F: Fn(TaskContext) -> futures::future::LocalBoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        let monitor = Arc::new(ActorMonitor::new(format!("{}/{name}", self.service), self.recorder_capacity));
        let setup = TaskSetup {
            monitor: monitor.clone(),
            faults: self.faults.clone(),
            child_index: self.children.len(),
            supervisor: self.supervisor_slot.clone(),
            backoff: self.policy.backoff,
            restart_window: RestartWindow::new(self.policy.intensity),
            stop_rx,
        };
        let (addr, handle) = TaskCell::start(Arc::new(factory), setup, &self.arbiter);
        self.children.push(Child { monitor, restart: addr.clone().recipient(), control: addr.recipient() });
        handle
    }

    /// Starts the supervisor, adds the service to the node's tree, and answers the handle
    /// through which the node follows the service's health.
    pub fn finish(self) -> ServiceSupervision {
        let (health_tx, health_rx) = watch::channel(ServiceHealth::Up);
        let actors = self
            .children
            .iter()
            .map(|child| SupervisedActor { monitor: child.monitor.clone(), control: child.control.clone() })
            .collect();
        let window = Arc::new(Mutex::new(RestartWindow::new(self.policy.intensity)));
        let supervisor = ServiceSupervisor {
            service: self.service.clone(),
            policy: self.policy,
            window: window.clone(),
            children: self.children,
            health_tx,
            faults: self.faults.clone(),
        };
        let addr = ServiceSupervisor::start_in_arbiter(&self.arbiter, move |_ctx| supervisor);
        let _ = self.supervisor_slot.set(addr.clone().recipient());
        self.tree.add_service(ServiceNode {
            service: self.service.clone(),
            policy: self.policy,
            health: health_rx.clone(),
            actors,
            window,
            revive: addr.clone().recipient(),
        });
        ServiceSupervision { service: self.service, supervisor: addr, health: health_rx }
    }
}

/// A started service's supervisor and the health it reports.
#[derive(Clone)]
pub struct ServiceSupervision {
    /// The service name.
    pub service: String,
    /// The supervisor actor.
    pub supervisor: Addr<ServiceSupervisor>,
    /// Up, or Down with the reason, as the supervisor decides.
    pub health: watch::Receiver<ServiceHealth>,
}
