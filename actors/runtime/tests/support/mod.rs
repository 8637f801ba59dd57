//! The `test` service the supervision tests run: a counter whose handlers panic, fail
//! fatally, answer errors and sleep on purpose; and the [`Sandbox`] each test starts it in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Arbiter;
use emporium_contracts::{ErrorKind, Request, ServiceError};
use emporium_runtime::monitor::ActorSnapshot;
use emporium_runtime::{
    Backoff, Behavior, CallMeta, CellHandle, HandlerError, Intensity, LocalEndpoint, Reply, RestartStrategy,
    RestartType, ServiceGroup, ServiceHandler, ServiceSupervision, SupervisionPolicy, SupervisionTree,
};
use serde::{Deserialize, Serialize};

/// How long a test waits for any answer before it calls the runtime hung.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Add one to the counter and answer the new value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Increment {}

impl Request for Increment {
    type Reply = u64;
    const SERVICE: &'static str = "test";
    const NAME: &'static str = "Increment";
    const IDEMPOTENT: bool = false;
}

/// How [`Fail`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HowToFail {
    /// Panic while building the reply future, before any await.
    PanicBeforeAwait,
    /// Panic inside the reply future, after an await.
    PanicAfterAwait,
    /// Return [`HandlerError::Fatal`] after an await.
    Fatal,
    /// Answer a conflict: an error for the caller, not a fault.
    Conflict,
}

/// Fail on purpose.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fail {
    pub how: HowToFail,
}

impl Request for Fail {
    type Reply = ();
    const SERVICE: &'static str = "test";
    const NAME: &'static str = "Fail";
    const IDEMPOTENT: bool = false;

    fn summary(&self) -> String {
        format!("how={:?}", self.how)
    }
}

/// Wait before answering.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sleep {
    pub millis: u64,
}

impl Request for Sleep {
    type Reply = ();
    const SERVICE: &'static str = "test";
    const NAME: &'static str = "Sleep";
    const IDEMPOTENT: bool = true;
}

/// In-memory state that a restart must reset, and a count of handler calls that survives
/// restarts (so a test can tell whether a handler ran at all).
pub struct Counter {
    count: u64,
    num_handler_calls: Arc<AtomicU64>,
}

impl Behavior for Counter {}

impl ServiceHandler<Increment> for Counter {
    fn handle(&mut self, _message: Increment, _meta: &CallMeta) -> Reply<u64> {
        self.num_handler_calls.fetch_add(1, Ordering::SeqCst);
        self.count += 1;
        let count = self.count;
        Box::pin(async move { Ok(count) })
    }
}

impl ServiceHandler<Fail> for Counter {
    fn handle(&mut self, message: Fail, _meta: &CallMeta) -> Reply<()> {
        self.num_handler_calls.fetch_add(1, Ordering::SeqCst);
        let count = self.count;
        match message.how {
            HowToFail::PanicBeforeAwait => panic!("counter panicked before await with count {count}"),
            HowToFail::PanicAfterAwait => Box::pin(async move {
                tokio::task::yield_now().await;
                panic!("counter panicked after await with count {count}")
            }),
            HowToFail::Fatal => Box::pin(async move {
                tokio::task::yield_now().await;
                Err(HandlerError::Fatal(format!("counter gave up with count {count}")))
            }),
            HowToFail::Conflict => Box::pin(async move {
                Err(HandlerError::Reply(ServiceError::conflict("counter_busy", format!("counter refuses at {count}"))))
            }),
        }
    }
}

impl ServiceHandler<Sleep> for Counter {
    fn handle(&mut self, message: Sleep, _meta: &CallMeta) -> Reply<()> {
        self.num_handler_calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            actix::clock::sleep(Duration::from_millis(message.millis)).await;
            Ok(())
        })
    }
}

/// Fast restarts and room for several of them: the policy of most tests.
pub fn fast_policy() -> SupervisionPolicy {
    SupervisionPolicy {
        strategy: RestartStrategy::OneForOne,
        restart: RestartType::Permanent,
        intensity: Intensity { max_restarts: 10, period: Duration::from_secs(10) },
        backoff: Backoff { min: Duration::from_millis(1), max: Duration::from_millis(10) },
    }
}

/// One started `test` service: its supervisor and, for each counter cell, the cell and an
/// endpoint that routes every message to it.
pub struct TestService {
    pub supervision: ServiceSupervision,
    pub cells: Vec<CellHandle<Counter>>,
    pub endpoints: Vec<LocalEndpoint>,
    /// Handler calls of every cell, across restarts.
    pub num_handler_calls: Arc<AtomicU64>,
}

impl TestService {
    pub fn endpoint(&self, index: usize) -> &LocalEndpoint {
        &self.endpoints[index]
    }

    pub fn cell(&self, index: usize) -> &CellHandle<Counter> {
        &self.cells[index]
    }
}

