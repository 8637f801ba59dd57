//! RabbitMQ through lapin: connections that come back after the broker did, the topology, and
//! how an event is written to and read from an AMQP message.
//!
//! Topology: the publishing connection declares the whole topology of the contracts
//! ([`emporium_contracts::events::SUBSCRIPTIONS`]: every exchange, every subscription's queue
//! with its bindings, dead-letter exchange and dead-letter queue) each time it connects, before
//! anything is published on it, with the same arguments a consumer declares its queue with, so
//! an event published before its consumer started waits in the consumer's queue. Events a
//! subscription of the topology wants are published `mandatory`: one the broker returns
//! (unroutable: its queue was deleted, or declared in another namespace) is not confirmed as
//! sent (`publish_confirmed`).
//!
//! Wire format: structured-mode CloudEvents (the whole envelope is the body) with content type
//! `application/cloudevents+json`, delivery mode 2 (persistent), `message_id` = event id,
//! `type` = event type, `app_id` = publishing service, and the W3C `traceparent` in the AMQP
//! headers. Dead letters carry `x-emporium-dead-letter-reason`, `x-emporium-attempts`,
//! `x-emporium-consumer` and the original exchange and routing key.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use emporium_contracts::events;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use parking_lot::Mutex;

use crate::config::{BusConfig, ConsumerSpec, QueueNames};
use crate::error::{BusError, redact_url};
use crate::outbox::OutboxRow;

/// The content type of a structured-mode CloudEvent in JSON.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";
/// The header carrying the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The header of a dead letter that says why it was set aside.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-emporium-dead-letter-reason";
/// The header of a dead letter that says how many times its handler ran.
pub const DEAD_LETTER_ATTEMPTS_HEADER: &str = "x-emporium-attempts";
/// The header of a dead letter that names the consumer that gave up.
pub const DEAD_LETTER_CONSUMER_HEADER: &str = "x-emporium-consumer";
/// The header of a dead letter with its original exchange.
pub const ORIGINAL_EXCHANGE_HEADER: &str = "x-emporium-original-exchange";
/// The header of a dead letter with its original routing key.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-emporium-original-routing-key";

/// The largest AMQP frame a connection proposes, unless its URL sets `frame_max`. lapin keeps a
/// receive and a send buffer of 32 frames per connection, zero-filled at the negotiated size:
/// at RabbitMQ's default of 128 KiB that is 8 MiB resident per connection (two per node), at
/// 16 KiB 1 MiB. Events are a few KiB; a larger message is sent in more frames.
pub const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// The URI to connect to: `url` with `frame_max` set to [`DEFAULT_FRAME_MAX`] unless the URL
/// sets it.
pub(crate) fn connection_uri(url: &str) -> Result<AMQPUri, String> {
    let mut uri: AMQPUri = url.parse()?;
    uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
    Ok(uri)
}

/// How long connecting, opening a channel or declaring the topology may take.
pub(crate) const BROKER_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the broker is reachable, and the last reason it was not; shared by every
/// connection of the bus for readiness.
#[derive(Debug, Default)]
pub(crate) struct BrokerHealth {
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl BrokerHealth {
    pub(crate) fn record_up(&self) {
        self.connected.store(true, Ordering::Release);
    }

    pub(crate) fn record_down(&self, reason: String) {
        self.connected.store(false, Ordering::Release);
        *self.last_error.lock() = Some(reason);
    }

    pub(crate) fn readiness(&self) -> Result<(), String> {
        if self.connected.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(self.last_error.lock().clone().unwrap_or_else(|| "rabbitmq: not connected yet".to_string()))
    }
}

/// One AMQP connection, opened again on demand after it was lost.
pub(crate) struct AmqpConnector {
    url: String,
    purpose: &'static str,
    connection: tokio::sync::Mutex<Option<Connection>>,
    health: Arc<BrokerHealth>,
    /// Declares the whole topology in this namespace on every new connection.
    topology: Option<BusConfig>,
}

impl AmqpConnector {
    pub(crate) fn new(url: &str, purpose: &'static str, health: Arc<BrokerHealth>) -> Self {
        AmqpConnector {
            url: url.to_string(),
            purpose,
            connection: tokio::sync::Mutex::new(None),
            health,
            topology: None,
        }
    }

