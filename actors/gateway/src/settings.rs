//! The `[gateway]` section of the configuration.

use emporium_cluster::settings::ServiceSettings;
use serde::{Deserialize, Serialize};

/// Limits of the public edge; read when the gateway starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Largest request body, in bytes (413 `payload_too_large` above; 1 MiB).
    pub body_limit_bytes: usize,
    /// Time budget of one request, in milliseconds (10 s).
    pub request_timeout_millis: u64,
    /// How long "this user still exists" is trusted before the auth service is asked again,
    /// in milliseconds (5 s).
    pub user_check_ttl_millis: u64,
    /// How long the gateway waits for auth to say whether a token's user still exists, in
    /// milliseconds (500 ms).
    pub user_check_timeout_millis: u64,
    /// What happens when auth does not answer that question in time: `allow` (default) or
    /// `refuse` (503 `auth_unavailable`). The reason for the default is in `active_users.rs`
    /// and docs/OPERATIONS.md.
    pub user_check_unanswered: UnansweredUserCheck,
}

/// The policy when auth cannot say whether a token's user still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnansweredUserCheck {
    /// The verified token stands; counted and logged.
    Allow,
    /// 503 `auth_unavailable` with `Retry-After`.
    Refuse,
}

impl UnansweredUserCheck {
    /// The setting's value, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            UnansweredUserCheck::Allow => "allow",
            UnansweredUserCheck::Refuse => "refuse",
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            body_limit_bytes: 1024 * 1024,
            request_timeout_millis: 10_000,
            user_check_ttl_millis: 5_000,
            user_check_timeout_millis: 500,
            user_check_unanswered: UnansweredUserCheck::Allow,
        }
    }
}

impl ServiceSettings for GatewaySettings {
    const SECTION: &'static str = "gateway";

    fn validate(&self) -> Result<(), String> {
        if self.body_limit_bytes == 0 || self.request_timeout_millis == 0 || self.user_check_timeout_millis == 0 {
            return Err(
                "body_limit_bytes, request_timeout_millis and user_check_timeout_millis must be positive".to_string()
            );
        }
        Ok(())
    }
}
