//! What the node hands to [`crate::start`]: the database, the data directory, the secrets and
//! the limits of the auth service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use emporium_bus::Bus;
use emporium_store::Database;
use parking_lot::Mutex;

use crate::keys::SigningKeySource;
use crate::password::PasswordHashing;
use crate::secret::SecretString;

/// The signing key as a PKCS#8 PEM (or `EMPORIUM_JWT_PRIVATE_KEY_FILE`, a file holding it).
pub const ENV_JWT_PRIVATE_KEY: &str = "EMPORIUM_JWT_PRIVATE_KEY";
/// The bootstrap admin's password, used on the first start only.
pub const ENV_ADMIN_PASSWORD: &str = "EMPORIUM_ADMIN_PASSWORD";

/// Everything the auth service needs from its node.
#[derive(Clone)]
pub struct AuthOptions {
    /// Where users, refresh tokens, sign-in failures, published keys and the outbox live:
    /// MariaDB (`EMPORIUM_MYSQL_URL`) or the embedded SQLite file; the node decides.
    pub database: Database,
    /// The node's data directory (`--data-dir`); generated keys go to `<data dir>/auth/keys`.
    pub data_dir: PathBuf,
    /// Where the access token signing key comes from.
    pub signing_key: SigningKeySource,
    /// How long an access token is valid (15 minutes by default).
    pub access_token_lifetime: Duration,
    /// How long a refresh token is valid after it was issued (14 days by default); each
    /// refresh issues a new one.
    pub refresh_token_lifetime: Duration,
    /// The shortest time between two signing-key rotations (5 minutes by default); a rotation
    /// sooner than this after the current key was made is refused (429 `rotation_too_soon`).
    pub key_rotation_min_interval: Duration,
    /// The bootstrap admin's password, used when no admin exists (first start); without one a
    /// random password is generated and printed once on standard output.
    pub admin_password: Option<SecretString>,
    /// argon2id cost parameters.
    pub password_hashing: PasswordHashing,
    /// How many failed sign-ins are tolerated.
    pub login_limits: LoginLimits,
    /// The node's event bus: when given, [`crate::start`] starts the auth outbox relay
    /// (`auth.outbox/relay`) on [`AuthOptions::database`] and keeps it as long as the service
    /// runs. Without it, the events wait in the outbox for a relay the node starts.
    pub bus: Option<Bus>,
    /// The time source (tests use a manual one).
    pub clock: Clock,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuthOptions")
            .field("database", &self.database.dialect())
            .field("data_dir", &self.data_dir)
            .field("signing_key", &self.signing_key)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("refresh_token_lifetime", &self.refresh_token_lifetime)
            .field("key_rotation_min_interval", &self.key_rotation_min_interval)
            .field("admin_password", &self.admin_password)
            .field("password_hashing", &self.password_hashing)
            .field("login_limits", &self.login_limits)
            .field("bus", &self.bus.as_ref().map(|bus| if bus.is_in_process() { "in-process" } else { "rabbitmq" }))
            .field("clock", &self.clock)
            .finish()
    }
}

impl AuthOptions {
    /// The defaults: key generated under `<data_dir>/auth/keys`, 15 minute access tokens,
    /// 14 day refresh tokens, OWASP argon2id parameters, default sign-in limits.
    pub fn new(database: Database, data_dir: impl Into<PathBuf>) -> AuthOptions {
        let data_dir = data_dir.into();
        AuthOptions {
            database,
            signing_key: SigningKeySource::Generated { dir: key_dir(&data_dir) },
            data_dir,
            access_token_lifetime: Duration::from_secs(15 * 60),
            refresh_token_lifetime: Duration::from_secs(14 * 24 * 60 * 60),
            key_rotation_min_interval: Duration::from_secs(5 * 60),
            admin_password: None,
            password_hashing: PasswordHashing::default(),
            login_limits: LoginLimits::default(),
            bus: None,
            clock: Clock::system(),
        }
    }

    /// How long a retired signing key keeps verifying: the access token lifetime plus a minute
    /// of clock skew.
    pub fn verify_window(&self) -> Duration {
        self.access_token_lifetime + Duration::from_secs(60)
    }
}

/// Where generated signing keys are kept under `data_dir`.
pub fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("auth").join("keys")
}

