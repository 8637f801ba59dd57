//! Sign-in throttling ([`LoginLimits`]): growing delays for one client failing on one account,
//! a ceiling per account over all clients and one per client address, counted from the
//! failures in the store (so every instance and every restart sees the same count). A refused
//! attempt is not a failure: it does not extend the wait.

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
/// `too_many_attempts` with the seconds until it may (see [`LoginLimits`]).
pub async fn check(
    store: &AuthStore,
    limits: &LoginLimits,
    account_key: &str,
    address: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let window = chrono::Duration::from_std(limits.window).unwrap_or(chrono::Duration::MAX);
    let since = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut free_at = None;

    let (num_failures, latest) = store.client_login_failures(account_key, address, since).await?;
    if let (Some(latest), Some(delay)) = (latest, limits.client_delay(num_failures)) {
        free_at = free_at.max(Some(latest + chrono::Duration::from_std(delay).unwrap_or(window)));
    }
    let ceilings =
        [(FailureScope::Account(account_key), limits.max_failures_per_account, limits.window)].into_iter().chain(
            address.map(|address| {
                (FailureScope::Address(address), limits.max_failures_per_address, limits.address_window)
            }),
        );
    for (scope, max_failures, window) in ceilings {
        if max_failures == 0 {
            continue;
        }
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let Some(since) = now.checked_sub_signed(window) else { continue };
        if let Some(nth) = store.nth_latest_login_failure(scope, since, max_failures).await? {
            free_at = free_at.max(Some(nth + window));
        }
    }
    match free_at {
        Some(free_at) if free_at > now => {
            Err(AuthError::TooManyAttempts { retry_after_secs: seconds_until(now, free_at) })
        }
        _ => Ok(()),
    }
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
    fn a_client_waits_longer_after_each_failure_past_the_free_ones_up_to_the_cap() {
        let limits = LoginLimits::default();
        let delays: Vec<_> =
            (0..14).map(|failures| limits.client_delay(failures).map(|delay| delay.as_secs())).collect();
        assert_eq!(
            delays,
            [
                None,
                None,
                None,
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60),
                Some(60)
            ]
        );
        assert_eq!(limits.client_delay(u32::MAX), Some(limits.max_delay));
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