    /// The same connector, declaring the whole topology of `config`'s namespace (see
    /// [`declare_topology`]) each time it connects, before it hands out a channel.
    pub(crate) fn declaring_topology(mut self, config: &BusConfig) -> Self {
        self.topology = Some(config.clone());
        self
    }

    /// Whether the connection is up now.
    pub(crate) async fn is_connected(&self) -> bool {
        self.connection.lock().await.as_ref().is_some_and(|connection| connection.status().connected())
    }

    /// A new channel on the connection, connecting first when it is down. Bounded in time: a
    /// broker that accepts the socket but does not answer counts as unreachable.
    pub(crate) async fn channel(&self) -> Result<Channel, BusError> {
        match tokio::time::timeout(BROKER_OPERATION_TIMEOUT, self.channel_unbounded()).await {
            Ok(result) => result,
            Err(_) => {
                let error = BusError::BrokerUnreachable {
                    url: redact_url(&self.url),
                    reason: format!("no answer within {BROKER_OPERATION_TIMEOUT:?}"),
                };
                self.health.record_down(error.to_string());
                if let Ok(mut slot) = self.connection.try_lock() {
                    *slot = None;
                }
                Err(error)
            }
        }
    }

    async fn channel_unbounded(&self) -> Result<Channel, BusError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref()
            && connection.status().connected()
        {
            match connection.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(error) => {
                    self.health.record_down(format!("rabbitmq channel failed: {error}"));
                    *slot = None;
                    return Err(error.into());
                }
            }
        }
        *slot = None;
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(format!("emporium-bus-{}", self.purpose)));
        let uri = match connection_uri(&self.url) {
            Ok(uri) => uri,
            Err(reason) => {
                let error = BusError::BrokerUnreachable { url: redact_url(&self.url), reason };
                self.health.record_down(error.to_string());
                return Err(error);
            }
        };
        let connection = match Connection::connect_uri(uri, properties).await {
            Ok(connection) => connection,
            Err(error) => {
                let error = BusError::BrokerUnreachable { url: redact_url(&self.url), reason: error.to_string() };
                self.health.record_down(error.to_string());
                return Err(error);
            }
        };
        tracing::info!(purpose = self.purpose, url = %redact_url(&self.url), "connected to rabbitmq");
        let channel = connection.create_channel().await?;
        if let Some(config) = &self.topology
            && let Err(error) = declare_topology(&channel, config).await
        {
            // Not kept: the next attempt connects and declares again.
            let _ = connection.close(200, ShortString::from("topology not declared")).await;
            self.health.record_down(format!("rabbitmq topology could not be declared: {error}"));
            return Err(error);
        }
        self.health.record_up();
        *slot = Some(connection);
        Ok(channel)
    }

    /// A channel in publisher-confirm mode.
    pub(crate) async fn confirm_channel(&self) -> Result<Channel, BusError> {
        let channel = self.channel().await?;
        match tokio::time::timeout(BROKER_OPERATION_TIMEOUT, channel.confirm_select(ConfirmSelectOptions::default()))
            .await
        {
            Ok(result) => result?,
            Err(_) => return Err(BusError::BrokerTimeout("confirm.select".to_string())),
        }
        Ok(channel)
    }

    /// Closes the connection, if open.
    pub(crate) async fn close(&self) {
        if let Some(connection) = self.connection.lock().await.take() {
            let _ = connection.close(200, ShortString::from("bus stopped")).await;
        }
    }

    /// Notes a failure seen by a user of the connection (a publish or a consume that broke).
    pub(crate) fn record_failure(&self, error: &BusError) {
        self.health.record_down(error.to_string());
    }
}

