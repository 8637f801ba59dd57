//! The inventory's consumer of `order.confirmed` and `order.cancelled`: the order's
//! reservation is committed or released in the transaction in which the bus records the event,
//! so a redelivered event changes nothing. A batch first locks the stock rows of all its orders
//! in SKU order, as a reservation takes them, so settling and reserving cannot deadlock.

use std::sync::Arc;

use emporium_bus::handler::{EventError, EventHandler, ReceivedEvent};
use emporium_contracts::events::{ORDER_CANCELLED, ORDER_CONFIRMED, OrderCancelled, OrderConfirmed};
use emporium_runtime::CallMeta;
use emporium_store::{DbTx, StoreError};
use futures::future::BoxFuture;

use crate::error::InventoryError;
use crate::stock_keeper::settle_in;
use crate::store;

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

/// The order of an `order.confirmed` or `order.cancelled` event, if it is one.
fn order_of(event: &ReceivedEvent) -> Option<String> {
    match event.envelope.event_type.as_str() {
        ORDER_CONFIRMED => event.envelope.payload::<OrderConfirmed>().ok().map(|confirmed| confirmed.order_id),
        ORDER_CANCELLED => event.envelope.payload::<OrderCancelled>().ok().map(|cancelled| cancelled.order_id),
        _ => None,
    }
}

/// Settles reservations as orders are confirmed or cancelled.
struct OrderOutcomes;

impl EventHandler for OrderOutcomes {
    fn handle(&self, event: ReceivedEvent, tx: DbTx) -> BoxFuture<'static, Result<DbTx, EventError>> {
        Box::pin(apply(event, tx))
    }

    /// Locks the stock rows the batch's orders reserved, in SKU order, before any is settled.
    fn prepare(&self, events: &[ReceivedEvent], mut tx: DbTx) -> BoxFuture<'static, Result<DbTx, StoreError>> {
        let order_ids: Vec<String> = events.iter().filter_map(order_of).collect();
        Box::pin(async move {
            store::lock_reserved_stock(&mut tx, &order_ids).await?;
            Ok(tx)
        })
    }
}

/// The handler the inventory subscribes to `order-events` with.
pub fn handler() -> Arc<dyn EventHandler> {
    Arc::new(OrderOutcomes)
}
