//! The outbox relay actor (`<service>.outbox/relay`): publishes a service's pending outbox rows
//! in id order with publisher confirms and marks them sent. Its driver
//! ([`crate::relay_driver`]) tells it when to.
//!
//! A row whose event a consumer of the contracts' topology wants but that reached no queue
//! (RabbitMQ returned the `mandatory` publish, or no in-process queue took it) is not marked
//! sent: the relay marks the rest of the batch sent, counts it (`emporium_bus_unroutable_total`,
//! the snapshot's `numUnroutable`), and answers [`BusError::Unroutable`], so the batch counts
//! as an error of the relay actor in the supervision tree and the driver tries again after a
//! backoff.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::spans::{SpanKind, SpanTimer};
use emporium_runtime::{Behavior, CallMeta, HandlerError, Reply, ServiceHandler, TraceParent};
use lapin::Channel;
use parking_lot::Mutex;

use crate::amqp::{must_be_routed, publish_confirmed};
use crate::config::BusConfig;
use crate::error::BusError;
use crate::messages::{MeasureOutboxLag, PublishPendingEvents, PublishProgress};
use crate::outbox::{self, OutboxLag, OutboxRow};
use crate::relay_driver::RelayState;
use crate::transport::Transport;
use emporium_store::Database;

/// How long a batch waits for the broker's confirms before it counts as failed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// What a relay needs; it outlives restarts of the actor.
pub(crate) struct RelayContext {
    pub(crate) service: String,
    pub(crate) database: Database,
    pub(crate) config: BusConfig,
    pub(crate) transport: Transport,
    /// The snapshot and counters the actor and the driver share.
    pub(crate) state: Arc<RelayState>,
    publish_channel: Mutex<Option<Channel>>,
}

impl RelayContext {
    pub(crate) fn new(service: &str, database: Database, config: BusConfig, transport: Transport) -> Self {
        RelayContext {
            service: service.to_string(),
            database,
            config,
            transport,
            state: Arc::new(RelayState::new(service)),
            publish_channel: Mutex::new(None),
        }
    }

    /// Forgets the publishing channel (after a failure or a restart).
    pub(crate) fn drop_channel(&self) {
        self.publish_channel.lock().take();
    }

    #[tracing::instrument(skip(self), fields(service = %self.service))]
    async fn publish_pending(&self, max_rows: usize) -> Result<PublishProgress, BusError> {
        let mut rows = outbox::fetch_pending(&self.database, &self.service, max_rows).await?;
        if rows.is_empty() {
            return Ok(PublishProgress { num_published: 0, more_pending: false });
        }
        let mut publish_spans = self.start_publish_spans(&mut rows);
        let unroutable_ids = match &self.transport {
            Transport::Amqp { publish, .. } => {
                let cached = self.publish_channel.lock().clone().filter(|channel| channel.status().connected());
                let channel = match cached {
                    Some(channel) => channel,
                    None => {
                        let channel = publish.confirm_channel().await?;
                        *self.publish_channel.lock() = Some(channel.clone());
                        channel
                    }
                };
                match publish_confirmed(&channel, &self.config, &self.service, &rows, CONFIRM_TIMEOUT).await {
                    Ok(returned_event_ids) => rows
                        .iter()
                        .filter(|row| returned_event_ids.contains(&row.event_id))
                        .map(|row| row.id)
                        .collect::<HashSet<i64>>(),
                    Err(error) => {
                        self.drop_channel();
                        publish.record_failure(&error);
                        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
                        if let Err(update_error) = outbox::record_failed_attempt(&self.database, &ids).await {
                            tracing::warn!(service = %self.service, error = %update_error, "could not count a failed publish");
                        }
                        metrics::counter!("emporium_outbox_publish_failures_total", "service" => self.service.clone())
                            .increment(1);
                        for (_, span) in publish_spans.drain() {
                            span.finish(Some(error.to_string()));
                        }
                        return Err(error);
                    }
                }
            }
            Transport::InProcess(broker) => {
                let routed = broker.publish(&rows);
                routed.tracker.wait().await;
                // A row no consumer of the topology wants may reach no queue: nobody reads it.
                let unrouted: HashSet<i64> = routed.unrouted_row_ids.into_iter().collect();
                rows.iter().filter(|row| unrouted.contains(&row.id) && must_be_routed(row)).map(|row| row.id).collect()
            }
        };
        let (unroutable, sent): (Vec<&OutboxRow>, Vec<&OutboxRow>) =
            rows.iter().partition(|row| unroutable_ids.contains(&row.id));
        for (row_id, span) in publish_spans.drain() {
            span.finish(unroutable_ids.contains(&row_id).then(|| "the event reached no queue".to_string()));
        }
        let sent_ids: Vec<i64> = sent.iter().map(|row| row.id).collect();
        outbox::mark_sent(&self.database, &sent_ids).await?;
        self.state.record_published(sent_ids.len());
        metrics::counter!("emporium_outbox_published_total", "service" => self.service.clone())
            .increment(sent_ids.len() as u64);
        tracing::debug!(service = %self.service, num_rows = sent_ids.len(), last_id = sent_ids.last().copied().unwrap_or(0), "published outbox rows");
        if let Some(first) = unroutable.first() {
            return Err(self.keep_unroutable(&unroutable, first).await);
        }
        Ok(PublishProgress { num_published: sent_ids.len(), more_pending: rows.len() == max_rows })
    }

