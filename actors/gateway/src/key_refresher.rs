//! The gateway actor that keeps the verification keys current: it asks the auth service for
//! its JWKS at start, every minute, and when a token names a key the gateway does not know
//! (at most once a second after a successful fetch, so forged `kid`s cannot flood the auth
//! service). Until it holds keys the gateway is not ready (see `definition.rs`).
//!
//! The start and every-minute fetches come from the key refresh (`gateway/key-refresh`,
//! [`spawn_key_refresh`]), a supervised task of the gateway's group: a panic in it is a fault
//! in the node's tree followed by a restart, and the node's stop signal ends it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_cluster::{ServiceContext, ServiceRef};
use emporium_contracts::auth::GetJwks;
use emporium_runtime::{
    Behavior, CallMeta, CellHandle, LocalRoute, Reply, ServiceGroup, ServiceHandler, TaskContext, TaskHandle,
};

use crate::messages::RefreshSigningKeys;
use crate::verifier::TokenVerifier;

/// Least time between two JWKS fetches.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// How often the key refresh fetches the JWKS (besides at start).
const PERIODIC_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// How soon the key refresh tries again after a fetch failed (doubling up to five seconds): a gateway that started before auth gets its keys, and
/// becomes ready, within about a second of auth answering.
const RETRY_INTERVAL_MIN: Duration = Duration::from_millis(250);
const RETRY_INTERVAL_MAX: Duration = Duration::from_secs(5);

/// How long one fetch may take: the JWKS is a small read, so a request waiting on it is told
/// 503 `auth_unavailable` quickly when auth cannot answer.
const FETCH_BUDGET: Duration = Duration::from_millis(800);

/// The key refresh's name in the gateway's group (its path is `gateway/key-refresh`).
pub const KEY_REFRESH: &str = "key-refresh";

/// Fetches the JWKS into the verifier.
pub struct KeyRefresher {
    auth: ServiceRef,
    verifier: Arc<TokenVerifier>,
    last_success: Arc<parking_lot::Mutex<Option<Instant>>>,
}

impl KeyRefresher {
    /// A refresher that asks `auth` and fills `verifier`.
    pub fn new(auth: ServiceRef, verifier: Arc<TokenVerifier>) -> Self {
        KeyRefresher { auth, verifier, last_success: Arc::default() }
    }
}

impl Behavior for KeyRefresher {}

impl ServiceHandler<RefreshSigningKeys> for KeyRefresher {
    fn handle(&mut self, _message: RefreshSigningKeys, meta: &CallMeta) -> Reply<usize> {
        let verifier = self.verifier.clone();
        // Only a successful fetch holds the next one back: while the auth service cannot be
        // reached, every unknown kid may try again (its breaker keeps that cheap).
        if self.last_success.lock().is_some_and(|last| last.elapsed() < MIN_REFRESH_INTERVAL) {
            let count = verifier.num_keys();
            return Box::pin(async move { Ok(count) });
        }
        let last_success = self.last_success.clone();
        let auth = self.auth.clone();
        let budget = Instant::now() + FETCH_BUDGET;
        let meta = CallMeta {
            deadline: Some(meta.deadline.map_or(budget, |deadline| deadline.min(budget))),
            trace: meta.trace,
        };
        Box::pin(async move {
            let jwks = auth.ask_with(GetJwks {}, meta).await?;
            let count = verifier.set_keys(&jwks);
            *last_success.lock() = Some(Instant::now());
            tracing::debug!(num_keys = count, "verification keys refreshed");
            Ok(count)
        })
    }
}

/// Starts the key refresh as a supervised task of `group` that asks `refresher` for the keys
/// at start and every minute, stopped by the node's stop signal (`ctx.lifecycle`).
pub fn spawn_key_refresh(
    ctx: &ServiceContext,
    group: &mut ServiceGroup,
    refresher: &CellHandle<KeyRefresher>,
) -> TaskHandle {
    let route = refresher.route::<RefreshSigningKeys>();
    ctx.spawn_task(group, KEY_REFRESH, move |task_context| Box::pin(run_key_refresh(task_context, route.clone())))
}

/// One run of the key refresh: a fetch at once, then one every minute, until the stop signal
/// (also in the middle of a fetch). A fetch that fails is logged and tried again soon (from
/// 250 ms, doubling to 5 s), so a gateway started before auth is ready once auth answers.
async fn run_key_refresh(task_context: TaskContext, route: LocalRoute<RefreshSigningKeys>) -> Result<(), String> {
    let mut retry_interval = RETRY_INTERVAL_MIN;
    loop {
        let meta = CallMeta { deadline: Some(Instant::now() + FETCH_BUDGET), trace: None };
        let next_fetch = tokio::select! {
            _ = task_context.stop_requested() => return Ok(()),
            refreshed = route.ask(RefreshSigningKeys {}, meta) => match refreshed {
                Ok(_) => {
                    retry_interval = RETRY_INTERVAL_MIN;
                    PERIODIC_REFRESH_INTERVAL
                }
                Err(error) => {
                    tracing::debug!(code = %error.code, "verification keys not refreshed");
                    let wait = retry_interval;
                    retry_interval = (retry_interval * 2).min(RETRY_INTERVAL_MAX);
                    wait
                }
            },
        };
        tokio::select! {
            _ = task_context.stop_requested() => return Ok(()),
            () = tokio::time::sleep(next_fetch) => {}
        }
    }
}