/// How failed sign-ins are throttled (OWASP: throttle, do not hard-lock). Failures are kept in
/// the store, so the limits hold across restarts and across every instance of the service.
///
/// - One client (address) failing on one account: the first [`free_failures_per_client`] are
///   free; after that the client waits [`first_delay`] after its latest failure, doubling with
///   each further failure up to [`max_delay`]. Other clients of the account are not slowed: an
///   attacker cannot lock the owner out from their own address.
/// - One account, all clients: [`max_failures_per_account`] failures within [`window`] refuse
///   every client until the oldest of them leaves the window: a ceiling far above what a person
///   types, against a guess spread over many addresses.
/// - One address, all accounts: [`max_failures_per_address`] within [`address_window`].
///
/// A refused attempt is not a failure; a successful sign-in forgets the account's failures.
///
/// [`free_failures_per_client`]: LoginLimits::free_failures_per_client
/// [`first_delay`]: LoginLimits::first_delay
/// [`max_delay`]: LoginLimits::max_delay
/// [`max_failures_per_account`]: LoginLimits::max_failures_per_account
/// [`window`]: LoginLimits::window
/// [`max_failures_per_address`]: LoginLimits::max_failures_per_address
/// [`address_window`]: LoginLimits::address_window
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures of one account from one client before that client has to wait (5).
    pub free_failures_per_client: u32,
    /// The wait after the first failure past the free ones (1 s); doubled for each further one.
    pub first_delay: Duration,
    /// The longest wait of one client (60 s).
    pub max_delay: Duration,
    /// How long a failure counts against a client and against the account (15 minutes).
    pub window: Duration,
    /// Failures of one account from all clients within the window before every client is
    /// refused (100; 0 turns the ceiling off).
    pub max_failures_per_account: u32,
    /// Failures per client address, all accounts, within [`LoginLimits::address_window`] (20;
    /// 0 turns it off).
    pub max_failures_per_address: u32,
    /// The per-address window (1 minute).
    pub address_window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            free_failures_per_client: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            window: Duration::from_secs(15 * 60),
            max_failures_per_account: 100,
            max_failures_per_address: 20,
            address_window: Duration::from_secs(60),
        }
    }
}

impl LoginLimits {
    /// How long a client with `num_failures` recent failures on an account waits after the
    /// latest of them; `None` while they are free.
    pub fn client_delay(&self, num_failures: u32) -> Option<Duration> {
        let past_free = num_failures.checked_sub(self.free_failures_per_client)?;
        let doubled = self.first_delay.saturating_mul(1u32 << past_free.min(24));
        Some(doubled.min(self.max_delay))
    }
}

/// The service's time source: the system clock, or a manual one that tests move forward.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(if self.manual.is_some() { "Clock(manual)" } else { "Clock(system)" })
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock { manual: Some(Arc::new(Mutex::new(start))) }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(time) => *time.lock(),
            None => Utc::now(),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(time) = &self.manual {
            let mut time = time.lock();
            *time += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_options() -> AuthOptions {
        let path = std::env::temp_dir().join(format!("auth-options-{}.db", uuid::Uuid::new_v4()));
        let database = Database::open_sqlite_file(&path).await.unwrap();
        AuthOptions::new(database, "/var/lib/emporium")
    }

    #[tokio::test]
    async fn defaults_generate_the_key_under_the_data_dir() {
        let options = sqlite_options().await;
        assert!(
            matches!(&options.signing_key, SigningKeySource::Generated { dir } if dir == Path::new("/var/lib/emporium/auth/keys"))
        );
        assert_eq!(options.access_token_lifetime, Duration::from_secs(900));
        assert_eq!(options.verify_window(), Duration::from_secs(960));
        assert!(options.admin_password.is_none());
    }

    #[tokio::test]
    async fn the_key_and_the_admin_password_are_never_printed() {
        let mut options = sqlite_options().await;
        options.signing_key = SigningKeySource::Pem(SecretString::new("-----BEGIN PRIVATE KEY-----".to_string()));
        options.admin_password = Some(SecretString::new("s3cret-pass".to_string()));
        let printed = format!("{options:?}");
        assert!(!printed.contains("s3cret") && !printed.contains("BEGIN"), "{printed}");
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
        let system = Clock::system();
        system.advance(Duration::from_secs(3600));
        assert!((system.now() - Utc::now()).num_seconds().abs() < 5);
    }
}
