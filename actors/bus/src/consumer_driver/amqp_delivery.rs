//! Delivery on RabbitMQ: a consuming session (manual acks, bounded prefetch, a confirm channel
//! for dead letters), batches taken from it, and how each delivery is acknowledged, delivered
//! again or dead-lettered. Every broker round trip is bounded in time: a broker that does not
//! answer breaks the session and the driver reconnects.
//!
//! Dropping a session (a driver run that panicked) cancels its consumer and closes its
//! channels, so the broker delivers what it held again.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use super::delivery::{DeliveryIds, Incoming, Settle};
use crate::amqp::{self, AmqpConnector, DeadLetterNote, TRACEPARENT_HEADER};
use crate::config::{BusConfig, ConsumerSpec, QueueNames};
use crate::error::BusError;

/// How long an ack, a nack or a dead letter's confirm may take before the session counts as
/// broken.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle consumer checks that its channel is still open.
const CHANNEL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What settling an AMQP delivery needs.
pub(crate) struct AmqpDelivery {
    acker: lapin::Acker,
    properties: BasicProperties,
    exchange: String,
    routing_key: String,
}

/// A consuming session on RabbitMQ.
pub(crate) struct AmqpSession {
    channel: Channel,
    consumer: lapin::Consumer,
    dead_letter_channel: Channel,
}

impl AmqpSession {
    /// Declares the consumer's queue (idempotent) and starts consuming it.
    pub(crate) async fn open(
        connector: &AmqpConnector,
        config: &BusConfig,
        spec: &ConsumerSpec,
        names: &QueueNames,
    ) -> Result<AmqpSession, BusError> {
        let channel = connector.channel().await?;
        amqp::declare_consumer_queue(&channel, config, spec, names).await?;
        channel.basic_qos(config.prefetch, BasicQosOptions::default()).await?;
        let dead_letter_channel = connector.confirm_channel().await?;
        let consumer = channel
            .basic_consume(
                names.queue.clone().into(),
                ShortString::from(format!("{}-{}", spec.consumer, uuid::Uuid::new_v4().simple())),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(AmqpSession { channel, consumer, dead_letter_channel })
    }

    /// Closes both channels; unacknowledged deliveries go back to the queue.
    pub(crate) async fn close(self) {
        let _ = self.channel.close(200, ShortString::from("consumer stopped")).await;
        let _ = self.dead_letter_channel.close(200, ShortString::from("consumer stopped")).await;
    }
}

/// Takes up to `max` deliveries, waiting for the first.
pub(crate) async fn next_batch(
    session: &mut AmqpSession,
    max: usize,
    ids: &mut DeliveryIds,
) -> Result<Vec<Incoming>, BusError> {
    let AmqpSession { channel, consumer, .. } = session;
    let mut batch = Vec::with_capacity(max);
    // A connection that died under an idle consumer does not always end its stream: check the
    // channel while waiting.
    let first = loop {
        tokio::select! {
            next = consumer.next() => break next,
            _ = tokio::time::sleep(CHANNEL_CHECK_INTERVAL) => {
                if !channel.status().connected() {
                    return Err(BusError::BrokerTimeout("the consuming channel closed".to_string()));
                }
            }
        }
    };
    match first {
        Some(Ok(delivery)) => batch.push(incoming(delivery, ids)),
        Some(Err(error)) => return Err(error.into()),
        None => return Err(BusError::Unexpected(anyhow::anyhow!("the broker cancelled the consumer"))),
    }
    while batch.len() < max {
        match consumer.next().now_or_never() {
            Some(Some(Ok(delivery))) => batch.push(incoming(delivery, ids)),
            // Deliveries already taken stay unacked and come back with the queue.
            Some(Some(Err(error))) => return Err(error.into()),
            Some(None) | None => break,
        }
    }
    Ok(batch)
}

/// The driver's view of an AMQP delivery.
fn incoming(delivery: lapin::message::Delivery, ids: &mut DeliveryIds) -> Incoming {
    let traceparent = amqp::header_text(&delivery.properties, TRACEPARENT_HEADER);
    Incoming {
        delivery_id: ids.next(),
        body: delivery.data,
        traceparent,
        settle: Settle::Amqp(Box::new(AmqpDelivery {
            acker: delivery.acker,
            properties: delivery.properties,
            exchange: delivery.exchange.as_str().to_string(),
            routing_key: delivery.routing_key.as_str().to_string(),
        })),
    }
}

/// Acknowledges `delivery` within [`SETTLE_TIMEOUT`].
pub(crate) async fn ack(delivery: AmqpDelivery) -> Result<(), BusError> {
    match tokio::time::timeout(SETTLE_TIMEOUT, delivery.acker.ack(BasicAckOptions::default())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(BusError::BrokerTimeout("acknowledging a delivery".to_string())),
    }
}

/// Gives `delivery` back to the queue. On a dead channel the broker requeues it anyway.
pub(crate) async fn requeue(delivery: AmqpDelivery) {
    let nack = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() });
    let _ = tokio::time::timeout(SETTLE_TIMEOUT, nack).await;
}

