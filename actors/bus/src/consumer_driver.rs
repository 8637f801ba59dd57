//! The consumer's driver task and the handle a service keeps. The driver owns the broker side:
//! it takes deliveries (manual acks, bounded prefetch), hands them in batches to the consumer
//! actor, and after the actor's commit acknowledges them. It dead-letters what cannot be read
//! or failed `max_attempts` times, retries the rest after a growing delay, and reconnects with
//! backoff when the broker goes away.
//!
//! Attempts are counted per event id in the driver's memory (RabbitMQ 3.10's classic queues
//! keep no delivery count): after a crash of the process an event gets `max_attempts` fresh
//! attempts. A failure of the actor itself (a panic in a handler) fails a whole batch: its
//! events are then retried one per batch, so the attempt is counted against the event that
//! caused it, not its neighbours.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use emporium_contracts::events::EnvelopeError;
use emporium_contracts::{ErrorKind, EventEnvelope};
use emporium_runtime::fault::{Fault, FaultKind, FaultLog};
use emporium_runtime::{CellHandle, ServiceSupervision, TraceParent};
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use crate::amqp::{self, DeadLetterNote, TRACEPARENT_HEADER};
use crate::ask::ask;
use crate::config::{BusConfig, ConsumerSpec, QueueNames};
use crate::consumer::{ConsumerContext, InboxConsumer};
use crate::error::BusError;
use crate::handler::ReceivedEvent;
use crate::in_process::{InProcessDelivery, InProcessQueue};
use crate::inbox::{self, DeadLetter};
use crate::messages::{ApplyEvents, EventOutcome, PendingEvent};
use crate::transport::Transport;
use emporium_store::Database;

/// Dead letters a handle remembers for its snapshot.
const RECENT_DEAD_LETTERS: usize = 32;
/// Event ids whose failures are remembered at most.
const MAX_TRACKED_FAILURES: usize = 100_000;
/// How long an ack, a nack or a dead letter's confirm may take before the session counts as
/// broken.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle consumer checks that its channel is still open.
const CHANNEL_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often old inbox rows are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// How the driver is asked to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    /// Finish the current batch, then close.
    Stop,
    /// Close at once, acknowledging nothing more (as a crash would).
    Kill,
}

/// A serializable view of a consumer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSnapshot {
    /// The consumer.
    pub consumer: String,
    /// Its queue (with namespace).
    pub queue: String,
    /// Whether it is attached to its queue now.
    pub connected: bool,
    /// Events applied (committed with their inbox row).
    pub num_applied: u64,
    /// Deliveries recognised as already applied and acknowledged without effect.
    pub num_duplicates: u64,
    /// Handler failures (each attempt counts).
    pub num_failures: u64,
    /// Messages dead-lettered.
    pub num_dead_lettered: u64,
    /// The last broker or database failure, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The most recent dead letters, oldest first.
    pub recent_dead_letters: Vec<DeadLetter>,
}

#[derive(Default)]
struct ConsumerState {
    connected: AtomicBool,
    num_applied: AtomicU64,
    num_duplicates: AtomicU64,
    num_failures: AtomicU64,
    num_dead_lettered: AtomicU64,
    last_error: Mutex<Option<String>>,
    recent_dead_letters: Mutex<VecDeque<DeadLetter>>,
}

/// A running consumer.
pub struct ConsumerHandle {
    spec: ConsumerSpec,
    names: QueueNames,
    database: Database,
    supervision: ServiceSupervision,
    state: Arc<ConsumerState>,
    control_tx: watch::Sender<Control>,
    finished_rx: watch::Receiver<bool>,
}

impl ConsumerHandle {
    /// What it subscribed to.
    pub fn spec(&self) -> &ConsumerSpec {
        &self.spec
    }

    /// Its queue's broker names.
    pub fn queue_names(&self) -> &QueueNames {
        &self.names
    }

    /// The consumer actor's supervisor and health.
    pub fn supervision(&self) -> &ServiceSupervision {
        &self.supervision
    }

