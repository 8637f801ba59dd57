//! What each notification says: a subject line and a plain-text body per kind, made from the
//! event's payload, with whose it is and, for `user.registered`, where to email them.

use std::fmt::Write as _;

use emporium_contracts::EventEnvelope;
use emporium_contracts::events::{OrderCancelled, OrderConfirmed, OrderCreated, PaymentFailed, UserRegistered};
use emporium_contracts::notification::NotificationKind;
use serde::de::DeserializeOwned;

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Whose it is.
    pub user_id: String,
    /// The user's email address, when the event carries it (`user.registered`).
    pub email: Option<String>,
    /// Subject line: one line, no control characters.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Why an event cannot be rendered: its payload does not fit its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {event_type} payload cannot be read: {reason}")]
pub struct RenderError {
    /// The event type.
    pub event_type: String,
    /// What is wrong.
    pub reason: String,
}

fn payload<T: DeserializeOwned>(envelope: &EventEnvelope) -> Result<T, RenderError> {
    envelope
        .payload()
        .map_err(|error| RenderError { event_type: envelope.event_type.clone(), reason: error.to_string() })
}

/// A subject line: control characters (line breaks included) become spaces.
fn subject_line(text: String) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// A failure or cancellation reason in words.
pub fn reason_in_words(reason: &str) -> String {
    match reason {
        "card_declined" => "the card was declined".to_string(),
        "insufficient_funds" => "the card has insufficient funds".to_string(),
        "invalid_token" => "the card details could not be used".to_string(),
        "unsupported_method" => "this payment method is not accepted".to_string(),
        "unsupported_currency" => "this currency is not accepted".to_string(),
        "invalid_amount" => "the amount could not be charged".to_string(),
        "cancelled_by_customer" => "you cancelled it".to_string(),
        "reservation_expired" => "the items were not paid for in time".to_string(),
        other => other.replace('_', " "),
    }
}

const SIGNATURE: &str = "\n-- \nEmporium\n";

