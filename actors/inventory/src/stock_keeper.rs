//! The stock keeper actor (`inventory/stock`): every inventory message. Handlers run their
//! SQL in futures that own what they need, so many reservations are in flight at once; the
//! database serializes what must be serialized.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use emporium_bus::outbox;
use emporium_cluster::Settings;
use emporium_contracts::events::{
    self, EventEnvelope, INVENTORY_COMMITTED, INVENTORY_RELEASED, INVENTORY_REORDER_NEEDED, INVENTORY_RESERVED,
    InventoryCommitted, InventoryReleased, InventoryReorderNeeded, InventoryReserved,
};
use emporium_contracts::inventory::{
    AdjustStock, Availability, CheckAvailability, CommitReservation, GetStock, ListStock, ReleaseExpiredReservations,
    ReleaseReservation, Reservation, ReservationStatus, ReserveStock, SERVICE, SetStock, Shortage, StockView,
};
use emporium_contracts::page::Page;
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};
use emporium_store::{Database, DbTx};
use tokio::sync::watch;

use crate::error::InventoryError;
use crate::settings::InventorySettings;
use crate::store;
use crate::validation::{MAX_LINES, MAX_STOCK, check_level, check_lines, check_order_id, check_sku};

/// Most expired reservations released per sweep.
const EXPIRY_BATCH: u32 = 200;

/// Attempts of a reservation that the store keeps picking as a deadlock victim.
const DEADLOCK_ATTEMPTS: u32 = 4;

/// The stock keeper.
pub struct StockKeeper {
    database: Database,
    settings: watch::Receiver<Arc<Settings>>,
}

impl StockKeeper {
    /// A keeper of the stock in `database`, following `settings`.
    pub fn new(database: Database, settings: watch::Receiver<Arc<Settings>>) -> Self {
        StockKeeper { database, settings }
    }
}

impl Behavior for StockKeeper {}

fn traceparent(meta: &CallMeta) -> Option<String> {
    meta.trace.map(|trace| trace.to_string())
}

async fn publish<T: serde::Serialize>(
    tx: &mut DbTx,
    event_type: &str,
    subject: &str,
    payload: &T,
    meta: &CallMeta,
) -> Result<(), InventoryError> {
    let envelope = EventEnvelope::new(&events::source_of(SERVICE), event_type, subject, payload)
        .map_err(|error| InventoryError::Unexpected(error.into()))?;
    outbox::enqueue(tx, SERVICE, &envelope, traceparent(meta)).await?;
    Ok(())
}

/// Emits `inventory.reorder_needed` when `sku` just fell to its reorder level.
async fn publish_reorder_if_crossed(
    tx: &mut DbTx,
    sku: &str,
    available_before: u64,
    meta: &CallMeta,
) -> Result<(), InventoryError> {
    let Some(stock) = store::stock_in(tx, sku).await? else { return Ok(()) };
    if stock.available <= stock.reorder_level && available_before > stock.reorder_level {
        let payload = InventoryReorderNeeded {
            sku: stock.sku.clone(),
            available: stock.available.min(u32::MAX as u64) as u32,
            reorder_level: stock.reorder_level.min(u32::MAX as u64) as u32,
            reorder_quantity: stock.reorder_quantity.min(u32::MAX as u64) as u32,
        };
        publish(tx, INVENTORY_REORDER_NEEDED, sku, &payload, meta).await?;
    }
    Ok(())
}

