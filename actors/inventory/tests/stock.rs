//! The inventory service against both of its stores: MariaDB (the machine's server, a fresh
//! database per test) and SQLite (a temporary file), through its message table as the order
//! service and the gateway use it.

use std::sync::Arc;
use std::time::Duration;

use emporium_cluster::{ServiceContext, Settings};
use emporium_contracts::events::StockLine;
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::inventory::{
    AdjustStock, AdjustStockRequest, CheckAvailability, CommitReservation, GetStock, ListStock, ReleaseReservation,
    ReservationStatus, ReserveStock, SetStock, SetStockRequest,
};
use emporium_contracts::page::PageRequest;
use emporium_contracts::{Request, ServiceError};
use emporium_inventory::InventorySettings;
use emporium_runtime::{CallMeta, LocalEndpoint};
use emporium_store::Database;
use tokio::sync::watch;

/// Where a test's stores live; dropped at the end.
enum Store {
    MariaDb { admin_url: String, name: String },
    Sqlite { path: std::path::PathBuf },
}

impl Store {
    async fn open(kind: &str) -> (Store, Database) {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match kind {
            "mariadb" => {
                let admin_url =
                    std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
                let name = format!("inventory_test_{}", &unique[..16]);
                let admin = Database::connect(&format!("{admin_url}/mysql")).await.unwrap_or_else(|error| {
                    panic!("MariaDB is needed at {admin_url} (EMPORIUM_TEST_MYSQL_URL): {error}")
                });
                admin.execute(&format!("CREATE DATABASE {name}")).await.unwrap();
                admin.close().await;
                let database = Database::connect(&format!("{admin_url}/{name}")).await.unwrap();
                (Store::MariaDb { admin_url, name }, database)
            }
            _ => {
                let path = std::env::temp_dir().join(format!("inventory-test-{unique}.db"));
                let database = Database::open_sqlite_file(&path).await.unwrap();
                (Store::Sqlite { path }, database)
            }
        }
    }