/// What becomes of a dead-lettered delivery once the broker answered for its copy.
#[derive(Debug)]
enum AfterDeadLetterConfirm {
    /// The copy is safe: acknowledge the original.
    AckOriginal,
    /// The broker refused the copy: give the original back and report it.
    RequeueOriginal(BusError),
    /// No answer: the session is broken (the original comes back with the queue).
    Fail(BusError),
}

fn after_dead_letter_confirm(confirmed: Result<bool, BusError>) -> AfterDeadLetterConfirm {
    match confirmed {
        Ok(true) => AfterDeadLetterConfirm::AckOriginal,
        Ok(false) => AfterDeadLetterConfirm::RequeueOriginal(BusError::PublishRefused("dead letter was nacked".into())),
        Err(error) => AfterDeadLetterConfirm::Fail(error),
    }
}

/// Publishes a copy of `delivery` (with `body`) to the consumer's dead-letter exchange, with
/// `reason` and `attempts` in its headers, waits for the broker's confirm, then acknowledges
/// the original.
pub(crate) async fn dead_letter(
    session: &AmqpSession,
    delivery: AmqpDelivery,
    body: &[u8],
    names: &QueueNames,
    consumer: &str,
    reason: &str,
    attempts: u32,
) -> Result<(), BusError> {
    let AmqpDelivery { acker, properties, exchange, routing_key } = delivery;
    let note =
        DeadLetterNote { consumer, reason, attempts, original_exchange: &exchange, original_routing_key: &routing_key };
    let published = session
        .dead_letter_channel
        .basic_publish(
            names.dead_letter_exchange.clone().into(),
            names.queue.clone().into(),
            BasicPublishOptions::default(),
            body,
            amqp::dead_letter_properties(&properties, &note),
        )
        .await;
    let confirmed = match published {
        Ok(confirm) => match tokio::time::timeout(SETTLE_TIMEOUT, confirm).await {
            Ok(confirmation) => confirmation.map(|confirmation| confirmation.is_ack()).map_err(BusError::from),
            Err(_) => Err(BusError::BrokerTimeout("confirming a dead letter".to_string())),
        },
        Err(error) => Err(error.into()),
    };
    match after_dead_letter_confirm(confirmed) {
        AfterDeadLetterConfirm::AckOriginal => {
            let ack = acker.ack(BasicAckOptions::default());
            if tokio::time::timeout(SETTLE_TIMEOUT, ack).await.is_err() {
                return Err(BusError::BrokerTimeout("acknowledging a dead letter".to_string()));
            }
            Ok(())
        }
        AfterDeadLetterConfirm::RequeueOriginal(error) => {
            let nack = acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() });
            let _ = tokio::time::timeout(SETTLE_TIMEOUT, nack).await;
            Err(error)
        }
        AfterDeadLetterConfirm::Fail(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_is_acked_only_after_the_copy_is_confirmed() {
        assert!(matches!(after_dead_letter_confirm(Ok(true)), AfterDeadLetterConfirm::AckOriginal));
        match after_dead_letter_confirm(Ok(false)) {
            AfterDeadLetterConfirm::RequeueOriginal(BusError::PublishRefused(text)) => {
                assert_eq!(text, "dead letter was nacked")
            }
            other => panic!("a refused copy gives the original back: {other:?}"),
        }
        let timeout = BusError::BrokerTimeout("confirming a dead letter".into());
        assert!(matches!(
            after_dead_letter_confirm(Err(timeout)),
            AfterDeadLetterConfirm::Fail(BusError::BrokerTimeout(_))
        ));
    }
}
