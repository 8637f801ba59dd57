//! The order desk actor (`order/desk`): places, reads, lists and cancels orders.
//!
//! Placing an order asks the catalog for a price snapshot and the inventory for a
//! reservation (both request-reply through `ServiceRef`, under their call sites' timeout,
//! breaker, retry and concurrency limit), then commits the order and `order.created` in one
//! transaction. When the inventory cannot answer, nothing is stored and any reservation that
//! may have been made is released (by an idempotent release now, or by its TTL).
//!
//! Those releases, and the one after a cancellation, are handed to the reservation releaser
//! (`order/reservation-releaser`, [`spawn_desk`]): a supervised task of the same group that
//! asks the inventory, retrying a few times, so a panic in it is a fault in the node's tree
//! followed by a restart, and the node's stop signal ends it (what it still holds is left to
//! the reservations' TTL).

use std::sync::Arc;
use std::time::Duration;

use emporium_bus::outbox;
use emporium_cluster::routes_kit::{may_access, visible_owner};
use emporium_cluster::{ServiceContext, ServiceRef};
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
use emporium_runtime::{Behavior, CallMeta, CellHandle, Reply, ServiceGroup, ServiceHandler, TaskContext};
use emporium_store::{Database, DbTx};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Mutex, mpsc};

use crate::error::OrderError;
use crate::store::{self, OrderQuery, StoredLine, StoredOrder};
use crate::validation::{check_idempotency_key, check_request, request_hash};

/// The reservation releaser's name in the order service's group (its path is
/// `order/reservation-releaser`).
pub const RESERVATION_RELEASER: &str = "reservation-releaser";

/// How many times a release is asked for before the reservation is left to its TTL.
const RELEASE_ATTEMPTS: u32 = 3;

/// The order desk.
pub struct OrderDesk {
    database: Database,
    catalog: ServiceRef,
    inventory: ServiceRef,
    releases: ReservationReleases,
}

impl OrderDesk {
    /// A desk storing in `database`, asking `catalog` and `inventory`, handing the
    /// reservations it gives back to `releases` (the releaser task; [`spawn_desk`] starts both).
    pub fn new(database: Database, catalog: ServiceRef, inventory: ServiceRef, releases: ReservationReleases) -> Self {
        OrderDesk { database, catalog, inventory, releases }
    }
}

/// Starts the order desk (`order/desk`) and its reservation releaser
/// (`order/reservation-releaser`, a supervised task stopped by the node's stop signal) in
/// `group`; the desk stores in `database` and asks the catalog and the inventory.
pub fn spawn_desk(ctx: &ServiceContext, group: &mut ServiceGroup, database: Database) -> CellHandle<OrderDesk> {
    let catalog = ctx.service(emporium_contracts::product::SERVICE);
    let inventory = ctx.service(emporium_contracts::inventory::SERVICE);
    let releases = spawn_reservation_releaser(ctx, group, inventory.clone());
    group.spawn("desk", move || OrderDesk::new(database.clone(), catalog.clone(), inventory.clone(), releases.clone()))
}

/// Where the desk sends the reservations it gives back to the inventory.
#[derive(Clone)]
pub struct ReservationReleases {
    /// The releaser task's queue.
    release_tx: mpsc::UnboundedSender<String>,
}

impl ReservationReleases {
    /// Releases the reservation of `order_id` in the background (idempotent; if the inventory
    /// stays unreachable, the reservation's TTL releases it).
    fn release(&self, order_id: String) {
        if let Err(unsent) = self.release_tx.send(order_id) {
            tracing::warn!(order_id = %unsent.0, "the releaser has stopped; reservation left to its expiry");
        }
    }
}

/// Starts the reservation releaser as a supervised task of `group`, asking `inventory`, and
/// answers its queue. The queue outlives the task's runs: a run that panics loses only the
/// releases it was working on (their reservations expire), and the next run takes the rest.
fn spawn_reservation_releaser(
    ctx: &ServiceContext,
    group: &mut ServiceGroup,
    inventory: ServiceRef,
) -> ReservationReleases {
    let (release_tx, release_rx) = mpsc::unbounded_channel();
    let release_rx = Arc::new(Mutex::new(release_rx));
    ctx.spawn_task(group, RESERVATION_RELEASER, move |task_context| {
        Box::pin(run_releaser(task_context, inventory.clone(), release_rx.clone()))
    });
    ReservationReleases { release_tx }
}