    async fn drop_it(self) {
        match self {
            Store::MariaDb { admin_url, name } => {
                let admin = Database::connect(&format!("{admin_url}/mysql")).await.unwrap();
                admin.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
                admin.close().await;
            }
            Store::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

struct Inventory {
    endpoint: LocalEndpoint,
    database: Database,
    _settings: watch::Sender<Arc<Settings>>,
}

impl Inventory {
    async fn start(database: Database, ttl_millis: u64) -> Inventory {
        let mut settings = Settings::default();
        settings.set_section(&InventorySettings { reservation_ttl_millis: ttl_millis, expiry_sweep_millis: 50 });
        let (settings_tx, settings_rx) = watch::channel(Arc::new(settings));
        let ctx = ServiceContext::standalone("inventory-test", settings_rx);
        let handle = emporium_inventory::start(
            ctx,
            emporium_inventory::InventoryOptions { database: database.clone(), bus: None },
        )
        .await
        .unwrap();
        Inventory { endpoint: handle.endpoint, database, _settings: settings_tx }
    }

    async fn ask<M: Request>(&self, message: M) -> Result<M::Reply, ServiceError> {
        let meta = CallMeta { deadline: Some(std::time::Instant::now() + Duration::from_secs(30)), trace: None };
        self.endpoint.route::<M>().expect("inventory handles it").ask(message, meta).await
    }

    async fn set(&self, sku: &str, available: i64, reorder_level: i64) {
        let request = SetStockRequest { available, reorder_level, reorder_quantity: 10 };
        self.ask(SetStock { caller: admin(), sku: sku.into(), request }).await.unwrap();
    }

    async fn available(&self, sku: &str) -> (u64, u64) {
        let stock = self.ask(GetStock { sku: sku.into() }).await.unwrap();
        (stock.available, stock.reserved)
    }

    async fn outbox_count(&self, event_type: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM bus_outbox WHERE routing_key = '{event_type}'");
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_one(self.database.pool()).await.unwrap()
    }
}

fn admin() -> Caller {
    Caller { user_id: "admin-1".into(), roles: vec![Role::Admin], token_id: "t".into() }
}

fn line(sku: &str, quantity: u32) -> StockLine {
    StockLine { sku: sku.into(), quantity }
}

/// Runs `scenario` once on MariaDB and once on SQLite.
macro_rules! on_both_stores {
    ($name:ident, $ttl:expr, |$inventory:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($inventory: &Inventory) $body

            #[actix_rt::test]
            async fn mariadb() {
                let (store, database) = Store::open("mariadb").await;
                let inventory = Inventory::start(database, $ttl).await;
                scenario(&inventory).await;
                inventory.database.close().await;
                store.drop_it().await;
            }

            #[actix_rt::test]
            async fn sqlite() {
                let (store, database) = Store::open("sqlite").await;
                let inventory = Inventory::start(database, $ttl).await;
                scenario(&inventory).await;
                inventory.database.close().await;
                store.drop_it().await;
            }
        }
    };
}

on_both_stores!(fifty_concurrent_reservations_of_the_last_ten_units, 900_000, |inventory| {
    inventory.set("LAST-TEN", 10, 0).await;
    let attempts = (0..50).map(|index| {
        inventory.ask(ReserveStock { order_id: format!("order-{index}"), lines: vec![line("LAST-TEN", 1)] })
    });
    let results = futures::future::join_all(attempts).await;
    let successes = results.iter().filter(|result| result.is_ok()).count();
    let out_of_stock =
        results.iter().filter(|result| matches!(result, Err(error) if error.code == "out_of_stock")).count();
    assert_eq!((successes, out_of_stock), (10, 40), "{results:?}");
    assert_eq!(inventory.available("LAST-TEN").await, (0, 10));
    assert_eq!(inventory.outbox_count("inventory.reserved").await, 10);
});

on_both_stores!(a_repeated_reservation_reserves_once, 900_000, |inventory| {
    inventory.set("REPEAT", 5, 0).await;
    let reserve = || inventory.ask(ReserveStock { order_id: "order-r".into(), lines: vec![line("REPEAT", 2)] });
    let first = reserve().await.unwrap();
    let second = reserve().await.unwrap();
    assert_eq!(first, second);
    let concurrent = futures::future::join_all((0..5).map(|_| reserve())).await;
    assert!(concurrent.iter().all(|result| result.as_ref() == Ok(&first)), "{concurrent:?}");
    assert_eq!(inventory.available("REPEAT").await, (3, 2));
    let other_lines = inventory.ask(ReserveStock { order_id: "order-r".into(), lines: vec![line("REPEAT", 1)] }).await;
    assert_eq!(other_lines.unwrap_err().code, "reservation_mismatch");
});

on_both_stores!(a_multi_line_reservation_with_one_short_line_reserves_nothing, 900_000, |inventory| {
    inventory.set("PLENTY", 100, 0).await;
    inventory.set("SCARCE", 1, 0).await;
    let error = inventory
        .ask(ReserveStock { order_id: "order-m".into(), lines: vec![line("PLENTY", 5), line("SCARCE", 2)] })
        .await
        .unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (409, "out_of_stock"));
    assert_eq!(error.details.unwrap(), serde_json::json!([{"sku": "SCARCE", "requested": 2, "available": 1}]));
    assert_eq!(inventory.available("PLENTY").await, (100, 0));
    assert_eq!(inventory.available("SCARCE").await, (1, 0));
    let unknown = inventory
        .ask(ReserveStock { order_id: "order-u".into(), lines: vec![line("PLENTY", 1), line("NOPE", 1)] })
        .await
        .unwrap_err();
    assert_eq!((unknown.http_status(), unknown.code.as_str()), (422, "unknown_sku"));
    assert_eq!(inventory.available("PLENTY").await, (100, 0));
});

on_both_stores!(commit_and_release_are_idempotent, 900_000, |inventory| {
    inventory.set("SETTLE", 10, 0).await;
    inventory.ask(ReserveStock { order_id: "paid".into(), lines: vec![line("SETTLE", 3)] }).await.unwrap();
    inventory.ask(ReserveStock { order_id: "cancelled".into(), lines: vec![line("SETTLE", 2)] }).await.unwrap();
    assert_eq!(inventory.available("SETTLE").await, (5, 5));
    for _ in 0..2 {
        let committed = inventory.ask(CommitReservation { order_id: "paid".into() }).await.unwrap();
        assert_eq!(committed.status, ReservationStatus::Committed);
        let released = inventory.ask(ReleaseReservation { order_id: "cancelled".into() }).await.unwrap().unwrap();
        assert_eq!(released.status, ReservationStatus::Released);
    }
    assert_eq!(inventory.available("SETTLE").await, (7, 0));
    assert_eq!(inventory.outbox_count("inventory.committed").await, 1);
    assert_eq!(inventory.outbox_count("inventory.released").await, 1);
    assert_eq!(inventory.ask(ReleaseReservation { order_id: "never-reserved".into() }).await.unwrap(), None);
    let error = inventory.ask(CommitReservation { order_id: "cancelled".into() }).await.unwrap_err();
    assert_eq!(error.code, "reservation_released");
    // Releasing a committed order changes nothing.
    let still = inventory.ask(ReleaseReservation { order_id: "paid".into() }).await.unwrap().unwrap();
    assert_eq!(still.status, ReservationStatus::Committed);
    assert_eq!(inventory.available("SETTLE").await, (7, 0));
});

on_both_stores!(an_expired_reservation_is_released_by_inventory_itself, 100, |inventory| {
    inventory.set("EXPIRES", 4, 0).await;
    inventory.ask(ReserveStock { order_id: "slow-payer".into(), lines: vec![line("EXPIRES", 4)] }).await.unwrap();
    assert_eq!(inventory.available("EXPIRES").await, (0, 4));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while inventory.available("EXPIRES").await != (4, 0) {
        assert!(std::time::Instant::now() < deadline, "the expired reservation was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = inventory.ask(CommitReservation { order_id: "slow-payer".into() }).await.unwrap_err();
    assert_eq!(error.code, "reservation_released");
});

on_both_stores!(adjustments_never_go_below_zero_and_reorder_is_announced, 900_000, |inventory| {
    inventory.set("ADJ", 12, 5).await;
    let request = |delta: i64| AdjustStockRequest { delta, reason: "cycle count".into() };
    let stock = inventory.ask(AdjustStock { caller: admin(), sku: "ADJ".into(), request: request(-8) }).await.unwrap();
    assert_eq!(stock.available, 4);
    assert_eq!(inventory.outbox_count("inventory.reorder_needed").await, 1);
    let error =
        inventory.ask(AdjustStock { caller: admin(), sku: "ADJ".into(), request: request(-5) }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (409, "insufficient_stock"));
    let error =
        inventory.ask(AdjustStock { caller: admin(), sku: "GHOST".into(), request: request(1) }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (404, "unknown_sku"));
    let error =
        inventory.ask(AdjustStock { caller: admin(), sku: "ADJ".into(), request: request(0) }).await.unwrap_err();
    assert_eq!(error.code, "invalid_delta");
    let page = inventory.ask(ListStock { reorder_needed: Some(true), page: PageRequest::default() }).await.unwrap();
    assert_eq!(page.items.iter().map(|stock| stock.sku.as_str()).collect::<Vec<_>>(), vec!["ADJ"]);
    let availability = inventory.ask(CheckAvailability { skus: vec!["ADJ".into(), "GHOST".into()] }).await.unwrap();
    assert_eq!(availability[0].available, 4);
    assert!(!availability[1].in_stock);
});

on_both_stores!(hostile_input_is_refused_not_executed, 900_000, |inventory| {
    inventory.set("SAFE", 1, 0).await;
    for sku in ["' OR '1'='1", "SAFE'; DROP TABLE inventory_stock; --", "{\"$gt\":\"\"}", ""] {
        let error = inventory.ask(GetStock { sku: sku.into() }).await.unwrap_err();
        assert_eq!(error.code, "invalid_sku", "{sku}");
    }
    let error = inventory.ask(ReserveStock { order_id: "o".into(), lines: vec![line("SAFE", 0)] }).await.unwrap_err();
    assert_eq!(error.code, "invalid_quantity");
    let error = inventory
        .ask(SetStock {
            caller: admin(),
            sku: "SAFE".into(),
            request: SetStockRequest { available: -1, reorder_level: 0, reorder_quantity: 0 },
        })
        .await
        .unwrap_err();
    assert_eq!(error.code, "invalid_stock");
    assert_eq!(inventory.available("SAFE").await, (1, 0));
});
