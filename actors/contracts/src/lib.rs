//! The shared language of Emporium's services.
//!
//! Every message that crosses a service boundary is defined here once, serde-derived, and the
//! type that travels over the cluster transport is the type the actor handles. A message is a
//! struct named with a verb that implements [`Request`]: it names its service, its wire name,
//! whether it is safe to repeat, and its reply type. Failures travel as [`ServiceError`].
//!
//! - [`error`]: the one error type every reply may carry, with its HTTP mapping.
//! - [`request`]: the [`Request`] trait.
//! - [`registry`]: instances, leases, watch events and configuration documents of the registry.
//! - [`echo`]: the diagnostic echo service used by the cluster tests.
#![warn(missing_docs)]

pub mod echo;
pub mod error;
pub mod registry;
pub mod request;

pub use error::{ErrorKind, ServiceError};
pub use request::Request;
