//! Events: what services tell each other asynchronously, over the event bus.
//!
//! Every event travels in a CloudEvents 1.0 JSON envelope ([`EventEnvelope`]). Its `type` is
//! one of the constants below and is also the AMQP routing key; its `source` names the
//! publishing service (`/emporium/order`); its `subject` is the aggregate the event is about
//! (an order id, a user id, a SKU); its `data` is one of the payload structs below, in
//! camelCase JSON. Money is a decimal string (`"19.99"`), never a float.
//!
//! Exchanges (one topic exchange per source): [`AUTH_EVENTS`], [`ORDER_EVENTS`],
//! [`INVENTORY_EVENTS`], [`PAYMENT_EVENTS`]; [`exchange_of`] maps an event type to its exchange.
//!
//! The topology ([`SUBSCRIPTIONS`]): which service consumes which event types from which
//! exchange. It is the one source of truth: each consuming service subscribes from it, and
//! every node's bus declares all of it (every exchange, every subscription's queue) before it
//! publishes, so that no event is lost because its consumer has not started yet.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The exchange of the auth service's events.
pub const AUTH_EVENTS: &str = "auth-events";
/// The exchange of the order service's events.
pub const ORDER_EVENTS: &str = "order-events";
/// The exchange of the inventory service's events.
pub const INVENTORY_EVENTS: &str = "inventory-events";
/// The exchange of the payment service's events.
pub const PAYMENT_EVENTS: &str = "payment-events";
/// Every exchange, in a stable order.
pub const ALL_EXCHANGES: [&str; 4] = [AUTH_EVENTS, ORDER_EVENTS, INVENTORY_EVENTS, PAYMENT_EVENTS];

/// A user account was created ([`UserRegistered`]).
pub const USER_REGISTERED: &str = "user.registered";
/// A user signed in ([`UserLoggedIn`]).
pub const USER_LOGGED_IN: &str = "user.logged_in";
/// A sign-in attempt was refused ([`UserLoginFailed`]).
pub const USER_LOGIN_FAILED: &str = "user.login_failed";
/// An order was placed and awaits payment ([`OrderCreated`]).
pub const ORDER_CREATED: &str = "order.created";
/// An order was paid ([`OrderConfirmed`]).
pub const ORDER_CONFIRMED: &str = "order.confirmed";
/// An order was cancelled ([`OrderCancelled`]).
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// Stock was reserved for an order ([`InventoryReserved`]).
pub const INVENTORY_RESERVED: &str = "inventory.reserved";
/// A reservation was released ([`InventoryReleased`]).
pub const INVENTORY_RELEASED: &str = "inventory.released";
/// A reservation was turned into a sale ([`InventoryCommitted`]).
pub const INVENTORY_COMMITTED: &str = "inventory.committed";
/// A SKU fell to its reorder level ([`InventoryReorderNeeded`]).
pub const INVENTORY_REORDER_NEEDED: &str = "inventory.reorder_needed";
/// A payment went through ([`PaymentSucceeded`]).
pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
/// A payment was refused ([`PaymentFailed`]).
pub const PAYMENT_FAILED: &str = "payment.failed";

/// Every event type with its exchange.
pub const EVENT_TYPES: [(&str, &str); 12] = [
    (USER_REGISTERED, AUTH_EVENTS),
    (USER_LOGGED_IN, AUTH_EVENTS),
    (USER_LOGIN_FAILED, AUTH_EVENTS),
    (ORDER_CREATED, ORDER_EVENTS),
    (ORDER_CONFIRMED, ORDER_EVENTS),
    (ORDER_CANCELLED, ORDER_EVENTS),
    (INVENTORY_RESERVED, INVENTORY_EVENTS),
    (INVENTORY_RELEASED, INVENTORY_EVENTS),
    (INVENTORY_COMMITTED, INVENTORY_EVENTS),
    (INVENTORY_REORDER_NEEDED, INVENTORY_EVENTS),
    (PAYMENT_SUCCEEDED, PAYMENT_EVENTS),
    (PAYMENT_FAILED, PAYMENT_EVENTS),
];

/// One consuming service's subscription to one exchange: the event types (routing keys) it
/// wants from it. The bus gives it one durable queue, `<consumer>.<exchange>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// The consuming service (`payment`).
    pub consumer: &'static str,
    /// The exchange it reads (`order-events`).
    pub exchange: &'static str,
    /// The event types it wants from it, exact routing keys (`order.created`).
    pub event_types: &'static [&'static str],
}

