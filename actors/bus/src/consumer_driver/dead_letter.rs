//! Setting a message aside: to the dead-letter queue on RabbitMQ or the `bus_dead_letter`
//! table in process, then where an operator sees it: a fault in the node's supervision tree
//! (under the consumer actor's path), the consumer's snapshot, a metric and an error log.

use chrono::Utc;
use emporium_runtime::fault::{Fault, FaultKind};
use emporium_runtime::monitor::FlightEntry;

use super::delivery::{Incoming, Settle, Source};
use super::run::ConsumerDriver;
use super::{amqp_delivery, in_process_delivery};
use crate::error::BusError;
use crate::inbox::DeadLetter;

/// The message type a dead letter's fault is recorded under.
pub(crate) const DEAD_LETTER_FAULT: &str = "DeadLetter";

impl ConsumerDriver {
    /// Sets `incoming` aside with `reason`, records it where an operator sees it, and settles
    /// it. An error means it could not be set aside: it stays in (or goes back to) the queue.
    pub(crate) async fn dead_letter(
        &mut self,
        incoming: Incoming,
        event_id: Option<String>,
        reason: &str,
        attempts: u32,
        source: &Source,
    ) -> Result<(), BusError> {
        let setup = &self.setup;
        let letter = DeadLetter {
            consumer: setup.spec.consumer.clone(),
            queue: setup.names.queue.clone(),
            event_id,
            body: String::from_utf8_lossy(&incoming.body).into_owned(),
            reason: reason.to_string(),
            attempts,
            dead_lettered_at: Utc::now(),
        };
        match (incoming.settle, source) {
            (Settle::Amqp(delivery), Source::Amqp(session)) => {
                let consumer = &setup.spec.consumer;
                amqp_delivery::dead_letter(
                    session,
                    *delivery,
                    &incoming.body,
                    &setup.names,
                    consumer,
                    reason,
                    attempts,
                )
                .await?;
            }
            (Settle::InProcess(delivery), _) => {
                in_process_delivery::dead_letter(&setup.context.database, delivery, &letter).await?;
            }
            (Settle::Amqp(_), Source::InProcess(_)) => {
                // Cannot happen: deliveries come from the session's own source.
                return Err(BusError::Unexpected(anyhow::anyhow!("an AMQP delivery on an in-process queue")));
            }
        }
        metrics::counter!("emporium_bus_dead_lettered_total", "queue" => setup.names.queue.clone()).increment(1);
        tracing::error!(
            queue = %setup.names.queue,
            event_id = letter.event_id.as_deref().unwrap_or(""),
            attempts,
            reason,
            "message dead-lettered"
        );
        let monitor = &setup.cell.monitor;
        setup.faults.record(dead_letter_fault(&letter, monitor.path(), monitor.recent_messages(16)));
        self.shared.remember_dead_letter(letter);
        Ok(())
    }
}

/// The fault that shows `letter` in the node's supervision snapshot, under `actor_path`.
fn dead_letter_fault(letter: &DeadLetter, actor_path: &str, flight_record: Vec<FlightEntry>) -> Fault {
    Fault {
        id: 0,
        at: letter.dead_lettered_at,
        actor_path: actor_path.to_string(),
        message_type: DEAD_LETTER_FAULT,
        kind: FaultKind::DeadLetter,
        error: format!(
            "{} dead-lettered from {}: {}",
            letter.event_id.as_deref().unwrap_or("a message"),
            letter.queue,
            letter.reason
        ),
        backtrace: None,
        trace_id: None,
        flight_record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(event_id: Option<&str>) -> DeadLetter {
        DeadLetter {
            consumer: "payment".into(),
            queue: "ns.payment.order-events".into(),
            event_id: event_id.map(str::to_string),
            body: "{}".into(),
            reason: "handler failed 5 times: db".into(),
            attempts: 5,
            dead_lettered_at: Utc::now(),
        }
    }

    #[test]
    fn a_dead_letter_fault_names_the_event_the_queue_and_the_reason() {
        let letter = letter(Some("e1"));
        let fault = dead_letter_fault(&letter, "payment.order-events/consumer", Vec::new());
        assert_eq!(fault.actor_path, "payment.order-events/consumer");
        assert_eq!(fault.message_type, DEAD_LETTER_FAULT);
        assert_eq!(fault.kind, FaultKind::DeadLetter);
        assert_eq!(fault.at, letter.dead_lettered_at);
        assert_eq!(fault.error, "e1 dead-lettered from ns.payment.order-events: handler failed 5 times: db");
    }

    #[test]
    fn an_unreadable_message_is_named_as_such() {
        let fault = dead_letter_fault(&letter(None), "c/consumer", Vec::new());
        assert!(fault.error.starts_with("a message dead-lettered from "), "{}", fault.error);
    }
}
