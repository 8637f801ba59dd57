//! The inventory's consumer of `order.confirmed` and `order.cancelled`: the order's
//! reservation is committed or released in the transaction in which the bus records the event,
//! so a redelivered event changes nothing.

use std::sync::Arc;

use emporium_bus::handler::{EventError, EventHandler, ReceivedEvent, handler_fn};
use emporium_contracts::events::{ORDER_CANCELLED, ORDER_CONFIRMED, OrderCancelled, OrderConfirmed};
use emporium_runtime::CallMeta;
use emporium_store::DbTx;

use crate::error::InventoryError;
use crate::stock_keeper::settle_in;

async fn apply(event: ReceivedEvent, mut tx: DbTx) -> Result<DbTx, EventError> {
    let meta = CallMeta { deadline: None, trace: event.trace() };
    let (order_id, commit) = match event.envelope.event_type.as_str() {
        ORDER_CONFIRMED => {
            let confirmed: OrderConfirmed =
                event.envelope.payload().map_err(|error| EventError::Permanent(error.to_string()))?;
            (confirmed.order_id, true)
        }
        ORDER_CANCELLED => {
            let cancelled: OrderCancelled =
                event.envelope.payload().map_err(|error| EventError::Permanent(error.to_string()))?;
            (cancelled.order_id, false)
        }
        _ => return Ok(tx),
    };
    match settle_in(&mut tx, &order_id, commit, &meta).await {
        Ok(_) => Ok(tx),
        // A confirmed order whose reservation already expired: nothing to take; say so loudly.
        Err(InventoryError::ReservationReleased(order_id)) => {
            tracing::error!(order_id = %order_id, "order confirmed after its reservation was released");
            Ok(tx)
        }
        Err(InventoryError::Invalid { message, .. }) => Err(EventError::Permanent(message)),
        Err(error) => Err(EventError::Transient(error.to_string())),
    }
}

/// The handler the inventory subscribes to `order-events` with.
pub fn handler() -> Arc<dyn EventHandler> {
    handler_fn(apply)
}