/// Every subscription of every consuming service: the whole topology the bus declares.
pub const SUBSCRIPTIONS: [Subscription; 6] = [
    Subscription {
        consumer: crate::inventory::SERVICE,
        exchange: ORDER_EVENTS,
        event_types: &[ORDER_CONFIRMED, ORDER_CANCELLED],
    },
    Subscription {
        consumer: crate::order::SERVICE,
        exchange: PAYMENT_EVENTS,
        event_types: &[PAYMENT_SUCCEEDED, PAYMENT_FAILED],
    },
    Subscription { consumer: crate::payment::SERVICE, exchange: ORDER_EVENTS, event_types: &[ORDER_CREATED] },
    Subscription {
        consumer: crate::notification::SERVICE,
        exchange: ORDER_EVENTS,
        event_types: &[ORDER_CREATED, ORDER_CONFIRMED, ORDER_CANCELLED],
    },
    Subscription { consumer: crate::notification::SERVICE, exchange: PAYMENT_EVENTS, event_types: &[PAYMENT_FAILED] },
    Subscription { consumer: crate::notification::SERVICE, exchange: AUTH_EVENTS, event_types: &[USER_REGISTERED] },
];

/// The subscriptions of `consumer`, in [`SUBSCRIPTIONS`] order (none for a service that
/// consumes nothing).
pub fn subscriptions_of(consumer: &str) -> impl Iterator<Item = &'static Subscription> + '_ {
    SUBSCRIPTIONS.iter().filter(move |subscription| subscription.consumer == consumer)
}

/// The subscription of `consumer` to `exchange`, if the topology has one.
pub fn subscription(consumer: &str, exchange: &str) -> Option<&'static Subscription> {
    subscriptions_of(consumer).find(|subscription| subscription.exchange == exchange)
}

/// Whether some service of the topology consumes events of `event_type` from `exchange`:
/// such an event must reach a queue, never be dropped.
pub fn is_consumed(exchange: &str, event_type: &str) -> bool {
    SUBSCRIPTIONS
        .iter()
        .any(|subscription| subscription.exchange == exchange && subscription.event_types.contains(&event_type))
}

/// The exchange an event type is published to, by its prefix (`order.created` ->
/// `order-events`); `None` for a type of no known source.
pub fn exchange_of(event_type: &str) -> Option<&'static str> {
    match event_type.split('.').next()? {
        "user" => Some(AUTH_EVENTS),
        "order" => Some(ORDER_EVENTS),
        "inventory" => Some(INVENTORY_EVENTS),
        "payment" => Some(PAYMENT_EVENTS),
        _ => None,
    }
}

/// The CloudEvents spec version of every envelope.
pub const SPEC_VERSION: &str = "1.0";
/// The content type of every envelope's `data`.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// A CloudEvents 1.0 envelope in JSON (structured mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Always `"1.0"`.
    pub specversion: String,
    /// Unique id of the event (a UUID); consumers deduplicate on it.
    pub id: String,
    /// The publishing service, as a URI reference (`/emporium/order`).
    pub source: String,
    /// The event type, also the routing key (`order.created`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened, RFC 3339.
    pub time: String,
    /// The aggregate the event is about (an order id, a user id, a SKU).
    pub subject: String,
    /// Always `"application/json"`.
    pub datacontenttype: String,
    /// The payload.
    pub data: serde_json::Value,
}

/// An envelope that could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload could not be written or read as JSON of the expected shape.
    #[error("event payload is not valid for its type: {0}")]
    Payload(#[from] serde_json::Error),
    /// The envelope is not a CloudEvents 1.0 JSON envelope.
    #[error("not a cloudevents 1.0 envelope: {0}")]
    NotCloudEvents(String),
}

impl EventEnvelope {
    /// A new event of `event_type` from `source` about `subject`, with a fresh id and the
    /// current time.
    pub fn new<T: Serialize>(
        source: &str,
        event_type: &str,
        subject: &str,
        payload: &T,
    ) -> Result<EventEnvelope, EnvelopeError> {
        Ok(EventEnvelope {
            specversion: SPEC_VERSION.to_string(),
            id: new_event_id(),
            source: source.to_string(),
            event_type: event_type.to_string(),
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            subject: subject.to_string(),
            datacontenttype: DATA_CONTENT_TYPE.to_string(),
            data: serde_json::to_value(payload)?,
        })
    }

