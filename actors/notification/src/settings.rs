//! The notification service's settings: where to send email ([`SmtpSettings`], from
//! `EMPORIUM_SMTP_URL`), who it is from (`EMPORIUM_SMTP_FROM`), and how hard to try
//! ([`DeliverySettings`]).

use std::fmt;
use std::time::Duration;

use crate::error::NotificationError;

/// The variable that names the SMTP server.
pub const SMTP_URL_VAR: &str = "EMPORIUM_SMTP_URL";
/// The variable that names the sender of every email.
pub const SMTP_FROM_VAR: &str = "EMPORIUM_SMTP_FROM";
/// The sender when [`SMTP_FROM_VAR`] is unset.
pub const DEFAULT_FROM_ADDRESS: &str = "Emporium <no-reply@emporium.local>";

/// Where to send email: an SMTP URL, as lettre reads it:
///
/// | URL | transport |
/// |---|---|
/// | `smtps://user:pass@host[:465]` | SMTP over TLS (recommended) |
/// | `smtp://user:pass@host[:587]?tls=required` | STARTTLS, required |
/// | `smtp://host[:25]` | plain SMTP (a local relay, tests) |
///
/// The user name and password are optional and percent-encoded; a path (`/ehlo-name`) sets the
/// EHLO name. TLS certificates are checked against the system's trust store. The URL holds a
/// secret: it never prints (`Debug` shows it without the password).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    url: String,
}

impl SmtpSettings {
    /// Checks `url` (scheme `smtp` or `smtps`, a host, a known `tls` mode).
    pub fn parse(url: &str) -> Result<SmtpSettings, NotificationError> {
        let invalid = |reason: String| NotificationError::InvalidSmtpUrl(format!("{}: {reason}", redact(url)));
        let scheme = url.split_once("://").map(|(scheme, _)| scheme).unwrap_or_default();
        if scheme != "smtp" && scheme != "smtps" {
            return Err(invalid("the scheme must be smtp:// or smtps://".into()));
        }
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|error| invalid(error.to_string()))?;
        Ok(SmtpSettings { url: url.to_string() })
    }

    /// The SMTP server named by [`SMTP_URL_VAR`] in `env`; `None` when it is unset or empty.
    pub fn from_env(env: &[(String, String)]) -> Result<Option<SmtpSettings>, NotificationError> {
        match env_value(env, SMTP_URL_VAR) {
            Some(url) => Ok(Some(SmtpSettings::parse(url)?)),
            None => Ok(None),
        }
    }

    /// The URL, password included (for building the transport only).
    pub fn expose_url(&self) -> &str {
        &self.url
    }

    /// The URL without its password, for logs.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("SmtpSettings").field("url", &self.redacted()).finish()
    }
}

fn redact(url: &str) -> String {
    emporium_store::redact_url(url)
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.trim()).filter(|value| !value.is_empty())
}

/// The sender named by [`SMTP_FROM_VAR`] in `env`, else [`DEFAULT_FROM_ADDRESS`]. Checked by
/// `start`.
pub fn from_address_from_env(env: &[(String, String)]) -> String {
    env_value(env, SMTP_FROM_VAR).unwrap_or(DEFAULT_FROM_ADDRESS).to_string()
}

/// How the mailer delivers: when it looks for work, how long one send may take, and how it
/// retries (attempt `n` failed: the next waits `first_retry_delay * 2^(n-1)`, at most
/// `max_retry_delay`; after `max_attempts` attempts the notification is `FAILED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Sends tried per notification before it is `FAILED`.
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub first_retry_delay: Duration,
    /// Longest wait between attempts.
    pub max_retry_delay: Duration,
    /// How often the mailer looks for due notifications when nothing woke it.
    pub poll_interval: Duration,
    /// Longest one SMTP exchange may take.
    pub send_timeout: Duration,
    /// Notifications taken per delivery round.
    pub batch_size: u32,
    /// Sends in flight at once within a round.
    pub max_concurrent_sends: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_attempts: 6,
            first_retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            send_timeout: Duration::from_secs(15),
            batch_size: 50,
            max_concurrent_sends: 4,
        }
    }
}

impl DeliverySettings {
    /// The wait after failed attempt number `attempt` (1 = the first).
    pub fn retry_delay_after(&self, attempt: u32) -> Duration {
        self.first_retry_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.max_retry_delay)
    }

    /// How long a notification stays leased to the mailer sending it: past the send timeout,
    /// so that another mailer takes it over only when this one died.
    pub fn lease(&self) -> Duration {
        self.send_timeout.saturating_mul(2).max(Duration::from_secs(5))
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), NotificationError> {
        let invalid = |reason: &str| Err(NotificationError::InvalidSettings(reason.to_string()));
        if self.max_attempts == 0 {
            return invalid("max_attempts must be at least 1");
        }
        if self.first_retry_delay.is_zero() || self.first_retry_delay > self.max_retry_delay {
            return invalid("retry delays must satisfy 0 < first <= max");
        }
        if self.poll_interval.is_zero() || self.send_timeout.is_zero() {
            return invalid("poll_interval and send_timeout must be positive");
        }
        if self.batch_size == 0 || self.max_concurrent_sends == 0 {
            return invalid("batch_size and max_concurrent_sends must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    #[test]
    fn smtp_urls_are_checked_and_never_print_their_password() {
        for good in ["smtp://127.0.0.1:2525", "smtps://user:secret@mail.example.com", "smtp://u:p@h:587?tls=required"] {
            SmtpSettings::parse(good).unwrap();
        }
        for bad in ["http://mail.example.com", "mail.example.com:25", "smtp://", "smtp://h?tls=sometimes"] {
            assert!(SmtpSettings::parse(bad).is_err(), "{bad}");
        }
        let settings = SmtpSettings::parse("smtps://user:secret@mail.example.com").unwrap();
        assert!(!format!("{settings:?}").contains("secret"));
        let error = SmtpSettings::parse("http://user:secret@h").unwrap_err().to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn the_environment_decides_smtp_and_sender() {
        assert_eq!(SmtpSettings::from_env(&env(&[])).unwrap(), None);
        assert_eq!(SmtpSettings::from_env(&env(&[("EMPORIUM_SMTP_URL", " ")])).unwrap(), None);
        let settings = SmtpSettings::from_env(&env(&[("EMPORIUM_SMTP_URL", "smtp://127.0.0.1:25")])).unwrap();
        assert_eq!(settings.unwrap().expose_url(), "smtp://127.0.0.1:25");
        assert_eq!(from_address_from_env(&env(&[])), DEFAULT_FROM_ADDRESS);
        assert_eq!(from_address_from_env(&env(&[("EMPORIUM_SMTP_FROM", "shop@example.com")])), "shop@example.com");
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let settings = DeliverySettings::default();
        let delays: Vec<u64> = (1..=8).map(|attempt| settings.retry_delay_after(attempt).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert!(settings.lease() > settings.send_timeout);
        settings.validate().unwrap();
        assert!(DeliverySettings { max_attempts: 0, ..settings }.validate().is_err());
    }
}