    /// Its counters and recent dead letters.
    pub fn snapshot(&self) -> ConsumerSnapshot {
        let state = &self.state;
        ConsumerSnapshot {
            consumer: self.spec.consumer.clone(),
            queue: self.names.queue.clone(),
            connected: state.connected.load(Ordering::Acquire),
            num_applied: state.num_applied.load(Ordering::Relaxed),
            num_duplicates: state.num_duplicates.load(Ordering::Relaxed),
            num_failures: state.num_failures.load(Ordering::Relaxed),
            num_dead_lettered: state.num_dead_lettered.load(Ordering::Relaxed),
            last_error: state.last_error.lock().clone(),
            recent_dead_letters: state.recent_dead_letters.lock().iter().cloned().collect(),
        }
    }

    /// The dead letters stored in the consumer's database (in-process bus; RabbitMQ keeps
    /// them in the dead-letter queue).
    pub async fn stored_dead_letters(&self) -> Result<Vec<DeadLetter>, BusError> {
        inbox::list_dead_letters(&self.database, &self.spec.consumer).await
    }

    /// Stops after the current batch and detaches from the queue; waits until it did.
    pub async fn stop(&self) {
        self.end(Control::Stop).await;
    }

    /// Detaches at once without acknowledging what it holds, as a crash would: the broker
    /// delivers those messages again. A batch already handed to the actor may still commit;
    /// its redelivery is then recognised by the inbox.
    pub async fn kill(&self) {
        self.end(Control::Kill).await;
    }

    async fn end(&self, control: Control) {
        self.control_tx.send_if_modified(|current| {
            if *current == Control::Run {
                *current = control;
                true
            } else {
                false
            }
        });
        let mut finished = self.finished_rx.clone();
        let _ = finished.wait_for(|finished| *finished).await;
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        self.control_tx.send_if_modified(|current| {
            let running = *current == Control::Run;
            if running {
                *current = Control::Stop;
            }
            running
        });
    }
}

/// Everything the driver needs.
pub(crate) struct DriverSetup {
    pub(crate) spec: ConsumerSpec,
    pub(crate) names: QueueNames,
    pub(crate) config: BusConfig,
    pub(crate) transport: Transport,
    pub(crate) context: Arc<ConsumerContext>,
    pub(crate) cell: CellHandle<InboxConsumer>,
    pub(crate) supervision: ServiceSupervision,
    pub(crate) faults: Arc<FaultLog>,
    pub(crate) in_process_queue: Option<Arc<InProcessQueue>>,
}

/// Spawns the driver on `arbiter` and answers the handle.
pub(crate) fn start_driver(setup: DriverSetup, arbiter: &actix::ArbiterHandle) -> ConsumerHandle {
    let state = Arc::new(ConsumerState::default());
    let (control_tx, control_rx) = watch::channel(Control::Run);
    let (finished_tx, finished_rx) = watch::channel(false);
    let handle = ConsumerHandle {
        spec: setup.spec.clone(),
        names: setup.names.clone(),
        database: setup.context.database.clone(),
        supervision: setup.supervision.clone(),
        state: state.clone(),
        control_tx,
        finished_rx,
    };
    let driver = ConsumerDriver {
        setup,
        state,
        control_rx,
        failures: HashMap::new(),
        isolate_next: 0,
        next_delivery_id: 0,
        last_purge: Instant::now(),
    };
    arbiter.spawn(async move {
        driver.run().await;
        finished_tx.send_replace(true);
    });
    handle
}

/// A message taken from the queue, not settled yet.
enum Settle {
    Amqp(Box<AmqpDelivery>),
    InProcess(InProcessDelivery),
}

/// What settling an AMQP delivery needs.
struct AmqpDelivery {
    acker: lapin::Acker,
    properties: BasicProperties,
    exchange: String,
    routing_key: String,
}

struct Incoming {
    delivery_id: u64,
    body: Vec<u8>,
    traceparent: Option<String>,
    settle: Settle,
}

/// Where the driver reads from and settles to.
enum Source {
    Amqp(Box<AmqpSession>),
    InProcess(Arc<InProcessQueue>),
}

/// A consuming session on RabbitMQ.
struct AmqpSession {
    channel: Channel,
    consumer: lapin::Consumer,
    dead_letter_channel: Channel,
}

/// Why a consuming session ended.
enum SessionEnd {
    /// Asked to stop or die.
    Ended,
    /// The broker went away: reconnect.
    Broken(BusError),
}

