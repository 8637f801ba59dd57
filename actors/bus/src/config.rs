//! How the bus is set up ([`BusConfig`]), what a consumer subscribes to ([`ConsumerSpec`]),
//! and the names of exchanges and queues.
//!
//! Names: exchange `<ns>order-events`; consumer queue `<ns><consumer>.<exchange>`; its
//! dead-letter exchange `<queue>.dlx` and dead-letter queue `<queue>.dlq`. `<ns>` is the
//! namespace followed by a dot (`emporium.` by default, `EMPORIUM_BUS_NAMESPACE` on a node),
//! or nothing when the namespace is empty.
//!
//! What is consumed where comes from the contracts' topology
//! ([`emporium_contracts::events::SUBSCRIPTIONS`]): services build their [`ConsumerSpec`] from
//! it ([`ConsumerSpec::from_topology`], [`ConsumerSpec::topology_of`]) and every node's bus
//! declares all of it ([`ConsumerSpec::topology`]).

use std::fmt;
use std::time::Duration;

use emporium_contracts::events::{self, Subscription};

use crate::error::{BusError, redact_url};

/// The namespace of a node's exchanges and queues when `EMPORIUM_BUS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "emporium";
/// The longest namespace accepted: queue names (at most 255 bytes) must still fit.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// The most lanes (concurrent transactions) one consumer may run.
pub const MAX_CONSUMER_LANES: usize = 32;

/// The bus's settings. [`BusConfig::default`] is the embedded in-process bus.
#[derive(Clone)]
pub struct BusConfig {
    /// RabbitMQ URL (`EMPORIUM_AMQP_URL`); `None`: the in-process bus.
    pub amqp_url: Option<String>,
    /// Prefix of every exchange and queue name, so that several clusters (or test runs) share
    /// one broker: [`DEFAULT_NAMESPACE`] unless set (`EMPORIUM_BUS_NAMESPACE`); empty: no
    /// prefix.
    pub namespace: String,
    /// Unacknowledged deliveries a consumer holds at most (AMQP prefetch).
    pub prefetch: u16,
    /// Events a consumer applies in one transaction at most.
    pub consumer_batch_size: usize,
    /// Transactions a consumer runs at once: a batch taken from the queue is split by the
    /// events' subjects into this many lanes, applied concurrently, each in its own
    /// transaction. Events of one subject always share a lane, so they stay in order; events
    /// of different subjects may be applied in either order (see `consumer_driver`). On SQLite,
    /// which has one writer at a time, a consumer always runs one lane.
    pub consumer_lanes: usize,
    /// Times a handler may fail on one event before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry of a failed event; doubles with each attempt, up to 10 s.
    pub retry_delay: Duration,
    /// Outbox rows a relay publishes per batch at most.
    pub relay_batch_size: usize,
    /// How often a relay looks for rows when no commit woke it.
    pub relay_poll_interval: Duration,
    /// How often relays measure and export their lag.
    pub lag_report_interval: Duration,
    /// First delay before reconnecting to the broker or retrying after an error.
    pub reconnect_min_delay: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max_delay: Duration,
    /// How long sent outbox rows are kept before they are purged.
    pub outbox_retention: Duration,
    /// How long inbox rows (the record that dedupes redeliveries) are kept.
    pub inbox_retention: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            amqp_url: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            prefetch: 256,
            consumer_batch_size: 64,
            consumer_lanes: 4,
            max_attempts: 5,
            retry_delay: Duration::from_millis(200),
            relay_batch_size: 256,
            relay_poll_interval: Duration::from_millis(500),
            lag_report_interval: Duration::from_secs(1),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
            outbox_retention: Duration::from_secs(24 * 3600),
            inbox_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl fmt::Debug for BusConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BusConfig")
            .field("amqp_url", &self.amqp_url.as_deref().map(redact_url))
            .field("namespace", &self.namespace)
            .field("prefetch", &self.prefetch)
            .field("consumer_batch_size", &self.consumer_batch_size)
            .field("consumer_lanes", &self.consumer_lanes)
            .field("max_attempts", &self.max_attempts)
            .field("retry_delay", &self.retry_delay)
            .field("relay_batch_size", &self.relay_batch_size)
            .field("relay_poll_interval", &self.relay_poll_interval)
            .finish_non_exhaustive()
    }
}

