//! Access-token verification at the edge: EdDSA signatures against the auth service's public
//! keys, `iss`, `aud`, `exp`; nothing else is accepted (`alg: none`, HS256 with the public key
//! as secret and every other algorithm are refused before any key is used).
//!
//! Verified tokens are cached until they expire, so a busy client costs one signature check.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use emporium_contracts::auth::Jwks;
use emporium_contracts::identity::{Caller, Role};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde::Deserialize;

use crate::error::GatewayError;

/// The issuer the auth service writes into access tokens.
pub const ISSUER: &str = "emporium";
/// The audience of access tokens.
pub const AUDIENCE: &str = "emporium-api";
/// Most verified tokens kept in the cache.
const CACHE_CAPACITY: usize = 50_000;

#[derive(Debug, Deserialize)]
struct AccessClaims {
    sub: String,
    roles: Vec<Role>,
    jti: String,
    exp: u64,
}

/// What verification says about a token.
pub enum Verdict {
    /// Valid: the caller.
    Valid(Caller),
    /// Signed with a key this gateway does not know (yet): refresh the JWKS and try again.
    UnknownKey(String),
    /// Refused.
    Invalid(GatewayError),
}

/// Verifies access tokens with the current JWKS.
pub struct TokenVerifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
    cache: RwLock<HashMap<String, (Caller, u64)>>,
}

impl Default for TokenVerifier {
    fn default() -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        TokenVerifier { keys: RwLock::default(), validation, cache: RwLock::default() }
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}

