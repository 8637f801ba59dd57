//! The signing keys of access tokens: Ed25519 key pairs, their key ids, where they come from,
//! and the ring that rotates them.
//!
//! - A key's id (`kid`) is its RFC 7638 JWK thumbprint: base64url(SHA-256 of
//!   `{"crv":"Ed25519","kty":"OKP","x":"<x>"}`), stable for a key wherever it is loaded.
//! - The private key comes from [`SigningKeySource`]: a PKCS#8 PEM in the environment or in a
//!   file (operator-managed), or one generated on first start and kept under
//!   `<data dir>/auth/keys/` (directory 0700, files 0600), one `<created ms>-<kid>.pem` per key.
//!   Private keys are never logged.
//! - [`KeyRing::rotate`] makes a new signing key; the previous one keeps verifying (it stays in
//!   the JWKS) for the verification window, the longest an access token it signed may live.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use emporium_contracts::auth::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::RwLock;
use serde::Serialize;

use crate::key_files::{load_or_create_dir, remove_key_files, write_key_file};
use crate::secret::SecretString;

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub enum SigningKeySource {
    /// A PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as in `EMPORIUM_JWT_PRIVATE_KEY`.
    Pem(SecretString),
    /// A file holding a PKCS#8 PEM, as named by `EMPORIUM_JWT_PRIVATE_KEY_FILE`.
    File(PathBuf),
    /// Generated on first start and kept in this directory (`<data dir>/auth/keys`).
    Generated {
        /// The key directory.
        dir: PathBuf,
    },
}

/// An Ed25519 private key that signs access tokens. `Debug` shows its id only.
pub struct SigningKey {
    kid: String,
    public_key: Vec<u8>,
    pkcs8: Vec<u8>,
    encoding_key: EncodingKey,
    created_at: DateTime<Utc>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SigningKey").field("kid", &self.kid).field("created_at", &self.created_at).finish()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(created_at: DateTime<Utc>) -> anyhow::Result<SigningKey> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let document =
            Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("ed25519 key generation failed"))?;
        SigningKey::from_pkcs8(document.as_ref().to_vec(), created_at)
    }

    /// A key from its PKCS#8 DER (v1 or v2).
    pub fn from_pkcs8(pkcs8: Vec<u8>, created_at: DateTime<Utc>) -> anyhow::Result<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|rejected| anyhow::anyhow!("not an Ed25519 PKCS#8 private key ({rejected})"))?;
        let public_key = pair.public_key().as_ref().to_vec();
        let kid = thumbprint(&public_key);
        let encoding_key = EncodingKey::from_ed_der(&pkcs8);
        Ok(SigningKey { kid, public_key, pkcs8, encoding_key, created_at })
    }

    /// A key from a PKCS#8 PEM. Escaped newlines (`\n` as two characters, as env files often
    /// carry them) are accepted.
    pub fn from_pem(pem: &str, created_at: DateTime<Utc>) -> anyhow::Result<SigningKey> {
        let pem = pem.replace("\\n", "\n");
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|rest| rest.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
            .context("expected a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)")?;
        let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD.decode(base64).context("the PEM body is not base64")?;
        SigningKey::from_pkcs8(der, created_at)
    }

    /// The key as a PKCS#8 PEM.
    pub fn to_pem(&self) -> SecretString {
        let base64 = STANDARD.encode(&self.pkcs8);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in base64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        SecretString::new(pem)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// When the key was made (for keys from the environment: when it was loaded).
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The public key as the JWK `x` (base64url, no padding).
    pub fn public_x(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.public_key)
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        jwk(&self.kid, &self.public_x())
    }

    /// A compact JWS (EdDSA) of `claims`, with this key's id in the header.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key).context("signing the access token failed")
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: the key id.
pub fn thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public_key));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The JWK of an Ed25519 public key (`OKP`, RFC 8037).
pub fn jwk(kid: &str, x: &str) -> Jwk {
    Jwk {
        kty: "OKP".to_string(),
        crv: Some("Ed25519".to_string()),
        x: Some(x.to_string()),
        kid: kid.to_string(),
        key_use: "sig".to_string(),
        alg: "EdDSA".to_string(),
    }
}

/// A key that no longer signs but still verifies until `verifies_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// The key id.
    pub kid: String,
    /// The public key (JWK `x`).
    pub x: String,
    /// When it stopped signing.
    pub retired_at: DateTime<Utc>,
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new signing key.
    pub current: Arc<SigningKey>,
    /// The key it replaced, now verifying only.
    pub retired: RetiredKey,
}

struct RingState {
    current: Arc<SigningKey>,
    retired: Vec<RetiredKey>,
}

/// The signing key and the recently retired keys of this instance.
pub struct KeyRing {
    state: RwLock<RingState>,
    /// Where generated keys are kept; `None` when the key comes from the environment.
    key_dir: Option<PathBuf>,
    /// How long a retired key keeps verifying: the access token lifetime plus clock skew.
    verify_window: Duration,
}

