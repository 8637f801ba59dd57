//! The order service with the real catalog and inventory services beside it (local asks) and
//! the in-process bus, on MariaDB (a fresh database per test) and on SQLite; and without an
//! inventory at all, to see the fallback.

use std::sync::Arc;
use std::time::Duration;

use emporium_bus::handler::ReceivedEvent;
use emporium_bus::{Bus, BusConfig};
use emporium_cluster::{ServiceContext, Settings};
use emporium_contracts::events::{EventEnvelope, PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentFailed, PaymentSucceeded};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::inventory::{GetStock, SetStock, SetStockRequest};
use emporium_contracts::order::{
    CancelOrder, GetOrder, ListOrders, OrderItemRequest, OrderStatus, PaymentRequest, PlaceOrder, PlaceOrderRequest,
};
use emporium_contracts::page::PageRequest;
use emporium_contracts::product::{CreateProduct, ProductRequest};
use emporium_contracts::{Request, ServiceError};
use emporium_product::{ProductStore, ProductStoreConfig};
use emporium_runtime::{CallMeta, LocalEndpoint};
use emporium_store::{Database, DbTx};
use tokio::sync::watch;

struct Shop {
    ctx: ServiceContext,
    order_database: Database,
    endpoints: Vec<LocalEndpoint>,
    _settings: watch::Sender<Arc<Settings>>,
    cleanup: Vec<String>,
}

fn admin() -> Caller {
    Caller { user_id: "admin-1".into(), roles: vec![Role::Admin], token_id: "t".into() }
}

fn customer(id: &str) -> Caller {
    Caller { user_id: id.into(), roles: vec![Role::Customer], token_id: "t".into() }
}

async fn database(kind: &str, cleanup: &mut Vec<String>) -> Database {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    if kind == "mariadb" {
        let base = std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let name = format!("order_test_{}", &unique[..16]);
        let admin =
            Database::connect(&format!("{base}/mysql")).await.expect("MariaDB is needed (EMPORIUM_TEST_MYSQL_URL)");
        admin.execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        admin.close().await;
        cleanup.push(name.clone());
        Database::connect(&format!("{base}/{name}")).await.unwrap()
    } else {
        Database::open_sqlite_file(&std::env::temp_dir().join(format!("order-test-{unique}.db"))).await.unwrap()
    }
}

