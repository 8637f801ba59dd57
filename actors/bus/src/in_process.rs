//! The in-process broker of the embedded default: the same topology as RabbitMQ (exchanges,
//! one queue per consumer and exchange, topic bindings) held in memory.
//!
//! A queue lives as long as the process; a delivery taken by a consumer and dropped without
//! being settled goes back to the front of its queue (like an unacked AMQP message when its
//! channel closes). A relay's publish completes only once every queue the rows were routed
//! to has settled them (applied, duplicate or dead-lettered), so the outbox row is marked sent
//! only then: after a crash, the rows are published again and the inboxes dedupe them.
//!
//! Relays hold their first publish until `InProcessBroker::open_delivery`: rows routed before
//! every consumer of the process has declared its queue would reach no queue. After that, a
//! row no queue takes is reported back (`RoutedBatch::unrouted_row_ids`); the relay keeps it
//! in the outbox when a consumer of the contracts' topology wants it (a node that runs the
//! in-process bus without that consumer: the event waits for a start with it), as it does for
//! a message RabbitMQ returns.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use crate::config::ConsumerSpec;
use crate::outbox::OutboxRow;

/// Counts the deliveries of one published batch that are not settled yet.
#[derive(Debug)]
pub(crate) struct SettleTracker {
    remaining: AtomicUsize,
    all_settled: Notify,
}

impl SettleTracker {
    fn new(count: usize) -> Arc<SettleTracker> {
        Arc::new(SettleTracker { remaining: AtomicUsize::new(count), all_settled: Notify::new() })
    }

    fn settle_one(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_settled.notify_one();
        }
    }

    /// Waits until every delivery of the batch is settled.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.all_settled.notified();
            if self.remaining.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A message in an in-process queue.
#[derive(Debug, Clone)]
pub(crate) struct QueuedMessage {
    pub(crate) body: Arc<str>,
    pub(crate) traceparent: Option<String>,
    pub(crate) redelivered: bool,
    tracker: Arc<SettleTracker>,
}

/// One consumer queue.
#[derive(Debug)]
pub(crate) struct InProcessQueue {
    pub(crate) name: String,
    spec: RwLock<ConsumerSpec>,
    messages: Mutex<VecDeque<QueuedMessage>>,
    arrived: Notify,
}

impl InProcessQueue {
    /// Takes up to `max` messages, waiting for at least one.
    pub(crate) async fn take(self: &Arc<Self>, max: usize) -> Vec<InProcessDelivery> {
        loop {
            let arrived = self.arrived.notified();
            {
                let mut messages = self.messages.lock();
                if !messages.is_empty() {
                    let count = max.min(messages.len());
                    let taken: Vec<_> = messages.drain(..count).collect();
                    if !messages.is_empty() {
                        self.arrived.notify_one();
                    }
                    return taken
                        .into_iter()
                        .map(|message| InProcessDelivery { message: Some(message), queue: self.clone() })
                        .collect();
                }
            }
            arrived.await;
        }
    }

    /// Puts `body` at the back of the queue again (an operator retries a dead letter); no
    /// relay waits for it to be settled.
    pub(crate) fn enqueue_again(&self, body: &str) {
        self.push_back(QueuedMessage {
            body: Arc::from(body),
            traceparent: None,
            redelivered: false,
            tracker: SettleTracker::new(1),
        });
    }

    fn push_back(&self, message: QueuedMessage) {
        self.messages.lock().push_back(message);
        self.arrived.notify_one();
    }

    fn push_front(&self, mut message: QueuedMessage) {
        message.redelivered = true;
        self.messages.lock().push_front(message);
        self.arrived.notify_one();
    }

    /// Messages waiting in the queue (not taken).
    #[cfg(test)]
    pub(crate) fn num_ready(&self) -> usize {
        self.messages.lock().len()
    }
}

/// A message taken from a queue; back to the front of the queue when dropped unsettled.
#[derive(Debug)]
pub(crate) struct InProcessDelivery {
    message: Option<QueuedMessage>,
    queue: Arc<InProcessQueue>,
}

impl InProcessDelivery {
    pub(crate) fn message(&self) -> Option<&QueuedMessage> {
        self.message.as_ref()
    }

    /// Done with it: applied, a duplicate, or dead-lettered.
    pub(crate) fn settle(mut self) {
        if let Some(message) = self.message.take() {
            message.tracker.settle_one();
        }
    }

    /// Back to the front of the queue, to be delivered again.
    pub(crate) fn requeue(self) {
        drop(self);
    }
}

impl Drop for InProcessDelivery {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            self.queue.push_front(message);
        }
    }
}

/// What became of a published batch.
#[derive(Debug)]
pub(crate) struct RoutedBatch {
    /// Tells when every queue the rows went to settled them.
    pub(crate) tracker: Arc<SettleTracker>,
    /// The ids of the rows no queue took, in order.
    pub(crate) unrouted_row_ids: Vec<i64>,
}

/// The process's exchanges and queues.
#[derive(Debug)]
pub(crate) struct InProcessBroker {
    queues: RwLock<Vec<Arc<InProcessQueue>>>,
    delivery_open: watch::Sender<bool>,
}

impl Default for InProcessBroker {
    fn default() -> Self {
        InProcessBroker { queues: RwLock::new(Vec::new()), delivery_open: watch::Sender::new(false) }
    }
}

