//! One batch through the consumer actor: read the envelopes (dead-lettering what cannot be
//! read), hand the events to the actor, and settle each delivery by its outcome: acknowledge
//! what was applied or was a duplicate, retry or dead-letter what failed (see
//! [`super::retry`]), and deliver again what the actor could not answer for.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use emporium_contracts::{EventEnvelope, ServiceError};
use emporium_runtime::TraceParent;
use emporium_runtime::spans::{SpanKind, SpanTimer};
use emporium_store::Dialect;

use super::delivery::{self, Incoming, Source};
use super::retry::{self, BatchFailureDecision, FailureDecision};
use super::run::ConsumerDriver;
use crate::ask::ask;
use crate::error::BusError;
use crate::handler::ReceivedEvent;
use crate::messages::{ApplyEvents, DeliveryOutcome, EventOutcome, PendingEvent};
use crate::transport::Transport;

/// One lane of a step: the events it applies in one transaction and their deliveries.
#[derive(Default)]
struct Lane {
    pending: Vec<PendingEvent>,
    held: HashMap<u64, (Incoming, String)>,
}

/// The lane of events about `subject` among `num_lanes`: the same for every event of one
/// subject, so they are applied in order, one transaction after the other.
fn lane_of(subject: &str, num_lanes: usize) -> usize {
    // FNV-1a: stable, and cheap for short subjects.
    let hash = subject
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (hash % num_lanes.max(1) as u64) as usize
}

impl ConsumerDriver {
    /// Applies the deliveries of one step and settles every one of them. They are split into
    /// lanes by subject (see [`crate::BusConfig::consumer_lanes`]); the actor applies the
    /// lanes concurrently, each in its own transaction. An error means the session broke.
    pub(crate) async fn process(&mut self, batch: Vec<Incoming>, source: &Source) -> Result<(), BusError> {
        // SQLite has one writer at a time: a second lane would only wait in its busy handler.
        let num_lanes = match self.setup.context.database.dialect() {
            Dialect::MySql => self.setup.config.consumer_lanes.max(1),
            Dialect::Sqlite => 1,
        };
        let mut lanes: Vec<Lane> = (0..num_lanes).map(|_| Lane::default()).collect();
        let mut process_spans: HashMap<u64, SpanTimer> = HashMap::new();
        for incoming in batch {
            match EventEnvelope::from_json(&incoming.body) {
                Ok(envelope) => {
                    let attempt = self.shared.retry_book.lock().attempt_of(&envelope.id);
                    let (traceparent, span) = self.start_process_span(&incoming, &envelope);
                    if let Some(span) = span {
                        process_spans.insert(incoming.delivery_id, span);
                    }
                    let delivery_id = incoming.delivery_id;
                    let lane = &mut lanes[lane_of(&envelope.subject, num_lanes)];
                    lane.held.insert(delivery_id, (incoming, envelope.id.clone()));
                    lane.pending
                        .push(PendingEvent { delivery_id, event: ReceivedEvent { envelope, traceparent, attempt } });
                }
                Err(error) => {
                    let reason = retry::unreadable_reason(&error);
                    self.dead_letter(incoming, None, &reason, 0, source).await?;
                }
            }
        }
        lanes.retain(|lane| !lane.pending.is_empty());
        let cell = &self.setup.cell;
        let answers = futures::future::join_all(lanes.iter_mut().map(|lane| {
            let events = std::mem::take(&mut lane.pending);
            let trace =
                events.first().and_then(|first| first.event.traceparent.as_deref()).and_then(TraceParent::parse);
            ask(cell, ApplyEvents { events }, trace)
        }))
        .await;
        let mut pause_after = false;
        for (lane, answer) in lanes.into_iter().zip(answers) {
            pause_after |= self.settle_lane(lane.held, answer, &mut process_spans, source).await?;
        }
        if pause_after {
            let delay = self.setup.config.reconnect_delay_for(2);
            let _ = self.pause(delay).await;
        }
        Ok(())
    }

