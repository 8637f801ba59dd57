//! The notification service's settings: where to send email ([`SmtpSettings`], the secret
//! `EMPORIUM_SMTP_URL`), and the `[notification]` section of the configuration
//! ([`NotificationSettings`]): who emails are from and how hard delivery tries
//! ([`DeliverySettings`]).

use std::fmt;
use std::time::Duration;

use emporium_cluster::settings::ServiceSettings;
use serde::{Deserialize, Serialize};

use crate::error::NotificationError;

/// The secret that names the SMTP server (or `EMPORIUM_SMTP_URL_FILE`).
pub const SMTP_URL_VAR: &str = "EMPORIUM_SMTP_URL";
/// The sender when `notification.from_address` is not configured.
pub const DEFAULT_FROM_ADDRESS: &str = "Emporium <no-reply@emporium.local>";

/// The `[notification]` section; read when the service starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// The sender of every email (`Emporium <no-reply@emporium.local>`).
    pub from_address: String,
    /// Sends tried per notification before it is `FAILED` (6).
    pub max_attempts: u32,
    /// Wait after the first failed attempt, in milliseconds (1 s); it doubles per attempt.
    pub first_retry_delay_millis: u64,
    /// Longest wait between attempts, in milliseconds (60 s).
    pub max_retry_delay_millis: u64,
    /// How often the mailer looks for due notifications when nothing woke it (1 s).
    pub poll_interval_millis: u64,
    /// Longest one SMTP exchange may take, in milliseconds (15 s).
    pub send_timeout_millis: u64,
    /// Notifications taken per delivery round (50).
    pub batch_size: u32,
    /// Sends in flight at once within a round (4).
    pub max_concurrent_sends: usize,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        let delivery = DeliverySettings::default();
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        NotificationSettings {
            from_address: DEFAULT_FROM_ADDRESS.to_string(),
            max_attempts: delivery.max_attempts,
            first_retry_delay_millis: millis(delivery.first_retry_delay),
            max_retry_delay_millis: millis(delivery.max_retry_delay),
            poll_interval_millis: millis(delivery.poll_interval),
            send_timeout_millis: millis(delivery.send_timeout),
            batch_size: delivery.batch_size,
            max_concurrent_sends: delivery.max_concurrent_sends,
        }
    }
}

impl NotificationSettings {
    /// The mailer's delivery settings.
    pub fn delivery(&self) -> DeliverySettings {
        DeliverySettings {
            max_attempts: self.max_attempts,
            first_retry_delay: Duration::from_millis(self.first_retry_delay_millis),
            max_retry_delay: Duration::from_millis(self.max_retry_delay_millis),
            poll_interval: Duration::from_millis(self.poll_interval_millis),
            send_timeout: Duration::from_millis(self.send_timeout_millis),
            batch_size: self.batch_size,
            max_concurrent_sends: self.max_concurrent_sends,
        }
    }
}

impl ServiceSettings for NotificationSettings {
    const SECTION: &'static str = "notification";

    fn validate(&self) -> Result<(), String> {
        if self.from_address.trim().is_empty() {
            return Err("from_address must not be empty".to_string());
        }
        self.delivery().validate().map_err(|error| error.to_string())
    }
}

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
    fn the_section_has_the_delivery_defaults_and_refuses_bad_values() {
        let settings = NotificationSettings::default();
        assert_eq!(settings.delivery(), DeliverySettings::default());
        assert_eq!(settings.from_address, DEFAULT_FROM_ADDRESS);
        settings.validate().unwrap();
        assert!(NotificationSettings { max_attempts: 0, ..settings.clone() }.validate().is_err());
        assert!(NotificationSettings { from_address: " ".into(), ..settings.clone() }.validate().is_err());
        let parsed: Result<NotificationSettings, _> = serde_json::from_value(serde_json::json!({"max_atempts": 3}));
        assert!(parsed.is_err(), "unknown keys are refused");
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
