//! The inventory service: stock per SKU, and the synchronous stock check the order service
//! asks before it takes an order.
//!
//! - Actor: [`stock_keeper::StockKeeper`] (`inventory/stock`) handles every message of
//!   `emporium_contracts::inventory`: `CheckAvailability`, `ReserveStock` (all lines or none,
//!   idempotent per order id, with a TTL), `CommitReservation`, `ReleaseReservation`,
//!   `ReleaseExpiredReservations` (sent by its own sweep), `SetStock`, `AdjustStock`,
//!   `GetStock`, `ListStock`.
//! - Task: [`expiry_sweep`] (`inventory/expiry-sweep`), supervised beside the keeper, asks it
//!   to release the expired reservations every `inventory.expiry_sweep_millis`.
//! - Store: [`store`], one SQL text for MariaDB/MySQL and SQLite; no oversell by conditional
//!   updates inside the reservation's transaction (and a `CHECK (available >= 0)`).
//! - Events through the outbox, in the transaction of the change: `inventory.reserved`,
//!   `inventory.released`, `inventory.committed`, `inventory.reorder_needed`.
//! - Consumer: [`order_outcomes`] commits or releases on `order.confirmed` / `order.cancelled`.
//! - HTTP: [`routes::routes`] (mounted by the gateway) and [`routes::openapi`].
#![warn(missing_docs)]

mod definition;
pub mod error;
pub mod expiry_sweep;
pub mod order_outcomes;
pub mod routes;
pub mod settings;
pub mod stock_keeper;
pub mod store;
pub mod validation;

use emporium_bus::{Bus, ConsumerSpec};
use emporium_cluster::{ServiceContext, ServiceHandle};
use emporium_contracts::events::ORDER_EVENTS;
use emporium_contracts::inventory::{
    AdjustStock, CheckAvailability, CommitReservation, GetStock, ListStock, ReleaseExpiredReservations,
    ReleaseReservation, ReserveStock, SERVICE, SetStock,
};
use emporium_runtime::LocalEndpoint;
use emporium_store::Database;

pub use definition::definition;
pub use routes::{openapi, routes};
pub use settings::InventorySettings;

/// What the inventory service needs besides its context.
pub struct InventoryOptions {
    /// Where the stock, the reservations and the outbox live.
    pub database: Database,
    /// The event bus: the outbox relay and the consumer of `order.confirmed` and
    /// `order.cancelled` run on it. Without it (tests of the store alone), events wait in the
    /// outbox.
    pub bus: Option<Bus>,
}

/// Migrates the store, starts the stock keeper and its expiry sweep (a supervised task) under
/// the service's supervisor.
pub async fn start(ctx: ServiceContext, options: InventoryOptions) -> anyhow::Result<ServiceHandle> {
    store::migrate(&options.database).await?;
    let mut group = ctx.group(SERVICE);
    let database = options.database.clone();
    let settings = ctx.settings.clone();
    let keeper = group.spawn("stock", move || stock_keeper::StockKeeper::new(database.clone(), settings.clone()));
    expiry_sweep::spawn(&ctx, &mut group, &keeper);
    let supervision = group.finish();
    let endpoint = LocalEndpoint::builder(SERVICE, supervision.health.clone())
        .route::<CheckAvailability, _>(&keeper)
        .route::<ReserveStock, _>(&keeper)
        .route::<CommitReservation, _>(&keeper)
        .route::<ReleaseReservation, _>(&keeper)
        .route::<ReleaseExpiredReservations, _>(&keeper)
        .route::<SetStock, _>(&keeper)
        .route::<AdjustStock, _>(&keeper)
        .route::<GetStock, _>(&keeper)
        .route::<ListStock, _>(&keeper)
        .build();
    let mut handle = ServiceHandle::new(endpoint, supervision);
    if let Some(bus) = &options.bus {
        let relay = bus.start_relay(&ctx, SERVICE, options.database.clone()).await?;
        let spec = ConsumerSpec::from_topology(SERVICE, ORDER_EVENTS)?;
        let consumer = bus.subscribe(&ctx, spec, options.database.clone(), order_outcomes::handler()).await?;
        handle = handle.keep(relay).keep(consumer);
    }
    Ok(handle)
}
