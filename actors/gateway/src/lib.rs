//! The gateway: the one public HTTP entry of an Emporium cluster (`--http`).
//!
//! It mounts the routes every service crate exports, and in front of them:
//! - assigns `x-request-id`, continues or starts the W3C trace (`traceparent` on every
//!   response), sets the request's deadline, and records RED metrics per route;
//! - refuses bodies over the limit (413) before reading them, and answers unknown routes,
//!   malformed JSON and every other bad request with API.md's JSON errors;
//! - verifies access tokens locally ([`verifier::TokenVerifier`]: EdDSA only, `iss`, `aud`,
//!   `exp`, key by `kid` from the auth service's JWKS, refreshed on an unknown `kid`), checks
//!   that the user still exists ([`active_users::ActiveUsers`]), and puts the verified
//!   [`emporium_contracts::identity::Caller`] on the request for the route handlers, which
//!   ask the services through `ServiceRef`, local or remote;
//! - serves `GET /openapi.json`, merged from the services' generated fragments, and the
//!   interactive documentation over it at `GET /docs` ([`docs`]).
//!
//! - serves the supervisor dashboard at `GET /dashboard` and its data under
//!   `/api/v1/dashboard/` ([`dashboard`]).
//!
//! Actor: [`key_refresher::KeyRefresher`] (`gateway/keys`) fetches the JWKS from `auth`, asked
//! at start and every minute by the supervised task `gateway/key-refresh`.
#![warn(missing_docs)]

pub mod active_users;
pub mod dashboard;
mod definition;
pub mod docs;
pub mod error;
pub mod http_backends;
pub mod key_refresher;
pub mod messages;
pub mod middleware;
pub mod server;
pub mod settings;
pub mod verifier;

pub use definition::definition;
pub use server::{GatewayOptions, start};
pub use settings::GatewaySettings;
