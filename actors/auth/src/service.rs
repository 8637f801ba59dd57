//! Starting the auth service: tables, keys, the bootstrap admin, then the supervised actors and
//! their message table.

use std::sync::Arc;

use anyhow::Context as _;
use emporium_cluster::{ServiceContext, ServiceHandle};
use emporium_contracts::auth::{
    CheckUserActive, DeleteUser, GetCurrentUser, GetJwks, LogIn, LogOut, RefreshTokens, RegisterUser, RotateSigningKey,
    SERVICE,
};
use emporium_contracts::identity::Role;
use emporium_runtime::LocalEndpoint;

use crate::accounts::Accounts;
use crate::admin_reset::admin_password_notice;
use crate::error::AuthError;
use crate::keys::{KeyRing, SigningKeySource};
use crate::options::AuthOptions;
use crate::password::PasswordHasher;
use crate::secret::{SecretString, random_token};
use crate::shared::Shared;
use crate::store::{AuthStore, UserRecord};
use crate::tokens::Tokens;
use crate::validation::validate_password;

/// The bootstrap admin's username (API.md section 6).
pub const ADMIN_USERNAME: &str = "admin";
/// The bootstrap admin's email address.
pub const ADMIN_EMAIL: &str = "admin@emporium.local";

/// Starts the auth service: migrates its tables (and the bus's outbox), loads or creates the
/// signing key and publishes it, starts the outbox relay when given the bus, creates the
/// bootstrap admin when no admin exists, then starts the `accounts` and `tokens` actors under
/// the service's supervisor on `ctx`'s arbiter.
/// A generated admin password is printed at once on standard error (see
/// [`start_with_admin_password`] to show it later).
pub async fn start(ctx: ServiceContext, options: AuthOptions) -> anyhow::Result<ServiceHandle> {
    let (handle, generated_password) = start_with_admin_password(ctx, options).await?;
    if let Some(password) = generated_password {
        eprintln!("{}", admin_password_notice(CREATED_HEADLINE, &password));
    }
    Ok(handle)
}

/// What the operator reads above a generated admin password.
pub const CREATED_HEADLINE: &str = "Emporium created the bootstrap admin account.";

/// Like [`start`], but answers the generated admin password (when this start created the admin
/// without `EMPORIUM_ADMIN_PASSWORD`) instead of printing it, for the node to show once it is
/// ready.
pub async fn start_with_admin_password(
    ctx: ServiceContext,
    options: AuthOptions,
) -> anyhow::Result<(ServiceHandle, Option<SecretString>)> {
    let mut shared = prepare(&options).await?;
    if let Some(bus) = &options.bus {
        let relay = bus.start_relay(&ctx, SERVICE, options.database.clone()).await?;
        shared.relay = Some(relay);
    }
    let shared = Arc::new(shared);
    let generated_password = match ensure_admin(&shared, options.admin_password.clone()).await? {
        AdminBootstrap::Created { generated_password } => generated_password,
        AdminBootstrap::AlreadyPresent | AdminBootstrap::Blocked => None,
    };

    let mut group = ctx.group(SERVICE);
    let accounts = group.spawn("accounts", {
        let shared = shared.clone();
        move || Accounts::new(shared.clone())
    });
    let tokens = group.spawn("tokens", {
        let shared = shared.clone();
        move || Tokens::new(shared.clone())
    });
    let supervision = group.finish();
    let endpoint = LocalEndpoint::builder(SERVICE, supervision.health.clone())
        .route::<RegisterUser, _>(&accounts)
        .route::<LogIn, _>(&accounts)
        .route::<GetCurrentUser, _>(&accounts)
        .route::<CheckUserActive, _>(&accounts)
        .route::<DeleteUser, _>(&accounts)
        .route::<RefreshTokens, _>(&tokens)
        .route::<LogOut, _>(&tokens)
        .route::<GetJwks, _>(&tokens)
        .route::<RotateSigningKey, _>(&tokens)
        .build();
    Ok((ServiceHandle::new(endpoint, supervision), generated_password))
}

/// Everything but the actors: tables, keys (published), hasher.
pub(crate) async fn prepare(options: &AuthOptions) -> anyhow::Result<Shared> {
    let store = AuthStore::new(options.database.clone());
    emporium_bus::migrate(&options.database).await.context("the outbox tables could not be created")?;
    store.migrate().await?;

    let now = options.clock.now();
    let (source, window) = (options.signing_key.clone(), options.verify_window());
    let ring = tokio::task::spawn_blocking(move || KeyRing::load(&source, now, window))
        .await
        .context("loading the signing keys failed")??;
    let current = ring.current();
    store.publish_signing_key(current.kid(), &current.public_x(), current.created_at()).await?;
    if !matches!(options.signing_key, SigningKeySource::Generated { .. }) {
        // The operator's key is the cluster's: a key it replaced (or one rotated in memory
        // before this start) verifies for one more window, then leaves the JWKS.
        let num_retired = store.retire_other_signing_keys(current.kid(), now).await?;
        if num_retired > 0 {
            tracing::info!(num_retired, "retired the signing keys the configured key replaces");
        }
    }
    for retired in ring.retired(now) {
        store.publish_signing_key(&retired.kid, &retired.x, retired.retired_at).await?;
        store.retire_signing_key(&retired.kid, retired.retired_at).await?;
    }

    let hasher = PasswordHasher::new(options.password_hashing).await?;
    Ok(Shared {
        store,
        ring: Arc::new(ring),
        hasher,
        clock: options.clock.clone(),
        limits: options.login_limits,
        access_token_lifetime: options.access_token_lifetime,
        refresh_token_lifetime: options.refresh_token_lifetime,
        key_rotation_min_interval: options.key_rotation_min_interval,
        relay: None,
    })
}