    /// Settles the deliveries of one lane by the actor's answer: acknowledges what was applied
    /// or was a duplicate (all at once), retries or dead-letters what failed, delivers again
    /// what the actor could not answer for. Answers whether the driver should pause before the
    /// next step (the actor could not run at all).
    async fn settle_lane(
        &mut self,
        mut held: HashMap<u64, (Incoming, String)>,
        answer: Result<Vec<DeliveryOutcome>, ServiceError>,
        process_spans: &mut HashMap<u64, SpanTimer>,
        source: &Source,
    ) -> Result<bool, BusError> {
        let batch_size = held.len();
        let queue = self.setup.names.queue.clone();
        match answer {
            Ok(outcomes) => {
                self.shared.retry_book.lock().batch_answered(batch_size);
                let mut to_ack = Vec::with_capacity(outcomes.len());
                for outcome in outcomes {
                    if let Some(span) = process_spans.remove(&outcome.delivery_id) {
                        span.finish(match &outcome.outcome {
                            EventOutcome::Failed { reason, .. } => Some(reason.clone()),
                            EventOutcome::Applied | EventOutcome::Duplicate => None,
                        });
                    }
                    let Some((incoming, event_id)) = held.remove(&outcome.delivery_id) else { continue };
                    match outcome.outcome {
                        EventOutcome::Applied => {
                            self.shared.retry_book.lock().forget(&event_id);
                            self.shared.num_applied.fetch_add(1, Ordering::Relaxed);
                            to_ack.push(incoming);
                        }
                        EventOutcome::Duplicate => {
                            self.shared.retry_book.lock().forget(&event_id);
                            self.shared.num_duplicates.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("emporium_bus_duplicates_total", "queue" => queue.clone()).increment(1);
                            to_ack.push(incoming);
                        }
                        EventOutcome::Failed { reason, permanent } => {
                            self.handler_failed(incoming, event_id, &reason, permanent, source).await?;
                        }
                    }
                }
                // The acks go out together: one wait for the lot, not one per delivery.
                futures::future::try_join_all(to_ack.into_iter().map(delivery::ack)).await?;
                // An outcome the actor did not give (never expected): deliver again.
                for (_, (incoming, _)) in held.drain() {
                    delivery::requeue(incoming).await;
                }
                Ok(false)
            }
            Err(error) => {
                for delivery_id in held.keys() {
                    if let Some(span) = process_spans.remove(delivery_id) {
                        span.finish(Some(error.to_string()));
                    }
                }
                let prefetch = self.setup.config.prefetch;
                let decision = self.shared.retry_book.lock().batch_failed(error.kind, batch_size, prefetch);
                if decision == BatchFailureDecision::CountAgainstTheEvent
                    && let Some((_, (incoming, event_id))) = held.drain().next()
                {
                    self.handler_failed(incoming, event_id, &error.message, false, source).await?;
                    return Ok(false);
                }
                // The actor failed as a whole (a panic, the database, the service is down):
                // nothing of this lane was committed; deliver it again.
                tracing::warn!(queue = %queue, error = %error, "consumer actor could not apply a batch");
                self.shared.record_error(&error.to_string());
                for (_, (incoming, _)) in held.drain() {
                    delivery::requeue(incoming).await;
                }
                Ok(decision == BatchFailureDecision::RequeueAfterPause)
            }
        }
    }

    /// The CONSUMER span of one delivery (when spans are recorded), child of the publisher's
    /// span, and the `traceparent` the handler sees: the span's own, so that what the handler
    /// publishes in turn is its child.
    fn start_process_span(&self, incoming: &Incoming, envelope: &EventEnvelope) -> (Option<String>, Option<SpanTimer>) {
        let publisher = incoming.traceparent.as_deref().and_then(TraceParent::parse);
        let Some(publisher) = publisher.filter(|_| emporium_runtime::spans::enabled()) else {
            return (incoming.traceparent.clone(), None);
        };
        let process = publisher.child();
        let queue = &self.setup.names.queue;
        let Some(mut span) =
            SpanTimer::start(format!("process {queue}"), SpanKind::Consumer, process, Some(publisher.span_id))
        else {
            return (incoming.traceparent.clone(), None);
        };
        let system = match self.setup.transport {
            Transport::Amqp { .. } => "rabbitmq",
            Transport::InProcess(_) => "emporium_in_process",
        };
        span.attribute("messaging.system", system)
            .attribute("messaging.operation.type", "process")
            .attribute("messaging.operation.name", "process")
            .attribute("messaging.destination.name", queue.as_str())
            .attribute("messaging.message.id", envelope.id.as_str())
            .attribute("cloudevents.event_type", envelope.event_type.as_str());
        (Some(process.to_string()), Some(span))
    }

