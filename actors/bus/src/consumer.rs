//! The inbox consumer actor (`<consumer>.<exchange>/consumer`): applies a batch of events
//! through the service's [`EventHandler`] in one transaction, with their inbox rows, and
//! commits. Its driver ([`crate::consumer_driver`]) owns the broker side and acknowledges
//! only after this commit.
//!
//! A handler failure rolls its transaction back; the batch is then run again without the
//! failed event (the others had no committed effect yet), so one bad event costs its
//! neighbours a re-run, never an effect twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use emporium_runtime::{Behavior, CallMeta, HandlerError, Reply, ServiceHandler};
use tracing::Instrument;

use crate::error::BusError;
use crate::handler::{EventError, EventHandler, ReceivedEvent};
use crate::inbox;
use crate::messages::{ApplyEvents, DeliveryOutcome, EventOutcome, PendingEvent};
use emporium_store::Database;

/// What a consumer actor needs; it outlives restarts of the actor.
pub(crate) struct ConsumerContext {
    pub(crate) consumer: String,
    pub(crate) database: Database,
    pub(crate) handler: Arc<dyn EventHandler>,
}

/// The consumer actor's state: nothing but its context, so a restart starts clean.
pub struct InboxConsumer {
    context: Arc<ConsumerContext>,
}

impl InboxConsumer {
    pub(crate) fn new(context: Arc<ConsumerContext>) -> Self {
        InboxConsumer { context }
    }
}

impl Behavior for InboxConsumer {}

impl ServiceHandler<ApplyEvents> for InboxConsumer {
    fn handle(&mut self, message: ApplyEvents, meta: &CallMeta) -> Reply<Vec<DeliveryOutcome>> {
        let context = self.context.clone();
        let span = tracing::info_span!(
            "apply_events",
            consumer = %context.consumer,
            num_events = message.events.len(),
            trace_id = meta.trace.map(|trace| trace.trace_id_hex()).unwrap_or_default(),
        );
        Box::pin(
            async move {
                apply_batch(&context, message.events)
                    .await
                    .map_err(|error| HandlerError::Reply(error.to_service_error()))
            }
            .instrument(span),
        )
    }
}

/// Applies `events` in one transaction, leaving out the ones whose handler fails.
async fn apply_batch(context: &ConsumerContext, events: Vec<PendingEvent>) -> Result<Vec<DeliveryOutcome>, BusError> {
    let mut outcomes: HashMap<u64, EventOutcome> = HashMap::with_capacity(events.len());
    let order: Vec<u64> = events.iter().map(|pending| pending.delivery_id).collect();
    let mut remaining = events;
    while !remaining.is_empty() {
        let mut tx = context.database.begin().await?;
        let ids: Vec<&str> = remaining.iter().map(|pending| pending.event.envelope.id.as_str()).collect();
        let applied_before = inbox::already_applied(&mut tx, &context.consumer, &ids).await?;
        let mut seen_in_batch: HashSet<&str> = HashSet::new();
        let mut to_apply: Vec<usize> = Vec::new();
        for (index, pending) in remaining.iter().enumerate() {
            let event_id = pending.event.envelope.id.as_str();
            if applied_before.contains(event_id) || !seen_in_batch.insert(event_id) {
                outcomes.insert(pending.delivery_id, EventOutcome::Duplicate);
            } else {
                to_apply.push(index);
            }
        }
        let batch: Vec<ReceivedEvent> = to_apply.iter().map(|&index| remaining[index].event.clone()).collect();
        let tx = context.handler.prepare(&batch, tx).await?;
        let mut applied_now: Vec<usize> = Vec::new();
        let mut failure: Option<(usize, EventError)> = None;
        let mut tx_slot = Some(tx);
        for index in to_apply {
            let pending = &remaining[index];
            let Some(tx) = tx_slot.take() else { break };
            match context.handler.handle(pending.event.clone(), tx).await {
                Ok(tx) => {
                    tx_slot = Some(tx);
                    applied_now.push(index);
                }
                Err(error) => {
                    failure = Some((index, error));
                    break;
                }
            }
        }
        match failure {
            None => {
                let Some(mut tx) = tx_slot else { break };
                let applied_ids: Vec<&str> =
                    applied_now.iter().map(|&index| remaining[index].event.envelope.id.as_str()).collect();
                inbox::record_applied(&mut tx, &context.consumer, &applied_ids).await?;
                tx.commit().await?;
                for &index in &applied_now {
                    outcomes.insert(remaining[index].delivery_id, EventOutcome::Applied);
                }
                break;
            }
            Some((failed_index, error)) => {
                let failed = &remaining[failed_index];
                tracing::warn!(
                    consumer = %context.consumer,
                    event_id = %failed.event.envelope.id,
                    event_type = %failed.event.envelope.event_type,
                    attempt = failed.event.attempt,
                    error = %error,
                    "event handler failed"
                );
                outcomes.insert(
                    failed.delivery_id,
                    EventOutcome::Failed { reason: error.to_string(), permanent: error.is_permanent() },
                );
                // The transaction is gone with the failure: run the others again without it.
                remaining.retain(|pending| !outcomes.contains_key(&pending.delivery_id));
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|delivery_id| outcomes.remove(&delivery_id).map(|outcome| DeliveryOutcome { delivery_id, outcome }))
        .collect())
}