/// Declares the durable topic exchanges (idempotent).
pub(crate) async fn declare_exchanges(
    channel: &Channel,
    config: &BusConfig,
    exchanges: &[&str],
) -> Result<(), BusError> {
    for exchange in exchanges {
        channel
            .exchange_declare(
                config.exchange_name(exchange).into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Declares a consumer's queue, its bindings, its dead-letter exchange and queue
/// (idempotent).
pub(crate) async fn declare_consumer_queue(
    channel: &Channel,
    config: &BusConfig,
    spec: &ConsumerSpec,
    names: &QueueNames,
) -> Result<(), BusError> {
    declare_exchanges(channel, config, &[spec.exchange.as_str()]).await?;
    let durable_exchange = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    let durable_queue = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel
        .exchange_declare(
            names.dead_letter_exchange.clone().into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel.queue_declare(names.dead_letter_queue.clone().into(), durable_queue, FieldTable::default()).await?;
    channel
        .queue_bind(
            names.dead_letter_queue.clone().into(),
            names.dead_letter_exchange.clone().into(),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(names.dead_letter_exchange.clone())),
    );
    channel.queue_declare(names.queue.clone().into(), durable_queue, arguments).await?;
    for routing_key in &spec.routing_keys {
        channel
            .queue_bind(
                names.queue.clone().into(),
                config.exchange_name(&spec.exchange).into(),
                routing_key.clone().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Declares the whole topology of the contracts in `config`'s namespace (idempotent): every
/// exchange, and every subscription's queue with its bindings, dead-letter exchange and
/// dead-letter queue, exactly as [`declare_consumer_queue`] declares them for a consumer.
pub(crate) async fn declare_topology(channel: &Channel, config: &BusConfig) -> Result<(), BusError> {
    declare_exchanges(channel, config, &events::ALL_EXCHANGES).await?;
    for spec in ConsumerSpec::topology() {
        let names = config.queue_names(&spec.consumer, &spec.exchange);
        declare_consumer_queue(channel, config, &spec, &names).await?;
    }
    tracing::debug!(namespace = %config.namespace, "rabbitmq topology declared");
    Ok(())
}

/// Whether `row` must reach a queue: some subscription of the contracts' topology wants it.
/// Such rows are published `mandatory`.
pub(crate) fn must_be_routed(row: &OutboxRow) -> bool {
    events::is_consumed(&row.exchange, &row.routing_key)
}

/// The properties of an outbox row's message.
pub(crate) fn event_properties(service: &str, row: &OutboxRow) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(traceparent) = &row.traceparent {
        headers.insert(TRACEPARENT_HEADER.into(), AMQPValue::LongString(LongString::from(traceparent.clone())));
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
        .with_message_id(row.event_id.clone().into())
        .with_type(row.routing_key.clone().into())
        .with_app_id(service.to_string().into())
        .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
        .with_headers(headers)
}

/// Publishes `rows` on `channel` (in confirm mode) in order, `mandatory` when
/// [`must_be_routed`], then waits until the broker confirmed every one of them; any refusal
/// or failure fails the whole batch. Answers the event ids of the rows the broker returned
/// (unroutable): those are not sent.
///
/// A returned message reaches lapin before the confirm of its publish, but lapin hands it to
/// whichever confirm completes next, so returns are matched to rows by message id (the event
/// id), never by position; once every confirm of the batch is in, every return of the batch
/// has been handed out.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    config: &BusConfig,
    service: &str,
    rows: &[OutboxRow],
    confirm_timeout: Duration,
) -> Result<HashSet<String>, BusError> {
    let mut confirms = Vec::with_capacity(rows.len());
    for row in rows {
        let confirm = channel
            .basic_publish(
                config.exchange_name(&row.exchange).into(),
                row.routing_key.clone().into(),
                BasicPublishOptions { mandatory: must_be_routed(row), ..BasicPublishOptions::default() },
                row.envelope.as_bytes(),
                event_properties(service, row),
            )
            .await?;
        confirms.push(confirm);
    }
    let all_confirmed = async {
        let mut returned_event_ids = HashSet::new();
        for (confirm, row) in confirms.into_iter().zip(rows) {
            let confirmation = confirm.await?;
            if !confirmation.is_ack() {
                return Err(BusError::PublishRefused(format!("event {} was nacked", row.event_id)));
            }
            if let Some(returned) = confirmation.take_message() {
                match returned.delivery.properties.message_id() {
                    Some(event_id) => returned_event_ids.insert(event_id.as_str().to_string()),
                    None => {
                        return Err(BusError::PublishRefused(
                            "the broker returned a message without its event id".to_string(),
                        ));
                    }
                };
            }
        }
        Ok(returned_event_ids)
    };
    match tokio::time::timeout(confirm_timeout, all_confirmed).await {
        Ok(result) => result,
        Err(_) => Err(BusError::BrokerTimeout(format!("no publisher confirm within {confirm_timeout:?}"))),
    }
}

/// A text header of a message.
pub fn header_text(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.as_str().to_string()),
        _ => None,
    }
}

/// What a dead letter says about itself.
pub(crate) struct DeadLetterNote<'a> {
    pub(crate) consumer: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) attempts: u32,
    pub(crate) original_exchange: &'a str,
    pub(crate) original_routing_key: &'a str,
}

/// The properties of a dead letter: the original ones plus why it was set aside.
pub(crate) fn dead_letter_properties(original: &BasicProperties, note: &DeadLetterNote<'_>) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    let mut text = |name: &str, value: &str| {
        headers.insert(name.into(), AMQPValue::LongString(LongString::from(value.to_string())));
    };
    text(DEAD_LETTER_REASON_HEADER, note.reason);
    text(DEAD_LETTER_CONSUMER_HEADER, note.consumer);
    text(ORIGINAL_EXCHANGE_HEADER, note.original_exchange);
    text(ORIGINAL_ROUTING_KEY_HEADER, note.original_routing_key);
    headers.insert(DEAD_LETTER_ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(note.attempts as i64));
    original.clone().with_delivery_mode(2).with_headers(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> OutboxRow {
        OutboxRow {
            id: 1,
            event_id: "e1".into(),
            exchange: "order-events".into(),
            routing_key: "order.created".into(),
            subject: "o1".into(),
            envelope: "{}".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        }
    }

    #[test]
    fn connections_propose_small_frames_unless_the_url_sets_them() {
        let uri = connection_uri("amqp://guest:guest@127.0.0.1:5672/%2f").expect("parsed");
        assert_eq!(uri.query.frame_max, Some(DEFAULT_FRAME_MAX));
        assert_eq!(uri.authority.host, "127.0.0.1");
        let uri = connection_uri("amqp://guest:guest@127.0.0.1:5672/%2f?frame_max=131072").expect("parsed");
        assert_eq!(uri.query.frame_max, Some(131_072), "the operator's setting wins");
        assert!(connection_uri("http://not-amqp").is_err());
    }

    #[test]
    fn event_messages_are_persistent_cloudevents_with_the_trace() {
        let properties = event_properties("order", &row());
        assert_eq!(*properties.delivery_mode(), Some(2));
        assert_eq!(properties.content_type().as_ref().map(|value| value.as_str()), Some(CLOUDEVENTS_CONTENT_TYPE));
        assert_eq!(properties.message_id().as_ref().map(|value| value.as_str()), Some("e1"));
        assert_eq!(
            header_text(&properties, TRACEPARENT_HEADER).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }

    #[test]
    fn dead_letters_keep_the_original_headers_and_say_why() {
        let original = event_properties("order", &row());
        let note = DeadLetterNote {
            consumer: "payment",
            reason: "handler failed 5 times: boom",
            attempts: 5,
            original_exchange: "order-events",
            original_routing_key: "order.created",
        };
        let properties = dead_letter_properties(&original, &note);
        assert_eq!(
            header_text(&properties, DEAD_LETTER_REASON_HEADER).as_deref(),
            Some("handler failed 5 times: boom")
        );
        assert!(header_text(&properties, TRACEPARENT_HEADER).is_some());
        assert_eq!(header_text(&properties, ORIGINAL_ROUTING_KEY_HEADER).as_deref(), Some("order.created"));
    }

    #[test]
    fn an_unreachable_broker_is_reported_with_the_reason() {
        let health = BrokerHealth::default();
        assert!(health.readiness().is_err());
        health.record_up();
        assert!(health.readiness().is_ok());
        health.record_down("rabbitmq unreachable at amqp://h: refused".into());
        assert_eq!(health.readiness().unwrap_err(), "rabbitmq unreachable at amqp://h: refused");
    }
}