impl KeyRing {
    /// Loads (or, for [`SigningKeySource::Generated`], creates on first start) the keys of
    /// `source`. Blocking file I/O: call it at start-up or from the blocking pool.
    pub fn load(source: &SigningKeySource, now: DateTime<Utc>, verify_window: Duration) -> anyhow::Result<KeyRing> {
        let (current, retired, key_dir) = match source {
            SigningKeySource::Pem(pem) => {
                let key = SigningKey::from_pem(pem.expose(), now).context("EMPORIUM_JWT_PRIVATE_KEY is unusable")?;
                (key, Vec::new(), None)
            }
            SigningKeySource::File(path) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the signing key file {}", path.display()))?;
                let key = SigningKey::from_pem(&pem, now)
                    .with_context(|| format!("the signing key file {} is unusable", path.display()))?;
                (key, Vec::new(), None)
            }
            SigningKeySource::Generated { dir } => {
                let (current, retired) = load_or_create_dir(dir, now, verify_window)?;
                (current, retired, Some(dir.clone()))
            }
        };
        tracing::info!(kid = %current.kid(), num_retired = retired.len(), "access token signing key loaded");
        Ok(KeyRing { state: RwLock::new(RingState { current: Arc::new(current), retired }), key_dir, verify_window })
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Arc<SigningKey> {
        self.state.read().current.clone()
    }

    /// How long a retired key keeps verifying.
    pub fn verify_window(&self) -> Duration {
        self.verify_window
    }

    /// The keys that may verify a token still valid at `now`: the signing key first, then the
    /// retired ones whose window has not closed, newest first.
    pub fn verifying_keys(&self, now: DateTime<Utc>) -> Vec<Jwk> {
        let state = self.state.read();
        let mut keys = vec![state.current.jwk()];
        let mut retired: Vec<&RetiredKey> =
            state.retired.iter().filter(|key| still_verifies(key.retired_at, now, self.verify_window)).collect();
        retired.sort_by_key(|key| std::cmp::Reverse(key.retired_at));
        keys.extend(retired.into_iter().map(|key| jwk(&key.kid, &key.x)));
        keys
    }

    /// Makes the next signing key without installing it: a generated key is written to the key
    /// directory first; a key from the environment is replaced in memory only, until the next
    /// start. Publish it, then [`KeyRing::install`] it. Blocking file I/O.
    pub fn next_key(&self, now: DateTime<Utc>) -> anyhow::Result<Arc<SigningKey>> {
        let key = Arc::new(SigningKey::generate(now)?);
        if let Some(dir) = &self.key_dir {
            write_key_file(dir, &key)?;
        } else {
            tracing::warn!(
                kid = %key.kid(),
                "the signing key comes from the environment: the rotated key lives in memory until the next start; \
                 install a new EMPORIUM_JWT_PRIVATE_KEY to make it last"
            );
        }
        Ok(key)
    }

    /// Makes `key` the signing key; the current one retires at `now` and keeps verifying for
    /// the window. Retired keys past their window are dropped (and their files deleted).
    pub fn install(&self, key: Arc<SigningKey>, now: DateTime<Utc>) -> Rotation {
        let mut state = self.state.write();
        let old = std::mem::replace(&mut state.current, key.clone());
        let retired = RetiredKey { kid: old.kid().to_string(), x: old.public_x(), retired_at: now };
        state.retired.push(retired.clone());
        let window = self.verify_window;
        let (keep, expired): (Vec<RetiredKey>, Vec<RetiredKey>) =
            state.retired.drain(..).partition(|key| still_verifies(key.retired_at, now, window));
        state.retired = keep;
        drop(state);
        if let Some(dir) = &self.key_dir {
            for key in expired {
                remove_key_files(dir, &key.kid);
            }
        }
        tracing::info!(kid = %key.kid(), retired_kid = %retired.kid, "access token signing key rotated");
        Rotation { current: key, retired }
    }

    /// [`KeyRing::next_key`] then [`KeyRing::install`].
    pub fn rotate(&self, now: DateTime<Utc>) -> anyhow::Result<Rotation> {
        let key = self.next_key(now)?;
        Ok(self.install(key, now))
    }

    /// The retired keys still verifying at `now`.
    pub fn retired(&self, now: DateTime<Utc>) -> Vec<RetiredKey> {
        let state = self.state.read();
        state.retired.iter().filter(|key| still_verifies(key.retired_at, now, self.verify_window)).cloned().collect()
    }
}

