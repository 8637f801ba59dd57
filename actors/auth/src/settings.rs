//! The `[auth]` section of the configuration.

use emporium_cluster::settings::ServiceSettings;
use serde::{Deserialize, Serialize};

/// Token lifetimes and the signing-key rotation interval; read when the auth service starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Lifetime of an access token (an EdDSA JWT), in seconds (15 minutes).
    pub access_token_lifetime_secs: u64,
    /// Lifetime of a refresh token (opaque, rotated on use), in seconds (14 days).
    pub refresh_token_lifetime_secs: u64,
    /// The shortest time between two signing-key rotations, in seconds (5 minutes): a rotation
    /// sooner is answered 429 `rotation_too_soon`. With retired keys verifying for the access
    /// token lifetime plus a minute, the JWKS holds at most 1 + ceil(16 min / 5 min) = 5 keys.
    pub key_rotation_min_interval_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_token_lifetime_secs: 15 * 60,
            refresh_token_lifetime_secs: 14 * 24 * 3600,
            key_rotation_min_interval_secs: 5 * 60,
        }
    }
}

impl ServiceSettings for AuthSettings {
    const SECTION: &'static str = "auth";

    fn validate(&self) -> Result<(), String> {
        if self.access_token_lifetime_secs == 0 || self.refresh_token_lifetime_secs == 0 {
            return Err("token lifetimes must be positive".to_string());
        }
        if self.refresh_token_lifetime_secs < self.access_token_lifetime_secs {
            return Err("refresh_token_lifetime_secs must not be shorter than access_token_lifetime_secs".to_string());
        }
        Ok(())
    }
}
