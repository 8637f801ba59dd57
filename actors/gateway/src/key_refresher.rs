//! The gateway actor that keeps the verification keys current: it asks the auth service for
//! its JWKS at start, every minute, and when a token names a key the gateway does not know
//! (at most once a second, so forged `kid`s cannot flood the auth service).

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
    last_fetch: Option<Instant>,
}

impl KeyRefresher {
    /// A refresher that asks `auth` and fills `verifier`.
    pub fn new(auth: ServiceRef, verifier: Arc<TokenVerifier>) -> Self {
        KeyRefresher { auth, verifier, last_fetch: None }
    }
}

impl Behavior for KeyRefresher {}

impl ServiceHandler<RefreshSigningKeys> for KeyRefresher {
    fn handle(&mut self, _message: RefreshSigningKeys, meta: &CallMeta) -> Reply<usize> {
        let verifier = self.verifier.clone();
        if self.last_fetch.is_some_and(|last| last.elapsed() < MIN_REFRESH_INTERVAL) {
            let count = verifier.num_keys();
            return Box::pin(async move { Ok(count) });
        }
        self.last_fetch = Some(Instant::now());
        let auth = self.auth.clone();
        let meta = meta.clone();
        Box::pin(async move {
            let jwks = auth.ask_with(GetJwks {}, meta).await?;
            let count = verifier.set_keys(&jwks);
            tracing::debug!(num_keys = count, "verification keys refreshed");
            Ok(count)
        })
    }
}
