//! `emporium seed`: a small demo catalog with stock, into empty stores, with a progress line
//! per step. It never touches a store that already has products.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_cluster::{ServiceContext, Settings};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::inventory::{SetStock, SetStockRequest};
use emporium_runtime::CallMeta;
use tokio::sync::watch;

use emporium_product::ProductStore;
use emporium_store::Database;

use crate::cli::Cli;

/// Seeds the catalog, then sets the stock of every demo product.
pub async fn seed(cli: Cli) -> anyhow::Result<()> {
    let (environment, _vault) = emporium_cluster::vault::process_environment().await?;
    let store = ProductStore::open_for_node(environment.secret("EMPORIUM_MONGODB_URL")?, &cli.data_dir).await?;
    let stock = emporium_product::seed_demo_catalog(&store, |line| println!("{line}")).await?;

    let database =
        Database::open_for_service("inventory", environment.secret("EMPORIUM_MYSQL_URL")?.as_deref(), &cli.data_dir)
            .await?;
    let (_settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
    let ctx = ServiceContext::standalone("seed", settings_rx);
    let inventory =
        emporium_inventory::start(ctx, emporium_inventory::InventoryOptions { database, bus: None }).await?;
    let route = inventory.endpoint.route::<SetStock>().expect("the inventory handles SetStock");
    let seeder = Caller { user_id: "seed".into(), roles: vec![Role::Admin], token_id: "seed".into() };
    for item in &stock {
        let request = SetStockRequest {
            available: item.available,
            reorder_level: item.reorder_level,
            reorder_quantity: item.reorder_quantity,
        };
        let meta = CallMeta { deadline: Some(Instant::now() + Duration::from_secs(10)), trace: None };
        route
            .ask(SetStock { caller: seeder.clone(), sku: item.sku.clone(), request }, meta)
            .await
            .map_err(|error| anyhow::anyhow!("stock of {}: {error}", item.sku))?;
    }
    println!("stock set for {} products; the demo catalog is ready", stock.len());
    Ok(())
}