    /// The payload read as `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, EnvelopeError> {
        Ok(T::deserialize(&self.data)?)
    }

    /// When the event happened, when `time` is valid RFC 3339.
    pub fn occurred_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time).ok().map(|time| time.with_timezone(&Utc))
    }

    /// The envelope as JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>, EnvelopeError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Reads an envelope from JSON bytes and checks its required attributes.
    pub fn from_json(bytes: &[u8]) -> Result<EventEnvelope, EnvelopeError> {
        let envelope: EventEnvelope = serde_json::from_slice(bytes)?;
        envelope.validate()?;
        Ok(envelope)
    }

    /// Checks the CloudEvents required attributes: spec version 1.0, non-empty id, source
    /// and type.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.specversion != SPEC_VERSION {
            return Err(EnvelopeError::NotCloudEvents(format!("specversion is {:?}", self.specversion)));
        }
        for (name, value) in [("id", &self.id), ("source", &self.source), ("type", &self.event_type)] {
            if value.is_empty() {
                return Err(EnvelopeError::NotCloudEvents(format!("{name} is empty")));
            }
        }
        Ok(())
    }
}

/// The `source` of events published by `service` (`/emporium/order`).
pub fn source_of(service: &str) -> String {
    format!("/emporium/{service}")
}

/// A random (version 4 format) UUID, as 36 lowercase characters.
///
/// Contracts stay free of a UUID crate: the 122 random bits come from the standard library's
/// SipHash keyed by per-thread keys the OS seeds, mixed with a process-wide counter and the
/// clock, which is unique enough for event ids.
pub fn new_event_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let high = RandomState::new().hash_one((count, nanos, 0xA5u8));
    let low = RandomState::new().hash_one((nanos, count, 0x5Au8));
    let value = ((high as u128) << 64) | low as u128;
    let value = (value & !(0xF000u128 << 64)) | (0x4000u128 << 64); // version 4
    let value = (value & !(0xC000u128 << 48)) | (0x8000u128 << 48); // RFC 4122 variant
    let hex = format!("{value:032x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// `user.registered`: a user account was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRegistered {
    /// The new user's id.
    pub user_id: String,
    /// Their username.
    pub username: String,
    /// Their email address.
    pub email: String,
    /// Their full name.
    pub full_name: String,
}

/// `user.logged_in`: a user signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserLoggedIn {
    /// The user's id.
    pub user_id: String,
}

/// `user.login_failed`: a sign-in attempt was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserLoginFailed {
    /// The username or email that was tried.
    pub login: String,
    /// Why it was refused (`invalid_credentials`).
    pub reason: String,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// The product's SKU.
    pub sku: String,
    /// The product's name when ordered.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, a decimal string.
    pub unit_price: String,
    /// `quantity * unit_price`, a decimal string.
    pub line_total: String,
}

/// How an order is paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentInstruction {
    /// The payment method (`card`).
    pub method: String,
    /// The payment provider's token for the card.
    pub token: String,
}

/// `order.created`: an order was placed and awaits payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    /// The order's id.
    pub order_id: String,
    /// Who placed it.
    pub user_id: String,
    /// Its lines.
    pub items: Vec<OrderLine>,
    /// The sum of the line totals, a decimal string.
    pub total: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// How to charge it.
    pub payment: PaymentInstruction,
}

/// `order.confirmed`: an order was paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderConfirmed {
    /// The order's id.
    pub order_id: String,
    /// Who placed it.
    pub user_id: String,
    /// What was charged, a decimal string.
    pub total: String,
    /// ISO 4217 currency code.
    pub currency: String,
}

/// `order.cancelled`: an order was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCancelled {
    /// The order's id.
    pub order_id: String,
    /// Who placed it.
    pub user_id: String,
    /// Why (`card_declined`, `cancelled_by_customer`, ...).
    pub reason: String,
}

/// A quantity of one SKU in a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockLine {
    /// The SKU.
    pub sku: String,
    /// How many units.
    pub quantity: u32,
}

