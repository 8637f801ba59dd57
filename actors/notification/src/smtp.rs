//! Sending one email over SMTP with lettre (tokio transport, one connection per email, rustls on
//! aws-lc-rs with the system's trust store), and telling a failure worth retrying from one
//! that is final.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::NotificationError;
use crate::settings::SmtpSettings;

/// Why one email was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Whether trying again is pointless (a 5xx answer, an address that is no address).
    pub permanent: bool,
    /// What went wrong.
    pub message: String,
}

impl SendFailure {
    fn permanent(message: impl Into<String>) -> Self {
        SendFailure { permanent: true, message: message.into() }
    }
}

/// An SMTP client that sends plain-text emails from one sender.
pub struct SmtpClient {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
}

impl SmtpClient {
    /// A client of the server in `settings`, sending as `from_address` (`Name <address>` or
    /// a bare address); an SMTP exchange may take at most `timeout`. Connects lazily: an SMTP
    /// server that is down now is not an error here, its sends are retried.
    pub fn new(
        settings: &SmtpSettings,
        from_address: &str,
        timeout: Duration,
    ) -> Result<SmtpClient, NotificationError> {
        let from: Mailbox = from_address.parse().map_err(|error: lettre::address::AddressError| {
            NotificationError::InvalidFromAddress(from_address.to_string(), error.to_string())
        })?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.expose_url())
            .map_err(|error| NotificationError::InvalidSmtpUrl(format!("{}: {error}", settings.redacted())))?
            .timeout(Some(timeout))
            .build();
        let message_id_domain = from.email.domain().to_string();
        Ok(SmtpClient { transport, from, message_id_domain })
    }

    /// Sends `subject` and `body` to `to`. The Message-ID is derived from `notification_id`, so
    /// a receiver can recognise a repeated send (after a crash between send and record).
    pub async fn send(&self, notification_id: &str, to: &str, subject: &str, body: &str) -> Result<(), SendFailure> {
        let to: Mailbox =
            to.parse().map_err(|error| SendFailure::permanent(format!("invalid recipient address: {error}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{notification_id}@{}>", self.message_id_domain)))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|error| SendFailure::permanent(format!("the email could not be built: {error}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) => Err(SendFailure { permanent: error.is_permanent(), message: describe(&error) }),
        }
    }
}

/// The error with its causes, on one line.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_must_be_an_address() {
        let settings = SmtpSettings::parse("smtp://127.0.0.1:2525").unwrap();
        let client = SmtpClient::new(&settings, "Emporium <no-reply@emporium.local>", Duration::from_secs(1)).unwrap();
        assert_eq!(client.message_id_domain, "emporium.local");
        let error = SmtpClient::new(&settings, "not an address", Duration::from_secs(1)).err().unwrap();
        assert!(matches!(error, NotificationError::InvalidFromAddress(..)), "{error}");
    }

    #[actix_rt::test]
    async fn a_bad_recipient_is_a_permanent_failure_and_a_closed_port_a_transient_one() {
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let settings = SmtpSettings::parse(&format!("smtp://127.0.0.1:{closed_port}")).unwrap();
        let client = SmtpClient::new(&settings, "shop@example.com", Duration::from_secs(2)).unwrap();
        let failure = client.send("n1", "not an address", "s", "b").await.unwrap_err();
        assert!(failure.permanent, "{failure:?}");
        let failure = client.send("n1", "ada@example.com", "s", "b").await.unwrap_err();
        assert!(!failure.permanent, "{failure:?}");
        assert!(failure.message.to_lowercase().contains("connection"), "{}", failure.message);
    }
}
