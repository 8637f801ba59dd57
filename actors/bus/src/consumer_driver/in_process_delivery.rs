//! Delivery on the in-process bus: batches taken from an [`InProcessQueue`], settled in place
//! (a delivery dropped unsettled goes back to the front of its queue), and dead letters kept
//! in the consumer's `bus_dead_letter` table.

use std::sync::Arc;

use super::delivery::{DeliveryIds, Incoming, Settle};
use crate::error::BusError;
use crate::in_process::{InProcessDelivery, InProcessQueue};
use crate::inbox::{self, DeadLetter};
use emporium_store::Database;

/// Takes up to `max` messages from `queue`, waiting for at least one.
pub(crate) async fn next_batch(queue: &Arc<InProcessQueue>, max: usize, ids: &mut DeliveryIds) -> Vec<Incoming> {
    let deliveries = queue.take(max).await;
    deliveries.into_iter().filter_map(|delivery| incoming(delivery, ids)).collect()
}

/// The driver's view of an in-process delivery.
fn incoming(delivery: InProcessDelivery, ids: &mut DeliveryIds) -> Option<Incoming> {
    let message = delivery.message()?.clone();
    Some(Incoming {
        delivery_id: ids.next(),
        body: message.body.as_bytes().to_vec(),
        traceparent: message.traceparent.clone(),
        settle: Settle::InProcess(delivery),
    })
}

/// Stores `letter` in `database`, then settles `delivery`; when the letter cannot be stored
/// the delivery goes back to its queue rather than be lost.
pub(crate) async fn dead_letter(
    database: &Database,
    delivery: InProcessDelivery,
    letter: &DeadLetter,
) -> Result<(), BusError> {
    if let Err(error) = inbox::store_dead_letter(database, letter).await {
        delivery.requeue();
        return Err(error);
    }
    delivery.settle();
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Utc;

    use super::*;
    use crate::config::ConsumerSpec;
    use crate::in_process::InProcessBroker;
    use crate::outbox::OutboxRow;

    /// A broker with one queue holding `count` events.
    pub(crate) fn queue_with_events(count: i64) -> (InProcessBroker, Arc<InProcessQueue>) {
        let broker = InProcessBroker::default();
        let queue = broker.declare_queue("payment.order-events", &ConsumerSpec::new("payment", "order-events", &["#"]));
        let rows: Vec<OutboxRow> = (1..=count)
            .map(|id| OutboxRow {
                id,
                event_id: format!("e{id}"),
                exchange: "order-events".into(),
                routing_key: "order.created".into(),
                subject: format!("o{id}"),
                envelope: format!("{{\"n\":{id}}}"),
                traceparent: (id == 1).then(|| "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string()),
            })
            .collect();
        broker.publish(&rows);
        (broker, queue)
    }

    #[tokio::test]
    async fn a_batch_carries_bodies_and_trace_context_in_order() {
        let (_broker, queue) = queue_with_events(3);
        let mut ids = DeliveryIds::default();
        let batch = next_batch(&queue, 2, &mut ids).await;
        assert_eq!(batch.len(), 2, "bounded by max");
        assert_eq!(batch[0].body, b"{\"n\":1}");
        assert!(batch[0].traceparent.is_some());
        assert_eq!(batch[1].traceparent, None);
        assert_eq!(queue.num_ready(), 1);
        drop(batch);
        assert_eq!(queue.num_ready(), 3, "dropped unsettled deliveries go back");
    }

    #[tokio::test]
    async fn a_dead_letter_that_cannot_be_stored_stays_in_the_queue() {
        let (_broker, queue) = queue_with_events(1);
        let path = std::env::temp_dir().join(format!("bus-dead-letter-{}.db", uuid::Uuid::new_v4()));
        let test_database = Database::open_sqlite_file(&path).await.expect("sqlite");
        let delivery = queue.take(1).await.pop().expect("one");
        let letter = DeadLetter {
            consumer: "payment".into(),
            queue: queue.name.clone(),
            event_id: None,
            body: "{}".into(),
            reason: "test".into(),
            attempts: 0,
            dead_lettered_at: Utc::now(),
        };
        let stored = dead_letter(&test_database, delivery, &letter).await;
        assert!(stored.is_err(), "no bus tables in this database");
        assert_eq!(queue.num_ready(), 1, "kept rather than lost");
        crate::schema::migrate(&test_database).await.expect("bus tables");
        let delivery = queue.take(1).await.pop().expect("one");
        dead_letter(&test_database, delivery, &letter).await.expect("stored");
        assert_eq!(queue.num_ready(), 0);
        assert_eq!(inbox::list_dead_letters(&test_database, "payment").await.expect("listed").len(), 1);
        test_database.close().await;
        let _ = std::fs::remove_file(&path);
    }
}
