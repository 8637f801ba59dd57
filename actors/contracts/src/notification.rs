//! The notification service's messages and public bodies (API.md section 4, Notifications).
//!
//! Notifications are made by the notification service itself, one per event it consumes (see
//! [`crate::events`]); [`ListNotifications`] reads them and [`DeliverDueNotifications`] is the
//! service's own tick that sends the pending ones by email.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Request;
use crate::events;
use crate::identity::Caller;
use crate::page::{Page, PageRequest};

/// The service name of the notification service.
pub const SERVICE: &str = "notification";

/// What a notification tells: the type of the event it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum NotificationKind {
    /// Welcome, after `user.registered`.
    #[serde(rename = "user.registered")]
    UserRegistered,
    /// Order received, after `order.created`.
    #[serde(rename = "order.created")]
    OrderCreated,
    /// Order confirmed, after `order.confirmed`.
    #[serde(rename = "order.confirmed")]
    OrderConfirmed,
    /// Order cancelled, after `order.cancelled`.
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    /// Payment failed, after `payment.failed`.
    #[serde(rename = "payment.failed")]
    PaymentFailed,
}

impl NotificationKind {
    /// Every kind.
    pub const ALL: [NotificationKind; 5] = [
        NotificationKind::UserRegistered,
        NotificationKind::OrderCreated,
        NotificationKind::OrderConfirmed,
        NotificationKind::OrderCancelled,
        NotificationKind::PaymentFailed,
    ];

    /// The event type it is made from (`order.created`).
    pub fn event_type(self) -> &'static str {
        match self {
            NotificationKind::UserRegistered => events::USER_REGISTERED,
            NotificationKind::OrderCreated => events::ORDER_CREATED,
            NotificationKind::OrderConfirmed => events::ORDER_CONFIRMED,
            NotificationKind::OrderCancelled => events::ORDER_CANCELLED,
            NotificationKind::PaymentFailed => events::PAYMENT_FAILED,
        }
    }

    /// The kind made from events of `event_type`, when there is one.
    pub fn of_event_type(event_type: &str) -> Option<NotificationKind> {
        NotificationKind::ALL.into_iter().find(|kind| kind.event_type() == event_type)
    }
}

/// How a notification reaches its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    /// Sent by email (SMTP is configured and the user's address is known).
    Email,
    /// Only stored, readable through the API.
    Stored,
}

/// Where a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationStatus {
    /// Waiting to be emailed (or to be tried again after a failure).
    Pending,
    /// Emailed: the SMTP server took it.
    Sent,
    /// Emailing failed for good (attempts used up or refused permanently).
    Failed,
    /// Not to be emailed: stored for the API only.
    Stored,
}

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// The notification's id.
    pub id: String,
    /// The event it was made from (one notification per event).
    pub event_id: String,
    /// What it tells (the event type).
    pub kind: NotificationKind,
    /// `email` or `stored`.
    pub channel: NotificationChannel,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// `PENDING`, `SENT`, `FAILED` or `STORED`.
    pub status: NotificationStatus,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A page of the caller's own notifications, newest first (admins too see only their own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListNotifications {
    /// Who asks.
    pub caller: Caller,
    /// Which page.
    pub page: PageRequest,
}

impl Request for ListNotifications {
    type Reply = Page<NotificationView>;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "ListNotifications";
    const IDEMPOTENT: bool = true;
    fn summary(&self) -> String {
        format!("page {} size {}", self.page.page, self.page.size)
    }
}

/// Email the notifications that are due (sent by the service's own delivery tick to its
/// mailer). Answers what the round did; answers 503 `smtp_unavailable` when some sends failed,
/// so the mailer's error counter shows an SMTP outage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliverDueNotifications {}

impl Request for DeliverDueNotifications {
    type Reply = DeliveryRound;
    const SERVICE: &'static str = SERVICE;
    const NAME: &'static str = "DeliverDueNotifications";
    const IDEMPOTENT: bool = true;
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRound {
    /// Emails the SMTP server took.
    pub num_sent: u32,
    /// Failed sends that will be tried again later.
    pub num_retrying: u32,
    /// Notifications that failed for good in this round.
    pub num_failed: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_event_types_and_views_read_as_the_api_says() {
        for kind in NotificationKind::ALL {
            assert_eq!(NotificationKind::of_event_type(kind.event_type()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.event_type());
        }
        assert_eq!(NotificationKind::of_event_type(events::USER_LOGGED_IN), None);
        let view = NotificationView {
            id: "n1".into(),
            event_id: "e1".into(),
            kind: NotificationKind::OrderConfirmed,
            channel: NotificationChannel::Email,
            subject: "s".into(),
            body: "b".into(),
            status: NotificationStatus::Sent,
            created_at: DateTime::from_timestamp_millis(0).unwrap_or_default(),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["eventId"], "e1");
        assert_eq!(json["kind"], "order.confirmed");
        assert_eq!(json["channel"], "email");
        assert_eq!(json["status"], "SENT");
        assert_eq!(serde_json::from_value::<NotificationView>(json).unwrap(), view);
    }
}