/// Reserves the lines of an order, running the transaction again (at most
/// [`DEADLOCK_ATTEMPTS`] times in all, after a short pause) when the store picks it as a
/// deadlock victim: a reservation is idempotent per order, and the victim was rolled back whole.
async fn reserve(
    database: Database,
    ttl: ChronoDuration,
    message: ReserveStock,
    meta: CallMeta,
) -> Result<Reservation, InventoryError> {
    check_order_id(&message.order_id)?;
    let lines = check_lines(&message.lines)?;
    let mut attempt = 1;
    loop {
        match reserve_once(&database, ttl, &message, &lines, &meta).await {
            Err(error) if error.is_deadlock() && attempt < DEADLOCK_ATTEMPTS => {
                metrics::counter!("emporium_inventory_deadlock_retries_total").increment(1);
                tracing::debug!(order_id = %message.order_id, attempt, "reservation was a deadlock victim; running it again");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// One attempt of [`reserve`]: `lines` are checked and in SKU order, so two reservations
/// take stock rows in the same order.
async fn reserve_once(
    database: &Database,
    ttl: ChronoDuration,
    message: &ReserveStock,
    lines: &[events::StockLine],
    meta: &CallMeta,
) -> Result<Reservation, InventoryError> {
    let mut tx = database.begin().await?;
    if let Some(existing) = store::reservation(&mut tx, &message.order_id).await? {
        tx.rollback().await?;
        return same_reservation(existing, lines);
    }
    let mut unknown = Vec::new();
    let mut shortages = Vec::new();
    for line in lines {
        if store::take_stock(&mut tx, &line.sku, line.quantity).await? {
            continue;
        }
        match store::stock_in(&mut tx, &line.sku).await? {
            None => unknown.push(line.sku.clone()),
            Some(stock) => {
                shortages.push(Shortage { sku: line.sku.clone(), requested: line.quantity, available: stock.available })
            }
        }
    }
    if !unknown.is_empty() {
        tx.rollback().await?;
        return Err(InventoryError::UnknownSkus(unknown));
    }
    if !shortages.is_empty() {
        tx.rollback().await?;
        return Err(InventoryError::OutOfStock(shortages));
    }
    let reservation = Reservation {
        order_id: message.order_id.clone(),
        status: ReservationStatus::Reserved,
        lines: lines.to_vec(),
        // Stored in milliseconds: answer exactly what a repeated request will read back.
        expires_at: store::time_of((Utc::now() + ttl).timestamp_millis()),
    };
    if let Err(error) = store::insert_reservation(&mut tx, &reservation).await {
        tx.rollback().await?;
        if store::is_unique_violation(&error) {
            // The same order was reserved concurrently: answer that reservation.
            let mut tx = database.begin().await?;
            let existing = store::reservation(&mut tx, &message.order_id).await?;
            tx.rollback().await?;
            return match existing {
                Some(existing) => same_reservation(existing, lines),
                None => Err(InventoryError::Unexpected(error.into())),
            };
        }
        return Err(error.into());
    }
    let payload = InventoryReserved { order_id: reservation.order_id.clone(), lines: lines.to_vec() };
    publish(&mut tx, INVENTORY_RESERVED, &reservation.order_id, &payload, meta).await?;
    for line in lines {
        let available_before =
            store::stock_in(&mut tx, &line.sku).await?.map_or(0, |stock| stock.available) + line.quantity as u64;
        publish_reorder_if_crossed(&mut tx, &line.sku, available_before, meta).await?;
    }
    tx.commit().await?;
    Ok(reservation)
}

fn same_reservation(existing: Reservation, lines: &[events::StockLine]) -> Result<Reservation, InventoryError> {
    if existing.lines == lines { Ok(existing) } else { Err(InventoryError::ReservationMismatch(existing.order_id)) }
}

/// Settles an order's reservation inside `tx`: commit (stock leaves) or release (stock back),
/// with its event. Answers the reservation as it now stands (`None`: the order has none).
pub(crate) async fn settle_in(
    tx: &mut DbTx,
    order_id: &str,
    commit: bool,
    meta: &CallMeta,
) -> Result<Option<Reservation>, InventoryError> {
    check_order_id(order_id)?;
    let Some(mut reservation) = store::reservation(tx, order_id).await? else { return Ok(None) };
    let target = if commit { ReservationStatus::Committed } else { ReservationStatus::Released };
    if reservation.status != ReservationStatus::Reserved || !store::settle_reservation(tx, order_id, target).await? {
        if commit && reservation.status == ReservationStatus::Released {
            return Err(InventoryError::ReservationReleased(order_id.to_string()));
        }
        return Ok(Some(reservation));
    }
    for line in &reservation.lines {
        store::settle_reserved(tx, &line.sku, line.quantity, !commit).await?;
    }
    if commit {
        let payload = InventoryCommitted { order_id: order_id.to_string(), lines: reservation.lines.clone() };
        publish(tx, INVENTORY_COMMITTED, order_id, &payload, meta).await?;
    } else {
        let payload = InventoryReleased { order_id: order_id.to_string(), lines: reservation.lines.clone() };
        publish(tx, INVENTORY_RELEASED, order_id, &payload, meta).await?;
    }
    reservation.status = target;
    Ok(Some(reservation))
}

/// Settles an order's reservation in a transaction of its own.
async fn settle(
    database: Database,
    order_id: String,
    commit: bool,
    meta: CallMeta,
) -> Result<Option<Reservation>, InventoryError> {
    let mut tx = database.begin().await?;
    match settle_in(&mut tx, &order_id, commit, &meta).await {
        Ok(reservation) => {
            tx.commit().await?;
            Ok(reservation)
        }
        Err(error) => {
            tx.rollback().await?;
            Err(error)
        }
    }
}

impl ServiceHandler<ReserveStock> for StockKeeper {
    fn handle(&mut self, message: ReserveStock, meta: &CallMeta) -> Reply<Reservation> {
        let database = self.database.clone();
        let ttl_millis = self.settings.borrow().section::<InventorySettings>().reservation_ttl_millis;
        let ttl = ChronoDuration::milliseconds(ttl_millis.min(i64::MAX as u64) as i64);
        let meta = meta.clone();
        Box::pin(async move { Ok(reserve(database, ttl, message, meta).await?) })
    }
}

impl ServiceHandler<CommitReservation> for StockKeeper {
    fn handle(&mut self, message: CommitReservation, meta: &CallMeta) -> Reply<Reservation> {
        let database = self.database.clone();
        let meta = meta.clone();
        Box::pin(async move {
            let order_id = message.order_id.clone();
            match settle(database, message.order_id, true, meta).await? {
                Some(reservation) => Ok(reservation),
                None => Err(InventoryError::NoReservation(order_id).into()),
            }
        })
    }
}

impl ServiceHandler<ReleaseReservation> for StockKeeper {
    fn handle(&mut self, message: ReleaseReservation, meta: &CallMeta) -> Reply<Option<Reservation>> {
        let database = self.database.clone();
        let meta = meta.clone();
        Box::pin(async move { Ok(settle(database, message.order_id, false, meta).await?) })
    }
}

impl ServiceHandler<ReleaseExpiredReservations> for StockKeeper {
    fn handle(&mut self, _message: ReleaseExpiredReservations, meta: &CallMeta) -> Reply<u32> {
        let database = self.database.clone();
        let meta = meta.clone();
        Box::pin(async move {
            let expired = store::expired_reservations(&database, store::now_millis(), EXPIRY_BATCH)
                .await
                .map_err(InventoryError::from)?;
            let mut released = 0;
            for order_id in expired {
                if let Some(reservation) = settle(database.clone(), order_id.clone(), false, meta.clone()).await?
                    && reservation.status == ReservationStatus::Released
                {
                    tracing::info!(order_id = %order_id, "expired reservation released");
                    released += 1;
                }
            }
            Ok(released)
        })
    }
}

impl ServiceHandler<CheckAvailability> for StockKeeper {
    fn handle(&mut self, message: CheckAvailability, _meta: &CallMeta) -> Reply<Vec<Availability>> {
        let database = self.database.clone();
        Box::pin(async move {
            if message.skus.is_empty() || message.skus.len() > MAX_LINES {
                return Err(InventoryError::Invalid {
                    code: "invalid_skus",
                    message: format!("1 to {MAX_LINES} skus"),
                }
                .into());
            }
            for sku in &message.skus {
                check_sku(sku)?;
            }
            let available = store::available_of(&database, &message.skus).await.map_err(InventoryError::from)?;
            Ok(message
                .skus
                .iter()
                .map(|sku| {
                    let units = available.get(sku).copied().unwrap_or(0);
                    Availability { sku: sku.clone(), available: units, in_stock: units > 0 }
                })
                .collect())
        })
    }
}

impl ServiceHandler<SetStock> for StockKeeper {
    fn handle(&mut self, message: SetStock, meta: &CallMeta) -> Reply<StockView> {
        let database = self.database.clone();
        let meta = meta.clone();
        Box::pin(async move {
            let request = &message.request;
            check_sku(&message.sku)?;
            check_level("available", request.available)?;
            check_level("reorderLevel", request.reorder_level)?;
            check_level("reorderQuantity", request.reorder_quantity)?;
            let mut tx = database.begin().await.map_err(InventoryError::from)?;
            let before = store::stock_in(&mut tx, &message.sku).await.map_err(InventoryError::from)?;
            store::set_stock(&mut tx, &message.sku, request.available, request.reorder_level, request.reorder_quantity)
                .await
                .map_err(InventoryError::from)?;
            let available_before = before.map_or(u64::MAX, |stock| stock.available);
            publish_reorder_if_crossed(&mut tx, &message.sku, available_before, &meta).await?;
            let stock = store::stock_in(&mut tx, &message.sku).await.map_err(InventoryError::from)?;
            tx.commit().await.map_err(InventoryError::from)?;
            tracing::info!(sku = %message.sku, actor = %message.caller.user_id, "stock set");
            Ok(stock.ok_or_else(|| InventoryError::UnknownSku(message.sku.clone()))?)
        })
    }
}

impl ServiceHandler<AdjustStock> for StockKeeper {
    fn handle(&mut self, message: AdjustStock, meta: &CallMeta) -> Reply<StockView> {
        let database = self.database.clone();
        let meta = meta.clone();
        Box::pin(async move {
            check_sku(&message.sku)?;
            let AdjustStock { caller, sku, request } = message;
            if request.delta == 0 || request.delta.abs() > MAX_STOCK {
                return Err(InventoryError::Invalid {
                    code: "invalid_delta",
                    message: format!("delta must be non-zero and at most {MAX_STOCK} either way"),
                }
                .into());
            }
            let reason = request.reason.trim();
            if reason.is_empty() || reason.chars().count() > 200 {
                return Err(InventoryError::Invalid {
                    code: "invalid_reason",
                    message: "reason is 1 to 200 characters".into(),
                }
                .into());
            }
            let mut tx = database.begin().await.map_err(InventoryError::from)?;
            let Some(before) = store::stock_in(&mut tx, &sku).await.map_err(InventoryError::from)? else {
                tx.rollback().await.map_err(InventoryError::from)?;
                return Err(InventoryError::UnknownSku(sku).into());
            };
            if !store::adjust_stock(&mut tx, &sku, request.delta, reason, &caller.user_id)
                .await
                .map_err(InventoryError::from)?
            {
                tx.rollback().await.map_err(InventoryError::from)?;
                return Err(InventoryError::InsufficientStock {
                    sku,
                    available: before.available,
                    delta: request.delta,
                }
                .into());
            }
            publish_reorder_if_crossed(&mut tx, &sku, before.available, &meta).await?;
            let stock = store::stock_in(&mut tx, &sku).await.map_err(InventoryError::from)?;
            tx.commit().await.map_err(InventoryError::from)?;
            Ok(stock.ok_or(InventoryError::UnknownSku(sku))?)
        })
    }
}

impl ServiceHandler<GetStock> for StockKeeper {
    fn handle(&mut self, message: GetStock, _meta: &CallMeta) -> Reply<StockView> {
        let database = self.database.clone();
        Box::pin(async move {
            check_sku(&message.sku)?;
            match store::stock(&database, &message.sku).await.map_err(InventoryError::from)? {
                Some(stock) => Ok(stock),
                None => Err(InventoryError::UnknownSku(message.sku).into()),
            }
        })
    }
}

impl ServiceHandler<ListStock> for StockKeeper {
    fn handle(&mut self, message: ListStock, _meta: &CallMeta) -> Reply<Page<StockView>> {
        let database = self.database.clone();
        Box::pin(async move {
            let (items, total) = store::list_stock(&database, message.reorder_needed, message.page)
                .await
                .map_err(InventoryError::from)?;
            Ok(Page::new(items, message.page, total))
        })
    }
}
