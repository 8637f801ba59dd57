//! What the driver reads from (a [`Source`]: a RabbitMQ session or an in-process queue), the
//! messages it takes ([`Incoming`]), and how each is settled: acknowledged, delivered again, or
//! (see [`super::dead_letter`]) set aside. The transports' details are in
//! [`super::amqp_delivery`] and [`super::in_process_delivery`].

use std::sync::Arc;

use super::amqp_delivery::{self, AmqpDelivery, AmqpSession};
use super::in_process_delivery;
use crate::error::BusError;
use crate::in_process::{InProcessDelivery, InProcessQueue};

/// A message taken from the queue, not settled yet.
pub(crate) struct Incoming {
    /// Numbers the deliveries of one driver run, to match the actor's outcomes.
    pub(crate) delivery_id: u64,
    pub(crate) body: Vec<u8>,
    pub(crate) traceparent: Option<String>,
    pub(crate) settle: Settle,
}

/// How a message is settled, by transport.
pub(crate) enum Settle {
    Amqp(Box<AmqpDelivery>),
    InProcess(InProcessDelivery),
}

/// Where the driver reads from and settles to.
pub(crate) enum Source {
    Amqp(Box<AmqpSession>),
    InProcess(Arc<InProcessQueue>),
}

/// Numbers the deliveries of one driver run.
#[derive(Debug, Default)]
pub(crate) struct DeliveryIds {
    last: u64,
}

impl DeliveryIds {
    pub(crate) fn next(&mut self) -> u64 {
        self.last += 1;
        self.last
    }
}

impl Source {
    /// Takes up to `max` messages, waiting for at least one. An error means the session is
    /// broken: the driver reconnects.
    pub(crate) async fn next_batch(&mut self, max: usize, ids: &mut DeliveryIds) -> Result<Vec<Incoming>, BusError> {
        match self {
            Source::InProcess(queue) => Ok(in_process_delivery::next_batch(queue, max, ids).await),
            Source::Amqp(session) => amqp_delivery::next_batch(session, max, ids).await,
        }
    }

    /// Detaches from the queue; unacknowledged deliveries go back to it.
    pub(crate) async fn close(self) {
        if let Source::Amqp(session) = self {
            session.close().await;
        }
    }
}

/// Acknowledges a delivery. A broker that does not take the ack in time (its connection died
/// under us) ends the session: the delivery comes back after the reconnection and the inbox
/// recognises it.
pub(crate) async fn ack(incoming: Incoming) -> Result<(), BusError> {
    match incoming.settle {
        Settle::Amqp(delivery) => amqp_delivery::ack(*delivery).await,
        Settle::InProcess(delivery) => {
            delivery.settle();
            Ok(())
        }
    }
}

/// Puts a delivery back in its queue, to be delivered again.
pub(crate) async fn requeue(incoming: Incoming) {
    match incoming.settle {
        Settle::Amqp(delivery) => amqp_delivery::requeue(*delivery).await,
        Settle::InProcess(delivery) => delivery.requeue(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_start_at_one_and_grow() {
        let mut ids = DeliveryIds::default();
        assert_eq!((ids.next(), ids.next(), ids.next()), (1, 2, 3));
    }

    #[tokio::test]
    async fn in_process_deliveries_are_acked_or_requeued() {
        let (broker, queue) = in_process_delivery::tests::queue_with_events(2);
        let mut source = Source::InProcess(queue.clone());
        let mut ids = DeliveryIds::default();
        let mut batch = source.next_batch(10, &mut ids).await.expect("in-process never breaks");
        assert_eq!(batch.iter().map(|incoming| incoming.delivery_id).collect::<Vec<_>>(), [1, 2]);
        let second = batch.pop().expect("two");
        let first = batch.pop().expect("two");
        ack(first).await.expect("settled");
        requeue(second).await;
        let again = source.next_batch(10, &mut ids).await.expect("in-process never breaks");
        assert_eq!(again.len(), 1, "only the requeued one comes back");
        assert_eq!(again[0].delivery_id, 3);
        drop(again);
        source.close().await;
        drop(broker);
    }
}
