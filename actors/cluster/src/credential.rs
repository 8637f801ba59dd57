//! The cluster credential: the shared secret every node of one cluster holds, sent as
//! `Authorization: Cluster <secret>`. Without it a request to a cluster endpoint gets 401.

use std::fmt;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use base64::Engine;
use parking_lot::RwLock;
use rand::Rng;

/// The scheme of the `Authorization` header nodes send.
pub const CLUSTER_AUTH_SCHEME: &str = "Cluster";

/// The cluster's shared secret. It never prints: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    /// The secret given by an operator. Shorter than 16 characters is refused.
    pub fn new(secret: String) -> Result<Self, String> {
        if secret.trim().len() < 16 {
            return Err("EMPORIUM_CLUSTER_SECRET must be at least 16 characters".to_string());
        }
        Ok(ClusterSecret(secret.trim().to_string()))
    }

    /// A random secret for a node that was given none: only this process knows it.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        ClusterSecret(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// The `Authorization` header value that carries this secret.
    pub fn header_value(&self) -> String {
        format!("{CLUSTER_AUTH_SCHEME} {}", self.0)
    }

    /// Whether `header` (an `Authorization` value) carries this secret: `Cluster <secret>`, or
    /// HTTP Basic with the secret as the password and any user name (what Eureka clients,
    /// Spring config clients and Prometheus can send). Constant time in the secret's length.
    pub fn matches_header(&self, header: &str) -> bool {
        if let Some(presented) = header.strip_prefix(CLUSTER_AUTH_SCHEME).and_then(|rest| rest.strip_prefix(' ')) {
            return self.matches(presented.trim().as_bytes());
        }
        let Some(encoded) = header.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        match decoded.iter().position(|byte| *byte == b':') {
            Some(colon) => self.matches(&decoded[colon + 1..]),
            None => false,
        }
    }

    /// Whether `presented` is the secret itself (a frame link's `Hello`). Constant time in the
    /// secret's length.
    pub fn matches_credential(&self, presented: &[u8]) -> bool {
        self.matches(presented)
    }

    /// The secret's bytes, for a frame link's `Hello`. Never log them.
    pub(crate) fn credential(&self) -> &[u8] {
        self.0.as_bytes()
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut difference = (expected.len() != presented.len()) as u8;
        for (index, byte) in expected.iter().enumerate() {
            difference |= byte ^ presented.get(index).copied().unwrap_or(0);
        }
        difference == 0
    }

    /// Whether the request carries this secret.
    pub fn authorizes(&self, request: &HttpRequest) -> bool {
        request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| self.matches_header(value))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ClusterSecret(<redacted>)")
    }
}

impl fmt::Display for ClusterSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("<redacted>")
    }
}

/// Checks an access token for the admin role (the node's gateway verifies it).
pub type AdminTokenCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Who may read a node's operator endpoints (`/admin/v1/supervision`, registry reads, config
/// acks): another node, with the cluster credential, or an operator with an admin access token,
/// once a service of the node (the gateway) can verify tokens. Writes and cluster calls take
/// the cluster credential only ([`ClusterSecret::authorizes`]).
#[derive(Clone)]
pub struct OperatorAccess {
    secret: ClusterSecret,
    admin_tokens: Arc<RwLock<Option<AdminTokenCheck>>>,
}

impl OperatorAccess {
    /// Access by `secret` only, until [`OperatorAccess::accept_admin_tokens`].
    pub fn new(secret: ClusterSecret) -> Self {
        OperatorAccess { secret, admin_tokens: Arc::new(RwLock::new(None)) }
    }

    /// The cluster credential.
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// From now on a bearer token that `check` accepts grants access too.
    pub fn accept_admin_tokens(&self, check: AdminTokenCheck) {
        *self.admin_tokens.write() = Some(check);
    }

    /// Whether the request carries the cluster credential or an admin access token.
    pub fn authorizes(&self, request: &HttpRequest) -> bool {
        if self.secret.authorizes(request) {
            return true;
        }
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match (token, self.admin_tokens.read().as_ref()) {
            (Some(token), Some(check)) => check(token),
            _ => false,
        }
    }
}

impl fmt::Debug for OperatorAccess {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let admin_tokens = self.admin_tokens.read().is_some();
        formatter.debug_struct("OperatorAccess").field("admin_tokens", &admin_tokens).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_secret_with_the_scheme() {
        let secret = ClusterSecret::new("0123456789abcdef-secret".into()).unwrap();
        assert!(secret.matches_header("Cluster 0123456789abcdef-secret"));
        assert!(!secret.matches_header("Cluster 0123456789abcdef-secreT"));
        assert!(!secret.matches_header("Cluster 0123456789abcdef-secret-longer"));
        assert!(!secret.matches_header("Bearer 0123456789abcdef-secret"));
        assert!(!secret.matches_header("Cluster "));
        assert!(!secret.matches_header(""));
    }

    #[test]
    fn basic_authentication_carries_the_secret_as_the_password() {
        let secret = ClusterSecret::new("0123456789abcdef-secret".into()).unwrap();
        let basic =
            |credentials: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        assert!(secret.matches_header(&basic("eureka:0123456789abcdef-secret")));
        assert!(secret.matches_header(&basic(":0123456789abcdef-secret")));
        assert!(!secret.matches_header(&basic("eureka:0123456789abcdef-secreT")));
        assert!(!secret.matches_header(&basic("0123456789abcdef-secret")), "no colon: no password");
        assert!(!secret.matches_header(&basic("0123456789abcdef-secret:")), "the secret as the user name");
        assert!(!secret.matches_header("Basic not-base64!"));
    }

    #[test]
    fn never_prints_and_refuses_short_secrets() {
        let secret = ClusterSecret::generate();
        assert_eq!(format!("{secret:?} {secret}"), "ClusterSecret(<redacted>) <redacted>");
        assert!(ClusterSecret::new("short".into()).is_err());
    }
}