impl InProcessBroker {
    /// Declares the queue `name` for `spec` (again: the bindings are replaced, messages kept).
    pub(crate) fn declare_queue(&self, name: &str, spec: &ConsumerSpec) -> Arc<InProcessQueue> {
        let mut queues = self.queues.write();
        if let Some(queue) = queues.iter().find(|queue| queue.name == name) {
            *queue.spec.write() = spec.clone();
            return queue.clone();
        }
        let queue = Arc::new(InProcessQueue {
            name: name.to_string(),
            spec: RwLock::new(spec.clone()),
            messages: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
        });
        queues.push(queue.clone());
        queue
    }

    /// Lets relays publish: every consumer of the process has declared its queue.
    pub(crate) fn open_delivery(&self) {
        self.delivery_open.send_replace(true);
    }

    /// Waits until relays may publish.
    pub(crate) async fn wait_until_open(&self) {
        let mut open = self.delivery_open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }

    /// Whether relays may publish.
    pub(crate) fn is_open(&self) -> bool {
        *self.delivery_open.borrow()
    }

    /// Routes `rows` to the queues bound to them, in order; answers the tracker that tells
    /// when every queue settled them, and which rows no queue took.
    pub(crate) fn publish(&self, rows: &[OutboxRow]) -> RoutedBatch {
        let queues = self.queues.read();
        let mut routes: Vec<(&Arc<InProcessQueue>, &OutboxRow)> = Vec::new();
        let mut unrouted_row_ids = Vec::new();
        for row in rows {
            let num_routes_before = routes.len();
            for queue in queues.iter() {
                let spec = queue.spec.read();
                if spec.exchange == row.exchange && spec.matches(&row.routing_key) {
                    routes.push((queue, row));
                }
            }
            if routes.len() == num_routes_before {
                unrouted_row_ids.push(row.id);
            }
        }
        let tracker = SettleTracker::new(routes.len());
        for (queue, row) in routes {
            queue.push_back(QueuedMessage {
                body: Arc::from(row.envelope.as_str()),
                traceparent: row.traceparent.clone(),
                redelivered: false,
                tracker: tracker.clone(),
            });
        }
        RoutedBatch { tracker, unrouted_row_ids }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn row(id: i64, routing_key: &str) -> OutboxRow {
        OutboxRow {
            id,
            event_id: format!("e{id}"),
            exchange: "order-events".into(),
            routing_key: routing_key.into(),
            subject: "o1".into(),
            envelope: format!("{{\"n\":{id}}}"),
            traceparent: None,
        }
    }

    #[tokio::test]
    async fn a_publish_completes_when_every_bound_queue_settled_it() {
        let broker = InProcessBroker::default();
        let payment = broker
            .declare_queue("payment.order-events", &ConsumerSpec::new("payment", "order-events", &["order.created"]));
        let notification = broker.declare_queue(
            "notification.order-events",
            &ConsumerSpec::new("notification", "order-events", &["order.#"]),
        );
        let routed = broker.publish(&[row(1, "order.created"), row(2, "order.cancelled")]);
        assert!(routed.unrouted_row_ids.is_empty());
        let tracker = routed.tracker;
        assert_eq!(payment.num_ready(), 1);
        assert_eq!(notification.num_ready(), 2);
        for delivery in payment.take(10).await {
            delivery.settle();
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(50), tracker.wait()).await.is_err(),
            "notification has not settled"
        );
        for delivery in notification.take(10).await {
            delivery.settle();
        }
        tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await.expect("all settled");
    }

    #[tokio::test]
    async fn a_dropped_delivery_goes_back_to_the_front_as_redelivered() {
        let broker = InProcessBroker::default();
        let queue = broker.declare_queue("c.order-events", &ConsumerSpec::new("c", "order-events", &["#"]));
        let _routed = broker.publish(&[row(1, "order.created"), row(2, "order.created")]);
        let taken = queue.take(1).await;
        drop(taken);
        let again = queue.take(10).await;
        assert_eq!(again.len(), 2);
        let first = again[0].message().unwrap();
        assert_eq!(&*first.body, "{\"n\":1}");
        assert!(first.redelivered);
        assert!(!again[1].message().unwrap().redelivered);
        for delivery in again {
            delivery.settle();
        }
        assert_eq!(queue.num_ready(), 0);
    }

    #[tokio::test]
    async fn rows_no_queue_wants_complete_at_once_and_are_reported() {
        let broker = InProcessBroker::default();
        let queue = broker.declare_queue("c.order-events", &ConsumerSpec::new("c", "order-events", &["order.created"]));
        let routed = broker.publish(&[row(1, "order.cancelled"), row(2, "order.created"), row(3, "order.confirmed")]);
        assert_eq!(routed.unrouted_row_ids, [1, 3]);
        for delivery in queue.take(10).await {
            delivery.settle();
        }
        tokio::time::timeout(Duration::from_millis(100), routed.tracker.wait()).await.expect("only row 2 to wait for");
        let routed = InProcessBroker::default().publish(&[row(1, "order.created")]);
        assert_eq!(routed.unrouted_row_ids, [1]);
        tokio::time::timeout(Duration::from_millis(100), routed.tracker.wait()).await.expect("nothing to wait for");
        assert!(!broker.is_open());
        broker.open_delivery();
        tokio::time::timeout(Duration::from_millis(100), broker.wait_until_open()).await.unwrap();
    }
}