/// `inventory.reserved`: stock was reserved for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReserved {
    /// The order the stock is held for.
    pub order_id: String,
    /// What is held.
    pub lines: Vec<StockLine>,
}

/// `inventory.released`: a reservation was released (order cancelled or reservation expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReleased {
    /// The order the stock was held for.
    pub order_id: String,
    /// What went back on the shelf.
    pub lines: Vec<StockLine>,
}

/// `inventory.committed`: a reservation was turned into a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryCommitted {
    /// The order that was paid.
    pub order_id: String,
    /// What left the shelf.
    pub lines: Vec<StockLine>,
}

/// `inventory.reorder_needed`: a SKU fell to its reorder level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReorderNeeded {
    /// The SKU.
    pub sku: String,
    /// Units available now.
    pub available: u32,
    /// The level at or below which to reorder.
    pub reorder_level: u32,
    /// How many to reorder.
    pub reorder_quantity: u32,
}

/// `payment.succeeded`: a payment went through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSucceeded {
    /// The payment's id.
    pub payment_id: String,
    /// The order it paid.
    pub order_id: String,
    /// Who paid.
    pub user_id: String,
    /// What was charged, a decimal string.
    pub amount: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The payment provider's reference of the charge.
    pub provider_ref: String,
}

/// `payment.failed`: a payment was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed {
    /// The payment's id.
    pub payment_id: String,
    /// The order it was for.
    pub order_id: String,
    /// Who tried to pay.
    pub user_id: String,
    /// What was to be charged, a decimal string.
    pub amount: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Why (`card_declined`, `insufficient_funds`, `invalid_token`).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(event_type: &str, payload: T) {
        let exchange = exchange_of(event_type).unwrap();
        assert!(EVENT_TYPES.contains(&(event_type, exchange)), "{event_type} is listed with {exchange}");
        let envelope = EventEnvelope::new(&source_of("test"), event_type, "subject-1", &payload).unwrap();
        let bytes = envelope.to_json().unwrap();
        let back = EventEnvelope::from_json(&bytes).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.payload::<T>().unwrap(), payload);
    }

    fn line(sku: &str, quantity: u32) -> StockLine {
        StockLine { sku: sku.into(), quantity }
    }

    #[test]
    fn every_payload_round_trips_through_its_envelope() {
        round_trip(
            USER_REGISTERED,
            UserRegistered {
                user_id: "u1".into(),
                username: "ada".into(),
                email: "ada@example.com".into(),
                full_name: "Ada Lovelace".into(),
            },
        );
        round_trip(USER_LOGGED_IN, UserLoggedIn { user_id: "u1".into() });
        round_trip(USER_LOGIN_FAILED, UserLoginFailed { login: "ada".into(), reason: "invalid_credentials".into() });
        round_trip(
            ORDER_CREATED,
            OrderCreated {
                order_id: "o1".into(),
                user_id: "u1".into(),
                items: vec![OrderLine {
                    sku: "SKU-1".into(),
                    name: "Mug".into(),
                    quantity: 2,
                    unit_price: "9.99".into(),
                    line_total: "19.98".into(),
                }],
                total: "19.98".into(),
                currency: "USD".into(),
                payment: PaymentInstruction { method: "card".into(), token: "tok_visa".into() },
            },
        );
        round_trip(
            ORDER_CONFIRMED,
            OrderConfirmed {
                order_id: "o1".into(),
                user_id: "u1".into(),
                total: "19.98".into(),
                currency: "USD".into(),
            },
        );
        round_trip(
            ORDER_CANCELLED,
            OrderCancelled { order_id: "o1".into(), user_id: "u1".into(), reason: "card_declined".into() },
        );
        round_trip(INVENTORY_RESERVED, InventoryReserved { order_id: "o1".into(), lines: vec![line("A", 2)] });
        round_trip(INVENTORY_RELEASED, InventoryReleased { order_id: "o1".into(), lines: vec![line("A", 2)] });
        round_trip(INVENTORY_COMMITTED, InventoryCommitted { order_id: "o1".into(), lines: vec![line("A", 2)] });
        round_trip(
            INVENTORY_REORDER_NEEDED,
            InventoryReorderNeeded { sku: "A".into(), available: 3, reorder_level: 5, reorder_quantity: 50 },
        );
        round_trip(
            PAYMENT_SUCCEEDED,
            PaymentSucceeded {
                payment_id: "p1".into(),
                order_id: "o1".into(),
                user_id: "u1".into(),
                amount: "19.98".into(),
                currency: "USD".into(),
                provider_ref: "sim_123".into(),
            },
        );
        round_trip(
            PAYMENT_FAILED,
            PaymentFailed {
                payment_id: "p1".into(),
                order_id: "o1".into(),
                user_id: "u1".into(),
                amount: "19.98".into(),
                currency: "USD".into(),
                reason: "card_declined".into(),
            },
        );
    }

    #[test]
    fn the_envelope_has_the_cloudevents_attribute_names_and_camel_case_data() {
        let payload = OrderConfirmed {
            order_id: "o1".into(),
            user_id: "u1".into(),
            total: "5.00".into(),
            currency: "EUR".into(),
        };
        let envelope = EventEnvelope::new("/emporium/order", ORDER_CONFIRMED, "o1", &payload).unwrap();
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "order.confirmed");
        assert_eq!(json["source"], "/emporium/order");
        assert_eq!(json["subject"], "o1");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["data"]["orderId"], "o1");
        assert_eq!(json["data"]["total"], "5.00", "money is a decimal string");
        assert!(envelope.occurred_at().is_some(), "time is RFC 3339: {}", envelope.time);
    }

    #[test]
    fn ids_are_unique_uuid_v4_strings() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_event_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn a_foreign_document_is_not_an_envelope() {
        assert!(EventEnvelope::from_json(b"not json").is_err());
        let wrong_version = br#"{"specversion":"0.3","id":"1","source":"/s","type":"t","time":"","subject":"","datacontenttype":"application/json","data":null}"#;
        assert!(matches!(EventEnvelope::from_json(wrong_version), Err(EnvelopeError::NotCloudEvents(_))));
        let envelope =
            EventEnvelope::new("/emporium/auth", USER_LOGGED_IN, "u1", &UserLoggedIn { user_id: "u1".into() }).unwrap();
        assert!(envelope.payload::<OrderCreated>().is_err(), "a payload of another type does not read");
    }

    #[test]
    fn the_topology_names_known_events_on_their_exchange_once_per_consumer() {
        let mut queues = HashSet::new();
        for subscription in SUBSCRIPTIONS {
            assert!(ALL_EXCHANGES.contains(&subscription.exchange), "{subscription:?}");
            assert!(!subscription.event_types.is_empty(), "{subscription:?}");
            for event_type in subscription.event_types {
                assert_eq!(exchange_of(event_type), Some(subscription.exchange), "{subscription:?}");
                assert!(EVENT_TYPES.contains(&(*event_type, subscription.exchange)));
            }
            assert!(
                queues.insert((subscription.consumer, subscription.exchange)),
                "one queue per consumer and exchange"
            );
        }
        assert_eq!(subscriptions_of(crate::notification::SERVICE).count(), 3);
        assert_eq!(subscriptions_of(crate::auth::SERVICE).count(), 0, "auth consumes nothing");
        assert_eq!(subscription("payment", ORDER_EVENTS).map(|found| found.event_types), Some(&[ORDER_CREATED][..]));
        assert_eq!(subscription("payment", AUTH_EVENTS), None);
        assert!(is_consumed(ORDER_EVENTS, ORDER_CREATED));
        assert!(is_consumed(AUTH_EVENTS, USER_REGISTERED));
        assert!(!is_consumed(AUTH_EVENTS, USER_LOGGED_IN), "nobody consumes sign-ins");
        assert!(!is_consumed(PAYMENT_EVENTS, ORDER_CREATED), "a type is consumed from its own exchange only");
        assert!(!is_consumed(INVENTORY_EVENTS, INVENTORY_RESERVED));
    }

    #[test]
    fn event_types_map_to_their_exchange() {
        assert_eq!(exchange_of(ORDER_CREATED), Some(ORDER_EVENTS));
        assert_eq!(exchange_of(USER_LOGIN_FAILED), Some(AUTH_EVENTS));
        assert_eq!(exchange_of("shipment.sent"), None);
        for (event_type, exchange) in EVENT_TYPES {
            assert_eq!(exchange_of(event_type), Some(exchange));
        }
    }
}
