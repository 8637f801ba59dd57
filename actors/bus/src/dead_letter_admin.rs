//! An operator's handling of a consumer's dead letters (the dashboard's "retry" and "discard"):
//! on RabbitMQ they sit in the consumer's dead-letter queue, in process in its
//! `bus_dead_letter` table. Retrying puts each back on the consumer's own queue (not through
//! its exchange, so no other consumer sees it twice) without the dead-letter headers, and the
//! consumer tries it again with a fresh count of attempts; discarding drops them for good.
//!
//! At most [`MAX_LETTERS_PER_ACTION`] letters move per action, each one confirmed by the broker
//! before it leaves the dead-letter queue, so an interrupted retry loses none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use emporium_cluster::admin::{DeadLetterControl, DeadLetterOperation};
use emporium_store::{Database, Row};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};

use crate::amqp::{
    DEAD_LETTER_ATTEMPTS_HEADER, DEAD_LETTER_CONSUMER_HEADER, DEAD_LETTER_REASON_HEADER, ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
};
use crate::config::QueueNames;
use crate::error::BusError;
use crate::in_process::InProcessQueue;
use crate::transport::Transport;

/// The most letters one action moves.
pub const MAX_LETTERS_PER_ACTION: u64 = 10_000;

/// How long the broker has to confirm one republished letter.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Where one consumer's dead letters are.
pub(crate) struct DeadLetters {
    pub(crate) consumer: String,
    pub(crate) names: QueueNames,
    pub(crate) transport: Transport,
    pub(crate) database: Database,
    pub(crate) in_process_queue: Option<Arc<InProcessQueue>>,
}

impl DeadLetters {
    /// The control the node's operator endpoint calls.
    pub(crate) fn control(self) -> DeadLetterControl {
        let letters = Arc::new(self);
        Arc::new(move |operation| {
            let letters = letters.clone();
            Box::pin(async move {
                let moved = match operation {
                    DeadLetterOperation::Retry => letters.retry().await,
                    DeadLetterOperation::Discard => letters.discard().await,
                };
                moved.map_err(|error| error.to_string())
            })
        })
    }

    async fn retry(&self) -> Result<u64, BusError> {
        let count = match (&self.transport, &self.in_process_queue) {
            (Transport::Amqp { publish, .. }, _) => {
                let channel = publish.channel().await?;
                let moved = retry_on_rabbitmq(&channel, &self.names).await;
                let _ = channel.close(200, ShortString::from("dead letters retried")).await;
                moved?
            }
            (Transport::InProcess(_), Some(queue)) => self.retry_in_process(queue).await?,
            (Transport::InProcess(_), None) => 0,
        };
        tracing::warn!(consumer = %self.consumer, count, "dead letters put back on the queue by an operator");
        Ok(count)
    }

    async fn discard(&self) -> Result<u64, BusError> {
        let count = match &self.transport {
            Transport::Amqp { publish, .. } => {
                let channel = publish.channel().await?;
                let purged = channel
                    .queue_purge(self.names.dead_letter_queue.clone().into(), QueuePurgeOptions::default())
                    .await;
                let _ = channel.close(200, ShortString::from("dead letters discarded")).await;
                u64::from(purged?)
            }
            Transport::InProcess(_) => {
                let deleted = sqlx::query("DELETE FROM bus_dead_letter WHERE consumer = ?")
                    .bind(&self.consumer)
                    .execute(self.database.pool())
                    .await?;
                deleted.rows_affected()
            }
        };
        tracing::warn!(consumer = %self.consumer, count, "dead letters discarded by an operator");
        Ok(count)
    }

    /// Each stored letter goes back to the in-process queue, then leaves the table.
    async fn retry_in_process(&self, queue: &Arc<InProcessQueue>) -> Result<u64, BusError> {
        let rows = sqlx::query("SELECT id, body FROM bus_dead_letter WHERE consumer = ? ORDER BY id LIMIT ?")
            .bind(&self.consumer)
            .bind(MAX_LETTERS_PER_ACTION as i64)
            .fetch_all(self.database.pool())
            .await?;
        let mut count = 0;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let body: String = row.try_get("body")?;
            sqlx::query("DELETE FROM bus_dead_letter WHERE id = ?").bind(id).execute(self.database.pool()).await?;
            queue.enqueue_again(&body);
            count += 1;
        }
        Ok(count)
    }
}

/// Moves letters from the dead-letter queue back to the consumer's queue, one at a time: each
/// is acknowledged in the dead-letter queue only once the broker confirmed its copy.
async fn retry_on_rabbitmq(channel: &lapin::Channel, names: &QueueNames) -> Result<u64, BusError> {
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut count = 0;
    while count < MAX_LETTERS_PER_ACTION {
        let got = channel.basic_get(names.dead_letter_queue.clone().into(), BasicGetOptions { no_ack: false }).await?;
        let Some(message) = got else { break };
        let delivery = message.delivery;
        let dead_letter_headers = [
            DEAD_LETTER_REASON_HEADER,
            DEAD_LETTER_ATTEMPTS_HEADER,
            DEAD_LETTER_CONSUMER_HEADER,
            ORIGINAL_EXCHANGE_HEADER,
            ORIGINAL_ROUTING_KEY_HEADER,
        ];
        let headers: BTreeMap<ShortString, AMQPValue> = delivery
            .properties
            .headers()
            .as_ref()
            .map(|headers| {
                headers
                    .inner()
                    .iter()
                    .filter(|(name, _)| !dead_letter_headers.contains(&name.as_str()))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let properties = delivery.properties.clone().with_headers(FieldTable::from(headers));
        let confirmed = async {
            let confirm = channel
                .basic_publish(
                    ShortString::from(""),
                    names.queue.clone().into(),
                    BasicPublishOptions::default(),
                    &delivery.data,
                    properties,
                )
                .await?;
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(confirmation) => Ok::<bool, BusError>(confirmation?.is_ack()),
                Err(_) => Err(BusError::BrokerTimeout("confirming a retried dead letter".to_string())),
            }
        }
        .await;
        match confirmed {
            Ok(true) => {
                delivery.acker.ack(BasicAckOptions::default()).await?;
                count += 1;
            }
            Ok(false) | Err(_) => {
                let _ = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await;
                return match confirmed {
                    Err(error) => Err(error),
                    _ => Err(BusError::BrokerTimeout("the broker refused a retried dead letter".to_string())),
                };
            }
        }
    }
    Ok(count)
}