struct ConsumerDriver {
    setup: DriverSetup,
    state: Arc<ConsumerState>,
    control_rx: watch::Receiver<Control>,
    /// Failed attempts and the last reason, per event id.
    failures: HashMap<String, u32>,
    /// Deliveries to apply one per batch after a batch failed as a whole.
    isolate_next: usize,
    next_delivery_id: u64,
    last_purge: Instant,
}

impl ConsumerDriver {
    async fn run(mut self) {
        let queue = self.setup.names.queue.clone();
        let mut num_failures_in_a_row = 0u32;
        loop {
            if self.control() != Control::Run {
                break;
            }
            let opened = tokio::time::timeout(amqp::BROKER_OPERATION_TIMEOUT, self.open_source()).await;
            let opened = opened.unwrap_or_else(|_| Err(BusError::BrokerTimeout("attaching to the queue".to_string())));
            let source = match opened {
                Ok(source) => source,
                Err(error) => {
                    num_failures_in_a_row += 1;
                    let delay = self.setup.config.reconnect_delay_for(num_failures_in_a_row);
                    tracing::warn!(queue = %queue, error = %error, retry_in_ms = delay.as_millis() as u64, "consumer cannot attach to its queue");
                    self.record_error(&error.to_string());
                    if self.pause(delay).await {
                        break;
                    }
                    continue;
                }
            };
            if num_failures_in_a_row > 0 {
                tracing::info!(queue = %queue, "consumer attached to its queue again");
            }
            num_failures_in_a_row = 0;
            self.state.connected.store(true, Ordering::Release);
            *self.state.last_error.lock() = None;
            let end = self.consume(source).await;
            self.state.connected.store(false, Ordering::Release);
            match end {
                SessionEnd::Ended => break,
                SessionEnd::Broken(error) => {
                    tracing::warn!(queue = %queue, error = %error, "consumer lost its queue; reconnecting");
                    self.record_error(&error.to_string());
                    if let Transport::Amqp { consume, .. } = &self.setup.transport {
                        consume.record_failure(&error);
                    }
                    num_failures_in_a_row += 1;
                    if self.pause(self.setup.config.reconnect_delay_for(num_failures_in_a_row)).await {
                        break;
                    }
                }
            }
        }
    }

    fn control(&self) -> Control {
        *self.control_rx.borrow()
    }

    fn record_error(&self, error: &str) {
        *self.state.last_error.lock() = Some(error.to_string());
    }

