//! The trait every request-reply message implements.

use serde::{Serialize, de::DeserializeOwned};

/// A request-reply message addressed to one service.
///
/// The same value is handed to the local actor (no serialization) or sent as JSON to
/// `POST /cluster/v1/ask/{SERVICE}/{NAME}` on another node.
pub trait Request: Serialize + DeserializeOwned + Send + 'static {
    /// What the handler answers on success.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The service that handles it, as registered (`inventory`, `echo`, ...).
    const SERVICE: &'static str;
    /// The wire name of the message, unique within its service (`ReserveStock`).
    const NAME: &'static str;
    /// Whether delivering it twice has the effect of delivering it once, so that a failed
    /// transport attempt may be retried on another instance.
    const IDEMPOTENT: bool;

    /// A redacted one-line summary for the actor's flight recorder: identifiers and counts,
    /// never personal data or secrets. Empty by default.
    fn summary(&self) -> String {
        String::new()
    }
}
