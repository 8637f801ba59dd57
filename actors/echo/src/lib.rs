//! Two diagnostic services, so the cluster's tests and benchmarks can exercise supervision and
//! the transport without any store. Compiled into the `emporium` binary only with the
//! `test-services` feature, and started only by the explicit roles `echo` and `probe`.
//!
//! - `echo`: [`worker::EchoWorker`] (`echo/worker`) echoes, counts, sleeps and crashes on demand.
//! - `probe`: [`probe::Probe`] (`probe/caller`) asks `echo` through `ServiceRef`, wherever it
//!   runs, once (`RelayEcho`) or many times with latency figures (`MeasureAsks`).
//!
//! Messages: `emporium_contracts::echo`.
#![warn(missing_docs)]

mod definition;
pub mod probe;
pub mod routes;
pub mod worker;

use emporium_cluster::{ServiceContext, ServiceHandle};
use emporium_contracts::echo::{
    Crash, Echo, IncrementCounter, MeasureAsks, MeasureReservations, PROBE_SERVICE, RelayEcho, RelayReserveStock,
    SERVICE, Sleep,
};
use emporium_runtime::LocalEndpoint;

pub use definition::{definition, probe_definition};
pub use routes::{openapi, routes};

/// Starts the echo service under its supervisor.
pub fn start(ctx: ServiceContext) -> anyhow::Result<ServiceHandle> {
    let mut group = ctx.group(SERVICE);
    let node_id = ctx.node_id.clone();
    let worker = group.spawn("worker", move || worker::EchoWorker::new(node_id.clone()));
    let supervision = group.finish();
    let endpoint = LocalEndpoint::builder(SERVICE, supervision.health.clone())
        .route::<Echo, _>(&worker)
        .route::<IncrementCounter, _>(&worker)
        .route::<Crash, _>(&worker)
        .route::<Sleep, _>(&worker)
        .build();
    Ok(ServiceHandle::new(endpoint, supervision))
}

/// Starts the probe service, which asks `echo` wherever it runs.
pub fn start_probe(ctx: ServiceContext) -> anyhow::Result<ServiceHandle> {
    let mut group = ctx.group(PROBE_SERVICE);
    let echo = ctx.service(SERVICE);
    let inventory = ctx.service(emporium_contracts::inventory::SERVICE);
    let caller = group.spawn("caller", move || probe::Probe::new(echo.clone(), inventory.clone()));
    let supervision = group.finish();
    let endpoint = LocalEndpoint::builder(PROBE_SERVICE, supervision.health.clone())
        .route::<RelayEcho, _>(&caller)
        .route::<MeasureAsks, _>(&caller)
        .route::<RelayReserveStock, _>(&caller)
        .route::<MeasureReservations, _>(&caller)
        .build();
    Ok(ServiceHandle::new(endpoint, supervision))
}
