//! Set-up of the auth service tests: a fresh database (SQLite file or MariaDB database) and data
//! directory per test, the service started the way a node starts it (hand-built
//! `ServiceContext` on the test's actix system), asks through its `LocalEndpoint`, and the
//! check the gateway makes on access tokens.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use emporium_auth::{AuthOptions, Clock, PasswordHashing, SecretString};
use emporium_cluster::directory::Directory;
use emporium_cluster::{Cluster, ClusterSecret, ServiceContext, ServiceHandle, Settings};
use emporium_contracts::auth::{Jwks, LogIn, LoginRequest, RegisterRequest, RegisterUser, TokenPair, UserView};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::{Request, ServiceError};
use emporium_runtime::{CallMeta, LocalEndpoint, SupervisionTree};
use emporium_store::Database;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::watch;

/// The bootstrap admin's password in every test.
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database on the machine's MariaDB.
    MariaDb,
}

pub fn mysql_url() -> String {
    std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

/// Cheap argon2id parameters: the tests exercise the flow, not the cost.
pub const LIGHT_HASHING: PasswordHashing = PasswordHashing { memory_kib: 256, iterations: 1, parallelism: 1 };

/// A `ServiceContext` on the current actix system, as a node gives a service.
pub fn service_context(node_id: &str) -> ServiceContext {
    let (_settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
    ServiceContext {
        node_id: node_id.to_string(),
        tree: SupervisionTree::new(node_id, 64, 32),
        cluster: Cluster::new(node_id, Directory::new(), ClusterSecret::generate()),
        settings: settings_rx,
        arbiter: actix_rt::Arbiter::current(),
        lifecycle: emporium_cluster::Lifecycle::new(),
    }
}

/// A fresh database and data directory, and the auth service started on them.
pub struct Harness {
    pub store: Store,
    pub database: Database,
    pub data_dir: PathBuf,
    pub clock: Clock,
    pub ctx: ServiceContext,
    pub handle: ServiceHandle,
    mysql_database: Option<String>,
    sqlite_path: Option<PathBuf>,
    contexts: Vec<ServiceContext>,
}

impl Harness {
    /// Starts auth on a fresh `store` with the test defaults (light hashing, a manual clock
    /// at the current time, the admin password [`ADMIN_PASSWORD`]), adjusted by `adjust`.
    pub async fn start(store: Store, adjust: impl FnOnce(&mut AuthOptions)) -> Harness {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (database, mysql_database, sqlite_path) = match store {
            Store::Sqlite => {
                let path = std::env::temp_dir().join(format!("auth_test_{id}.db"));
                (Database::open_sqlite_file(&path).await.unwrap(), None, Some(path))
            }
            Store::MariaDb => {
                let name = format!("auth_test_{id}");
                let server = Database::connect(&mysql_url())
                    .await
                    .unwrap_or_else(|error| panic!("MariaDB at {} is needed for this test: {error}", mysql_url()));
                server.execute(&format!("CREATE DATABASE {name}")).await.unwrap();
                server.close().await;
                (Database::connect(&format!("{}/{name}", mysql_url())).await.unwrap(), Some(name), None)
            }
        };
        let data_dir = std::env::temp_dir().join(format!("auth_test_data_{id}"));
        let clock = Clock::manual(DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap());
        let mut options = AuthOptions::new(database.clone(), &data_dir);
        options.password_hashing = LIGHT_HASHING;
        options.admin_password = Some(SecretString::new(ADMIN_PASSWORD));
        options.clock = clock.clone();
        adjust(&mut options);
        let ctx = service_context("node-test");
        let handle = emporium_auth::start(ctx.clone(), options).await.expect("auth starts");
        ctx.cluster.add_local(handle.endpoint.clone());
        Harness { store, database, data_dir, clock, ctx, handle, mysql_database, sqlite_path, contexts: Vec::new() }
    }

    /// The options of a second start on the same database and data directory (a restart or
    /// a second instance).
    pub fn options(&self) -> AuthOptions {
        let mut options = AuthOptions::new(self.database.clone(), &self.data_dir);
        options.password_hashing = LIGHT_HASHING;
        options.clock = self.clock.clone();
        options
    }

    /// Starts another instance of auth with `options`, on a context of its own.
    pub async fn start_another(&mut self, options: AuthOptions) -> LocalEndpoint {
        let ctx = service_context("node-other");
        let handle = emporium_auth::start(ctx.clone(), options).await.expect("auth starts again");
        self.contexts.push(ctx);
        handle.endpoint
    }

    /// The service's endpoint.
    pub fn endpoint(&self) -> &LocalEndpoint {
        &self.handle.endpoint
    }

    /// Asks the service.
    pub async fn ask<M: Request>(&self, message: M) -> Result<M::Reply, ServiceError> {
        ask(self.endpoint(), message).await
    }

    /// Registers `username` with `<username>@example.com` and `password`.
    pub async fn register(&self, username: &str, password: &str) -> UserView {
        self.ask(RegisterUser { request: registration(username, password), client: Default::default() })
            .await
            .unwrap_or_else(|error| panic!("{username} registers: {error}"))
    }

    /// Signs in `login` (an email when it has an `@`) from `address`.
    pub async fn log_in(&self, login: &str, password: &str, address: Option<&str>) -> Result<TokenPair, ServiceError> {
        self.ask(log_in(login, password, address)).await
    }

    /// The JWKS the service answers now.
    pub async fn jwks(&self) -> Jwks {
        self.ask(emporium_contracts::auth::GetJwks::default()).await.unwrap()
    }

    /// The caller a gateway makes of `pair`'s access token (verified against the JWKS).
    pub async fn caller_of(&self, pair: &TokenPair) -> Caller {
        verify(&self.jwks().await, &pair.access_token).expect("the access token verifies")
    }

    /// Closes the pools and removes the databases and directories; fails when an actor fault
    /// was recorded.
    pub async fn finish(mut self) {
        let snapshot = self.ctx.tree.snapshot();
        let faults = snapshot.num_faults + self.contexts.iter().map(|ctx| ctx.tree.snapshot().num_faults).sum::<u64>();
        self.database.close().await;
        if let Some(name) = self.mysql_database.take() {
            let server = Database::connect(&mysql_url()).await.unwrap();
            server.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
            server.close().await;
        }
        if let Some(path) = self.sqlite_path.take() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        assert_eq!(faults, 0, "no actor fault: {:?}", snapshot.faults);
    }
}

/// Runs `case` on a harness for `store`, then cleans up whether it passed or not.
pub async fn run(store: Store, case: impl AsyncFnOnce(&mut Harness)) {
    run_with(store, |_| {}, case).await
}

/// [`run`] with adjusted options.
pub async fn run_with(store: Store, adjust: impl FnOnce(&mut AuthOptions), case: impl AsyncFnOnce(&mut Harness)) {
    use futures::FutureExt as _;
    let mut harness = Harness::start(store, adjust).await;
    let outcome = std::panic::AssertUnwindSafe(case(&mut harness)).catch_unwind().await;
    harness.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs the async case `$case(&mut Harness)` on SQLite and on MariaDB.
#[macro_export]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[actix_rt::test]
                async fn sqlite() {
                    $crate::support::run($crate::support::Store::Sqlite, super::$case).await;
                }

                #[actix_rt::test]
                async fn mariadb() {
                    $crate::support::run($crate::support::Store::MariaDb, super::$case).await;
                }
            }
        )*
    };
}