impl BusConfig {
    /// The RabbitMQ bus at `amqp_url`, other settings default.
    pub fn amqp(amqp_url: &str) -> BusConfig {
        BusConfig { amqp_url: Some(amqp_url.to_string()), ..BusConfig::default() }
    }

    /// The same settings with `namespace`.
    pub fn with_namespace(mut self, namespace: &str) -> BusConfig {
        self.namespace = namespace.to_string();
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), BusError> {
        let invalid = |reason: &str| Err(BusError::InvalidConfig(reason.to_string()));
        if self.prefetch == 0 {
            return invalid("prefetch must be at least 1");
        }
        if self.consumer_batch_size == 0 || self.consumer_batch_size > self.prefetch as usize {
            return invalid("consumer_batch_size must be between 1 and prefetch");
        }
        if self.consumer_lanes == 0 || self.consumer_lanes > MAX_CONSUMER_LANES {
            return invalid(&format!("consumer_lanes must be between 1 and {MAX_CONSUMER_LANES}"));
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts must be at least 1");
        }
        if self.relay_batch_size == 0 || self.relay_batch_size > 10_000 {
            return invalid("relay_batch_size must be between 1 and 10000");
        }
        if self.reconnect_min_delay.is_zero() || self.reconnect_min_delay > self.reconnect_max_delay {
            return invalid("reconnect delays must satisfy 0 < min <= max");
        }
        validate_namespace(&self.namespace)
    }

    fn prefix(&self) -> String {
        if self.namespace.is_empty() { String::new() } else { format!("{}.", self.namespace) }
    }

    /// The broker name of `exchange` (`order-events`).
    pub fn exchange_name(&self, exchange: &str) -> String {
        format!("{}{exchange}", self.prefix())
    }

    /// The broker names of the queue of `consumer` on `exchange`.
    pub fn queue_names(&self, consumer: &str, exchange: &str) -> QueueNames {
        let queue = format!("{}{consumer}.{exchange}", self.prefix());
        QueueNames { dead_letter_exchange: format!("{queue}.dlx"), dead_letter_queue: format!("{queue}.dlq"), queue }
    }

    /// How many deliveries a consumer takes from its queue per step: a batch for each lane, as
    /// far as the prefetch allows.
    pub fn consumer_step_size(&self) -> usize {
        self.consumer_batch_size.saturating_mul(self.consumer_lanes).min(usize::from(self.prefetch)).max(1)
    }

    /// The delay before reconnection attempt or retry number `attempt` (1 = the first) after
    /// a broker or database failure.
    pub fn reconnect_delay_for(&self, attempt: u32) -> Duration {
        self.reconnect_min_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.reconnect_max_delay)
    }

    /// The delay before retry number `attempt` (1 = the first retry) of a failed event.
    pub fn retry_delay_for(&self, attempt: u32) -> Duration {
        self.retry_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(Duration::from_secs(10))
    }
}

/// Checks a namespace: empty (no prefix), or at most [`MAX_NAMESPACE_LEN`] letters, digits,
/// '-', '_' and '.', neither starting nor ending with '.', and not starting with `amq.`
/// (RabbitMQ keeps those names for itself).
pub fn validate_namespace(namespace: &str) -> Result<(), BusError> {
    let invalid = |reason: &str| Err(BusError::InvalidConfig(format!("namespace {namespace:?}: {reason}")));
    if namespace.len() > MAX_NAMESPACE_LEN {
        return invalid(&format!("longer than {MAX_NAMESPACE_LEN} characters"));
    }
    if !namespace.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return invalid("may hold only letters, digits, '-', '_' and '.'");
    }
    if namespace.starts_with('.') || namespace.ends_with('.') || namespace.contains("..") {
        return invalid("dots only between words");
    }
    if format!("{namespace}.").to_ascii_lowercase().starts_with("amq.") {
        return invalid("names starting with 'amq.' are reserved by RabbitMQ");
    }
    Ok(())
}