/// A node's supervision tree and the arbiter thread the service's actors run on.
pub struct Sandbox {
    pub tree: SupervisionTree,
    arbiter: Arbiter,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { tree: SupervisionTree::new("test-node", 64, 16), arbiter: Arbiter::new() }
    }

    /// Starts the `test` service with one counter cell per name, in order.
    pub fn start_service(&self, policy: SupervisionPolicy, cell_names: &[&str]) -> TestService {
        let num_handler_calls = Arc::new(AtomicU64::new(0));
        let mut group = ServiceGroup::new(&self.tree, "test", policy, self.arbiter.handle());
        let cells: Vec<CellHandle<Counter>> = cell_names
            .iter()
            .map(|name| {
                let num_handler_calls = num_handler_calls.clone();
                group.spawn(name, move || Counter { count: 0, num_handler_calls: num_handler_calls.clone() })
            })
            .collect();
        let supervision = group.finish();
        let endpoints = cells
            .iter()
            .map(|cell| {
                LocalEndpoint::builder("test", supervision.health.clone())
                    .route::<Increment, _>(cell)
                    .route::<Fail, _>(cell)
                    .route::<Sleep, _>(cell)
                    .build()
            })
            .collect();
        TestService { supervision, cells, endpoints, num_handler_calls }
    }

    /// The snapshot of the actor at `path` (`test/counter`), as the tree reports it.
    pub fn actor(&self, path: &str) -> ActorSnapshot {
        let snapshot = self.tree.snapshot();
        let actors = snapshot.services.iter().flat_map(|service| service.actors.iter());
        actors.clone().find(|actor| actor.path == path).cloned().unwrap_or_else(|| {
            let paths: Vec<&str> = actors.map(|actor| actor.path.as_str()).collect();
            panic!("no actor {path} in the tree (actors: {paths:?})")
        })
    }

    /// Fails when the recorded faults are not exactly `expected_fault_paths` (actor paths, in
    /// order), when a message is still queued or in flight, or when an actor outlives its
    /// arbiter.
    pub fn shutdown(self, service: TestService, expected_fault_paths: &[&str]) {
        let snapshot = self.tree.snapshot();
        let fault_paths: Vec<&str> = snapshot.faults.iter().map(|fault| fault.actor_path.as_str()).collect();
        assert_eq!(fault_paths, expected_fault_paths, "unexpected faults: {:#?}", snapshot.faults);
        assert_eq!(snapshot.num_faults, expected_fault_paths.len() as u64);
        for actor in snapshot.services.iter().flat_map(|service| service.actors.iter()) {
            assert_eq!(actor.mailbox_depth, 0, "{} still has queued messages", actor.path);
            assert_eq!(actor.num_in_flight, 0, "{} still has messages in flight", actor.path);
            assert!(actor.current_message.is_none(), "{} is still handling a message", actor.path);
        }
        assert!(self.arbiter.stop(), "the arbiter thread of the service died");
        self.arbiter.join().expect("the arbiter thread panicked");
        for cell in &service.cells {
            assert!(!cell.addr.connected(), "{} is still running after its arbiter stopped", cell.monitor.path());
        }
        assert!(!service.supervision.supervisor.connected(), "the supervisor is still running");
    }
}

/// Waits for `future`, failing the test when it takes longer than [`ANSWER_TIMEOUT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(ANSWER_TIMEOUT, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {ANSWER_TIMEOUT:?}: the runtime hangs"),
    }
}

/// Asks `message` through the endpoint's typed route, as a local caller does.
pub async fn ask<M: Request>(endpoint: &LocalEndpoint, message: M) -> Result<M::Reply, ServiceError> {
    ask_with(endpoint, message, CallMeta::default()).await
}

pub async fn ask_with<M: Request>(
    endpoint: &LocalEndpoint,
    message: M,
    meta: CallMeta,
) -> Result<M::Reply, ServiceError> {
    let route = endpoint.route::<M>().unwrap_or_else(|| panic!("the endpoint has no route for {}", M::NAME));
    within(M::NAME, route.ask(message, meta)).await
}

/// Polls `condition` every millisecond until it holds, failing after [`ANSWER_TIMEOUT`].
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    within(what, async {
        while !condition() {
            actix::clock::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

pub fn assert_error(result: Result<impl std::fmt::Debug, ServiceError>, kind: ErrorKind, code: &str) -> ServiceError {
    let error = result.expect_err("expected an error answer");
    assert_eq!((error.kind, error.code.as_str()), (kind, code), "{error:?}");
    error
}

/// Asks message `name` with a JSON `body`, as the cluster transport does.
pub async fn ask_json(endpoint: &LocalEndpoint, name: &str, body: &[u8]) -> Result<Vec<u8>, ServiceError> {
    within(name, endpoint.ask_json(name, body.to_vec(), CallMeta::default())).await
}
