//! The recorder: the notification service's [`EventHandler`] for the events it tells users
//! about. The bus runs it in its consumer actors (`notification.<exchange>/consumer`), inside
//! the transaction in which it records the event in its inbox; the recorder only writes rows
//! there (the notification, and for `user.registered` the user's address), so a slow or dead
//! SMTP server never holds up the queue. Sending is the mailer's job, after the commit.
//!
//! Exactly one notification per event: the inbox stops a redelivery, and the unique
//! `event_id` backs it up (a notification already made from the event is left alone).

use std::sync::Arc;

use emporium_bus::{EventError, EventHandler, ReceivedEvent};
use emporium_contracts::notification::{NotificationChannel, NotificationKind, NotificationStatus};
use emporium_store::DbTx;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use crate::render;
use crate::store::{self, MAX_EMAIL_CHARS, NewNotification};

/// Longest event id recorded.
const MAX_EVENT_ID_LEN: usize = 128;
/// Longest user id recorded.
const MAX_USER_ID_LEN: usize = 64;

/// Writes one notification per event.
pub struct Recorder {
    email_enabled: bool,
    mailer_wake: Arc<Notify>,
}

impl Recorder {
    /// A recorder; with `email_enabled` (SMTP configured), notifications of users whose address
    /// is known are `PENDING` on the `email` channel and `mailer_wake` is notified.
    pub fn new(email_enabled: bool, mailer_wake: Arc<Notify>) -> Self {
        Recorder { email_enabled, mailer_wake }
    }
}

impl EventHandler for Recorder {
    fn handle(&self, event: ReceivedEvent, tx: DbTx) -> BoxFuture<'static, Result<DbTx, EventError>> {
        let email_enabled = self.email_enabled;
        let mailer_wake = self.mailer_wake.clone();
        Box::pin(async move {
            let (tx, pending) = record(email_enabled, event, tx).await?;
            if pending {
                mailer_wake.notify_one();
            }
            Ok(tx)
        })
    }
}

/// Records the notification of `event`; answers whether it is to be emailed.
#[tracing::instrument(skip_all, fields(event_id = %event.envelope.id, event_type = %event.envelope.event_type))]
async fn record(email_enabled: bool, event: ReceivedEvent, mut tx: DbTx) -> Result<(DbTx, bool), EventError> {
    let envelope = &event.envelope;
    let Some(kind) = NotificationKind::of_event_type(&envelope.event_type) else {
        tracing::debug!("no notification for this event type");
        return Ok((tx, false));
    };
    if envelope.id.len() > MAX_EVENT_ID_LEN {
        return Err(EventError::Permanent(format!("event id longer than {MAX_EVENT_ID_LEN} characters")));
    }
    if store::exists_for_event(&mut tx, &envelope.id).await? {
        tracing::info!("this event already has its notification");
        return Ok((tx, false));
    }
    let rendered = render::render(kind, envelope).map_err(|error| EventError::Permanent(error.to_string()))?;
    if rendered.user_id.is_empty() || rendered.user_id.len() > MAX_USER_ID_LEN {
        return Err(EventError::Permanent(format!("userId must be 1 to {MAX_USER_ID_LEN} characters")));
    }
    let known_email = rendered.email.as_deref().map(str::trim).filter(|email| plausible_email(email));
    if let Some(email) = known_email {
        store::remember_recipient(&mut tx, &rendered.user_id, email).await?;
    }
    let recipient = match known_email {
        Some(email) => Some(email.to_string()),
        None => store::recipient_of(&mut tx, &rendered.user_id).await?,
    };
    let (channel, status) = match (&recipient, email_enabled) {
        (Some(_), true) => (NotificationChannel::Email, NotificationStatus::Pending),
        _ => (NotificationChannel::Stored, NotificationStatus::Stored),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let notification = NewNotification {
        id: &id,
        event_id: &envelope.id,
        user_id: &rendered.user_id,
        kind,
        channel,
        recipient: recipient.as_deref(),
        subject: &rendered.subject,
        body: &rendered.body,
        status,
        created_at_ms: store::now_millis(),
    };
    if let Err(error) = store::insert(&mut tx, &notification).await {
        if store::is_unique_violation(&error) {
            // Recorded concurrently by another instance: retried, this event then finds it.
            return Err(EventError::Transient(format!("event {} is being recorded concurrently", envelope.id)));
        }
        return Err(error.into());
    }
    tracing::info!(notification_id = %id, kind = kind.event_type(), channel = store::channel_text(channel), "notification recorded");
    Ok((tx, status == NotificationStatus::Pending))
}

/// Whether `email` looks like an address worth keeping (the mailer parses it for real).
fn plausible_email(email: &str) -> bool {
    email.len() <= MAX_EMAIL_CHARS
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_addresses_are_kept() {
        assert!(plausible_email("ada@example.com"));
        for bad in ["", "ada", "@example.com", "ada@", "a da@example.com", "ada@example.com\r\nBcc: x@y"] {
            assert!(!plausible_email(bad), "{bad:?}");
        }
    }
}