/// One run of the releaser: releases every queued order's reservation, several at a time,
/// until the stop signal.
async fn run_releaser(
    task_context: TaskContext,
    inventory: ServiceRef,
    release_rx: Arc<Mutex<mpsc::UnboundedReceiver<String>>>,
) -> Result<(), String> {
    let mut release_rx = release_rx.lock().await;
    let mut releases = FuturesUnordered::new();
    let mut is_queue_open = true;
    loop {
        tokio::select! {
            _ = task_context.stop_requested() => {
                if !releases.is_empty() {
                    tracing::info!(num_left = releases.len(), "stopping; unreleased reservations left to their expiry");
                }
                return Ok(());
            }
            order_id = release_rx.recv(), if is_queue_open => match order_id {
                Some(order_id) => releases.push(release_with_retries(inventory.clone(), order_id)),
                None => is_queue_open = false,
            },
            Some(()) = releases.next() => {}
        }
    }
}

/// Asks `inventory` to release the reservation of `order_id`, a few times with growing pauses.
async fn release_with_retries(inventory: ServiceRef, order_id: String) {
    for attempt in 0..RELEASE_ATTEMPTS {
        match inventory.ask(ReleaseReservation { order_id: order_id.clone() }).await {
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(order_id = %order_id, attempt, code = %error.code, "reservation not released yet");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    tracing::warn!(order_id = %order_id, "reservation left to its expiry");
}

impl Behavior for OrderDesk {}

/// Whether a dependency's error means it could not answer (as opposed to a clear refusal).
fn is_unavailability(error: &ServiceError) -> bool {
    matches!(error.kind, ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Fault | ErrorKind::Internal)
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
    releases: ReservationReleases,
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
            releases.release(order_id);
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
            releases.release(order_id);
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
            releases.release(order_id);
            Err(error)
        }
    }
}

async fn visible_order(database: &Database, caller: &Caller, id: &str) -> Result<StoredOrder, OrderError> {
    let order = store::order(database, id).await?.ok_or_else(|| OrderError::NotFound(id.to_string()))?;
    if !may_access(caller, &order.user_id) {
        return Err(OrderError::NotFound(id.to_string()));
    }
    Ok(order)
}

async fn cancel(
    database: Database,
    releases: ReservationReleases,
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
    releases.release(order.id.clone());
    let cancelled = store::order(&database, &order.id).await?.ok_or_else(|| OrderError::NotFound(order.id.clone()))?;
    Ok(cancelled.view())
}

