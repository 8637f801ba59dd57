//! Sign-in limits: at most N failures per account and M per client address within their
//! windows, counted from the failures in the store (so every instance and every restart sees
//! the same count). A refused attempt is not a failure: it does not extend the lock.

use chrono::{DateTime, Utc};

use crate::error::AuthError;
use crate::options::LoginLimits;
use crate::secret::sha256_hex;
use crate::store::{AuthStore, FailureScope};
use crate::validation::LoginName;

/// The key failures of an existing account are counted under.
pub fn account_key_of_user(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The key failures of a name that is no account are counted under (a digest: the name may be
/// long and need not be kept).
pub fn account_key_of_login(login: &LoginName) -> String {
    let kind = match login {
        LoginName::Email(_) => "email",
        LoginName::Username(_) => "username",
    };
    format!("login:{}", sha256_hex(format!("{kind}:{}", login.as_str()).as_bytes()))
}

/// The client address as stored (at most 64 characters).
pub fn stored_address(address: Option<&str>) -> Option<String> {
    address.map(str::trim).filter(|address| !address.is_empty()).map(|address| address.chars().take(64).collect())
}

/// `Ok` when a sign-in of `account_key` from `address` may be tried at `now`; else 429
/// `too_many_attempts` with the seconds until the oldest counted failure leaves its window.
pub async fn check(
    store: &AuthStore,
    limits: &LoginLimits,
    account_key: &str,
    address: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let mut retry_after_secs = 0;
    let account = (FailureScope::Account(account_key), limits.max_failures_per_account, limits.account_window);
    let scopes = std::iter::once(account).chain(
        address.map(|address| (FailureScope::Address(address), limits.max_failures_per_address, limits.address_window)),
    );
    for (scope, max_failures, window) in scopes {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let Some(since) = now.checked_sub_signed(window) else { continue };
        if max_failures == 0 {
            continue;
        }
        if let Some(nth) = store.nth_latest_login_failure(scope, since, max_failures).await? {
            let free_at = nth + window;
            retry_after_secs = retry_after_secs.max(seconds_until(now, free_at));
        }
    }
    if retry_after_secs > 0 { Err(AuthError::TooManyAttempts { retry_after_secs }) } else { Ok(()) }
}

/// Whole seconds from `now` until `then`, at least 1.
fn seconds_until(now: DateTime<Utc>, then: DateTime<Utc>) -> u32 {
    let millis = u64::try_from((then - now).num_milliseconds()).unwrap_or(0);
    u32::try_from(millis.div_ceil(1000)).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_keys_name_users_by_id_and_other_names_by_digest() {
        assert_eq!(account_key_of_user("u-1"), "user:u-1");
        let email = account_key_of_login(&LoginName::Email("ada@example.com".into()));
        let username = account_key_of_login(&LoginName::Username("ada@example.com".into()));
        assert!(email.starts_with("login:") && email.len() == 6 + 64);
        assert_ne!(email, username);
        assert!(account_key_of_login(&LoginName::Username("x".repeat(10_000))).len() <= 80);
    }

    #[test]
    fn addresses_are_trimmed_and_bounded() {
        assert_eq!(stored_address(Some(" 10.0.0.1 ")), Some("10.0.0.1".to_string()));
        assert_eq!(stored_address(Some("")), None);
        assert_eq!(stored_address(None), None);
        assert_eq!(stored_address(Some(&"a".repeat(100))).unwrap().len(), 64);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(seconds_until(now, now + chrono::Duration::milliseconds(1)), 1);
        assert_eq!(seconds_until(now, now + chrono::Duration::milliseconds(1_001)), 2);
        assert_eq!(seconds_until(now, now - chrono::Duration::seconds(5)), 1);
        assert_eq!(seconds_until(now, now + chrono::Duration::minutes(15)), 900);
    }
}
