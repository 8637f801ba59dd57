//! The expiry sweep (`inventory/expiry-sweep`): a supervised task beside the stock keeper that
//! asks it to release the reservations whose TTL ran out ([`ReleaseExpiredReservations`]),
//! once every `inventory.expiry_sweep_millis` of the live settings (read again each round).
//!
//! A panic in a round, or a return before the node's stop signal, is a fault in the node's
//! supervision tree followed by a fresh run after the policy's backoff; a round the keeper
//! could not finish is only logged (the next round tries again). The stop signal ends the
//! sweep, also in the middle of a round (the keeper finishes that round on its own).

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_cluster::{ServiceContext, Settings};
use emporium_contracts::inventory::ReleaseExpiredReservations;
use emporium_runtime::{CallMeta, CellHandle, LocalRoute, ServiceGroup, TaskContext, TaskHandle};
use tokio::sync::watch;

use crate::settings::InventorySettings;
use crate::stock_keeper::StockKeeper;

/// The sweep's name in its service's group (its path is `inventory/expiry-sweep`).
pub const TASK_NAME: &str = "expiry-sweep";

/// How long one round may take before the sweep stops waiting for the keeper.
const ROUND_DEADLINE: Duration = Duration::from_secs(30);

/// Runs before every round; does nothing outside tests, which inject a panic through it.
type BeforeRound = Arc<dyn Fn() + Send + Sync>;

/// Starts the sweep as a supervised task of `group` that asks `keeper`, stopped by the node's
/// stop signal (`ctx.lifecycle`).
pub fn spawn(ctx: &ServiceContext, group: &mut ServiceGroup, keeper: &CellHandle<StockKeeper>) -> TaskHandle {
    spawn_with_hook(ctx, group, keeper, Arc::new(|| {}))
}

fn spawn_with_hook(
    ctx: &ServiceContext,
    group: &mut ServiceGroup,
    keeper: &CellHandle<StockKeeper>,
    before_round: BeforeRound,
) -> TaskHandle {
    let route = keeper.route::<ReleaseExpiredReservations>();
    let settings = ctx.settings.clone();
    ctx.spawn_task(group, TASK_NAME, move |task_context| {
        Box::pin(run_sweep(task_context, route.clone(), settings.clone(), before_round.clone()))
    })
}

