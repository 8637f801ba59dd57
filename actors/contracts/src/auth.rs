//! The auth service's messages and public API bodies (API.md section 4, Auth).
//!
//! The public bodies derive `utoipa::ToSchema` for the OpenAPI document; the types that carry a
//! password or a token print it as `<redacted>` in `Debug`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Request;
use crate::identity::{Caller, Role};

/// The service name of the auth service.
pub const SERVICE: &str = "auth";

/// `POST /api/v1/auth/register` body.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3 to 32 characters: letters, digits, `.`, `_`, `-`; unique regardless of case.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9._-]{3,32}$", example = "ada")]
    pub username: String,
    /// An email address (at most 254 characters); unique regardless of case: one `@` after a
    /// non-empty local part, then a domain of at least two non-empty dot-separated labels; no
    /// whitespace or control characters anywhere (surrounding whitespace is trimmed).
    #[schema(
        min_length = 5,
        max_length = 254,
        pattern = r"^[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+@[^.@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+(\.[^.@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+)+$",
        example = "ada@example.com"
    )]
    pub email: String,
    /// 1 to 100 characters (surrounding whitespace trimmed), not blank, without control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$",
        example = "Ada Lovelace"
    )]
    pub full_name: String,
    /// 8 to 1024 bytes of UTF-8. Documented as 8 to 256 characters, so that every documented
    /// password fits in 1024 bytes (a character takes up to 4).
    #[schema(format = Password, min_length = 8, max_length = 256)]
    pub password: String,
}

/// `POST /api/v1/auth/login` body: `email` or `username`, and the password.
///
/// The service takes either name: a non-blank `email` wins, else a non-blank `username`, and
/// neither is 400 `invalid_login`. A schema cannot say "one of the two", so it documents the
/// simplest form that always works: `username` required; `email` optional.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// The email address to sign in with (wins over `username` when not blank).
    #[serde(default)]
    pub email: Option<String>,
    /// The username (as registered: 3 to 32 letters, digits, `.`, `_`, `-`; any case); may be
    /// left out when `email` is given.
    #[serde(default)]
    #[schema(
        required = true,
        nullable = false,
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9._-]{3,32}$",
        example = "ada"
    )]
    pub username: Option<String>,
    /// The password (as registered: at least 8 bytes).
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    pub password: String,
}

/// `POST /api/v1/auth/refresh` body.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last pair.
    pub refresh_token: String,
}

/// `POST /api/v1/auth/logout` optional body.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogoutRequest {
    /// The refresh token to revoke (by default, the one issued with the access token used).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The user's id.
    pub id: String,
    /// The username.
    pub username: String,
    /// The email address.
    pub email: String,
    /// The full name.
    pub full_name: String,
    /// The roles: `customer`, `admin`.
    #[schema(value_type = Vec<String>, example = json!(["customer"]))]
    pub roles: Vec<Role>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// An access token and a refresh token.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// A signed JWT (EdDSA), valid `expires_in` seconds.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
    /// An opaque token, stored hashed, rotated on use.
    pub refresh_token: String,
}

/// One public key of the JWKS (RFC 7517 / RFC 8037 for Ed25519).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// Key type (`OKP` for Ed25519).
    pub kty: String,
    /// Curve (`Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Key id, the `kid` of the tokens it verifies.
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// `EdDSA`.
    pub alg: String,
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    /// Every key that may verify a token still valid.
    pub keys: Vec<Jwk>,
}

impl fmt::Debug for RegisterRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RegisterRequest")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("full_name", &self.full_name)
            .field("password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("RefreshRequest").field("refresh_token", &REDACTED).finish()
    }
}

impl fmt::Debug for LogoutRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LogoutRequest")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("TokenPair")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

/// What `Debug` prints in place of a password or a token.
const REDACTED: &str = "<redacted>";

/// Where a request came from, for rate limits and audit (never trusted for authorization).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// The client's IP address as the gateway saw it.
    pub address: Option<String>,
}

/// Create an account (role `customer`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterUser {
    /// What the user sent.
    pub request: RegisterRequest,
    /// Where from.
    pub client: ClientInfo,
}

impl Request for RegisterUser {
    type Reply = UserView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "RegisterUser";
    const IDEMPOTENT: bool = false;
    fn summary(&self) -> String {
        "register".to_string()
    }
}

/// Sign in; answers a token pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogIn {
    /// What the user sent.
    pub request: LoginRequest,
    /// Where from (login attempts are limited per account and per address).
    pub client: ClientInfo,
}

impl Request for LogIn {
    type Reply = TokenPair;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "LogIn";
    const IDEMPOTENT: bool = false;
    fn summary(&self) -> String {
        "login".to_string()
    }
}

/// Exchange a refresh token for a new pair; reusing a rotated token revokes its whole family.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshTokens {
    /// The refresh token.
    pub refresh_token: String,
    /// Where from.
    pub client: ClientInfo,
}

