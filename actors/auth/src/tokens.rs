//! The `auth/tokens` actor: refresh, logout, the JWKS and signing key rotation.
//!
//! Refresh tokens rotate on every use: the presented token is claimed by one conditional
//! `UPDATE` (live, unused, unexpired) and a new one of the same family is issued in the same
//! transaction. A token presented again after it was rotated is a replay: its whole family is
//! revoked, and the answer is the same 401 `invalid_refresh_token` as for an unknown, expired
//! or revoked token.

use std::sync::Arc;

use emporium_contracts::auth::{GetJwks, Jwks, LogOut, RefreshTokens, RotateSigningKey, SigningKeyRotated, TokenPair};
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};

use crate::error::AuthError;
use crate::keys::jwk;
use crate::secret::sha256_hex;
use crate::shared::{Shared, reply};

/// Refresh tokens and signing keys.
pub struct Tokens {
    shared: Arc<Shared>,
}

impl Tokens {
    /// A tokens actor over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Tokens { shared }
    }
}

impl Behavior for Tokens {}

impl ServiceHandler<RefreshTokens> for Tokens {
    fn handle(&mut self, message: RefreshTokens, _meta: &CallMeta) -> Reply<TokenPair> {
        reply(&self.shared, move |shared| async move { refresh(&shared, &message.refresh_token).await })
    }
}

impl ServiceHandler<LogOut> for Tokens {
    fn handle(&mut self, message: LogOut, _meta: &CallMeta) -> Reply<()> {
        reply(&self.shared, move |shared| async move { log_out(&shared, message).await })
    }
}

impl ServiceHandler<GetJwks> for Tokens {
    fn handle(&mut self, _message: GetJwks, _meta: &CallMeta) -> Reply<Jwks> {
        reply(&self.shared, move |shared| async move { Ok(jwks(&shared).await) })
    }
}

impl ServiceHandler<RotateSigningKey> for Tokens {
    fn handle(&mut self, message: RotateSigningKey, _meta: &CallMeta) -> Reply<SigningKeyRotated> {
        reply(&self.shared, move |shared| async move { rotate(&shared, message).await })
    }
}

/// Exchanges a live refresh token for a new pair of the same family; a replayed one revokes
/// its family.
#[tracing::instrument(skip_all)]
async fn refresh(shared: &Shared, refresh_token: &str) -> Result<TokenPair, AuthError> {
    let token_hash = sha256_hex(refresh_token.as_bytes());
    let now = shared.now();
    let mut tx = shared.store.database().begin().await?;
    if let Some(record) = shared.store.claim_refresh_token(&mut tx, &token_hash, now).await? {
        let Some(roles) = shared.store.user_roles_in(&mut tx, &record.user_id).await? else {
            return Err(AuthError::InvalidRefreshToken);
        };
        let pair = shared.issue_pair(&mut tx, &record.user_id, &roles, &record.family_id, now).await?;
        tx.commit().await?;
        tracing::debug!(user_id = %record.user_id, family_id = %record.family_id, "refresh token rotated");
        return Ok(pair);
    }
    tx.rollback().await?;
    if let Some(record) = shared.store.find_refresh_token(&token_hash).await?
        && record.rotated_at.is_some()
        && record.revoked_at.is_none()
    {
        let num_revoked = shared.store.revoke_family(&record.family_id, now).await?;
        tracing::warn!(
            user_id = %record.user_id,
            family_id = %record.family_id,
            num_revoked,
            "a rotated refresh token was presented again; its family is revoked"
        );
    }
    Err(AuthError::InvalidRefreshToken)
}

/// Revokes the family of the given refresh token (when it is the caller's) or of the one issued
/// with the caller's access token. Answers `Ok` whether or not there was one to revoke.
#[tracing::instrument(skip_all, fields(user_id = %message.caller.user_id))]
async fn log_out(shared: &Shared, message: LogOut) -> Result<(), AuthError> {
    let caller = &message.caller;
    let family_id = match &message.refresh_token {
        Some(token) => shared
            .store
            .find_refresh_token(&sha256_hex(token.as_bytes()))
            .await?
            .filter(|record| record.user_id == caller.user_id)
            .map(|record| record.family_id),
        None => shared.store.family_of_access_token(&caller.user_id, &caller.token_id).await?,
    };
    if let Some(family_id) = family_id {
        let num_revoked = shared.store.revoke_family(&family_id, shared.now()).await?;
        tracing::info!(family_id = %family_id, num_revoked, "signed out");
    }
    Ok(())
}

/// This instance's keys (signing first), then every other key published in the store that may
/// still verify a live token. When the store is unreachable, this instance's keys alone.
async fn jwks(shared: &Shared) -> Jwks {
    let now = shared.now();
    let mut keys = shared.ring.verifying_keys(now);
    let window = chrono::Duration::from_std(shared.ring.verify_window()).unwrap_or(chrono::Duration::MAX);
    match shared.store.published_signing_keys(now - window).await {
        Ok(published) => {
            for key in published {
                if !keys.iter().any(|known| known.kid == key.kid) {
                    keys.push(jwk(&key.kid, &key.x));
                }
            }
        }
        Err(error) => tracing::warn!(error = %error, "published keys unavailable; answering this instance's keys"),
    }
    Jwks { keys }
}

/// Makes a new signing key (admins only; at most one per `key_rotation_min_interval`): generated and kept, published, then installed, so
/// that it is in every instance's JWKS before it signs anything.
#[tracing::instrument(skip_all, fields(admin = %message.caller.user_id))]
async fn rotate(shared: &Shared, message: RotateSigningKey) -> Result<SigningKeyRotated, AuthError> {
    if !message.caller.is_admin() {
        return Err(AuthError::Forbidden);
    }
    let now = shared.now();
    let interval = chrono::Duration::from_std(shared.key_rotation_min_interval).unwrap_or(chrono::Duration::MAX);
    let allowed_at = shared.ring.current().created_at().checked_add_signed(interval);
    if let Some(wait) = allowed_at.map(|allowed_at| allowed_at - now).filter(|wait| *wait > chrono::Duration::zero()) {
        let retry_after_secs = u32::try_from((wait.num_milliseconds() + 999) / 1000).unwrap_or(u32::MAX);
        return Err(AuthError::RotationTooSoon { retry_after_secs });
    }
    let ring = shared.ring.clone();
    let next = tokio::task::spawn_blocking(move || ring.next_key(now))
        .await
        .map_err(|error| AuthError::Unexpected(anyhow::anyhow!("key generation task failed: {error}")))??;
    shared.store.publish_signing_key(next.kid(), &next.public_x(), next.created_at()).await?;
    let rotation = shared.ring.install(next, now);
    shared.store.retire_signing_key(&rotation.retired.kid, now).await?;
    let verifying_kids = jwks(shared).await.keys.into_iter().map(|key| key.kid).collect();
    Ok(SigningKeyRotated { kid: rotation.current.kid().to_string(), verifying_kids })
}