impl TokenVerifier {
    /// Replaces the keys with those of `jwks` (Ed25519 only); answers how many were taken.
    pub fn set_keys(&self, jwks: &Jwks) -> usize {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") || jwk.alg != "EdDSA" {
                continue;
            }
            let Some(x) = &jwk.x else { continue };
            match DecodingKey::from_ed_components(x) {
                Ok(key) => {
                    keys.insert(jwk.kid.clone(), key);
                }
                Err(error) => tracing::warn!(kid = %jwk.kid, error = %error, "unusable key in the JWKS"),
            }
        }
        let count = keys.len();
        let mut current = self.keys.write();
        let removed = current.keys().any(|kid| !keys.contains_key(kid));
        *current = keys;
        drop(current);
        if removed {
            self.cache.write().clear();
        }
        count
    }

    /// Number of keys known.
    pub fn num_keys(&self) -> usize {
        self.keys.read().len()
    }

    /// Verifies `token`.
    pub fn verify(&self, token: &str) -> Verdict {
        let now = now_secs();
        if let Some((caller, exp)) = self.cache.read().get(token)
            && *exp > now
        {
            return Verdict::Valid(caller.clone());
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(_) => {
                return Verdict::Invalid(GatewayError::InvalidToken("the token's header cannot be read".to_string()));
            }
        };
        if header.alg != Algorithm::EdDSA {
            return Verdict::Invalid(GatewayError::InvalidToken("only EdDSA tokens are accepted".to_string()));
        }
        let Some(kid) = header.kid else {
            return Verdict::Invalid(GatewayError::InvalidToken("the token names no key (kid)".to_string()));
        };
        let keys = self.keys.read();
        let Some(key) = keys.get(&kid) else { return Verdict::UnknownKey(kid) };
        let claims = match jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation) {
            Ok(data) => data.claims,
            Err(error) => {
                return Verdict::Invalid(match error.kind() {
                    JwtErrorKind::ExpiredSignature => GatewayError::TokenExpired,
                    JwtErrorKind::InvalidAudience => GatewayError::InvalidToken("wrong audience".to_string()),
                    JwtErrorKind::InvalidIssuer => GatewayError::InvalidToken("wrong issuer".to_string()),
                    JwtErrorKind::InvalidSignature => GatewayError::InvalidToken("bad signature".to_string()),
                    JwtErrorKind::MissingRequiredClaim(claim) => {
                        GatewayError::InvalidToken(format!("the token has no `{claim}` claim"))
                    }
                    JwtErrorKind::ImmatureSignature => {
                        GatewayError::InvalidToken("the token is not valid yet".to_string())
                    }
                    _ => GatewayError::InvalidToken("the token cannot be read".to_string()),
                });
            }
        };
        drop(keys);
        let caller = Caller { user_id: claims.sub, roles: claims.roles, token_id: claims.jti };
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, (_, exp)| *exp > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(token.to_string(), (caller.clone(), claims.exp));
        Verdict::Valid(caller)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use emporium_contracts::auth::Jwk;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    struct Signer {
        pkcs8: Vec<u8>,
        public_key: Vec<u8>,
        kid: String,
    }

    impl Signer {
        fn new(kid: &str) -> Signer {
            let document = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(document.as_ref()).unwrap();
            Signer {
                pkcs8: document.as_ref().to_vec(),
                public_key: pair.public_key().as_ref().to_vec(),
                kid: kid.to_string(),
            }
        }

        fn jwks(&self) -> Jwks {
            Jwks {
                keys: vec![Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(URL_SAFE_NO_PAD.encode(&self.public_key)),
                    kid: self.kid.clone(),
                    key_use: "sig".into(),
                    alg: "EdDSA".into(),
                }],
            }
        }

        fn sign(&self, claims: serde_json::Value) -> String {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
        }
    }

    fn claims(exp_offset: i64) -> serde_json::Value {
        let now = now_secs() as i64;
        json!({"sub": "u1", "roles": ["customer"], "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + exp_offset, "jti": "j1"})
    }

    fn verifier_for(signer: &Signer) -> TokenVerifier {
        let verifier = TokenVerifier::default();
        assert_eq!(verifier.set_keys(&signer.jwks()), 1);
        verifier
    }

    fn refusal(verdict: Verdict) -> String {
        match verdict {
            Verdict::Invalid(error) => error.to_service_error().code,
            Verdict::Valid(_) => "valid".into(),
            Verdict::UnknownKey(_) => "unknown_key".into(),
        }
    }

    #[test]
    fn a_valid_token_gives_its_caller() {
        let signer = Signer::new("k1");
        let verifier = verifier_for(&signer);
        let Verdict::Valid(caller) = verifier.verify(&signer.sign(claims(900))) else { panic!("valid token refused") };
        assert_eq!(caller, Caller { user_id: "u1".into(), roles: vec![Role::Customer], token_id: "j1".into() });
    }

    #[test]
    fn expired_tokens_are_refused_as_expired() {
        let signer = Signer::new("k1");
        assert_eq!(refusal(verifier_for(&signer).verify(&signer.sign(claims(-120)))), "token_expired");
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let signer = Signer::new("k1");
        let verifier = verifier_for(&signer);
        let mut wrong_aud = claims(900);
        wrong_aud["aud"] = json!("someone-else");
        assert_eq!(refusal(verifier.verify(&signer.sign(wrong_aud))), "invalid_token");
        let mut wrong_iss = claims(900);
        wrong_iss["iss"] = json!("evil");
        assert_eq!(refusal(verifier.verify(&signer.sign(wrong_iss))), "invalid_token");
    }

    #[test]
    fn alg_none_and_hs256_with_the_public_key_are_refused() {
        let signer = Signer::new("k1");
        let verifier = verifier_for(&signer);
        let encode = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let none = format!("{}.{}.", encode(json!({"alg": "none", "typ": "JWT", "kid": "k1"})), encode(claims(900)));
        assert_eq!(refusal(verifier.verify(&none)), "invalid_token");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let hs256 = jsonwebtoken::encode(&header, &claims(900), &EncodingKey::from_secret(&signer.public_key)).unwrap();
        assert_eq!(refusal(verifier.verify(&hs256)), "invalid_token");
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let signer = Signer::new("k1");
        let verifier = verifier_for(&signer);
        let token = signer.sign(claims(900));
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims(900);
        forged["roles"] = json!(["admin"]);
        let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(forged.to_string()), parts[2]);
        assert_eq!(refusal(verifier.verify(&tampered)), "invalid_token");
        assert_eq!(refusal(verifier.verify("not-a-token")), "invalid_token");
    }

    #[test]
    fn a_token_of_another_key_asks_for_a_refresh_then_works_after_rotation() {
        let old = Signer::new("old");
        let new = Signer::new("new");
        let verifier = verifier_for(&old);
        let token = new.sign(claims(900));
        assert_eq!(refusal(verifier.verify(&token)), "unknown_key");
        let mut both = old.jwks();
        both.keys.extend(new.jwks().keys);
        assert_eq!(verifier.set_keys(&both), 2);
        assert!(matches!(verifier.verify(&token), Verdict::Valid(_)));
        assert!(matches!(verifier.verify(&old.sign(claims(900))), Verdict::Valid(_)));
    }
}