/// A consumer queue's broker names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNames {
    /// The durable queue the consumer reads (`payment.order-events`).
    pub queue: String,
    /// Where its dead letters are published (`payment.order-events.dlx`).
    pub dead_letter_exchange: String,
    /// Where its dead letters wait for an operator (`payment.order-events.dlq`).
    pub dead_letter_queue: String,
}

/// What a consumer subscribes to: its name, the source exchange, and the routing-key patterns
/// (AMQP topic syntax: `*` one word, `#` zero or more) it wants from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The consuming service (`payment`); with the exchange it names the queue.
    pub consumer: String,
    /// The source exchange (`order-events`).
    pub exchange: String,
    /// Routing-key patterns (`order.created`, `order.*`).
    pub routing_keys: Vec<String>,
}

impl ConsumerSpec {
    /// `consumer` reading `routing_keys` from `exchange`.
    pub fn new(consumer: &str, exchange: &str, routing_keys: &[&str]) -> ConsumerSpec {
        ConsumerSpec {
            consumer: consumer.to_string(),
            exchange: exchange.to_string(),
            routing_keys: routing_keys.iter().map(|key| key.to_string()).collect(),
        }
    }

    /// The spec of `subscription` of the contracts' topology.
    pub fn from_subscription(subscription: &Subscription) -> ConsumerSpec {
        ConsumerSpec::new(subscription.consumer, subscription.exchange, subscription.event_types)
    }

    /// The spec of `consumer`'s subscription to `exchange` in the contracts' topology; an
    /// error when the topology has none (a service subscribing to what the contracts do not
    /// say it consumes).
    pub fn from_topology(consumer: &str, exchange: &str) -> Result<ConsumerSpec, BusError> {
        events::subscription(consumer, exchange).map(ConsumerSpec::from_subscription).ok_or_else(|| {
            BusError::InvalidConfig(format!(
                "the contracts' topology has no subscription of {consumer} to {exchange} \
                 (emporium_contracts::events::SUBSCRIPTIONS)"
            ))
        })
    }

    /// The specs of every subscription of `consumer` in the contracts' topology, one per
    /// exchange.
    pub fn topology_of(consumer: &str) -> Vec<ConsumerSpec> {
        events::subscriptions_of(consumer).map(ConsumerSpec::from_subscription).collect()
    }

    /// The specs of every subscription of the contracts' topology: what every node's bus
    /// declares.
    pub fn topology() -> Vec<ConsumerSpec> {
        events::SUBSCRIPTIONS.iter().map(ConsumerSpec::from_subscription).collect()
    }

    /// Checks the names.
    pub fn validate(&self) -> Result<(), BusError> {
        let name_ok =
            |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !name_ok(&self.consumer) || !name_ok(&self.exchange) {
            return Err(BusError::InvalidConfig(format!(
                "consumer {:?} and exchange {:?} must be non-empty words of letters, digits, '-' and '_'",
                self.consumer, self.exchange
            )));
        }
        if self.routing_keys.is_empty() {
            return Err(BusError::InvalidConfig(format!("consumer {} subscribes to no routing key", self.consumer)));
        }
        Ok(())
    }

    /// Whether `routing_key` matches one of the patterns.
    pub fn matches(&self, routing_key: &str) -> bool {
        self.routing_keys.iter().any(|pattern| topic_matches(pattern, routing_key))
    }
}

/// AMQP topic matching: words separated by dots, `*` matches one word, `#` zero or more.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = if routing_key.is_empty() { Vec::new() } else { routing_key.split('.').collect() };
    matches_from(&pattern, &key)
}

