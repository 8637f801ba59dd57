//! The inventory's expiry sweep as `start` runs it, on the machine's MariaDB (a fresh database):
//! a supervised task in the service's group, shown in the supervision snapshot, ended by the
//! node's stop signal.

use std::sync::Arc;
use std::time::Duration;

use emporium_cluster::{ServiceContext, Settings};
use emporium_inventory::InventorySettings;
use emporium_runtime::monitor::ActorStatus;
use emporium_store::Database;
use tokio::sync::watch;

fn mysql_url() -> String {
    std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

fn keeper_num_handled(ctx: &ServiceContext) -> u64 {
    let snapshot = ctx.tree.snapshot();
    let actors = snapshot.services.into_iter().flat_map(|service| service.actors);
    actors.filter(|actor| actor.path == "inventory/stock").map(|actor| actor.num_handled).sum()
}

#[actix_rt::test]
async fn the_expiry_sweep_is_a_supervised_task_that_ends_on_the_stop_signal() {
    let name = format!("inventory_task_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let admin = Database::connect(&format!("{}/mysql", mysql_url()))
        .await
        .unwrap_or_else(|error| panic!("MariaDB is needed at {} (EMPORIUM_TEST_MYSQL_URL): {error}", mysql_url()));
    admin.execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let database = Database::connect(&format!("{}/{name}", mysql_url())).await.unwrap();
    let mut settings = Settings::default();
    settings.set_section(&InventorySettings { expiry_sweep_millis: 20, ..InventorySettings::default() });
    let (_settings_tx, settings_rx) = watch::channel(Arc::new(settings));
    let ctx = ServiceContext::standalone("inventory-task-test", settings_rx);

    let handle = emporium_inventory::start(
        ctx.clone(),
        emporium_inventory::InventoryOptions { database: database.clone(), bus: None },
    )
    .await
    .unwrap();

    let snapshot = ctx.tree.snapshot();
    let inventory = snapshot.services.iter().find(|service| service.service == "inventory").expect("in the tree");
    let sweep = inventory.actors.iter().find(|actor| actor.path == "inventory/expiry-sweep").expect("the sweep");
    assert_eq!(sweep.status, ActorStatus::Running);
    assert!(snapshot.faults.is_empty(), "{:?}", snapshot.faults);
    // Its rounds reach the stock keeper.
    let started = std::time::Instant::now();
    while keeper_num_handled(&ctx) < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "the sweep never asked the keeper");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(ctx.lifecycle.stop(Duration::from_secs(5)).await, Vec::<String>::new(), "the sweep ended");
    assert!(ctx.tree.snapshot().faults.is_empty(), "stopping is no fault");

    drop(handle);
    database.close().await;
    admin.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    admin.close().await;
}
