//! The product service: the catalog (API.md section 4, Products).
//!
//! - Actor: [`catalog::Catalog`] (`product/catalog`) handles every message of
//!   `emporium_contracts::product`: `CreateProduct` (409 `sku_taken`), `UpdateProduct`,
//!   `DeleteProduct`, `GetProduct` (404 `product_not_found`), `ListProducts` (category, text,
//!   price range, paging, sort from a fixed list) and `GetProducts` (the order service's price
//!   snapshot: found and missing SKUs).
//! - Store: [`store::ProductStore`], one repository contract with two implementations of the
//!   same semantics: MongoDB ([`store::mongo`], `EMPORIUM_MONGODB_URL`) and embedded SQLite
//!   ([`store::sqlite`], the default). Money is exact on both (Decimal128 / integer minor
//!   units); no client input ever becomes an operator, a field or SQL.
//! - Checks: [`validation`]; failures: [`error`].
//! - HTTP: [`routes::routes`] (mounted by the gateway) and [`routes::openapi`].
//! - Demo data: [`seed::seed_demo_catalog`] (`emporium seed`).
#![warn(missing_docs)]

pub mod catalog;
mod definition;
pub mod error;
pub mod routes;
pub mod seed;
pub mod store;
pub mod validation;

use emporium_cluster::{ServiceContext, ServiceHandle};
use emporium_contracts::product::{
    CreateProduct, DeleteProduct, GetProduct, GetProducts, ListProducts, SERVICE, UpdateProduct,
};
use emporium_runtime::LocalEndpoint;

pub use definition::definition;
pub use routes::{openapi, routes};
pub use seed::{DemoStock, seed_demo_catalog};
pub use store::{ProductStore, ProductStoreConfig};

/// What the product service needs besides its context.
pub struct ProductOptions {
    /// The catalog store, already open ([`ProductStore::open`]); the node keeps a clone for
    /// its readiness check ([`ProductStore::ping`]).
    pub store: ProductStore,
}

/// Starts the catalog actor under the service's supervisor.
pub async fn start(ctx: ServiceContext, options: ProductOptions) -> anyhow::Result<ServiceHandle> {
    let mut group = ctx.group(SERVICE);
    let store = options.store;
    tracing::info!(store = store.kind(), "product service starting");
    let catalog = group.spawn("catalog", move || catalog::Catalog::new(store.clone()));
    let supervision = group.finish();
    let endpoint = LocalEndpoint::builder(SERVICE, supervision.health.clone())
        .route::<CreateProduct, _>(&catalog)
        .route::<UpdateProduct, _>(&catalog)
        .route::<DeleteProduct, _>(&catalog)
        .route::<GetProduct, _>(&catalog)
        .route::<ListProducts, _>(&catalog)
        .route::<GetProducts, _>(&catalog)
        .build();
    Ok(ServiceHandle::new(endpoint, supervision))
}