fn matches_from(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches_from(rest, &key[skip..])),
        Some((word, rest)) => match key.split_first() {
            Some((first, key_rest)) => (*word == "*" || word == first) && matches_from(rest, key_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_follow_amqp() {
        assert!(topic_matches("order.created", "order.created"));
        assert!(!topic_matches("order.created", "order.cancelled"));
        assert!(topic_matches("order.*", "order.created"));
        assert!(!topic_matches("order.*", "order.created.v2"));
        assert!(topic_matches("order.#", "order.created.v2"));
        assert!(topic_matches("order.#", "order"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("*.failed", "payment.failed"));
        assert!(!topic_matches("*.failed", "payment.succeeded"));
    }

    #[test]
    fn names_carry_the_namespace() {
        let production = BusConfig::default();
        assert_eq!(production.exchange_name("order-events"), "emporium.order-events");
        assert_eq!(production.queue_names("payment", "order-events").queue, "emporium.payment.order-events");
        let unprefixed = BusConfig::default().with_namespace("");
        assert_eq!(unprefixed.exchange_name("order-events"), "order-events");
        assert_eq!(unprefixed.queue_names("payment", "order-events").queue, "payment.order-events");
        let test = BusConfig::default().with_namespace("t1");
        assert_eq!(test.exchange_name("order-events"), "t1.order-events");
        let names = test.queue_names("payment", "order-events");
        assert_eq!(names.dead_letter_exchange, "t1.payment.order-events.dlx");
        assert_eq!(names.dead_letter_queue, "t1.payment.order-events.dlq");
    }

    #[test]
    fn validation_rejects_unusable_settings_and_debug_hides_the_password() {
        assert!(BusConfig::default().validate().is_ok());
        assert!(BusConfig { prefetch: 0, ..BusConfig::default() }.validate().is_err());
        assert!(BusConfig { consumer_batch_size: 257, ..BusConfig::default() }.validate().is_err());
        assert!(BusConfig { consumer_lanes: 0, ..BusConfig::default() }.validate().is_err());
        assert!(BusConfig { consumer_lanes: 33, ..BusConfig::default() }.validate().is_err());
        let step = |prefetch, consumer_batch_size, consumer_lanes| {
            BusConfig { prefetch, consumer_batch_size, consumer_lanes, ..BusConfig::default() }.consumer_step_size()
        };
        assert_eq!(step(256, 64, 4), 256, "a batch per lane");
        assert_eq!(step(100, 64, 4), 100, "no more than the prefetch");
        assert_eq!(step(64, 1, 1), 1);
        for bad in ["a b", "a/b", ".a", "a.", "a..b", "amq", "amq.x", "AMQ.x", &"n".repeat(65)] {
            assert!(BusConfig::default().with_namespace(bad).validate().is_err(), "{bad:?}");
        }
        for good in ["", "emporium", "shop-eu.prod_2", "amqp-test", &"n".repeat(64)] {
            assert!(BusConfig::default().with_namespace(good).validate().is_ok(), "{good:?}");
        }
        assert!(ConsumerSpec::new("pay ment", "order-events", &["#"]).validate().is_err());
        assert!(ConsumerSpec::new("payment", "order-events", &[]).validate().is_err());
        let debug = format!("{:?}", BusConfig::amqp("amqp://guest:secret@h/%2f"));
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn specs_come_from_the_contracts_topology() {
        let payment = ConsumerSpec::from_topology("payment", "order-events").unwrap();
        assert_eq!(payment, ConsumerSpec::new("payment", "order-events", &["order.created"]));
        assert!(ConsumerSpec::from_topology("payment", "auth-events").is_err());
        let notification = ConsumerSpec::topology_of("notification");
        let exchanges: Vec<&str> = notification.iter().map(|spec| spec.exchange.as_str()).collect();
        assert_eq!(exchanges, ["order-events", "payment-events", "auth-events"]);
        assert!(ConsumerSpec::topology_of("auth").is_empty());
        let topology = ConsumerSpec::topology();
        assert_eq!(topology.len(), events::SUBSCRIPTIONS.len());
        assert!(topology.iter().all(|spec| spec.validate().is_ok()));
    }

    #[test]
    fn retry_delays_double_and_cap() {
        let config = BusConfig::default();
        assert_eq!(config.retry_delay_for(1), Duration::from_millis(200));
        assert_eq!(config.retry_delay_for(3), Duration::from_millis(800));
        assert_eq!(config.retry_delay_for(40), Duration::from_secs(10));
    }
}