/// What [`ensure_admin`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AdminBootstrap {
    /// An admin exists: nothing to do.
    AlreadyPresent,
    /// The admin account was created, with a generated password when none was given.
    Created {
        /// The generated password, to show once.
        generated_password: Option<SecretString>,
    },
    /// No admin exists, but the admin's username or email belongs to another account.
    Blocked,
}

/// Creates the bootstrap admin (`admin`, `admin@emporium.local`, role `admin`) when no account
/// holds the admin role, with `password` or a generated one.
pub(crate) async fn ensure_admin(shared: &Shared, password: Option<SecretString>) -> anyhow::Result<AdminBootstrap> {
    if shared.store.admin_exists().await? {
        return Ok(AdminBootstrap::AlreadyPresent);
    }
    let (password, generated) = match password {
        Some(password) => (password, false),
        None => (SecretString::new(random_token(18)?), true),
    };
    validate_password(password.expose()).context("EMPORIUM_ADMIN_PASSWORD must be 8 to 1024 bytes long")?;
    let admin = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        username: ADMIN_USERNAME.to_string(),
        email: ADMIN_EMAIL.to_string(),
        full_name: "Emporium Administrator".to_string(),
        password_hash: shared.hasher.hash(password.expose().to_string()).await?,
        roles: vec![Role::Admin],
        created_at: shared.now(),
    };
    match shared.create_user(&admin, None).await {
        Ok(()) => {
            tracing::info!(user_id = %admin.id, generated, "created the bootstrap admin account");
            Ok(AdminBootstrap::Created { generated_password: generated.then_some(password) })
        }
        Err(AuthError::UsernameTaken | AuthError::EmailTaken) => {
            if shared.store.admin_exists().await? {
                // Another instance bootstrapped at the same time.
                return Ok(AdminBootstrap::AlreadyPresent);
            }
            tracing::warn!(
                "no account holds the admin role, but {ADMIN_USERNAME} or {ADMIN_EMAIL} belongs to another account: \
                 no bootstrap admin was created"
            );
            Ok(AdminBootstrap::Blocked)
        }
        Err(error) => Err(anyhow::Error::new(error).context("creating the bootstrap admin failed")),
    }
}

#[cfg(test)]
mod tests {
    use emporium_store::Database;

    use super::*;
    use crate::password::PasswordHashing;

    async fn sqlite_options() -> (AuthOptions, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("auth-bootstrap-{}", uuid::Uuid::new_v4().simple()));
        let database = Database::open_sqlite_file(&dir.join("auth.db")).await.unwrap();
        let mut options = AuthOptions::new(database, &dir);
        options.password_hashing = PasswordHashing { memory_kib: 64, iterations: 1, parallelism: 1 };
        (options, dir)
    }

    #[tokio::test]
    async fn without_a_password_the_admin_gets_a_generated_one_once() {
        let (options, dir) = sqlite_options().await;
        let shared = prepare(&options).await.unwrap();
        let AdminBootstrap::Created { generated_password: Some(password) } = ensure_admin(&shared, None).await.unwrap()
        else {
            panic!("the admin is created with a generated password");
        };
        assert!(password.expose().len() >= 24, "18 random bytes, base64url");
        let admin =
            shared.store.find_user_by_login(&crate::validation::LoginName::Username("admin".into())).await.unwrap();
        let admin = admin.expect("the admin exists");
        assert_eq!((admin.email.as_str(), admin.roles.as_slice()), (ADMIN_EMAIL, &[Role::Admin][..]));
        assert!(shared.hasher.verify(password.expose().to_string(), Some(admin.password_hash)).await.unwrap());
        assert_eq!(ensure_admin(&shared, None).await.unwrap(), AdminBootstrap::AlreadyPresent, "once only");
        options.database.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_given_password_is_used_and_a_weak_one_refused() {
        let (options, dir) = sqlite_options().await;
        let shared = prepare(&options).await.unwrap();
        let weak = ensure_admin(&shared, Some(SecretString::new("short"))).await.unwrap_err();
        assert!(format!("{weak:#}").contains("EMPORIUM_ADMIN_PASSWORD"), "{weak:#}");
        let created = ensure_admin(&shared, Some(SecretString::new("a-long-password"))).await.unwrap();
        assert_eq!(created, AdminBootstrap::Created { generated_password: None });
        options.database.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_taken_admin_name_blocks_the_bootstrap_without_failing_the_start() {
        let (options, dir) = sqlite_options().await;
        let shared = prepare(&options).await.unwrap();
        let squatter = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: "Admin".into(),
            email: "someone@example.com".into(),
            full_name: "Not An Admin".into(),
            password_hash: shared.hasher.hash("whatever-password".into()).await.unwrap(),
            roles: vec![Role::Customer],
            created_at: shared.now(),
        };
        shared.create_user(&squatter, None).await.unwrap();
        assert_eq!(ensure_admin(&shared, None).await.unwrap(), AdminBootstrap::Blocked);
        options.database.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
