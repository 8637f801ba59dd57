//! The charger: the payment service's [`EventHandler`] for `order.created`. The bus runs it in
//! its consumer actor (`payment.order-events/consumer`), inside the transaction in which it
//! records the event in the inbox; the charger adds the payment and its `payment.succeeded` or
//! `payment.failed` outbox row to that transaction, so the three commit together or not at all.
//!
//! Exactly one payment per order: a redelivery of the same event is stopped by the inbox; an
//! `order.created` with another event id for an order already paid (a republished event, a
//! duplicate from the order service) finds the order's payment and changes nothing; two
//! instances charging one order at once serialize on the unique `order_id` (the loser fails,
//! is retried by the bus, and then finds the payment).

use std::sync::Arc;

use emporium_bus::{EventError, EventHandler, ReceivedEvent, outbox};
use emporium_contracts::events::{
    self, EventEnvelope, OrderCreated, PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentFailed, PaymentSucceeded,
};
use emporium_contracts::money::{Money, decimals_of};
use emporium_contracts::payment::{INVALID_AMOUNT, PaymentStatus, SERVICE, UNSUPPORTED_CURRENCY};
use emporium_store::DbTx;
use futures::future::BoxFuture;

use crate::provider::{PaymentProvider, ProviderOutcome};
use crate::store::{self, PaymentClaim};
use crate::validation::is_plain_id;

/// Charges orders as their `order.created` events arrive.
pub struct Charger {
    provider: Arc<dyn PaymentProvider>,
}

impl Charger {
    /// A charger that charges through `provider`.
    pub fn new(provider: Arc<dyn PaymentProvider>) -> Self {
        Charger { provider }
    }
}

impl EventHandler for Charger {
    fn handle(&self, event: ReceivedEvent, tx: DbTx) -> BoxFuture<'static, Result<DbTx, EventError>> {
        let provider = self.provider.clone();
        Box::pin(charge_order(provider, event, tx))
    }
}

/// What an order's payment came to.
struct Decision {
    status: PaymentStatus,
    failure_reason: Option<String>,
    provider_ref: Option<String>,
}

#[tracing::instrument(skip_all, fields(event_id = %event.envelope.id, order_id = tracing::field::Empty))]
async fn charge_order(
    provider: Arc<dyn PaymentProvider>,
    event: ReceivedEvent,
    mut tx: DbTx,
) -> Result<DbTx, EventError> {
    let order: OrderCreated = event
        .envelope
        .payload()
        .map_err(|error| EventError::Permanent(format!("unreadable order.created: {error}")))?;
    tracing::Span::current().record("order_id", order.order_id.as_str());
    if !is_plain_id(&order.order_id) || !is_plain_id(&order.user_id) {
        return Err(EventError::Permanent(
            "order.created without a usable orderId or userId (1 to 64 visible characters)".into(),
        ));
    }
    if let Some(existing) = store::payment_of_order(&mut tx, &order.order_id).await? {
        tracing::info!(
            payment_id = %existing.view.id,
            status = ?existing.view.status,
            "order already has its payment; this order.created changes nothing"
        );
        return Ok(tx);
    }

    let payment_id = uuid::Uuid::new_v4().to_string();
    let (amount, refused) = match Money::parse(&order.total, &order.currency) {
        Ok(amount) => (amount, None),
        Err(error) => {
            let reason = if error.code == "unsupported_currency" { UNSUPPORTED_CURRENCY } else { INVALID_AMOUNT };
            (Money::from_minor_units(0, decimals_of(&order.currency).unwrap_or(2)), Some(reason))
        }
    };
    let claim = PaymentClaim {
        id: &payment_id,
        order_id: &order.order_id,
        user_id: &order.user_id,
        amount,
        currency: &order.currency,
        method: &order.payment.method,
        created_at_ms: store::now_millis(),
    };
    if let Err(error) = store::claim(&mut tx, &claim).await {
        if store::is_unique_violation(&error) {
            // Another transaction charged this order meanwhile: retried, this event then
            // finds its payment.
            return Err(EventError::Transient(format!("order {} was being charged concurrently", order.order_id)));
        }
        return Err(error.into());
    }

    let decision = match refused {
        Some(reason) => {
            Decision { status: PaymentStatus::Failed, failure_reason: Some(reason.to_string()), provider_ref: None }
        }
        None => {
            let outcome = provider
                .charge(&order.order_id, amount, &order.currency, &order.payment.method, &order.payment.token)
                .await
                .map_err(|error| EventError::Transient(error.to_string()))?;
            match outcome {
                ProviderOutcome::Charged { provider_ref } => Decision {
                    status: PaymentStatus::Succeeded,
                    failure_reason: None,
                    provider_ref: Some(provider_ref),
                },
                ProviderOutcome::Declined { reason, provider_ref } => {
                    Decision { status: PaymentStatus::Failed, failure_reason: Some(reason), provider_ref }
                }
            }
        }
    };
    store::settle(
        &mut tx,
        &payment_id,
        decision.status,
        decision.failure_reason.as_deref(),
        decision.provider_ref.as_deref(),
    )
    .await?;

    let amount_text = amount.to_string();
    let envelope = match (&decision.status, &decision.failure_reason) {
        (PaymentStatus::Succeeded, _) => {
            let payload = PaymentSucceeded {
                payment_id: payment_id.clone(),
                order_id: order.order_id.clone(),
                user_id: order.user_id.clone(),
                amount: amount_text,
                currency: order.currency.clone(),
                provider_ref: decision.provider_ref.clone().unwrap_or_default(),
            };
            EventEnvelope::new(&events::source_of(SERVICE), PAYMENT_SUCCEEDED, &order.order_id, &payload)
        }
        (PaymentStatus::Failed, reason) => {
            let payload = PaymentFailed {
                payment_id: payment_id.clone(),
                order_id: order.order_id.clone(),
                user_id: order.user_id.clone(),
                amount: amount_text,
                currency: order.currency.clone(),
                reason: reason.clone().unwrap_or_default(),
            };
            EventEnvelope::new(&events::source_of(SERVICE), PAYMENT_FAILED, &order.order_id, &payload)
        }
    }
    .map_err(|error| EventError::Permanent(format!("the payment event could not be written: {error}")))?;
    let traceparent = event.traceparent.clone();
    outbox::enqueue(&mut tx, SERVICE, &envelope, traceparent).await?;
    tracing::info!(
        payment_id = %payment_id,
        provider = provider.name(),
        status = ?decision.status,
        reason = decision.failure_reason.as_deref().unwrap_or(""),
        "order charged"
    );
    Ok(tx)
}