impl fmt::Debug for RefreshTokens {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("RefreshTokens").field("refresh_token", &REDACTED).field("client", &self.client).finish()
    }
}

impl Request for RefreshTokens {
    type Reply = TokenPair;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "RefreshTokens";
    const IDEMPOTENT: bool = false;
}

/// Sign out: revokes the refresh token issued with the caller's access token (or the given one).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOut {
    /// Who.
    pub caller: Caller,
    /// A specific refresh token to revoke.
    pub refresh_token: Option<String>,
}

impl fmt::Debug for LogOut {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LogOut")
            .field("caller", &self.caller)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

impl Request for LogOut {
    type Reply = ();
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "LogOut";
    const IDEMPOTENT: bool = true;
}

/// The caller's own account (`GET /api/v1/auth/me`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetCurrentUser {
    /// Who.
    pub caller: Caller,
}

impl Request for GetCurrentUser {
    type Reply = UserView;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "GetCurrentUser";
    const IDEMPOTENT: bool = true;
}

/// The public keys that verify access tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GetJwks {}

impl Request for GetJwks {
    type Reply = Jwks;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "GetJwks";
    const IDEMPOTENT: bool = true;
}

/// Whether a user still exists and may act (the gateway caches the answer briefly).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckUserActive {
    /// The user's id.
    pub user_id: String,
}

impl Request for CheckUserActive {
    type Reply = bool;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "CheckUserActive";
    const IDEMPOTENT: bool = true;
}

/// Delete an account (admin): its refresh tokens go with it and its access tokens stop working.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteUser {
    /// The admin asking.
    pub caller: Caller,
    /// The user to delete.
    pub user_id: String,
}

impl Request for DeleteUser {
    type Reply = ();
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "DeleteUser";
    const IDEMPOTENT: bool = true;
}

/// Start signing with a new key (admin); the old key keeps verifying until its tokens expire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateSigningKey {
    /// The admin asking.
    pub caller: Caller,
}

/// The answer to [`RotateSigningKey`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyRotated {
    /// The new key's id.
    pub kid: String,
    /// Key ids still published for verification.
    pub verifying_kids: Vec<String>,
}

impl Request for RotateSigningKey {
    type Reply = SigningKeyRotated;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "RotateSigningKey";
    const IDEMPOTENT: bool = false;
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema as _;

    use super::*;

    #[test]
    fn passwords_and_tokens_never_show_in_debug() {
        let register = RegisterRequest {
            username: "ada".into(),
            email: "ada@example.com".into(),
            full_name: "Ada".into(),
            password: "hunter2-secret".into(),
        };
        let login = LoginRequest { email: None, username: Some("ada".into()), password: "hunter2-secret".into() };
        let pair = TokenPair {
            access_token: "eyJ.secret.jwt".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: "refresh-secret".into(),
        };
        let caller = Caller { user_id: "u1".into(), roles: vec![Role::Customer], token_id: "j1".into() };
        let printed = [
            format!("{register:?}"),
            format!("{:?}", LogIn { request: login, client: ClientInfo::default() }),
            format!("{pair:?}"),
            format!("{:?}", RefreshRequest { refresh_token: "refresh-secret".into() }),
            format!("{:?}", LogoutRequest { refresh_token: Some("refresh-secret".into()) }),
            format!("{:?}", RefreshTokens { refresh_token: "refresh-secret".into(), client: ClientInfo::default() }),
            format!("{:?}", LogOut { caller, refresh_token: Some("refresh-secret".into()) }),
        ];
        for text in printed {
            assert!(!text.contains("secret") && text.contains("<redacted>"), "{text}");
        }
    }

    #[test]
    fn bodies_are_camel_case_and_refuse_unknown_fields() {
        let body = r#"{"username":"ada","email":"a@b.co","fullName":"Ada","password":"12345678"}"#;
        let request: RegisterRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.full_name, "Ada");
        let with_extra =
            r#"{"username":"ada","email":"a@b.co","fullName":"Ada","password":"12345678","roles":["admin"]}"#;
        assert!(serde_json::from_str::<RegisterRequest>(with_extra).is_err(), "no role smuggling");
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("abc".into()),
            kid: "k".into(),
            key_use: "sig".into(),
            alg: "EdDSA".into(),
        };
        assert_eq!(serde_json::to_value(&jwk).unwrap()["use"], "sig");
    }

    #[test]
    fn the_schemas_follow_the_wire_names() {
        let schema = serde_json::to_value(UserView::schema()).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        for name in ["id", "username", "email", "fullName", "roles", "createdAt"] {
            assert!(properties.contains_key(name), "{name} in {schema}");
        }
        let jwk = serde_json::to_value(Jwk::schema()).unwrap();
        assert!(jwk["properties"].get("use").is_some(), "{jwk}");
    }
}