    /// Counts a handler failure; retries later, or dead-letters after `max_attempts` (or at
    /// once when the failure is permanent).
    async fn handler_failed(
        &mut self,
        incoming: Incoming,
        event_id: String,
        reason: &str,
        permanent: bool,
        source: &Source,
    ) -> Result<(), BusError> {
        self.shared.num_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_bus_handler_failures_total", "queue" => self.setup.names.queue.clone())
            .increment(1);
        let attempts = self.shared.retry_book.lock().record_failure(&event_id);
        match retry::decide_after_failure(&self.setup.config, attempts, permanent, reason) {
            FailureDecision::DeadLetter { reason } => {
                self.shared.retry_book.lock().forget(&event_id);
                self.dead_letter(incoming, Some(event_id), &reason, attempts, source).await
            }
            FailureDecision::RetryAfter(delay) => {
                // Given back after the delay, or at once when the consumer stops (its channel
                // closes anyway): the wait never outlives the consumer.
                let mut stop_rx = self.stop_rx.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop_rx.wait_for(|stop| *stop) => {}
                    }
                    delivery::requeue(incoming).await;
                });
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::Duration;

    use emporium_contracts::events::ORDER_CREATED;
    use emporium_runtime::{Backoff, Intensity, RestartStrategy, RestartType, ServiceGroup, SupervisionPolicy};
    use emporium_store::Database;
    use tokio::sync::watch;

    use super::*;
    use crate::config::{BusConfig, ConsumerSpec};
    use crate::consumer::{ConsumerContext, InboxConsumer};
    use crate::consumer_driver::DriverSetup;
    use crate::consumer_driver::delivery::DeliveryIds;
    use crate::consumer_driver::shared::DriverShared;
    use crate::handler::{EventError, handler_fn};
    use crate::in_process::InProcessBroker;
    use crate::outbox::OutboxRow;
    use crate::transport::Transport;

    fn row(id: i64, envelope: String) -> OutboxRow {
        OutboxRow {
            id,
            event_id: format!("row-{id}"),
            exchange: "order-events".into(),
            routing_key: "order.created".into(),
            subject: "o".into(),
            envelope,
            traceparent: None,
        }
    }

    fn envelope(subject: &str) -> EventEnvelope {
        EventEnvelope::new("/emporium/test", ORDER_CREATED, subject, &serde_json::json!({})).expect("envelope")
    }

    /// Every event of a subject goes to the same lane, whatever the number of lanes; and a
    /// handful of subjects spread over more than one lane.
    #[test]
    fn one_subject_keeps_one_lane() {
        for num_lanes in [1, 2, 4, 7, crate::config::MAX_CONSUMER_LANES] {
            for subject in ["", "o", "order-1", "order-2", "a-much-longer-subject-0123456789"] {
                let lane = lane_of(subject, num_lanes);
                assert!(lane < num_lanes);
                assert_eq!(lane, lane_of(subject, num_lanes), "stable");
            }
        }
        assert_eq!(lane_of("order-1", 0), 0, "no lanes counts as one");
        let used: HashSet<usize> = (0..64).map(|index| lane_of(&format!("order-{index}"), 4)).collect();
        assert_eq!(used.len(), 4, "64 orders use every one of 4 lanes: {used:?}");
    }

