//! Password hashing with argon2id (RFC 9106), off the actor threads.
//!
//! Parameters default to the OWASP minimum for argon2id: m = 19456 KiB (19 MiB), t = 2
//! iterations, p = 1 lane, a 16-byte random salt and a 32-byte tag, stored in PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so that a hash keeps verifying after
//! the defaults change and is re-hashed at the next successful sign-in.
//!
//! Hashing is CPU- and memory-heavy on purpose: every hash and every verification runs on
//! tokio's blocking pool, and at most one per CPU runs at a time (the others wait for a
//! permit), so a flood of sign-ins costs at most `CPUs x 19 MiB` and never blocks an actor.
//! At most [`MAX_WAITING`] wait; one more is refused at once ([`HasherBusy`]: 503 `auth_busy`
//! with `Retry-After`) rather than queued behind seconds of hashing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashing {
    /// Memory per hash, in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over the memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for PasswordHashing {
    /// The OWASP minimum for argon2id: m = 19456 KiB, t = 2, p = 1.
    fn default() -> Self {
        PasswordHashing { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

impl PasswordHashing {
    fn params(&self) -> anyhow::Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|error| anyhow::anyhow!("invalid argon2 parameters {self:?}: {error}"))
    }
}

/// Hashes and verifies passwords on the blocking pool, a bounded number at a time. Cheap to
/// clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<HasherInner>,
}

/// Hashes and verifications waiting for a permit beyond which another is refused.
pub const MAX_WAITING: usize = 64;

/// Refused: [`MAX_WAITING`] hashes already wait for the CPUs.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_WAITING} password hashes are already waiting")]
pub struct HasherBusy;

struct HasherInner {
    params: Params,
    permits: Semaphore,
    num_waiting: AtomicUsize,
    /// A hash of a random password, verified against when the account is unknown, so that an
    /// unknown account costs the same time as a wrong password.
    dummy_hash: String,
}

impl PasswordHasher {
    /// A hasher with `settings`; computes its dummy hash on the blocking pool.
    pub async fn new(settings: PasswordHashing) -> anyhow::Result<PasswordHasher> {
        let params = settings.params()?;
        let permits = std::thread::available_parallelism().map_or(1, |count| count.get());
        let dummy_password = crate::secret::random_token(24)?;
        let dummy_params = params.clone();
        let dummy_hash = tokio::task::spawn_blocking(move || hash_blocking(&dummy_params, dummy_password.as_bytes()))
            .await
            .context("the dummy hash task failed")??;
        Ok(PasswordHasher {
            inner: Arc::new(HasherInner {
                params,
                permits: Semaphore::new(permits),
                num_waiting: AtomicUsize::new(0),
                dummy_hash,
            }),
        })
    }

    /// The PHC string of `password`, salted at random.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permit().await?;
        let params = self.inner.params.clone();
        tokio::task::spawn_blocking(move || hash_blocking(&params, password.as_bytes()))
            .await
            .context("the hashing task failed")?
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored hash (unknown account)
    /// it verifies against the dummy hash, so both take the same time, and answers `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permit().await?;
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let matches = tokio::task::spawn_blocking(move || verify_blocking(password.as_bytes(), &stored))
            .await
            .context("the verification task failed")??;
        Ok(known && matches)
    }

    /// A CPU permit, waiting behind at most [`MAX_WAITING`] others; [`HasherBusy`] beyond.
    async fn permit(&self) -> anyhow::Result<tokio::sync::SemaphorePermit<'_>> {
        if let Ok(permit) = self.inner.permits.try_acquire() {
            return Ok(permit);
        }
        let num_waiting = &self.inner.num_waiting;
        if num_waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            num_waiting.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("emporium_auth_hashes_refused_total").increment(1);
            return Err(anyhow::Error::new(HasherBusy));
        }
        let permit = self.inner.permits.acquire().await;
        num_waiting.fetch_sub(1, Ordering::AcqRel);
        permit.context("the hasher is closed")
    }

    /// Whether `stored` was made with other parameters than the current ones (re-hash it at the
    /// next successful sign-in).
    pub fn needs_rehash(&self, stored: &str) -> bool {
        match PasswordHash::new(stored) {
            Ok(hash) => {
                hash.algorithm != Algorithm::Argon2id.ident()
                    || Params::try_from(&hash).map_or(true, |params| {
                        (params.m_cost(), params.t_cost(), params.p_cost())
                            != (self.inner.params.m_cost(), self.inner.params.t_cost(), self.inner.params.p_cost())
                    })
            }
            Err(_) => true,
        }
    }
}

