//! The order desk actor (`order/desk`): places, reads, lists and cancels orders.
//!
//! Placing an order asks the catalog for a price snapshot and the inventory for a
//! reservation (both request-reply through `ServiceRef`, under their call sites' timeout,
//! breaker, retry and concurrency limit), then commits the order and `order.created` in one
//! transaction. When the inventory cannot answer, nothing is stored and any reservation that
//! may have been made is released (by an idempotent release now, or by its TTL).

use std::time::Duration;

use emporium_bus::outbox;
use emporium_cluster::ServiceRef;
use emporium_contracts::events::{
    self, EventEnvelope, ORDER_CANCELLED, ORDER_CREATED, OrderCancelled, OrderCreated, OrderLine, PaymentInstruction,
    StockLine,
};
use emporium_contracts::identity::Caller;
use emporium_contracts::inventory::{ReleaseReservation, ReserveStock};
use emporium_contracts::money::{Money, decimals_of};
use emporium_contracts::order::{
    CancelOrder, GetOrder, ListOrders, OrderStatus, OrderView, PlaceOrder, PlacedOrder, SERVICE,
};
use emporium_contracts::page::Page;
use emporium_contracts::product::GetProducts;
use emporium_contracts::{ErrorKind, ServiceError};
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};
use emporium_store::{Database, DbTx};

use crate::error::OrderError;
use crate::store::{self, OrderQuery, StoredLine, StoredOrder};
use crate::validation::{check_idempotency_key, check_request, request_hash};

/// The order desk.
pub struct OrderDesk {
    database: Database,
    catalog: ServiceRef,
    inventory: ServiceRef,
}

impl OrderDesk {
    /// A desk storing in `database`, asking `catalog` and `inventory`.
    pub fn new(database: Database, catalog: ServiceRef, inventory: ServiceRef) -> Self {
        OrderDesk { database, catalog, inventory }
    }
}

impl Behavior for OrderDesk {}

/// Whether a dependency's error means it could not answer (as opposed to a clear refusal).
fn is_unavailability(error: &ServiceError) -> bool {
    matches!(error.kind, ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Fault | ErrorKind::Internal)
}