    /// One batch on the in-process bus, through a real consumer actor on SQLite: the good event
    /// is applied, the transient failure comes back after its retry delay, the permanent
    /// failure and the unreadable message are dead-lettered.
    #[actix_rt::test]
    async fn each_delivery_is_settled_by_its_outcome() {
        let path = std::env::temp_dir().join(format!("bus-process-{}.db", uuid::Uuid::new_v4()));
        let database = Database::open_sqlite_file(&path).await.expect("sqlite");
        crate::schema::migrate(&database).await.expect("bus tables");
        let handler = handler_fn(|event: ReceivedEvent, tx| async move {
            match event.envelope.subject.as_str() {
                "transient" => Err(EventError::Transient("try later".into())),
                "permanent" => Err(EventError::Permanent("never".into())),
                _ => Ok(tx),
            }
        });
        let tree = emporium_runtime::SupervisionTree::new("node-1", 16, 8);
        let policy = SupervisionPolicy {
            strategy: RestartStrategy::OneForOne,
            restart: RestartType::Permanent,
            intensity: Intensity { max_restarts: 5, period: Duration::from_secs(10) },
            backoff: Backoff { min: Duration::from_millis(1), max: Duration::from_millis(10) },
        };
        let mut group = ServiceGroup::new(&tree, "payment.order-events", policy, actix::Arbiter::current());
        let context = Arc::new(ConsumerContext { consumer: "payment".into(), database: database.clone(), handler });
        let cell = group.spawn("consumer", {
            let context = context.clone();
            move || InboxConsumer::new(context.clone())
        });
        let _supervision = group.finish();
        let spec = ConsumerSpec::new("payment", "order-events", &["#"]);
        let broker = InProcessBroker::default();
        let queue = broker.declare_queue("payment.order-events", &spec);
        let (good, transient) = (envelope("good"), envelope("transient"));
        let to_text = |envelope: &EventEnvelope| String::from_utf8(envelope.to_json().expect("json")).expect("utf-8");
        broker.publish(&[
            row(1, to_text(&good)),
            row(2, to_text(&transient)),
            row(3, to_text(&envelope("permanent"))),
            row(4, "not { json".into()),
        ]);
        let config = BusConfig { retry_delay: Duration::from_millis(10), ..BusConfig::default() };
        let names = config.queue_names("payment", "order-events");
        let setup = DriverSetup {
            spec,
            names,
            config,
            transport: Transport::InProcess(Arc::new(broker)),
            context,
            cell,
            faults: tree.faults(),
            in_process_queue: Some(queue.clone()),
        };
        let shared = Arc::new(DriverShared::default());
        let (_stop_tx, stop_rx) = watch::channel(false);
        let mut driver = ConsumerDriver::new(Arc::new(setup), shared.clone(), stop_rx);
        let mut source = Source::InProcess(queue.clone());
        let mut ids = DeliveryIds::default();

        let batch = source.next_batch(10, &mut ids).await.expect("in process");
        assert_eq!(batch.len(), 4);
        driver.process(batch, &source).await.expect("settled");
        let counts = |shared: &DriverShared| {
            [&shared.num_applied, &shared.num_failures, &shared.num_dead_lettered].map(|n| n.load(Ordering::Relaxed))
        };
        assert_eq!(counts(&shared), [1, 2, 2], "applied, failures, dead letters");
        assert_eq!(shared.retry_book.lock().attempt_of(&transient.id), 2);
        assert_eq!(shared.retry_book.lock().attempt_of(&good.id), 1);
        let faults = tree.faults().list();
        assert_eq!(faults.len(), 2, "one fault per dead letter: {faults:?}");
        assert!(faults.iter().all(|fault| fault.actor_path == "payment.order-events/consumer"));
        let stored = crate::inbox::list_dead_letters(&database, "payment").await.expect("listed");
        let reasons: Vec<&str> = stored.iter().map(|letter| letter.reason.as_str()).collect();
        assert!(reasons.contains(&"handler rejected the event: never"), "{reasons:?}");
        assert!(reasons.iter().any(|reason| reason.starts_with("unreadable message: ")), "{reasons:?}");

        let again = tokio::time::timeout(Duration::from_secs(5), source.next_batch(10, &mut ids))
            .await
            .expect("the transient failure comes back after its delay")
            .expect("in process");
        assert_eq!(again.len(), 1);
        drop(again);
        database.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