    /// Sleeps `delay`; answers true when asked to end meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        let mut control_rx = self.control_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => self.control() != Control::Run,
            _ = control_rx.wait_for(|control| *control != Control::Run) => true,
        }
    }

    async fn open_source(&self) -> Result<Source, BusError> {
        match &self.setup.transport {
            Transport::InProcess(_) => {
                let queue = self.setup.in_process_queue.clone().ok_or_else(|| {
                    BusError::Unexpected(anyhow::anyhow!("in-process consumer started without its queue"))
                })?;
                Ok(Source::InProcess(queue))
            }
            Transport::Amqp { consume, .. } => {
                let channel = consume.channel().await?;
                amqp::declare_consumer_queue(&channel, &self.setup.config, &self.setup.spec, &self.setup.names).await?;
                channel.basic_qos(self.setup.config.prefetch, BasicQosOptions::default()).await?;
                let dead_letter_channel = consume.confirm_channel().await?;
                let consumer = channel
                    .basic_consume(
                        self.setup.names.queue.clone().into(),
                        ShortString::from(format!("{}-{}", self.setup.spec.consumer, uuid::Uuid::new_v4().simple())),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                Ok(Source::Amqp(Box::new(AmqpSession { channel, consumer, dead_letter_channel })))
            }
        }
    }

    /// Consumes until asked to end or the broker goes away.
    async fn consume(&mut self, mut source: Source) -> SessionEnd {
        let mut control_rx = self.control_rx.clone();
        loop {
            if self.control() != Control::Run {
                return self.close(source).await;
            }
            let max = if self.isolate_next > 0 { 1 } else { self.setup.config.consumer_batch_size };
            let next = tokio::select! {
                batch = self.next_batch(&mut source, max) => Some(batch),
                _ = control_rx.wait_for(|control| *control != Control::Run) => None,
            };
            let batch = match next {
                None => return self.close(source).await,
                Some(Ok(batch)) => batch,
                Some(Err(error)) => return SessionEnd::Broken(error),
            };
            let kill_rx = self.control_rx.clone();
            let processed = tokio::select! {
                result = self.process(batch, &source) => Some(result),
                _ = wait_for_kill(kill_rx) => None,
            };
            match processed {
                None => return self.close(source).await,
                Some(Err(error)) => return SessionEnd::Broken(error),
                Some(Ok(())) => {}
            }
            self.purge_inbox_now_and_then().await;
        }
    }

    /// Detaches from the queue; unacknowledged deliveries go back to it.
    async fn close(&self, source: Source) -> SessionEnd {
        if let Source::Amqp(session) = source {
            let _ = session.channel.close(200, ShortString::from("consumer stopped")).await;
            let _ = session.dead_letter_channel.close(200, ShortString::from("consumer stopped")).await;
        }
        SessionEnd::Ended
    }

    async fn next_batch(&mut self, source: &mut Source, max: usize) -> Result<Vec<Incoming>, BusError> {
        match source {
            Source::InProcess(queue) => {
                let deliveries = queue.take(max).await;
                Ok(deliveries
                    .into_iter()
                    .filter_map(|delivery| {
                        let message = delivery.message()?.clone();
                        self.next_delivery_id += 1;
                        Some(Incoming {
                            delivery_id: self.next_delivery_id,
                            body: message.body.as_bytes().to_vec(),
                            traceparent: message.traceparent.clone(),
                            settle: Settle::InProcess(delivery),
                        })
                    })
                    .collect())
            }
            Source::Amqp(session) => {
                let AmqpSession { channel, consumer, .. } = &mut **session;
                let mut batch = Vec::with_capacity(max);
                // A connection that died under an idle consumer does not always end its
                // stream: check the channel while waiting.
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
                    Some(Ok(delivery)) => batch.push(self.incoming_from_amqp(delivery)),
                    Some(Err(error)) => return Err(error.into()),
                    None => return Err(BusError::Unexpected(anyhow::anyhow!("the broker cancelled the consumer"))),
                }
                while batch.len() < max {
                    match consumer.next().now_or_never() {
                        Some(Some(Ok(delivery))) => batch.push(self.incoming_from_amqp(delivery)),
                        Some(Some(Err(error))) => {
                            // Deliveries already taken stay unacked and come back with the queue.
                            return Err(error.into());
                        }
                        Some(None) | None => break,
                    }
                }
                Ok(batch)
            }
        }
    }

    fn incoming_from_amqp(&mut self, delivery: lapin::message::Delivery) -> Incoming {
        self.next_delivery_id += 1;
        let traceparent = amqp::header_text(&delivery.properties, TRACEPARENT_HEADER);
        Incoming {
            delivery_id: self.next_delivery_id,
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

    /// Applies one batch and settles every delivery of it.
    async fn process(&mut self, batch: Vec<Incoming>, source: &Source) -> Result<(), BusError> {
        let mut pending = Vec::with_capacity(batch.len());
        let mut held: HashMap<u64, (Incoming, String)> = HashMap::with_capacity(batch.len());
        for incoming in batch {
            match parse_envelope(&incoming.body) {
                Ok(envelope) => {
                    let attempt = self.failures.get(&envelope.id).copied().unwrap_or(0) + 1;
                    pending.push(PendingEvent {
                        delivery_id: incoming.delivery_id,
                        event: ReceivedEvent {
                            envelope: envelope.clone(),
                            traceparent: incoming.traceparent.clone(),
                            attempt,
                        },
                    });
                    held.insert(incoming.delivery_id, (incoming, envelope.id));
                }
                Err(error) => {
                    let reason = format!("unreadable message: {error}");
                    self.dead_letter(incoming, None, &reason, 0, source).await?;
                }
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let batch_size = pending.len();
        let trace = pending.first().and_then(|first| first.event.traceparent.as_deref()).and_then(TraceParent::parse);
        match ask(&self.setup.cell, ApplyEvents { events: pending }, trace).await {
            Ok(outcomes) => {
                self.isolate_next = self.isolate_next.saturating_sub(batch_size);
                for outcome in outcomes {
                    let Some((incoming, event_id)) = held.remove(&outcome.delivery_id) else { continue };
                    match outcome.outcome {
                        EventOutcome::Applied => {
                            self.failures.remove(&event_id);
                            self.state.num_applied.fetch_add(1, Ordering::Relaxed);
                            ack(incoming).await?;
                        }
                        EventOutcome::Duplicate => {
                            self.failures.remove(&event_id);
                            self.state.num_duplicates.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("emporium_bus_duplicates_total", "queue" => self.setup.names.queue.clone())
                                .increment(1);
                            ack(incoming).await?;
                        }
                        EventOutcome::Failed { reason, permanent } => {
                            self.handler_failed(incoming, event_id, &reason, permanent, source).await?;
                        }
                    }
                }
                // An outcome the actor did not give (never expected): deliver again.
                for (_, (incoming, _)) in held.drain() {
                    requeue(incoming).await;
                }
            }
            Err(error) if error.kind == ErrorKind::Fault && batch_size == 1 => {
                let Some((_, (incoming, event_id))) = held.drain().next() else { return Ok(()) };
                self.isolate_next = self.isolate_next.saturating_sub(1);
                self.handler_failed(incoming, event_id, &error.message, false, source).await?;
            }
            Err(error) => {
                // The actor failed as a whole (a panic, the database, the service is down):
                // nothing was committed; deliver again, one per batch when it was a fault.
                if error.kind == ErrorKind::Fault {
                    self.isolate_next = self.isolate_next.max(batch_size + self.setup.config.prefetch as usize);
                }
                tracing::warn!(queue = %self.setup.names.queue, error = %error, "consumer actor could not apply a batch");
                self.record_error(&error.to_string());
                for (_, (incoming, _)) in held.drain() {
                    requeue(incoming).await;
                }
                if error.kind != ErrorKind::Fault {
                    let delay = self.setup.config.reconnect_delay_for(2);
                    let _ = self.pause(delay).await;
                }
            }
        }
        Ok(())
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
        self.state.num_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_bus_handler_failures_total", "queue" => self.setup.names.queue.clone())
            .increment(1);
        if self.failures.len() >= MAX_TRACKED_FAILURES {
            self.failures.clear();
        }
        let attempts = {
            let count = self.failures.entry(event_id.clone()).or_insert(0);
            *count += 1;
            *count
        };
        let max_attempts = self.setup.config.max_attempts;
        if permanent || attempts >= max_attempts {
            self.failures.remove(&event_id);
            let why = if permanent {
                format!("handler rejected the event: {reason}")
            } else {
                format!("handler failed {attempts} times: {reason}")
            };
            return self.dead_letter(incoming, Some(event_id), &why, attempts, source).await;
        }
        let delay = self.setup.config.retry_delay_for(attempts);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            requeue(incoming).await;
        });
        Ok(())
    }

    /// Sets a message aside with `reason`, records it where an operator sees it, and settles
    /// it.
    async fn dead_letter(
        &mut self,
        incoming: Incoming,
        event_id: Option<String>,
        reason: &str,
        attempts: u32,
        source: &Source,
    ) -> Result<(), BusError> {
        let letter = DeadLetter {
            consumer: self.setup.spec.consumer.clone(),
            queue: self.setup.names.queue.clone(),
            event_id: event_id.clone(),
            body: String::from_utf8_lossy(&incoming.body).into_owned(),
            reason: reason.to_string(),
            attempts,
            dead_lettered_at: Utc::now(),
        };
        match (incoming.settle, source) {
            (Settle::Amqp(delivery), Source::Amqp(session)) => {
                let AmqpDelivery { acker, properties, exchange, routing_key } = *delivery;
                let dead_letter_channel = &session.dead_letter_channel;
                let note = DeadLetterNote {
                    consumer: &self.setup.spec.consumer,
                    reason,
                    attempts,
                    original_exchange: &exchange,
                    original_routing_key: &routing_key,
                };
                let published = dead_letter_channel
                    .basic_publish(
                        self.setup.names.dead_letter_exchange.clone().into(),
                        self.setup.names.queue.clone().into(),
                        BasicPublishOptions::default(),
                        &incoming.body,
                        amqp::dead_letter_properties(&properties, &note),
                    )
                    .await;
                let confirmed = match published {
                    Ok(confirm) => match tokio::time::timeout(SETTLE_TIMEOUT, confirm).await {
                        Ok(confirmation) => {
                            confirmation.map(|confirmation| confirmation.is_ack()).map_err(BusError::from)
                        }
                        Err(_) => Err(BusError::BrokerTimeout("confirming a dead letter".to_string())),
                    },
                    Err(error) => Err(error.into()),
                };
                match confirmed {
                    Ok(true) => {
                        let ack = acker.ack(BasicAckOptions::default());
                        if tokio::time::timeout(SETTLE_TIMEOUT, ack).await.is_err() {
                            return Err(BusError::BrokerTimeout("acknowledging a dead letter".to_string()));
                        }
                    }
                    Ok(false) => {
                        let nack = acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() });
                        let _ = tokio::time::timeout(SETTLE_TIMEOUT, nack).await;
                        return Err(BusError::PublishRefused("dead letter was nacked".to_string()));
                    }
                    Err(error) => return Err(error),
                }
            }
            (Settle::InProcess(delivery), _) => {
                if let Err(error) = inbox::store_dead_letter(&self.setup.context.database, &letter).await {
                    // Not stored: keep it in the queue rather than lose it.
                    delivery.requeue();
                    return Err(error);
                }
                delivery.settle();
            }
            (Settle::Amqp(_), Source::InProcess(_)) => {
                // Cannot happen: deliveries come from the session's own source.
                return Err(BusError::Unexpected(anyhow::anyhow!("an AMQP delivery on an in-process queue")));
            }
        }
        self.state.num_dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emporium_bus_dead_lettered_total", "queue" => self.setup.names.queue.clone()).increment(1);
        tracing::error!(
            queue = %self.setup.names.queue,
            event_id = event_id.as_deref().unwrap_or(""),
            attempts,
            reason,
            "message dead-lettered"
        );
        self.setup.faults.record(Fault {
            id: 0,
            at: letter.dead_lettered_at,
            actor_path: self.setup.cell.monitor.path().to_string(),
            message_type: "DeadLetter",
            kind: FaultKind::Error,
            error: format!(
                "{} dead-lettered from {}: {reason}",
                event_id.as_deref().unwrap_or("a message"),
                letter.queue
            ),
            backtrace: None,
            trace_id: None,
            flight_record: self.setup.cell.monitor.recent_messages(16),
        });
        let mut recent = self.state.recent_dead_letters.lock();
        if recent.len() == RECENT_DEAD_LETTERS {
            recent.pop_front();
        }
        recent.push_back(letter);
        Ok(())
    }

    async fn purge_inbox_now_and_then(&mut self) {
        if self.last_purge.elapsed() < PURGE_INTERVAL {
            return;
        }
        self.last_purge = Instant::now();
        let retention = chrono::Duration::from_std(self.setup.config.inbox_retention).unwrap_or_default();
        let consumer = &self.setup.spec.consumer;
        match inbox::purge_applied(&self.setup.context.database, consumer, Utc::now() - retention, 10_000).await {
            Ok(num_purged) if num_purged > 0 => {
                tracing::info!(consumer = %consumer, num_purged, "purged old inbox rows")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(consumer = %consumer, error = %error, "could not purge the inbox"),
        }
    }
}

