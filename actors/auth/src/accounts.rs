//! The `auth/accounts` actor: sign-up, sign-in, who-am-I, account deletion and the "is this
//! user still there" check the gateway asks.
//!
//! The actor holds no state of its own (everything lives in [`Shared`]); each handler returns a
//! future that does its I/O and its argon2 work off the actor, so the actor takes the next
//! message at once.

use std::sync::Arc;

use emporium_contracts::auth::{CheckUserActive, DeleteUser, GetCurrentUser, LogIn, RegisterUser, TokenPair, UserView};
use emporium_contracts::events::{self, UserLoggedIn, UserLoginFailed};
use emporium_contracts::identity::Role;
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler, TraceParent};

use crate::error::AuthError;
use crate::shared::{Shared, enqueue, reply};
use crate::store::UserRecord;
use crate::throttle::{self, account_key_of_login, account_key_of_user};
use crate::validation::{EMAIL_MAX_CHARS, PASSWORD_MAX_BYTES, login_name, validate_registration};

/// Sign-ups, sign-ins and accounts.
pub struct Accounts {
    shared: Arc<Shared>,
}

impl Accounts {
    /// An accounts actor over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Accounts { shared }
    }
}

impl Behavior for Accounts {}

impl ServiceHandler<RegisterUser> for Accounts {
    fn handle(&mut self, message: RegisterUser, meta: &CallMeta) -> Reply<UserView> {
        let trace = meta.trace;
        reply(&self.shared, move |shared| async move { register(&shared, message, trace).await })
    }
}

impl ServiceHandler<LogIn> for Accounts {
    fn handle(&mut self, message: LogIn, meta: &CallMeta) -> Reply<TokenPair> {
        let trace = meta.trace;
        reply(&self.shared, move |shared| async move { log_in(&shared, message, trace).await })
    }
}

impl ServiceHandler<GetCurrentUser> for Accounts {
    fn handle(&mut self, message: GetCurrentUser, _meta: &CallMeta) -> Reply<UserView> {
        reply(&self.shared, move |shared| async move {
            let user = shared.store.find_user(&message.caller.user_id).await?;
            user.map(|user| user.view()).ok_or(AuthError::AccountGone)
        })
    }
}

impl ServiceHandler<CheckUserActive> for Accounts {
    fn handle(&mut self, message: CheckUserActive, _meta: &CallMeta) -> Reply<bool> {
        reply(&self.shared, move |shared| async move { shared.store.user_exists(&message.user_id).await })
    }
}

impl ServiceHandler<DeleteUser> for Accounts {
    fn handle(&mut self, message: DeleteUser, _meta: &CallMeta) -> Reply<()> {
        reply(&self.shared, move |shared| async move { delete_user(&shared, message).await })
    }
}

/// Validates, checks for a taken name (cheaply, before hashing), hashes, and inserts the
/// account with its `user.registered` event; the unique indexes settle races.
#[tracing::instrument(skip_all)]
async fn register(shared: &Shared, message: RegisterUser, trace: Option<TraceParent>) -> Result<UserView, AuthError> {
    let registration = validate_registration(message.request)?;
    if let Some(conflict) = shared.store.find_conflict(&registration.username, &registration.email).await? {
        return Err(conflict);
    }
    let password_hash = shared.hasher.hash(registration.password).await?;
    let user = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        username: registration.username,
        email: registration.email,
        full_name: registration.full_name,
        password_hash,
        roles: vec![Role::Customer],
        created_at: shared.now(),
    };
    shared.create_user(&user, trace).await?;
    tracing::info!(user_id = %user.id, "account created");
    Ok(user.view())
}