/// Asks `endpoint`.
pub async fn ask<M: Request>(endpoint: &LocalEndpoint, message: M) -> Result<M::Reply, ServiceError> {
    let route = endpoint.route::<M>().unwrap_or_else(|| panic!("auth handles {}", M::NAME));
    tokio::time::timeout(Duration::from_secs(30), route.ask(message, CallMeta::default()))
        .await
        .unwrap_or_else(|_| panic!("{} answered within 30 s", M::NAME))
}

/// A registration of `username` (`<username>@example.com`, "Test User").
pub fn registration(username: &str, password: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.to_string(),
        email: format!("{username}@example.com"),
        full_name: "Test User".to_string(),
        password: password.to_string(),
    }
}

/// A sign-in of `login` (by email when it has an `@`, else by username) from `address`.
pub fn log_in(login: &str, password: &str, address: Option<&str>) -> LogIn {
    let by_email = login.contains('@');
    LogIn {
        request: LoginRequest {
            email: by_email.then(|| login.to_string()),
            username: (!by_email).then(|| login.to_string()),
            password: password.to_string(),
        },
        client: emporium_contracts::auth::ClientInfo { address: address.map(str::to_string) },
    }
}

/// Asserts `result` failed with HTTP `status` and `code`.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(result: Result<T, ServiceError>, status: u16, code: &str) -> ServiceError {
    match result {
        Ok(value) => panic!("expected {status} {code}, got {value:?}"),
        Err(error) => {
            assert_eq!((error.http_status(), error.code.as_str()), (status, code), "{error}");
            error
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub roles: Vec<Role>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// The check the gateway makes: the key the `kid` names in the JWKS, EdDSA only, `iss`, `aud`
/// and `exp` required and valid.
pub fn verify(jwks: &Jwks, token: &str) -> Result<Caller, String> {
    let claims = verify_claims(jwks, token)?;
    Ok(Caller { user_id: claims.sub, roles: claims.roles, token_id: claims.jti })
}

/// [`verify`], answering the claims.
pub fn verify_claims(jwks: &Jwks, token: &str) -> Result<Claims, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|error| error.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.keys.iter().find(|jwk| jwk.kid == kid).ok_or_else(|| format!("unknown kid {kid}"))?;
    let key = DecodingKey::from_ed_components(jwk.x.as_deref().ok_or("no x")?).map_err(|error| error.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["emporium"]);
    validation.set_audience(&["emporium-api"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Claims>(token, &key, &validation).map(|data| data.claims).map_err(|error| error.to_string())
}

/// The `kid` in a token's header.
pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}
