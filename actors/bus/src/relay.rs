//! The outbox relay actor (`<service>.outbox/relay`): publishes a service's pending outbox rows
//! in id order with publisher confirms and marks them sent. Its driver
//! ([`crate::relay_driver`]) tells it when to.

use std::sync::Arc;
use std::time::Duration;

use emporium_runtime::{Behavior, CallMeta, HandlerError, Reply, ServiceHandler};
use lapin::Channel;
use parking_lot::Mutex;

use crate::amqp::publish_confirmed;
use crate::config::BusConfig;
use crate::error::BusError;
use crate::messages::{MeasureOutboxLag, PublishPendingEvents, PublishProgress};
use crate::outbox::{self, OutboxLag};
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
    publish_channel: Mutex<Option<Channel>>,
}

impl RelayContext {
    pub(crate) fn new(service: &str, database: Database, config: BusConfig, transport: Transport) -> Self {
        RelayContext { service: service.to_string(), database, config, transport, publish_channel: Mutex::new(None) }
    }

    /// Forgets the publishing channel (after a failure or a restart).
    pub(crate) fn drop_channel(&self) {
        self.publish_channel.lock().take();
    }

    #[tracing::instrument(skip(self), fields(service = %self.service))]
    async fn publish_pending(&self, max_rows: usize) -> Result<PublishProgress, BusError> {
        let rows = outbox::fetch_pending(&self.database, &self.service, max_rows).await?;
        if rows.is_empty() {
            return Ok(PublishProgress { num_published: 0, more_pending: false });
        }
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        match &self.transport {
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
                if let Err(error) =
                    publish_confirmed(&channel, &self.config, &self.service, &rows, CONFIRM_TIMEOUT).await
                {
                    self.drop_channel();
                    publish.record_failure(&error);
                    if let Err(update_error) = outbox::record_failed_attempt(&self.database, &ids).await {
                        tracing::warn!(service = %self.service, error = %update_error, "could not count a failed publish");
                    }
                    metrics::counter!("emporium_outbox_publish_failures_total", "service" => self.service.clone())
                        .increment(1);
                    return Err(error);
                }
            }
            Transport::InProcess(broker) => broker.publish(&rows).wait().await,
        }
        outbox::mark_sent(&self.database, &ids).await?;
        metrics::counter!("emporium_outbox_published_total", "service" => self.service.clone())
            .increment(rows.len() as u64);
        tracing::debug!(service = %self.service, num_rows = rows.len(), last_id = ids.last().copied().unwrap_or(0), "published outbox rows");
        Ok(PublishProgress { num_published: rows.len(), more_pending: rows.len() == max_rows })
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
