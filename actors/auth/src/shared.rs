//! What both auth actors share, built once at start and kept across their restarts: the store,
//! the key ring, the password hasher, the clock and the limits; and the steps both take
//! (issuing a token pair, writing an event to the outbox, creating an account).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use emporium_bus::RelayHandle;
use emporium_bus::outbox;
use emporium_contracts::auth::{SERVICE, TokenPair};
use emporium_contracts::events::{self, EventEnvelope, UserRegistered};
use emporium_contracts::identity::Role;
use emporium_runtime::{HandlerError, Reply, TraceParent};
use emporium_store::DbTx;
use serde::Serialize;

use crate::access_token::AccessClaims;
use crate::error::AuthError;
use crate::keys::KeyRing;
use crate::options::{Clock, LoginLimits};
use crate::password::PasswordHasher;
use crate::secret::{random_token, sha256_hex};
use crate::store::{AuthStore, RefreshRecord, UserRecord, from_millis, millis};

/// Refresh tokens carry this many random bytes.
pub const REFRESH_TOKEN_BYTES: usize = 32;

/// The state the auth actors share.
pub struct Shared {
    /// The store.
    pub store: AuthStore,
    /// The signing keys.
    pub ring: Arc<KeyRing>,
    /// argon2id, on the blocking pool.
    pub hasher: PasswordHasher,
    /// The time source.
    pub clock: Clock,
    /// Sign-in limits.
    pub limits: LoginLimits,
    /// Access token lifetime.
    pub access_token_lifetime: Duration,
    /// Refresh token lifetime.
    pub refresh_token_lifetime: Duration,
    /// The shortest time between two signing-key rotations.
    pub key_rotation_min_interval: Duration,
    /// The auth outbox relay, when this service started it: it runs as long as the actors
    /// (which hold this state) do.
    pub relay: Option<RelayHandle>,
}

impl Shared {
    /// The current time, to the millisecond (what the store keeps).
    pub fn now(&self) -> DateTime<Utc> {
        from_millis(millis(self.clock.now()))
    }

    /// Issues an access token and a refresh token of `family_id` for `user_id`, storing the
    /// refresh token (hashed) within `tx`.
    pub async fn issue_pair(
        &self,
        tx: &mut DbTx,
        user_id: &str,
        roles: &[Role],
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let jti = uuid::Uuid::new_v4().to_string();
        let refresh_token = random_token(REFRESH_TOKEN_BYTES)?;
        let record = RefreshRecord {
            token_hash: sha256_hex(refresh_token.as_bytes()),
            family_id: family_id.to_string(),
            user_id: user_id.to_string(),
            access_jti: jti.clone(),
            issued_at: now,
            expires_at: now + chrono::Duration::from_std(self.refresh_token_lifetime).unwrap_or(chrono::Duration::MAX),
            rotated_at: None,
            revoked_at: None,
        };
        self.store.insert_refresh_token(tx, &record).await?;
        let access_token =
            AccessClaims::new(user_id, roles, &jti, now, self.access_token_lifetime).sign(&self.ring.current())?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer".to_string(),
            expires_in: self.access_token_lifetime.as_secs(),
            refresh_token,
        })
    }

    /// Creates `user` and its `user.registered` event in one transaction.
    pub async fn create_user(&self, user: &UserRecord, trace: Option<TraceParent>) -> Result<(), AuthError> {
        let mut tx = self.store.database().begin().await?;
        self.store.insert_user(&mut tx, user).await?;
        let event = UserRegistered {
            user_id: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            full_name: user.full_name.clone(),
        };
        enqueue(&mut tx, events::USER_REGISTERED, &user.id, &event, trace).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A handler's reply: runs `work` with the shared state and answers its error to the caller
/// (never a fault: nothing in an auth actor is left broken by a failed request).
pub fn reply<T, F>(shared: &Arc<Shared>, work: impl FnOnce(Arc<Shared>) -> F) -> Reply<T>
where
    T: 'static,
    F: Future<Output = Result<T, AuthError>> + 'static,
{
    let future = work(shared.clone());
    Box::pin(async move { future.await.map_err(|error| HandlerError::Reply(error.to_service_error())) })
}

/// Writes event `event_type` about `subject` to the auth outbox within `tx`.
pub async fn enqueue<T: Serialize>(
    tx: &mut DbTx,
    event_type: &str,
    subject: &str,
    payload: &T,
    trace: Option<TraceParent>,
) -> Result<(), AuthError> {
    let envelope = EventEnvelope::new(&events::source_of(SERVICE), event_type, subject, payload)
        .map_err(|error| AuthError::Unexpected(anyhow::Error::new(error)))?;
    outbox::enqueue(tx, SERVICE, &envelope, trace.map(|trace| trace.to_string())).await?;
    Ok(())
}
