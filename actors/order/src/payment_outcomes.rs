//! The order service's consumer of `payment.succeeded` and `payment.failed`: a pending order
//! becomes CONFIRMED (with `order.confirmed`) or CANCELLED with the payment's reason (with
//! `order.cancelled`), in the transaction in which the bus records the event; events for
//! orders already final change nothing.

use std::sync::Arc;

use emporium_bus::handler::{EventError, EventHandler, ReceivedEvent, handler_fn};
use emporium_bus::outbox;
use emporium_contracts::events::{
    self, EventEnvelope, ORDER_CANCELLED, ORDER_CONFIRMED, OrderCancelled, OrderConfirmed, PAYMENT_FAILED,
    PAYMENT_SUCCEEDED, PaymentFailed, PaymentSucceeded,
};
use emporium_contracts::order::{OrderStatus, SERVICE};
use emporium_store::DbTx;

use crate::store;

async fn publish<T: serde::Serialize>(
    tx: &mut DbTx,
    event_type: &str,
    order_id: &str,
    payload: &T,
    traceparent: Option<String>,
) -> Result<(), EventError> {
    let envelope = EventEnvelope::new(&events::source_of(SERVICE), event_type, order_id, payload)
        .map_err(|error| EventError::Permanent(error.to_string()))?;
    outbox::enqueue(tx, SERVICE, &envelope, traceparent).await?;
    Ok(())
}

async fn apply(event: ReceivedEvent, mut tx: DbTx) -> Result<DbTx, EventError> {
    let traceparent = event.traceparent.clone();
    match event.envelope.event_type.as_str() {
        PAYMENT_SUCCEEDED => {
            let paid: PaymentSucceeded =
                event.envelope.payload().map_err(|error| EventError::Permanent(error.to_string()))?;
            if store::finish_pending(&mut tx, &paid.order_id, OrderStatus::Confirmed, None).await? {
                let Some(order) = store::order_in(&mut tx, &paid.order_id).await? else { return Ok(tx) };
                let view = order.view();
                let payload = OrderConfirmed {
                    order_id: order.id.clone(),
                    user_id: order.user_id.clone(),
                    total: view.total,
                    currency: view.currency,
                };
                publish(&mut tx, ORDER_CONFIRMED, &order.id, &payload, traceparent).await?;
                tracing::info!(order_id = %order.id, "order confirmed");
            } else {
                tracing::info!(order_id = %paid.order_id, "payment for an order that is not pending; ignored");
            }
        }
        PAYMENT_FAILED => {
            let failed: PaymentFailed =
                event.envelope.payload().map_err(|error| EventError::Permanent(error.to_string()))?;
            if store::finish_pending(&mut tx, &failed.order_id, OrderStatus::Cancelled, Some(&failed.reason)).await? {
                let Some(order) = store::order_in(&mut tx, &failed.order_id).await? else { return Ok(tx) };
                let payload = OrderCancelled {
                    order_id: order.id.clone(),
                    user_id: order.user_id.clone(),
                    reason: failed.reason,
                };
                publish(&mut tx, ORDER_CANCELLED, &order.id, &payload, traceparent).await?;
                tracing::info!(order_id = %order.id, "order cancelled: payment failed");
            }
        }
        _ => {}
    }
    Ok(tx)
}

/// The handler the order service subscribes to `payment-events` with.
pub fn handler() -> Arc<dyn EventHandler> {
    handler_fn(apply)
}
