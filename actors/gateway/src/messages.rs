//! Messages of the gateway's own actors (never sent across nodes).

use emporium_contracts::Request;
use serde::{Deserialize, Serialize};

/// The service name of the gateway's actors.
pub const SERVICE: &str = "gateway";

/// Fetch the JWKS from the auth service now (at most once a second); answers how many
/// verification keys the gateway holds afterwards.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RefreshSigningKeys {}

impl Request for RefreshSigningKeys {
    type Reply = usize;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "RefreshSigningKeys";
    const IDEMPOTENT: bool = true;
}
