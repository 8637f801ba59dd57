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
//! - [`identity`]: the verified caller ([`identity::Caller`]) and roles.
//! - [`auth`]: the auth service's messages and public bodies.
//! - [`inventory`]: the inventory service's messages (the synchronous stock check).
//! - [`page`]: paged lists.
//! - [`money`]: decimal-string amounts over integer minor units.
//! - [`product`]: the product service's messages and public bodies.
//! - [`payment`]: the payment service's messages and public bodies (payments, test card tokens).
//! - [`notification`]: the notification service's messages and public bodies.
//! - [`order`]: the order service's messages and public bodies.
//! - [`echo`]: the diagnostic echo service used by the cluster tests.
//! - [`events`]: the CloudEvents envelope, exchanges, event types and payloads of the event bus.
#![warn(missing_docs)]

pub mod auth;
pub mod echo;
pub mod error;
pub mod events;
pub mod identity;
pub mod inventory;
pub mod money;
pub mod notification;
pub mod order;
pub mod page;
pub mod payment;
pub mod product;
pub mod registry;
pub mod request;
pub mod whole_number;

pub use error::{ErrorKind, ServiceError};
pub use events::EventEnvelope;
pub use request::Request;