impl Shop {
    /// Catalog (embedded), inventory (when `with_inventory`) and orders on `kind` stores.
    async fn open(kind: &str, with_inventory: bool) -> Shop {
        let mut cleanup = Vec::new();
        let (settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
        let ctx = ServiceContext::standalone("order-test", settings_rx);
        let bus = Bus::connect(BusConfig::default()).await.unwrap();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let product_file = std::env::temp_dir().join(format!("order-test-catalog-{unique}.db"));
        let store =
            ProductStore::open(ProductStoreConfig::Embedded(Database::open_sqlite_file(&product_file).await.unwrap()))
                .await
                .unwrap();
        let mut endpoints = Vec::new();
        let catalog = emporium_product::start(ctx.clone(), emporium_product::ProductOptions { store }).await.unwrap();
        endpoints.push(catalog.endpoint.clone());
        ctx.cluster.add_local(catalog.endpoint);
        if with_inventory {
            let options =
                emporium_inventory::InventoryOptions { database: database(kind, &mut cleanup).await, bus: None };
            let inventory = emporium_inventory::start(ctx.clone(), options).await.unwrap();
            endpoints.push(inventory.endpoint.clone());
            ctx.cluster.add_local(inventory.endpoint);
        }
        let order_database = database(kind, &mut cleanup).await;
        let order = emporium_order::start(
            ctx.clone(),
            emporium_order::OrderOptions { database: order_database.clone(), bus: bus.clone() },
        )
        .await
        .unwrap();
        endpoints.push(order.endpoint.clone());
        ctx.cluster.add_local(order.endpoint);
        std::mem::forget(order.resources);
        bus.start_delivery();
        Shop { ctx, order_database, endpoints, _settings: settings_tx, cleanup }
    }

    async fn ask<M: Request>(&self, message: M) -> Result<M::Reply, ServiceError> {
        let meta = CallMeta { deadline: Some(std::time::Instant::now() + Duration::from_secs(20)), trace: None };
        self.ctx.cluster.ask(message, meta).await
    }

    async fn stock(&self, sku: &str, price: &str, available: i64) {
        let request = ProductRequest {
            sku: sku.into(),
            name: format!("Product {sku}"),
            description: String::new(),
            price: price.into(),
            currency: "USD".into(),
            category: "things".into(),
            attributes: Default::default(),
        };
        self.ask(CreateProduct { caller: admin(), request }).await.unwrap();
        if self.endpoints.len() == 3 {
            let request = SetStockRequest { available, reorder_level: 0, reorder_quantity: 0 };
            self.ask(SetStock { caller: admin(), sku: sku.into(), request }).await.unwrap();
        }
    }

    async fn finish(self) {
        self.order_database.close().await;
        let base = std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        for name in &self.cleanup {
            let admin = Database::connect(&format!("{base}/mysql")).await.unwrap();
            admin.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
            admin.close().await;
        }
    }

    /// Applies a payment event through the order service's consumer handler, as the bus does.
    async fn deliver(&self, envelope: EventEnvelope) {
        let tx: DbTx = self.order_database.begin().await.unwrap();
        let event = ReceivedEvent { envelope, traceparent: None, attempt: 1 };
        let tx = emporium_order::payment_outcomes::handler().handle(event, tx).await.unwrap();
        tx.commit().await.unwrap();
    }
}

fn request(lines: &[(&str, i64)]) -> PlaceOrderRequest {
    PlaceOrderRequest {
        items: lines
            .iter()
            .map(|(sku, quantity)| OrderItemRequest { sku: sku.to_string(), quantity: *quantity })
            .collect(),
        currency: "USD".into(),
        payment: PaymentRequest { method: "card".into(), token: "tok_visa".into() },
    }
}

fn place(user: &str, key: Option<&str>, lines: &[(&str, i64)]) -> PlaceOrder {
    PlaceOrder { caller: customer(user), idempotency_key: key.map(str::to_string), request: request(lines) }
}

async fn scenario(kind: &str) {
    let shop = Shop::open(kind, true).await;
    shop.stock("PEN-1", "1.10", 10).await;
    shop.stock("INK-1", "7.35", 2).await;

    let placed = shop.ask(place("u1", None, &[("PEN-1", 3), ("INK-1", 1)])).await.unwrap();
    assert_eq!(placed.order.status, OrderStatus::PendingPayment);
    assert_eq!(placed.order.total, "10.65", "3 x 1.10 + 7.35, exactly");
    assert_eq!(shop.ask(GetStock { sku: "PEN-1".into() }).await.unwrap().reserved, 3);

    // Idempotency: same key and body, same order; other body, 422; concurrent repeats, one order.
    let first = shop.ask(place("u1", Some("k-1"), &[("PEN-1", 1)])).await.unwrap();
    let again = shop.ask(place("u1", Some("k-1"), &[("PEN-1", 1)])).await.unwrap();
    assert_eq!((first.order.id.clone(), again.replayed), (again.order.id.clone(), true));
    let error = shop.ask(place("u1", Some("k-1"), &[("PEN-1", 2)])).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (422, "idempotency_key_reused"));
    let racing = futures::future::join_all((0..5).map(|_| shop.ask(place("u1", Some("k-2"), &[("PEN-1", 1)])))).await;
    let ids: std::collections::BTreeSet<_> =
        racing.iter().map(|result| result.as_ref().unwrap().order.id.clone()).collect();
    assert_eq!(ids.len(), 1, "{racing:?}");

