//! The `[gateway]` section of the configuration.

use std::collections::BTreeMap;

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
    /// HTTP routes to services outside Emporium (registered through the registry's Eureka
    /// API), by name: `[gateway.http_routes.billing]` (see `http_backends.rs`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub http_routes: BTreeMap<String, HttpRoute>,
}

/// A path prefix of the public API proxied to the HTTP listener of a registered service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRoute {
    /// The public path prefix (`/api/v1/billing`): the prefix itself and everything under it.
    pub prefix: String,
    /// The registry service whose UP instances serve it (`billing`).
    pub service: String,
    /// Who may call it: `public`, `signed_in` or `admin`.
    pub access: RouteAccess,
    /// Forward the path without the prefix (`/api/v1/billing/invoices` -> `/invoices`).
    #[serde(default)]
    pub strip_prefix: bool,
}

/// Who may call an [`HttpRoute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAccess {
    /// Anyone; a token, when sent, is still verified and forwarded.
    Public,
    /// A valid access token.
    SignedIn,
    /// A valid access token with the admin role.
    Admin,
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
            http_routes: BTreeMap::new(),
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
        for (name, route) in &self.http_routes {
            let prefix = &route.prefix;
            let reserved = ["/api/v1/auth", "/api/v1/dashboard", "/dashboard", "/openapi.json", "/docs"];
            if !prefix.starts_with("/api/") || prefix.ends_with('/') || prefix.contains("//") || prefix.contains('{') {
                return Err(format!(
                    "gateway.http_routes.{name}.prefix must start with /api/, not end with / and hold no {{}}: {prefix:?}"
                ));
            }
            if reserved.iter().any(|taken| prefix.starts_with(taken)) {
                return Err(format!("gateway.http_routes.{name}.prefix {prefix:?} is a route of Emporium's own"));
            }
            if route.service.is_empty() || route.service.len() > 63 {
                return Err(format!("gateway.http_routes.{name}.service must be a service name"));
            }
        }
        Ok(())
    }
}