async fn wait_for_kill(mut control_rx: watch::Receiver<Control>) {
    let _ = control_rx.wait_for(|control| *control == Control::Kill).await;
}

fn parse_envelope(body: &[u8]) -> Result<EventEnvelope, EnvelopeError> {
    EventEnvelope::from_json(body)
}

/// Acknowledges a delivery. A broker that does not take the ack in time (its connection died
/// under us) ends the session: the delivery comes back after the reconnection and the inbox
/// recognises it.
async fn ack(incoming: Incoming) -> Result<(), BusError> {
    match incoming.settle {
        Settle::Amqp(delivery) => {
            match tokio::time::timeout(SETTLE_TIMEOUT, delivery.acker.ack(BasicAckOptions::default())).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(error.into()),
                Err(_) => Err(BusError::BrokerTimeout("acknowledging a delivery".to_string())),
            }
        }
        Settle::InProcess(delivery) => {
            delivery.settle();
            Ok(())
        }
    }
}

async fn requeue(incoming: Incoming) {
    match incoming.settle {
        Settle::Amqp(delivery) => {
            let nack = delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() });
            // On a dead channel the broker requeues it anyway.
            let _ = tokio::time::timeout(SETTLE_TIMEOUT, nack).await;
        }
        Settle::InProcess(delivery) => delivery.requeue(),
    }
}
