//! The order service: the order saga's starting point and its bookkeeper.
//!
//! - Actor: [`order_desk::OrderDesk`] (`order/desk`) handles `PlaceOrder` (price snapshot from
//!   `product`, reservation from `inventory`, both through `ServiceRef`; then the order and
//!   `order.created` in one transaction; `Idempotency-Key` per user), `GetOrder`,
//!   `ListOrders` (a customer's own, or all for an admin) and `CancelOrder` (until confirmed).
//! - Consumer: [`payment_outcomes`] turns `payment.succeeded` / `payment.failed` into
//!   CONFIRMED + `order.confirmed` or CANCELLED + `order.cancelled`, through the inbox.
//! - Store: [`store`], one SQL text for MariaDB/MySQL and SQLite.
//! - HTTP: [`routes::routes`] and [`routes::openapi`].
#![warn(missing_docs)]

mod definition;
pub mod error;
pub mod order_desk;
pub mod payment_outcomes;
pub mod routes;
pub mod store;
pub mod validation;

use emporium_bus::{Bus, ConsumerSpec};
use emporium_cluster::{ServiceContext, ServiceHandle};
use emporium_contracts::events::PAYMENT_EVENTS;
use emporium_contracts::order::{CancelOrder, GetOrder, ListOrders, PlaceOrder, SERVICE};
use emporium_runtime::LocalEndpoint;
use emporium_store::Database;

pub use definition::definition;
pub use routes::{openapi, routes};

/// What the order service needs besides its context.
pub struct OrderOptions {
    /// Where orders, idempotency keys, the outbox and the inbox live.
    pub database: Database,
    /// The event bus.
    pub bus: Bus,
}

/// Migrates the store, starts the order desk, the outbox relay and the payment consumer.
pub async fn start(ctx: ServiceContext, options: OrderOptions) -> anyhow::Result<ServiceHandle> {
    store::migrate(&options.database).await?;
    let relay = options.bus.start_relay(&ctx, SERVICE, options.database.clone()).await?;
    let spec = ConsumerSpec::from_topology(SERVICE, PAYMENT_EVENTS)?;
    let consumer = options.bus.subscribe(&ctx, spec, options.database.clone(), payment_outcomes::handler()).await?;

    let mut group = ctx.group(SERVICE);
    let desk = order_desk::spawn_desk(&ctx, &mut group, options.database.clone());
    let supervision = group.finish();
    let endpoint = LocalEndpoint::builder(SERVICE, supervision.health.clone())
        .route::<PlaceOrder, _>(&desk)
        .route::<GetOrder, _>(&desk)
        .route::<ListOrders, _>(&desk)
        .route::<CancelOrder, _>(&desk)
        .build();
    Ok(ServiceHandle::new(endpoint, supervision).keep(relay).keep(consumer))
}