/// Renders the notification of `kind` for `envelope`.
pub fn render(kind: NotificationKind, envelope: &EventEnvelope) -> Result<Rendered, RenderError> {
    let rendered = match kind {
        NotificationKind::UserRegistered => {
            let user: UserRegistered = payload(envelope)?;
            let name = if user.full_name.trim().is_empty() { user.username.clone() } else { user.full_name.clone() };
            Rendered {
                subject: subject_line(format!("Welcome to Emporium, {name}")),
                body: format!(
                    "Hello {name},\n\nyour Emporium account \"{}\" is ready. We will write to {} about your orders.\n{SIGNATURE}",
                    user.username, user.email
                ),
                user_id: user.user_id,
                email: Some(user.email),
            }
        }
        NotificationKind::OrderCreated => {
            let order: OrderCreated = payload(envelope)?;
            let mut body = format!("Thank you for your order {}.\n\n", order.order_id);
            for item in &order.items {
                let _ = writeln!(
                    body,
                    "  {} x {} ({}) at {} = {} {}",
                    item.quantity, item.name, item.sku, item.unit_price, item.line_total, order.currency
                );
            }
            let _ = write!(
                body,
                "\nTotal: {} {}\n\nWe will confirm it as soon as the payment goes through.\n{SIGNATURE}",
                order.total, order.currency
            );
            Rendered {
                subject: subject_line(format!("Order {} received", order.order_id)),
                body,
                user_id: order.user_id,
                email: None,
            }
        }
        NotificationKind::OrderConfirmed => {
            let order: OrderConfirmed = payload(envelope)?;
            Rendered {
                subject: subject_line(format!("Order {} confirmed", order.order_id)),
                body: format!(
                    "Your payment of {} {} went through: order {} is confirmed.\n{SIGNATURE}",
                    order.total, order.currency, order.order_id
                ),
                user_id: order.user_id,
                email: None,
            }
        }
        NotificationKind::OrderCancelled => {
            let order: OrderCancelled = payload(envelope)?;
            Rendered {
                subject: subject_line(format!("Order {} cancelled", order.order_id)),
                body: format!(
                    "Order {} was cancelled: {} ({}).\nNothing was charged for it, and its items are back on the shelf.\n{SIGNATURE}",
                    order.order_id,
                    reason_in_words(&order.reason),
                    order.reason
                ),
                user_id: order.user_id,
                email: None,
            }
        }
        NotificationKind::PaymentFailed => {
            let payment: PaymentFailed = payload(envelope)?;
            Rendered {
                subject: subject_line(format!("Payment for order {} failed", payment.order_id)),
                body: format!(
                    "We could not charge {} {} for order {}: {} ({}).\nPayment reference: {}.\n{SIGNATURE}",
                    payment.amount,
                    payment.currency,
                    payment.order_id,
                    reason_in_words(&payment.reason),
                    payment.reason,
                    payment.payment_id
                ),
                user_id: payment.user_id,
                email: None,
            }
        }
    };
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use emporium_contracts::events::{self, OrderLine, PaymentInstruction};

    use super::*;

    fn envelope<T: serde::Serialize>(event_type: &str, payload: &T) -> EventEnvelope {
        EventEnvelope::new("/emporium/test", event_type, "s", payload).unwrap()
    }

    #[test]
    fn each_kind_says_what_happened_with_the_order_id_total_and_reason() {
        let created = OrderCreated {
            order_id: "o-42".into(),
            user_id: "u1".into(),
            items: vec![OrderLine {
                sku: "MUG-1".into(),
                name: "Mug".into(),
                quantity: 2,
                unit_price: "9.99".into(),
                line_total: "19.98".into(),
            }],
            total: "19.98".into(),
            currency: "USD".into(),
            payment: PaymentInstruction { method: "card".into(), token: "tok_visa".into() },
        };
        let rendered = render(NotificationKind::OrderCreated, &envelope(events::ORDER_CREATED, &created)).unwrap();
        assert_eq!(rendered.subject, "Order o-42 received");
        assert!(rendered.body.contains("2 x Mug (MUG-1) at 9.99 = 19.98 USD"), "{}", rendered.body);
        assert!(rendered.body.contains("Total: 19.98 USD"));
        assert!(!rendered.body.contains("tok_visa"), "the card token never appears");
        assert_eq!((rendered.user_id.as_str(), rendered.email), ("u1", None));

        let failed = PaymentFailed {
            payment_id: "p1".into(),
            order_id: "o-42".into(),
            user_id: "u1".into(),
            amount: "19.98".into(),
            currency: "USD".into(),
            reason: "card_declined".into(),
        };
        let rendered = render(NotificationKind::PaymentFailed, &envelope(events::PAYMENT_FAILED, &failed)).unwrap();
        assert_eq!(rendered.subject, "Payment for order o-42 failed");
        assert!(rendered.body.contains("19.98 USD") && rendered.body.contains("the card was declined"));

        let cancelled =
            OrderCancelled { order_id: "o-42".into(), user_id: "u1".into(), reason: "card_declined".into() };
        let rendered =
            render(NotificationKind::OrderCancelled, &envelope(events::ORDER_CANCELLED, &cancelled)).unwrap();
        assert!(rendered.body.contains("was cancelled: the card was declined (card_declined)"));

        let confirmed = OrderConfirmed {
            order_id: "o-42".into(),
            user_id: "u1".into(),
            total: "19.98".into(),
            currency: "USD".into(),
        };
        let rendered =
            render(NotificationKind::OrderConfirmed, &envelope(events::ORDER_CONFIRMED, &confirmed)).unwrap();
        assert_eq!(rendered.subject, "Order o-42 confirmed");
        assert!(rendered.body.contains("19.98 USD"));
    }

    #[test]
    fn a_welcome_knows_the_address_and_subjects_stay_on_one_line() {
        let user = UserRegistered {
            user_id: "u1".into(),
            username: "ada".into(),
            email: "ada@example.com".into(),
            full_name: "Ada\r\nBcc: victim@example.com".into(),
        };
        let rendered = render(NotificationKind::UserRegistered, &envelope(events::USER_REGISTERED, &user)).unwrap();
        assert_eq!(rendered.email.as_deref(), Some("ada@example.com"));
        assert!(!rendered.subject.contains('\n') && !rendered.subject.contains('\r'), "{}", rendered.subject);
        let wrong = envelope(events::USER_REGISTERED, &serde_json::json!({"userId": 1}));
        assert!(render(NotificationKind::UserRegistered, &wrong).is_err());
    }
}
