//! Access tokens: EdDSA-signed JWTs whose claims name the user, their roles and the token.
//!
//! Header `{"typ":"JWT","alg":"EdDSA","kid":"<key id>"}`; claims `sub` (user id), `roles`
//! (`["customer"]`, `["admin"]`), `iss` = [`ISSUER`], `aud` = [`AUDIENCE`], `iat`, `exp`
//! (seconds since the epoch) and `jti` (a UUID, also stored with the refresh token issued
//! alongside, so that logout can find it). Verifiers (the gateway) fetch the public keys with
//! `GetJwks`, accept `EdDSA` only and check `iss`, `aud` and `exp`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use emporium_contracts::identity::Role;
use serde::{Deserialize, Serialize};

use crate::keys::SigningKey;

/// The `iss` of every access token.
pub const ISSUER: &str = "emporium";
/// The `aud` of every access token.
pub const AUDIENCE: &str = "emporium-api";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: String,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// [`ISSUER`].
    pub iss: String,
    /// [`AUDIENCE`].
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The token's id.
    pub jti: String,
}

impl AccessClaims {
    /// Claims for `user_id` with `roles`, issued at `now`, valid for `lifetime`.
    pub fn new(user_id: &str, roles: &[Role], jti: &str, now: DateTime<Utc>, lifetime: Duration) -> AccessClaims {
        let iat = now.timestamp();
        AccessClaims {
            sub: user_id.to_string(),
            roles: roles.to_vec(),
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
            iat,
            exp: iat.saturating_add(lifetime.as_secs() as i64),
            jti: jti.to_string(),
        }
    }

    /// Signs the claims with `key`.
    pub fn sign(&self, key: &SigningKey) -> anyhow::Result<String> {
        key.sign(self)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use emporium_contracts::auth::Jwks;
    use emporium_contracts::identity::Caller;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    use super::*;

    /// The check the gateway makes: the key named by `kid` from the JWKS, `EdDSA` only, `iss`,
    /// `aud`, `exp` required and valid, no leeway.
    fn verify(jwks: &Jwks, token: &str) -> Result<Caller, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| format!("header: {error}"))?;
        let kid = header.kid.ok_or("no kid")?;
        let jwk = jwks.keys.iter().find(|jwk| jwk.kid == kid).ok_or("unknown kid")?;
        let key =
            DecodingKey::from_ed_components(jwk.x.as_deref().ok_or("no x")?).map_err(|error| error.to_string())?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|error| error.to_string())?;
        Ok(Caller { user_id: data.claims.sub, roles: data.claims.roles, token_id: data.claims.jti })
    }

    fn key() -> SigningKey {
        SigningKey::generate(Utc::now()).unwrap()
    }

    fn jwks_of(keys: &[&SigningKey]) -> Jwks {
        Jwks { keys: keys.iter().map(|key| key.jwk()).collect() }
    }

    fn claims() -> AccessClaims {
        AccessClaims::new("user-1", &[Role::Customer], "jti-1", Utc::now(), Duration::from_secs(900))
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_string).collect()
    }

    #[test]
    fn a_signed_token_verifies_and_carries_the_caller() {
        let key = key();
        let token = claims().sign(&key).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], key.kid());
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[1]).unwrap()).unwrap();
        assert_eq!(payload["roles"], serde_json::json!(["customer"]));
        assert_eq!(payload["iss"], "emporium");
        assert_eq!(payload["aud"], "emporium-api");
        assert_eq!(payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(), 900);
        let caller = verify(&jwks_of(&[&key]), &token).unwrap();
        assert_eq!(caller, Caller { user_id: "user-1".into(), roles: vec![Role::Customer], token_id: "jti-1".into() });
    }

    #[test]
    fn alg_none_is_refused() {
        let key = key();
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, key.kid()));
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
            assert!(verify(&jwks_of(&[&key]), &token).is_err(), "{token}");
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_as_secret_is_refused() {
        let key = key();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid().to_string());
        for secret in [key.public_key().to_vec(), key.public_x().into_bytes()] {
            let forged = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
            let error = verify(&jwks_of(&[&key]), &forged).unwrap_err();
            assert!(error.contains("InvalidAlgorithm"), "{error}");
        }
    }

    #[test]
    fn an_expired_token_is_refused() {
        let key = key();
        let issued = Utc::now() - chrono::Duration::minutes(20);
        let token =
            AccessClaims::new("user-1", &[Role::Customer], "j", issued, Duration::from_secs(900)).sign(&key).unwrap();
        assert!(verify(&jwks_of(&[&key]), &token).unwrap_err().contains("ExpiredSignature"));
    }

    #[test]
    fn a_wrong_audience_or_issuer_is_refused() {
        let key = key();
        let mut wrong_audience = claims();
        wrong_audience.aud = "someone-else".into();
        let error = verify(&jwks_of(&[&key]), &wrong_audience.sign(&key).unwrap()).unwrap_err();
        assert!(error.contains("InvalidAudience"), "{error}");
        let mut wrong_issuer = claims();
        wrong_issuer.iss = "evil".into();
        let error = verify(&jwks_of(&[&key]), &wrong_issuer.sign(&key).unwrap()).unwrap_err();
        assert!(error.contains("InvalidIssuer"), "{error}");
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let key = key();
        let token = claims().sign(&key).unwrap();
        let mut parts = segments(&token);
        let mut promoted = claims();
        promoted.roles = vec![Role::Admin];
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&promoted).unwrap());
        let error = verify(&jwks_of(&[&key]), &parts.join(".")).unwrap_err();
        assert!(error.contains("InvalidSignature"), "{error}");
    }

    #[test]
    fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
        let known = key();
        let other = key();
        let token = claims().sign(&other).unwrap();
        let mut parts = segments(&token);
        parts[0] = URL_SAFE_NO_PAD.encode(format!(r#"{{"typ":"JWT","alg":"EdDSA","kid":"{}"}}"#, known.kid()));
        assert!(verify(&jwks_of(&[&known]), &parts.join(".")).is_err());
        assert_eq!(verify(&jwks_of(&[&known]), &token).unwrap_err(), "unknown kid");
    }

    #[test]
    fn after_rotation_both_keys_verify_their_own_tokens() {
        let old = key();
        let new = key();
        let jwks = jwks_of(&[&new, &old]);
        assert!(verify(&jwks, &claims().sign(&old).unwrap()).is_ok());
        assert!(verify(&jwks, &claims().sign(&new).unwrap()).is_ok());
    }
}