/// Whether a key retired at `retired_at` still verifies at `now`.
pub fn still_verifies(retired_at: DateTime<Utc>, now: DateTime<Utc>, window: Duration) -> bool {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    retired_at.checked_add_signed(window).is_none_or(|until| until > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(16 * 60);

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("emporium-auth-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint_and_the_jwk_is_okp_ed25519() {
        // RFC 8037 appendix A.2/A.3: this public key has this thumbprint.
        let x = URL_SAFE_NO_PAD.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert_eq!(thumbprint(&x), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let key = SigningKey::generate(at(0)).unwrap();
        let jwk = key.jwk();
        assert_eq!(
            (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.alg.as_str(), jwk.key_use.as_str()),
            ("OKP", Some("Ed25519"), "EdDSA", "sig")
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk.x.unwrap()).unwrap(), key.public_key());
        assert_eq!(jwk.kid, key.kid());
        assert_eq!(key.public_key().len(), 32);
    }

    #[test]
    fn a_key_survives_pem_and_the_kid_is_stable() {
        let key = SigningKey::generate(at(0)).unwrap();
        let pem = key.to_pem();
        assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SigningKey::from_pem(pem.expose(), at(5)).unwrap();
        assert_eq!(again.kid(), key.kid());
        let escaped = pem.expose().replace('\n', "\\n");
        assert_eq!(SigningKey::from_pem(&escaped, at(5)).unwrap().kid(), key.kid(), "escaped newlines load too");
        assert!(!format!("{key:?}").contains("BEGIN"), "debug shows the kid only");
    }

    #[test]
    fn an_openssl_pkcs8_v1_key_loads() {
        // `openssl genpkey -algorithm ed25519` (RFC 8410 example key).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem, at(0)).unwrap();
        assert_eq!(key.public_x(), "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE");
    }

    #[test]
    fn garbage_is_refused_with_a_clear_error_that_does_not_echo_the_input() {
        for bad in [
            "",
            "not a pem",
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let error = SigningKey::from_pem(bad, at(0)).unwrap_err();
            assert!(!format!("{error:#}").contains("AAAA"), "{error:#}");
        }
        let from_env = KeyRing::load(&SigningKeySource::Pem(SecretString::new("nope")), at(0), WINDOW);
        assert!(format!("{:#}", from_env.err().unwrap()).contains("EMPORIUM_JWT_PRIVATE_KEY"));
    }

    #[test]
    fn a_generated_key_is_persisted_private_and_loaded_again() {
        let dir = temp_dir();
        let source = SigningKeySource::Generated { dir: dir.clone() };
        let first = KeyRing::load(&source, at(0), WINDOW).unwrap();
        let kid = first.current().kid().to_string();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let second = KeyRing::load(&source, at(100), WINDOW).unwrap();
        assert_eq!(second.current().kid(), kid, "the same key after a restart");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_keeps_the_old_key_verifying_for_the_window_then_drops_it() {
        let dir = temp_dir();
        let source = SigningKeySource::Generated { dir: dir.clone() };
        let ring = KeyRing::load(&source, at(0), WINDOW).unwrap();
        let old = ring.current().kid().to_string();
        let rotation = ring.rotate(at(60)).unwrap();
        assert_eq!(rotation.retired.kid, old);
        assert_ne!(ring.current().kid(), old);
        let kids = |ring: &KeyRing, now| ring.verifying_keys(now).into_iter().map(|jwk| jwk.kid).collect::<Vec<_>>();
        assert_eq!(kids(&ring, at(61)), vec![ring.current().kid().to_string(), old.clone()], "signing key first");
        assert_eq!(kids(&ring, at(60 + 16 * 60 - 1)).len(), 2, "still inside the window");
        assert_eq!(kids(&ring, at(60 + 16 * 60)), vec![ring.current().kid().to_string()], "window closed");

        // A restart inside the window finds both keys on disk, the newest signing.
        let restarted = KeyRing::load(&source, at(120), WINDOW).unwrap();
        assert_eq!(restarted.current().kid(), ring.current().kid());
        assert_eq!(kids(&restarted, at(120)), kids(&ring, at(120)));
        // A restart after the window deletes the old private key.
        let later = KeyRing::load(&source, at(60 + 16 * 60 + 1), WINDOW).unwrap();
        assert_eq!(kids(&later, at(60 + 16 * 60 + 1)).len(), 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_from_the_environment_rotates_in_memory_only() {
        let pem = SigningKey::generate(at(0)).unwrap().to_pem();
        let ring = KeyRing::load(&SigningKeySource::Pem(pem), at(0), WINDOW).unwrap();
        let old = ring.current().kid().to_string();
        ring.rotate(at(10)).unwrap();
        assert_ne!(ring.current().kid(), old);
        assert_eq!(ring.retired(at(11)).len(), 1);
    }

    #[test]
    fn a_key_file_loads_and_a_missing_one_is_an_error() {
        let dir = temp_dir();
        let path = dir.join("jwt.pem");
        let key = SigningKey::generate(at(0)).unwrap();
        std::fs::write(&path, key.to_pem().expose()).unwrap();
        let ring = KeyRing::load(&SigningKeySource::File(path.clone()), at(0), WINDOW).unwrap();
        assert_eq!(ring.current().kid(), key.kid());
        let missing = KeyRing::load(&SigningKeySource::File(dir.join("missing.pem")), at(0), WINDOW);
        assert!(format!("{:#}", missing.err().unwrap()).contains("missing.pem"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
