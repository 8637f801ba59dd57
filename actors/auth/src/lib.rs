//! The auth service: accounts, passwords, access and refresh tokens, signing keys.
//!
//! It owns the `auth_*` tables (users, refresh tokens, failed sign-ins, published signing
//! keys) in the service's SQL database, MariaDB/MySQL or SQLite, and writes its events
//! (`user.registered`, `user.logged_in`, `user.login_failed`) to the bus's outbox in the
//! transaction of the change.
//!
//! **Actors** (one supervisor, `auth`, strategy from the node's settings):
//! - `auth/accounts` (`accounts.rs`): `RegisterUser`, `LogIn`, `GetCurrentUser`,
//!   `CheckUserActive`, `DeleteUser`.
//! - `auth/tokens` (`tokens.rs`): `RefreshTokens`, `LogOut`, `GetJwks`, `RotateSigningKey`.
//!
//! Messages and public bodies: [`emporium_contracts::auth`]. HTTP routes for the gateway:
//! [`routes()`] and [`openapi()`].
//!
//! **Passwords**: argon2id, m = 19456 KiB, t = 2, p = 1 (the OWASP minimum), 16-byte random
//! salt, PHC strings; hashed on tokio's blocking pool, at most one hash per CPU at a time
//! ([`password`]). A sign-in of an unknown account verifies against a dummy hash, so it takes
//! as long as a wrong password and gets the same 401 `invalid_credentials`. Limits: 5 failures
//! per account in 15 minutes, 20 per client address in 1 minute, then 429
//! `too_many_attempts` with `Retry-After` ([`LoginLimits`]).
//!
//! **Access tokens**: EdDSA (Ed25519) JWTs, 15 minutes, claims `sub`, `roles`, `iss`
//! (`emporium`), `aud` (`emporium-api`), `iat`, `exp`, `jti`, header `kid`
//! ([`access_token`]). Keys ([`keys`]): from `EMPORIUM_JWT_PRIVATE_KEY` (PKCS#8 PEM) or
//! `EMPORIUM_JWT_PRIVATE_KEY_FILE`, else generated on first start under
//! `<data dir>/auth/keys/` (0600); `kid` is the RFC 7638 thumbprint. Every instance publishes
//! its public keys in the store, so any instance's JWKS verifies every instance's tokens; a
//! rotated key stays published for the access token lifetime plus a minute.
//!
//! **Refresh tokens**: 32 random bytes, base64url, stored as SHA-256, one family per sign-in,
//! rotated on every use (14 days from each use); a rotated token presented again revokes its
//! family. Logout revokes the family of the caller's session.
//!
//! **Bootstrap admin**: on a start that finds no admin, `admin` / `admin@emporium.local` is
//! created with `EMPORIUM_ADMIN_PASSWORD`, or with a random password printed once on standard
//! output.
#![warn(missing_docs)]

pub mod access_token;
mod accounts;
mod admin_reset;
mod definition;
pub mod error;
mod key_files;
pub mod keys;
pub mod options;
pub mod password;
pub mod routes;
pub mod secret;
mod service;
pub mod settings;
mod shared;
mod store;
mod throttle;
mod tokens;
pub mod validation;

pub use admin_reset::{admin_password_notice, reset_admin_password};
pub use definition::definition;
pub use error::AuthError;
pub use keys::SigningKeySource;
pub use options::{AuthOptions, Clock, LoginLimits};
pub use password::PasswordHashing;
pub use routes::{openapi, routes};
pub use secret::SecretString;
pub use service::{ADMIN_EMAIL, ADMIN_USERNAME, CREATED_HEADLINE, start, start_with_admin_password};
pub use settings::AuthSettings;