    /// Starts a PRODUCER span per traced row (when spans are recorded) and makes it the
    /// `traceparent` the message carries, so that its consumers are its children.
    fn start_publish_spans(&self, rows: &mut [OutboxRow]) -> HashMap<i64, SpanTimer> {
        let mut spans = HashMap::new();
        if !emporium_runtime::spans::enabled() {
            return spans;
        }
        let system = match self.transport {
            Transport::Amqp { .. } => "rabbitmq",
            Transport::InProcess(_) => "emporium_in_process",
        };
        for row in rows.iter_mut() {
            let Some(writer) = row.traceparent.as_deref().and_then(TraceParent::parse) else { continue };
            let publish = writer.child();
            let exchange = self.config.exchange_name(&row.exchange);
            let Some(mut span) =
                SpanTimer::start(format!("publish {exchange}"), SpanKind::Producer, publish, Some(writer.span_id))
            else {
                continue;
            };
            span.attribute("messaging.system", system)
                .attribute("messaging.operation.type", "send")
                .attribute("messaging.operation.name", "publish")
                .attribute("messaging.destination.name", exchange)
                .attribute("messaging.rabbitmq.destination.routing_key", row.routing_key.as_str())
                .attribute("messaging.message.id", row.event_id.as_str());
            row.traceparent = Some(publish.to_string());
            spans.insert(row.id, span);
        }
        spans
    }

    /// Counts `unroutable` (left pending in the outbox) everywhere an operator looks, and
    /// answers the error that makes the driver back off.
    async fn keep_unroutable(&self, unroutable: &[&OutboxRow], first: &OutboxRow) -> BusError {
        let ids: Vec<i64> = unroutable.iter().map(|row| row.id).collect();
        if let Err(update_error) = outbox::record_failed_attempt(&self.database, &ids).await {
            tracing::warn!(service = %self.service, error = %update_error, "could not count an unroutable publish");
        }
        self.state.record_unroutable(unroutable.len());
        for row in unroutable {
            metrics::counter!(
                "emporium_bus_unroutable_total",
                "service" => self.service.clone(),
                "event_type" => row.routing_key.clone()
            )
            .increment(1);
        }
        let error = BusError::Unroutable {
            num_unroutable: unroutable.len(),
            exchange: self.config.exchange_name(&first.exchange),
            first_event_type: first.routing_key.clone(),
            first_event_id: first.event_id.clone(),
        };
        tracing::debug!(service = %self.service, num_unroutable = unroutable.len(), error = %error, "events reached no queue; they stay in the outbox (the driver warns and backs off)");
        error
    }
}

/// The relay actor's state: nothing but its context, so a restart starts clean.
pub struct OutboxRelay {
    context: Arc<RelayContext>,
}

impl OutboxRelay {
    pub(crate) fn new(context: Arc<RelayContext>) -> Self {
        OutboxRelay { context }
    }
}

impl Behavior for OutboxRelay {}

impl ServiceHandler<PublishPendingEvents> for OutboxRelay {
    fn handle(&mut self, message: PublishPendingEvents, _meta: &CallMeta) -> Reply<PublishProgress> {
        let context = self.context.clone();
        Box::pin(async move {
            context
                .publish_pending(message.max_rows)
                .await
                .map_err(|error| HandlerError::Reply(error.to_service_error()))
        })
    }
}

impl ServiceHandler<MeasureOutboxLag> for OutboxRelay {
    fn handle(&mut self, _message: MeasureOutboxLag, _meta: &CallMeta) -> Reply<OutboxLag> {
        let context = self.context.clone();
        Box::pin(async move {
            outbox::measure_lag(&context.database, &context.service)
                .await
                .map_err(|error| HandlerError::Reply(error.to_service_error()))
        })
    }
}
