//! The gateway actor that keeps the verification keys current: it asks the auth service for
//! its JWKS at start, every minute, and when a token names a key the gateway does not know
//! (at most once a second after a successful fetch, so forged `kid`s cannot flood the auth
//! service).

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_cluster::ServiceRef;
use emporium_contracts::auth::GetJwks;
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};

use crate::messages::RefreshSigningKeys;
use crate::verifier::TokenVerifier;

/// Least time between two JWKS fetches.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

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
        let meta = meta.clone();
        Box::pin(async move {
            let jwks = auth.ask_with(GetJwks {}, meta).await?;
            let count = verifier.set_keys(&jwks);
            *last_success.lock() = Some(Instant::now());
            tracing::debug!(num_keys = count, "verification keys refreshed");
            Ok(count)
        })
    }
}
