//! The payment service: charges each order once, when its `order.created` arrives, and lets
//! users read their payments.
//!
//! - Event handler: [`charger::Charger`] consumes `order.created` (consumer `payment`, queue
//!   `payment.order-events`), charges through a [`provider::PaymentProvider`] (the built-in
//!   [`provider::SimulatedCardProcessor`] follows API.md's test tokens), records the payment
//!   and emits `payment.succeeded` or `payment.failed` through the outbox, all in the
//!   transaction in which the bus records the event in its inbox: exactly one payment per
//!   order, even when `order.created` arrives twice.
//! - Actor: [`ledger::PaymentLedger`] (`payment/ledger`) answers the reads of
//!   `emporium_contracts::payment`: `GetPayment`, `ListPayments`.
//! - Store: [`store`], one SQL text for MariaDB/MySQL and SQLite, migrations `5_000_001..`.
//! - HTTP: [`routes::routes`] (mounted by the gateway) and [`routes::openapi`].
#![warn(missing_docs)]

pub mod charger;
mod definition;
pub mod error;
pub mod ledger;
pub mod provider;
pub mod routes;
pub mod store;
pub mod validation;

use std::sync::Arc;

use emporium_bus::{Bus, ConsumerSpec};
use emporium_cluster::{ServiceContext, ServiceHandle};
use emporium_contracts::events::ORDER_EVENTS;
use emporium_contracts::payment::{GetPayment, ListPayments, SERVICE};
use emporium_runtime::LocalEndpoint;
use emporium_store::Database;

pub use definition::definition;
pub use provider::{PaymentProvider, ProviderError, ProviderOutcome, SimulatedCardProcessor};
pub use routes::{openapi, routes};

/// What the payment service needs besides its context.
pub struct PaymentOptions {
    /// Where the payments, the outbox and the inbox live.
    pub database: Database,
    /// The event bus it consumes `order.created` from and publishes its events to.
    pub bus: Bus,
}

/// Starts the payment service with the simulated card processor; see [`start_with_provider`].
pub async fn start(ctx: ServiceContext, options: PaymentOptions) -> anyhow::Result<ServiceHandle> {
    start_with_provider(ctx, options, Arc::new(SimulatedCardProcessor)).await
}

/// Migrates the store, starts the outbox relay (`payment.outbox/relay`), subscribes the
/// charger to `order.created` (`payment.order-events/consumer`) and starts the ledger under
/// the service's supervisor. The relay and the consumer live as long as the returned handle.
pub async fn start_with_provider(
    ctx: ServiceContext,
    options: PaymentOptions,
    provider: Arc<dyn PaymentProvider>,
) -> anyhow::Result<ServiceHandle> {
    let PaymentOptions { database, bus } = options;
    store::migrate(&database).await?;
    let relay = bus.start_relay(&ctx, SERVICE, database.clone()).await?;
    let spec = ConsumerSpec::from_topology(SERVICE, ORDER_EVENTS)?;
    let consumer = bus.subscribe(&ctx, spec, database.clone(), Arc::new(charger::Charger::new(provider))).await?;

    let mut group = ctx.group(SERVICE);
    let ledger = group.spawn("ledger", move || ledger::PaymentLedger::new(database.clone()));
    let supervision = group.finish();
    let endpoint = LocalEndpoint::builder(SERVICE, supervision.health.clone())
        .route::<GetPayment, _>(&ledger)
        .route::<ListPayments, _>(&ledger)
        .build();
    Ok(ServiceHandle::new(endpoint, supervision).keep(relay).keep(consumer))
}