/// Releases the reservation of `order_id` in the background (idempotent; if the inventory
/// stays unreachable, the reservation's TTL releases it).
fn release_later(inventory: ServiceRef, order_id: String) {
    tokio::spawn(async move {
        for attempt in 0..3u32 {
            match inventory.ask(ReleaseReservation { order_id: order_id.clone() }).await {
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(order_id = %order_id, attempt, code = %error.code, "reservation not released yet");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        tracing::warn!(order_id = %order_id, "reservation left to its expiry");
    });
}

async fn publish<T: serde::Serialize>(
    tx: &mut DbTx,
    event_type: &str,
    subject: &str,
    payload: &T,
    meta: &CallMeta,
) -> Result<(), OrderError> {
    let envelope = EventEnvelope::new(&events::source_of(SERVICE), event_type, subject, payload)
        .map_err(|error| OrderError::Unexpected(error.into()))?;
    outbox::enqueue(tx, SERVICE, &envelope, meta.trace.map(|trace| trace.to_string())).await?;
    Ok(())
}

async fn replay(database: &Database, order_id: &str) -> Result<PlacedOrder, OrderError> {
    let order = store::order(database, order_id)
        .await?
        .ok_or_else(|| OrderError::Unexpected(anyhow::anyhow!("idempotency key names missing order {order_id}")))?;
    Ok(PlacedOrder { order: order.view(), replayed: true })
}

async fn place(
    database: Database,
    catalog: ServiceRef,
    inventory: ServiceRef,
    message: PlaceOrder,
    meta: CallMeta,
) -> Result<PlacedOrder, OrderError> {
    let PlaceOrder { caller, idempotency_key, request } = message;
    check_request(&request)?;
    let hash = request_hash(&request);
    if let Some(key) = &idempotency_key {
        check_idempotency_key(key)?;
        if let Some((stored_hash, order_id)) = store::idempotency_key(&database, &caller.user_id, key).await? {
            if stored_hash != hash {
                return Err(OrderError::IdempotencyKeyReused);
            }
            return replay(&database, &order_id).await;
        }
    }

    // 1. The price snapshot.
    let skus: Vec<String> = request.items.iter().map(|item| item.sku.clone()).collect();
    let products = catalog.ask_with(GetProducts { skus }, meta.clone()).await.map_err(|error| {
        if is_unavailability(&error) {
            OrderError::CatalogUnavailable(error.message)
        } else {
            OrderError::Dependency(error)
        }
    })?;
    if !products.missing.is_empty() {
        return Err(OrderError::UnknownSkus(products.missing));
    }
    let decimals = decimals_of(&request.currency).unwrap_or(2);
    let mut lines = Vec::with_capacity(request.items.len());
    let mut total = Money::from_minor_units(0, decimals);
    let too_large = || OrderError::Invalid { code: "order_too_large", message: "the order total is too large".into() };
    for item in &request.items {
        let Some(product) = products.found.iter().find(|product| product.sku == item.sku) else {
            return Err(OrderError::UnknownSkus(vec![item.sku.clone()]));
        };
        if product.currency != request.currency {
            return Err(OrderError::CurrencyMismatch {
                sku: item.sku.clone(),
                product_currency: product.currency.clone(),
                order_currency: request.currency.clone(),
            });
        }
        let unit_price = Money::parse(&product.price, &product.currency).map_err(OrderError::Dependency)?;
        let quantity = item.quantity as u32;
        let line_total = unit_price.times(quantity).ok_or_else(too_large)?;
        total = total.plus(line_total).ok_or_else(too_large)?;
        lines.push(StoredLine {
            sku: item.sku.clone(),
            name: product.name.clone(),
            quantity,
            unit_price_minor: unit_price.minor_units,
            line_total_minor: line_total.minor_units,
        });
    }

    // 2. The stock, reserved for this order id (idempotent per id).
    let order_id = uuid::Uuid::new_v4().to_string();
    let stock_lines = lines.iter().map(|line| StockLine { sku: line.sku.clone(), quantity: line.quantity }).collect();
    if let Err(error) =
        inventory.ask_with(ReserveStock { order_id: order_id.clone(), lines: stock_lines }, meta.clone()).await
    {
        if is_unavailability(&error) {
            release_later(inventory, order_id);
            return Err(OrderError::InventoryUnavailable(error.message));
        }
        return Err(OrderError::Dependency(error));
    }

    // 3. The order and its event, together.
    let now = store::now_millis();
    let order = StoredOrder {
        id: order_id.clone(),
        user_id: caller.user_id.clone(),
        status: OrderStatus::PendingPayment,
        currency: request.currency.clone(),
        total_minor: total.minor_units,
        cancellation_reason: None,
        created_at_ms: now,
        updated_at_ms: now,
        lines,
    };
    let view = order.view();
    let created = OrderCreated {
        order_id: order_id.clone(),
        user_id: caller.user_id.clone(),
        items: view
            .items
            .iter()
            .map(|item| OrderLine {
                sku: item.sku.clone(),
                name: item.name.clone(),
                quantity: item.quantity,
                unit_price: item.unit_price.clone(),
                line_total: item.line_total.clone(),
            })
            .collect(),
        total: view.total.clone(),
        currency: view.currency.clone(),
        payment: PaymentInstruction { method: request.payment.method.clone(), token: request.payment.token.clone() },
    };
    let committed = async {
        let mut tx = database.begin().await?;
        store::insert_order(&mut tx, &order).await?;
        publish(&mut tx, ORDER_CREATED, &order_id, &created, &meta).await?;
        if let Some(key) = &idempotency_key
            && let Err(error) = store::insert_idempotency_key(&mut tx, &caller.user_id, key, &hash, &order_id).await
        {
            tx.rollback().await?;
            return Ok::<Option<sqlx::Error>, OrderError>(Some(error));
        }
        tx.commit().await?;
        Ok(None)
    }
    .await;
    match committed {
        Ok(None) => {
            tracing::info!(order_id = %order_id, user_id = %caller.user_id, total = %view.total, "order placed");
            Ok(PlacedOrder { order: view, replayed: false })
        }
        Ok(Some(key_error)) => {
            release_later(inventory, order_id);
            let key = idempotency_key.unwrap_or_default();
            if !store::is_unique_violation(&key_error) {
                return Err(key_error.into());
            }
            // A concurrent request with the same key committed first: answer its order.
            match store::idempotency_key(&database, &caller.user_id, &key).await? {
                Some((stored_hash, winner)) if stored_hash == hash => replay(&database, &winner).await,
                Some(_) => Err(OrderError::IdempotencyKeyReused),
                None => Err(key_error.into()),
            }
        }
        Err(error) => {
            release_later(inventory, order_id);
            Err(error)
        }
    }
}

async fn visible_order(database: &Database, caller: &Caller, id: &str) -> Result<StoredOrder, OrderError> {
    let order = store::order(database, id).await?.ok_or_else(|| OrderError::NotFound(id.to_string()))?;
    if order.user_id != caller.user_id && !caller.is_admin() {
        return Err(OrderError::NotFound(id.to_string()));
    }
    Ok(order)
}

async fn cancel(
    database: Database,
    inventory: ServiceRef,
    message: CancelOrder,
    meta: CallMeta,
) -> Result<OrderView, OrderError> {
    let order = visible_order(&database, &message.caller, &message.id).await?;
    match order.status {
        OrderStatus::Cancelled => return Ok(order.view()),
        OrderStatus::Confirmed => {
            return Err(OrderError::NotCancellable { id: order.id, status: OrderStatus::Confirmed.as_str() });
        }
        OrderStatus::PendingPayment => {}
    }
    let reason = "cancelled_by_customer";
    let mut tx = database.begin().await?;
    if !store::finish_pending(&mut tx, &order.id, OrderStatus::Cancelled, Some(reason)).await? {
        tx.rollback().await?;
        let now = visible_order(&database, &message.caller, &message.id).await?;
        return match now.status {
            OrderStatus::Cancelled => Ok(now.view()),
            status => Err(OrderError::NotCancellable { id: now.id, status: status.as_str() }),
        };
    }
    let payload = OrderCancelled { order_id: order.id.clone(), user_id: order.user_id.clone(), reason: reason.into() };
    publish(&mut tx, ORDER_CANCELLED, &order.id, &payload, &meta).await?;
    tx.commit().await?;
    // The inventory also releases on `order.cancelled`; asking now gives the stock back at once.
    release_later(inventory, order.id.clone());
    let cancelled = store::order(&database, &order.id).await?.ok_or_else(|| OrderError::NotFound(order.id.clone()))?;
    Ok(cancelled.view())
}

impl ServiceHandler<PlaceOrder> for OrderDesk {
    fn handle(&mut self, message: PlaceOrder, meta: &CallMeta) -> Reply<PlacedOrder> {
        let (database, catalog, inventory) = (self.database.clone(), self.catalog.clone(), self.inventory.clone());
        let meta = meta.clone();
        Box::pin(async move { Ok(place(database, catalog, inventory, message, meta).await?) })
    }
}

impl ServiceHandler<GetOrder> for OrderDesk {
    fn handle(&mut self, message: GetOrder, _meta: &CallMeta) -> Reply<OrderView> {
        let database = self.database.clone();
        Box::pin(async move { Ok(visible_order(&database, &message.caller, &message.id).await?.view()) })
    }
}

impl ServiceHandler<ListOrders> for OrderDesk {
    fn handle(&mut self, message: ListOrders, _meta: &CallMeta) -> Reply<Page<OrderView>> {
        let database = self.database.clone();
        Box::pin(async move {
            let query = OrderQuery {
                user_id: (!message.caller.is_admin()).then(|| message.caller.user_id.clone()),
                status: message.status,
                from_ms: message.from.map(|from| from.timestamp_millis()),
                to_ms: message.to.map(|to| to.timestamp_millis()),
            };
            let (orders, total) =
                store::list_orders(&database, &query, message.page).await.map_err(OrderError::from)?;
            Ok(Page::new(orders.iter().map(StoredOrder::view).collect(), message.page, total))
        })
    }
}

impl ServiceHandler<CancelOrder> for OrderDesk {
    fn handle(&mut self, message: CancelOrder, meta: &CallMeta) -> Reply<OrderView> {
        let (database, inventory) = (self.database.clone(), self.inventory.clone());
        let meta = meta.clone();
        Box::pin(async move { Ok(cancel(database, inventory, message, meta).await?) })
    }
}