/// Hashes `password` with argon2id and `params` on the calling thread (seconds of CPU in debug
/// builds; call it from the blocking pool).
pub fn hash_blocking(params: &Params, password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| anyhow::anyhow!("salt encoding failed: {error}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let hash = argon2.hash_password(password, &salt).map_err(|error| anyhow::anyhow!("argon2 failed: {error}"))?;
    Ok(hash.to_string())
}

/// Verifies `password` against the PHC string `stored`, with the parameters `stored` names.
fn verify_blocking(password: &[u8], stored: &str) -> anyhow::Result<bool> {
    let hash = PasswordHash::new(stored).map_err(|error| anyhow::anyhow!("stored hash is unreadable: {error}"))?;
    match Argon2::default().verify_password(password, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(error) => Err(anyhow::anyhow!("argon2 verification failed: {error}")),
    }
}

/// argon2 `Params` of `settings`, for callers that hash on their own thread (benchmarks).
pub fn params_of(settings: PasswordHashing) -> anyhow::Result<Params> {
    settings.params()
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_waiting_bound_a_hash_is_refused_at_once() {
        let hasher =
            PasswordHasher::new(PasswordHashing { memory_kib: 8, iterations: 1, parallelism: 1 }).await.unwrap();
        let held: Vec<_> = (0..hasher.inner.permits.available_permits())
            .map(|_| hasher.inner.permits.try_acquire().unwrap())
            .collect();
        hasher.inner.num_waiting.store(MAX_WAITING, Ordering::SeqCst);
        let refused = hasher.verify("x".to_string(), None).await.unwrap_err();
        assert!(refused.is::<HasherBusy>());
        assert_eq!(hasher.inner.num_waiting.load(Ordering::SeqCst), MAX_WAITING, "the refusal did not count");
        let answer = crate::error::AuthError::from(refused).to_service_error();
        assert_eq!((answer.http_status(), answer.code.as_str()), (503, "auth_busy"));
        assert!(answer.retry_after_secs.is_some());
        hasher.inner.num_waiting.store(0, Ordering::SeqCst);
        let waiting = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.verify("x".to_string(), None).await }
        });
        drop(held);
        assert!(!waiting.await.unwrap().unwrap(), "a waiting hash runs once a permit is free");
    }

    use std::time::Instant;

    use super::*;

    /// Cheap parameters for tests that only need a working hash.
    const LIGHT: PasswordHashing = PasswordHashing { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[tokio::test]
    async fn a_password_verifies_and_another_does_not() {
        let hasher = PasswordHasher::new(LIGHT).await.unwrap();
        let hash = hasher.hash("correct horse".to_string()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse".to_string(), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("battery staple".to_string(), Some(hash.clone())).await.unwrap());
        let again = hasher.hash("correct horse".to_string()).await.unwrap();
        assert_ne!(hash, again, "every hash has its own salt");
    }

    #[tokio::test]
    async fn an_unknown_account_verifies_against_the_dummy_and_never_matches() {
        let hasher = PasswordHasher::new(LIGHT).await.unwrap();
        assert!(!hasher.verify("anything".to_string(), None).await.unwrap());
        assert!(!hasher.verify(String::new(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_hash_made_with_other_parameters_asks_for_a_rehash() {
        let hasher = PasswordHasher::new(LIGHT).await.unwrap();
        let current = hasher.hash("correct horse".to_string()).await.unwrap();
        assert!(!hasher.needs_rehash(&current));
        let older = hash_blocking(&Params::new(32, 1, 1, None).unwrap(), b"correct horse").unwrap();
        assert!(hasher.needs_rehash(&older));
        assert!(hasher.verify("correct horse".to_string(), Some(older)).await.unwrap(), "old hashes still verify");
        assert!(hasher.needs_rehash("not a phc string"));
    }

    #[test]
    fn the_defaults_are_the_owasp_minimum_and_show_in_the_hash() {
        let defaults = PasswordHashing::default();
        assert_eq!((defaults.memory_kib, defaults.iterations, defaults.parallelism), (19_456, 2, 1));
        let started = Instant::now();
        let hash = hash_blocking(&params_of(defaults).unwrap(), b"correct horse").unwrap();
        // Informative only: debug builds are far slower than release (see the argon2_rate example).
        println!("one argon2id hash with the defaults took {:?} (this build)", started.elapsed());
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_blocking(b"correct horse", &hash).unwrap());
    }

    #[test]
    fn parameters_argon2_refuses_are_an_error_not_a_panic() {
        let bad = PasswordHashing { memory_kib: 1, iterations: 0, parallelism: 0 };
        assert!(params_of(bad).is_err());
    }
}