impl ServiceHandler<PlaceOrder> for OrderDesk {
    fn handle(&mut self, message: PlaceOrder, meta: &CallMeta) -> Reply<PlacedOrder> {
        let (database, catalog, inventory) = (self.database.clone(), self.catalog.clone(), self.inventory.clone());
        let (releases, meta) = (self.releases.clone(), meta.clone());
        Box::pin(async move { Ok(place(database, catalog, inventory, releases, message, meta).await?) })
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
                user_id: visible_owner(&message.caller).map(str::to_string),
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
        let (database, releases, meta) = (self.database.clone(), self.releases.clone(), meta.clone());
        Box::pin(async move { Ok(cancel(database, releases, message, meta).await?) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use emporium_cluster::Settings;
    use emporium_contracts::identity::Role;
    use emporium_contracts::inventory::{GetStock, SetStock, SetStockRequest};
    use emporium_runtime::LocalEndpoint;
    use emporium_runtime::monitor::ActorStatus;
    use tokio::sync::watch;

    use super::*;

    fn mysql_url() -> String {
        std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
    }

    async fn admin_database() -> Database {
        Database::connect(&format!("{}/mysql", mysql_url()))
            .await
            .unwrap_or_else(|error| panic!("MariaDB is needed at {} (EMPORIUM_TEST_MYSQL_URL): {error}", mysql_url()))
    }

    /// A fresh database on the machine's MariaDB: its name and a pool on it.
    async fn create_database(prefix: &str) -> (String, Database) {
        let name = format!("{prefix}_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let admin = admin_database().await;
        admin.execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        admin.close().await;
        let database = Database::connect(&format!("{}/{name}", mysql_url())).await.unwrap();
        (name, database)
    }

    async fn drop_database(name: &str, database: Database) {
        database.close().await;
        let admin = admin_database().await;
        admin.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        admin.close().await;
    }

    fn meta() -> CallMeta {
        CallMeta { deadline: Some(Instant::now() + Duration::from_secs(30)), trace: None }
    }

    /// The desk hands a cancelled order's reservation to the releaser, a supervised task of the
    /// order group, which gives the stock back; the stop signal ends it.
    #[actix_rt::test]
    async fn a_cancelled_order_gives_its_stock_back_through_the_supervised_releaser() {
        let (_settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
        let ctx = ServiceContext::standalone("order-releaser-test", settings_rx);
        let (inventory_name, inventory_database) = create_database("order_releaser_inventory").await;
        let options = emporium_inventory::InventoryOptions { database: inventory_database.clone(), bus: None };
        let inventory = emporium_inventory::start(ctx.clone(), options).await.unwrap();
        ctx.cluster.add_local(inventory.endpoint.clone());
        let (order_name, order_database) = create_database("order_releaser").await;
        store::migrate(&order_database).await.unwrap();

        let mut group = ctx.group(SERVICE);
        let desk = spawn_desk(&ctx, &mut group, order_database.clone());
        let supervision = group.finish();
        let endpoint =
            LocalEndpoint::builder(SERVICE, supervision.health.clone()).route::<CancelOrder, _>(&desk).build();
        let snapshot = ctx.tree.snapshot();
        let order_service = snapshot.services.iter().find(|service| service.service == SERVICE).expect("in the tree");
        let paths: Vec<&str> = order_service.actors.iter().map(|actor| actor.path.as_str()).collect();
        assert_eq!(paths, ["order/reservation-releaser", "order/desk"]);
        assert_eq!(order_service.actors[0].status, ActorStatus::Running);

        // A pending order whose stock is reserved.
        let admin = Caller { user_id: "admin-1".into(), roles: vec![Role::Admin], token_id: "t".into() };
        let request = SetStockRequest { available: 5, reorder_level: 0, reorder_quantity: 0 };
        ctx.cluster.ask(SetStock { caller: admin, sku: "MUG-1".into(), request }, meta()).await.unwrap();
        let lines = vec![StockLine { sku: "MUG-1".into(), quantity: 2 }];
        ctx.cluster.ask(ReserveStock { order_id: "order-1".into(), lines }, meta()).await.unwrap();
        let now = store::now_millis();
        let order = StoredOrder {
            id: "order-1".into(),
            user_id: "u1".into(),
            status: OrderStatus::PendingPayment,
            currency: "USD".into(),
            total_minor: 200,
            cancellation_reason: None,
            created_at_ms: now,
            updated_at_ms: now,
            lines: vec![StoredLine {
                sku: "MUG-1".into(),
                name: "Mug".into(),
                quantity: 2,
                unit_price_minor: 100,
                line_total_minor: 200,
            }],
        };
        let mut tx = order_database.begin().await.unwrap();
        store::insert_order(&mut tx, &order).await.unwrap();
        tx.commit().await.unwrap();

        let customer = Caller { user_id: "u1".into(), roles: vec![Role::Customer], token_id: "t".into() };
        let cancel = CancelOrder { caller: customer, id: "order-1".into() };
        let cancelled = endpoint.route::<CancelOrder>().expect("routed").ask(cancel, meta()).await.unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        let started = Instant::now();
        loop {
            let stock = ctx.cluster.ask(GetStock { sku: "MUG-1".into() }, meta()).await.unwrap();
            if (stock.available, stock.reserved) == (5, 0) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the reservation was not released: {stock:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let snapshot = ctx.tree.snapshot();
        assert!(snapshot.faults.is_empty(), "{:?}", snapshot.faults);
        assert_eq!(ctx.lifecycle.stop(Duration::from_secs(5)).await, Vec::<String>::new(), "every task ended");

        drop(inventory);
        drop_database(&order_name, order_database).await;
        drop_database(&inventory_name, inventory_database).await;
    }
}
