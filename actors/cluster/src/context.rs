//! What a service's `start` receives and what it gives back.

use std::sync::Arc;
use std::time::Duration;

use actix::ArbiterHandle;
use emporium_runtime::{LocalEndpoint, ServiceGroup, ServiceSupervision, SupervisionTree, TaskContext, TaskHandle};
use futures::future::LocalBoxFuture;
use parking_lot::Mutex;
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
    /// The node's stop signal and the tasks it waits for at shutdown.
    pub lifecycle: Lifecycle,
}

impl ServiceContext {
    /// A context for a service started on its own, outside a node (tests, tools): a fresh
    /// supervision tree, a cluster view that only knows local services, the given settings,
    /// and the current arbiter. Must run inside an actix System.
    pub fn standalone(node_id: &str, settings: watch::Receiver<Arc<Settings>>) -> ServiceContext {
        let tree = SupervisionTree::new(node_id, 256, settings.borrow().supervision.flight_recorder_len);
        let cluster = Cluster::new(node_id, crate::directory::Directory::new(), crate::ClusterSecret::generate());
        ServiceContext {
            node_id: node_id.to_string(),
            tree,
            cluster,
            settings,
            arbiter: actix::Arbiter::current(),
            lifecycle: Lifecycle::new(),
        }
    }

    /// Starts a long-running loop (a relay's driver, an expiry sweep, a key refresher) as a
    /// supervised child of `group`, stopped by the node's stop signal and waited for at
    /// shutdown (see [`emporium_runtime::task`]).
    pub fn spawn_task<F>(&self, group: &mut ServiceGroup, name: &str, factory: F) -> TaskHandle
    where
        F: Fn(TaskContext) -> LocalBoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        let handle = group.spawn_task(name, self.lifecycle.stop_receiver(), factory);
        self.lifecycle.track(handle.clone());
        handle
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

/// A node's stop signal and the supervised tasks that must end before the node does. Cloned
/// into every [`ServiceContext`]; the node turns the signal on at shutdown and waits, within
/// its drain bound, for every tracked task to return.
#[derive(Clone)]
pub struct Lifecycle {
    stop_tx: Arc<watch::Sender<bool>>,
    tasks: Arc<Mutex<Vec<TaskHandle>>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A lifecycle that is not stopping and tracks no task.
    pub fn new() -> Lifecycle {
        let (stop_tx, _) = watch::channel(false);
        Lifecycle { stop_tx: Arc::new(stop_tx), tasks: Arc::new(Mutex::new(Vec::new())) }
    }

    /// The stop signal: turns true once, at shutdown.
    pub fn stop_receiver(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }

    /// Whether the stop signal is on.
    pub fn is_stopping(&self) -> bool {
        *self.stop_tx.borrow()
    }

    /// Waits for `task` at shutdown.
    pub fn track(&self, task: TaskHandle) {
        self.tasks.lock().push(task);
    }

    /// Turns the stop signal on and waits up to `within` for every tracked task to end;
    /// answers the paths of those still running then.
    pub async fn stop(&self, within: Duration) -> Vec<String> {
        self.stop_tx.send_replace(true);
        let tasks = self.tasks.lock().clone();
        let all_stopped = futures::future::join_all(tasks.iter().map(TaskHandle::wait_stopped));
        if tokio::time::timeout(within, all_stopped).await.is_ok() {
            return Vec::new();
        }
        tasks.iter().filter(|task| !task.is_stopped()).map(|task| task.monitor.path().to_string()).collect()
    }
}