/// One run of the sweep: a round every interval until the stop signal.
async fn run_sweep(
    task_context: TaskContext,
    route: LocalRoute<ReleaseExpiredReservations>,
    settings: watch::Receiver<Arc<Settings>>,
    before_round: BeforeRound,
) -> Result<(), String> {
    loop {
        let interval = Duration::from_millis(settings.borrow().section::<InventorySettings>().expiry_sweep_millis);
        tokio::select! {
            _ = task_context.stop_requested() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
        before_round();
        let meta = CallMeta { deadline: Some(Instant::now() + ROUND_DEADLINE), trace: None };
        tokio::select! {
            _ = task_context.stop_requested() => return Ok(()),
            round = route.ask(ReleaseExpiredReservations {}, meta) => match round {
                Ok(num_released) if num_released > 0 => tracing::debug!(num_released, "expired reservations released"),
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    code = %error.code,
                    message = %error.message,
                    "expired reservations not released this round"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use emporium_contracts::events::StockLine;
    use emporium_contracts::identity::{Caller, Role};
    use emporium_contracts::inventory::{GetStock, ReserveStock, SERVICE, SetStock, SetStockRequest};
    use emporium_runtime::fault::FaultKind;
    use emporium_runtime::monitor::ActorStatus;
    use emporium_runtime::task::TASK_RUN;
    use emporium_store::Database;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(10);

    fn mysql_url() -> String {
        std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
    }

    async fn admin_database() -> Database {
        Database::connect(&format!("{}/mysql", mysql_url()))
            .await
            .unwrap_or_else(|error| panic!("MariaDB is needed at {} (EMPORIUM_TEST_MYSQL_URL): {error}", mysql_url()))
    }

    async fn wait_until<F, Fut>(what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !condition().await {
            assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn meta() -> CallMeta {
        CallMeta { deadline: Some(Instant::now() + Duration::from_secs(30)), trace: None }
    }

    /// A sweep that panics in its first round is a fault in the tree and runs again: the fresh
    /// run releases a reservation that expired after the panic; the stop signal then ends it.
    #[actix_rt::test]
    async fn a_panicking_sweep_is_a_fault_and_the_next_run_releases_expired_reservations() {
        let name = format!("inventory_sweep_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let admin = admin_database().await;
        admin.execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let database = Database::connect(&format!("{}/{name}", mysql_url())).await.unwrap();
        crate::store::migrate(&database).await.unwrap();

        let mut settings = Settings::default();
        settings.set_section(&InventorySettings { reservation_ttl_millis: 100, expiry_sweep_millis: 50 });
        let (_settings_tx, settings_rx) = watch::channel(Arc::new(settings));
        let ctx = ServiceContext::standalone("inventory-sweep-test", settings_rx.clone());
        let mut group = ctx.group(SERVICE);
        let keeper = group.spawn("stock", {
            let database = database.clone();
            move || StockKeeper::new(database.clone(), settings_rx.clone())
        });
        let has_panicked = Arc::new(AtomicBool::new(false));
        let panic_once: BeforeRound = {
            let has_panicked = has_panicked.clone();
            Arc::new(move || {
                if !has_panicked.swap(true, Ordering::SeqCst) {
                    panic!("the sweep broke");
                }
            })
        };
        let sweep = spawn_with_hook(&ctx, &mut group, &keeper, panic_once);
        let _supervision = group.finish();

        wait_until("the sweep's panic in the tree", || async { !ctx.tree.snapshot().faults.is_empty() }).await;
        let faults = ctx.tree.snapshot().faults;
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(
            (faults[0].actor_path.as_str(), faults[0].message_type, faults[0].kind),
            ("inventory/expiry-sweep", TASK_RUN, FaultKind::Panic)
        );
        assert!(faults[0].error.starts_with("the sweep broke"), "{}", faults[0].error);

        let admin_caller = Caller { user_id: "admin-1".into(), roles: vec![Role::Admin], token_id: "t".into() };
        let request = SetStockRequest { available: 4, reorder_level: 0, reorder_quantity: 0 };
        keeper
            .route::<SetStock>()
            .ask(SetStock { caller: admin_caller, sku: "LATE".into(), request }, meta())
            .await
            .unwrap();
        let lines = vec![StockLine { sku: "LATE".into(), quantity: 4 }];
        keeper
            .route::<ReserveStock>()
            .ask(ReserveStock { order_id: "late-payer".into(), lines }, meta())
            .await
            .unwrap();
        let get_stock = keeper.route::<GetStock>();
        let stock = get_stock.ask(GetStock { sku: "LATE".into() }, meta()).await.unwrap();
        assert_eq!((stock.available, stock.reserved), (0, 4));
        wait_until("the restarted sweep releasing the expired reservation", || async {
            let stock = get_stock.ask(GetStock { sku: "LATE".into() }, meta()).await.unwrap();
            (stock.available, stock.reserved) == (4, 0)
        })
        .await;

        let snapshot = ctx.tree.snapshot();
        let task = snapshot.services[0].actors.iter().find(|actor| actor.path == "inventory/expiry-sweep").unwrap();
        assert_eq!((task.status, task.num_panics, task.num_restarts), (ActorStatus::Running, 1, 1));
        assert_eq!(snapshot.faults.len(), 1, "no other fault: {:?}", snapshot.faults);
        assert!(ctx.lifecycle.stop(Duration::from_secs(5)).await.is_empty(), "the sweep ends on the stop signal");
        assert!(sweep.is_stopped());

        database.close().await;
        admin.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        admin.close().await;
    }
}