/// Finds the account, applies the limits, verifies the password (against a dummy hash when
/// there is no account, so both cost the same), then records the failure or issues a pair,
/// each with its event in the same transaction.
#[tracing::instrument(skip_all)]
async fn log_in(shared: &Shared, message: LogIn, trace: Option<TraceParent>) -> Result<TokenPair, AuthError> {
    let login = login_name(&message.request)?;
    let address = throttle::stored_address(message.client.address.as_deref());
    let user = shared.store.find_user_by_login(&login).await?;
    let account_key = match &user {
        Some(user) => account_key_of_user(&user.id),
        None => account_key_of_login(&login),
    };
    throttle::check(&shared.store, &shared.limits, &account_key, address.as_deref(), shared.now()).await?;

    let password = message.request.password;
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    // Longer passwords were never accepted at sign-up: refuse them without hashing a megabyte.
    let matches = password.len() <= PASSWORD_MAX_BYTES && shared.hasher.verify(password.clone(), stored_hash).await?;
    let now = shared.now();
    let Some(user) = user.filter(|_| matches) else {
        let mut tx = shared.store.database().begin().await?;
        shared.store.record_login_failure(&mut tx, &account_key, address.as_deref(), now).await?;
        let longest_window = shared.limits.window.max(shared.limits.address_window);
        let horizon = now - chrono::Duration::from_std(longest_window).unwrap_or(chrono::Duration::zero());
        shared.store.purge_login_failures(&mut tx, horizon).await?;
        // About the account when there is one, else the pseudonymous key of the name tried.
        let subject = account_key.strip_prefix("user:").unwrap_or(&account_key).to_string();
        let tried: String = login.as_str().chars().take(EMAIL_MAX_CHARS).collect();
        let event = UserLoginFailed { login: tried, reason: "invalid_credentials".to_string() };
        enqueue(&mut tx, events::USER_LOGIN_FAILED, &subject, &event, trace).await?;
        tx.commit().await?;
        tracing::info!(account_key = %account_key, "sign-in refused");
        return Err(AuthError::InvalidCredentials);
    };

    let mut tx = shared.store.database().begin().await?;
    shared.store.clear_login_failures(&mut tx, &account_key).await?;
    shared.store.purge_expired_refresh_tokens(&mut tx, &user.id, now).await?;
    let family_id = uuid::Uuid::new_v4().to_string();
    let pair = shared.issue_pair(&mut tx, &user.id, &user.roles, &family_id, now).await?;
    enqueue(&mut tx, events::USER_LOGGED_IN, &user.id, &UserLoggedIn { user_id: user.id.clone() }, trace).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "signed in");

    if shared.hasher.needs_rehash(&user.password_hash) {
        // Best effort: the sign-in succeeded whatever happens here.
        let rehashed = match shared.hasher.hash(password).await {
            Ok(hash) => shared.store.update_password_hash(&user.id, &hash).await.map_err(anyhow::Error::new),
            Err(error) => Err(error),
        };
        match rehashed {
            Ok(()) => tracing::info!(user_id = %user.id, "password re-hashed with the current parameters"),
            Err(error) => tracing::warn!(user_id = %user.id, error = %error, "re-hashing the password failed"),
        }
    }
    Ok(pair)
}

/// Deletes an account (admins only) with its refresh tokens; 404 for an unknown id, 409
/// `last_admin` for the only admin account.
#[tracing::instrument(skip_all, fields(user_id = %message.user_id))]
async fn delete_user(shared: &Shared, message: DeleteUser) -> Result<(), AuthError> {
    if !message.caller.is_admin() {
        return Err(AuthError::Forbidden);
    }
    let mut tx = shared.store.database().begin().await?;
    let admins = shared.store.admin_ids_for_update(&mut tx).await?;
    if admins.len() == 1 && admins[0] == message.user_id {
        return Err(AuthError::LastAdmin);
    }
    if !shared.store.delete_user(&mut tx, &message.user_id).await? {
        return Err(AuthError::NoSuchUser);
    }
    tx.commit().await?;
    tracing::info!(admin = %message.caller.user_id, "account deleted");
    Ok(())
}