    // Refusals: nothing stored, nothing held.
    let error = shop.ask(place("u1", None, &[("INK-1", 5)])).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (409, "out_of_stock"));
    let error = shop.ask(place("u1", None, &[("NOPE", 1)])).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (422, "unknown_sku"));
    let error = shop.ask(place("u1", None, &[("PEN-1", 0)])).await.unwrap_err();
    assert_eq!(error.code, "invalid_quantity");
    // The losing same-key requests release their reservations in the background: wait for
    // the stock to settle instead of reading it once.
    let started = std::time::Instant::now();
    loop {
        let held = shop.ask(GetStock { sku: "PEN-1".into() }).await.unwrap();
        if (held.available, held.reserved) == (5, 5) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "stock never settled: {:?}",
            (held.available, held.reserved)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Payment outcomes: confirmed once, even when delivered twice; a late failure changes nothing.
    let succeeded = PaymentSucceeded {
        payment_id: "p1".into(),
        order_id: placed.order.id.clone(),
        user_id: "u1".into(),
        amount: "10.65".into(),
        currency: "USD".into(),
        provider_ref: "sim".into(),
    };
    let envelope = EventEnvelope::new("/emporium/payment", PAYMENT_SUCCEEDED, &placed.order.id, &succeeded).unwrap();
    shop.deliver(envelope.clone()).await;
    shop.deliver(envelope).await;
    let failed = PaymentFailed {
        payment_id: "p2".into(),
        order_id: placed.order.id.clone(),
        user_id: "u1".into(),
        amount: "10.65".into(),
        currency: "USD".into(),
        reason: "card_declined".into(),
    };
    shop.deliver(EventEnvelope::new("/emporium/payment", PAYMENT_FAILED, &placed.order.id, &failed).unwrap()).await;
    let order = shop.ask(GetOrder { caller: customer("u1"), id: placed.order.id.clone() }).await.unwrap();
    assert_eq!(order.status, OrderStatus::Confirmed);

    // A failed payment cancels with its reason.
    let declined = shop.ask(place("u1", None, &[("PEN-1", 1)])).await.unwrap();
    let failed = PaymentFailed { order_id: declined.order.id.clone(), ..failed };
    shop.deliver(EventEnvelope::new("/emporium/payment", PAYMENT_FAILED, &declined.order.id, &failed).unwrap()).await;
    let order = shop.ask(GetOrder { caller: customer("u1"), id: declined.order.id.clone() }).await.unwrap();
    assert_eq!((order.status, order.cancellation_reason.as_deref()), (OrderStatus::Cancelled, Some("card_declined")));

    // Cancel until confirmed; the stock goes back; a confirmed order cannot be cancelled.
    let pending = shop.ask(place("u1", None, &[("INK-1", 1)])).await.unwrap();
    let cancelled = shop.ask(CancelOrder { caller: customer("u1"), id: pending.order.id.clone() }).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while shop.ask(GetStock { sku: "INK-1".into() }).await.unwrap().reserved != 1 {
        assert!(std::time::Instant::now() < deadline, "the cancelled order's stock was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = shop.ask(CancelOrder { caller: customer("u1"), id: placed.order.id.clone() }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (409, "order_not_cancellable"));

    // Another customer sees none of it; an admin sees all.
    let error = shop.ask(GetOrder { caller: customer("u2"), id: placed.order.id.clone() }).await.unwrap_err();
    assert_eq!(error.code, "order_not_found");
    let mine = shop
        .ask(ListOrders { caller: customer("u2"), status: None, from: None, to: None, page: PageRequest::default() })
        .await
        .unwrap();
    assert_eq!(mine.total_elements, 0);
    let all = shop
        .ask(ListOrders {
            caller: admin(),
            status: Some(OrderStatus::Confirmed),
            from: None,
            to: None,
            page: PageRequest::default(),
        })
        .await
        .unwrap();
    assert_eq!(all.items.iter().map(|order| order.id.as_str()).collect::<Vec<_>>(), vec![placed.order.id.as_str()]);
    shop.finish().await;
}

#[actix_rt::test]
async fn orders_on_mariadb() {
    scenario("mariadb").await;
}

#[actix_rt::test]
async fn orders_on_sqlite() {
    scenario("sqlite").await;
}

#[actix_rt::test]
async fn without_an_inventory_orders_fail_fast_and_nothing_is_stored() {
    let shop = Shop::open("sqlite", false).await;
    shop.stock("PEN-1", "1.10", 10).await;
    for _ in 0..3 {
        let error = shop.ask(place("u1", None, &[("PEN-1", 1)])).await.unwrap_err();
        assert_eq!((error.http_status(), error.code.as_str()), (503, "inventory_unavailable"), "{error:?}");
        assert!(error.retry_after_secs.is_some());
    }
    let page = shop
        .ask(ListOrders { caller: admin(), status: None, from: None, to: None, page: PageRequest::default() })
        .await
        .unwrap();
    assert_eq!(page.total_elements, 0);
    shop.finish().await;
}
