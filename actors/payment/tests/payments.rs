//! The payment service end to end on its bus and stores: `order.created` events published by a
//! stand-in order service (its outbox and relay) reach the payment service over RabbitMQ or the
//! in-process bus, on MariaDB or SQLite; the tests read the payments through the service's
//! messages and routes, and its events in its outbox.

mod support;

use std::time::Duration;

use actix_web::{App, HttpMessage, test as actix_test, web};
use emporium_bus::{Bus, ConsumerHandle, RelayHandle};
use emporium_cluster::{ServiceContext, ServiceHandle, Settings};
use emporium_contracts::events::{
    self, EventEnvelope, ORDER_CREATED, OrderCreated, OrderLine, PaymentFailed, PaymentInstruction, PaymentSucceeded,
};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::page::{Page, PageRequest};
use emporium_contracts::payment::{GetPayment, ListPayments, PaymentStatus, PaymentView};
use emporium_contracts::{Request, ServiceError};
use emporium_payment::PaymentOptions;
use emporium_runtime::{CallMeta, TraceParent};
use emporium_store::Database;
use support::*;
use tokio::sync::watch;

const WITHIN: Duration = Duration::from_secs(20);
/// The stand-in publisher of `order.created`.
const ORDER_SERVICE: &str = "order";

/// One test's payment service, with its bus, database and the stand-in order publisher.
struct Sandbox {
    transport: Transport,
    namespace: String,
    bus: Bus,
    store: TestStore,
    ctx: ServiceContext,
    handle: Option<ServiceHandle>,
    order_relay: RelayHandle,
    _settings: watch::Sender<std::sync::Arc<Settings>>,
}

impl Sandbox {
    async fn start(transport: Transport, kind: StoreKind) -> Sandbox {
        let namespace = unique_namespace("pay");
        let bus = connect_bus(transport, &namespace).await;
        let store = TestStore::create(kind, "payment").await;
        let (ctx, settings) = service_context("payment-test");
        let options = PaymentOptions { database: store.database.clone(), bus: bus.clone() };
        let handle = emporium_payment::start(ctx.clone(), options).await.expect("the payment service starts");
        let order_relay = bus.start_relay(&ctx, ORDER_SERVICE, store.database.clone()).await.unwrap();
        bus.start_delivery();
        Sandbox { transport, namespace, bus, store, ctx, handle: Some(handle), order_relay, _settings: settings }
    }

    fn database(&self) -> &Database {
        &self.store.database
    }

    async fn ask<M: Request>(&self, message: M) -> Result<M::Reply, ServiceError> {
        let meta = CallMeta { deadline: Some(std::time::Instant::now() + Duration::from_secs(30)), trace: None };
        let handle = self.handle.as_ref().expect("running");
        handle.endpoint.route::<M>().expect("the payment service handles it").ask(message, meta).await
    }

    /// The consumer of `order.created`, kept alive by the service's handle.
    fn consumer(&self) -> &ConsumerHandle {
        let handle = self.handle.as_ref().expect("running");
        handle.resources.iter().find_map(|resource| resource.downcast_ref::<ConsumerHandle>()).expect("a consumer")
    }

    /// Publishes a new `order.created` for `order_id`, as the order service would.
    async fn order_created(
        &self,
        order_id: &str,
        user_id: &str,
        total: &str,
        method: &str,
        token: &str,
    ) -> EventEnvelope {
        let envelope = order_envelope(order_id, user_id, total, "USD", method, token);
        enqueue(self.database(), ORDER_SERVICE, &envelope, None).await;
        envelope
    }

    /// The payment of `order_id` (as an admin sees it), once it exists.
    async fn wait_for_payment(&self, order_id: &str) -> PaymentView {
        wait_until(&format!("the payment of {order_id}"), WITHIN, || async {
            self.payments_of(order_id).await.total_elements > 0
        })
        .await;
        self.payments_of(order_id).await.items.remove(0)
    }

    async fn payments_of(&self, order_id: &str) -> Page<PaymentView> {
        self.ask(ListPayments { caller: admin(), order_id: Some(order_id.into()), page: PageRequest::default() })
            .await
            .unwrap()
    }

    /// The payload of each `event_type` the payment service put in its outbox about `order_id`.
    async fn outbox_payloads(&self, event_type: &str, order_id: &str) -> Vec<serde_json::Value> {
        let sql = format!(
            "SELECT envelope FROM bus_outbox WHERE service = 'payment' AND routing_key = '{event_type}' \
             AND subject = '{order_id}' ORDER BY id"
        );
        rows(self.database(), &sql)
            .await
            .into_iter()
            .map(|row| {
                let envelope = EventEnvelope::from_json(row[0].as_deref().unwrap_or_default().as_bytes()).unwrap();
                envelope.data
            })
            .collect()
    }

    async fn outbox_count(&self, subject_like: &str) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM bus_outbox WHERE service = 'payment' AND routing_key LIKE 'payment.%' \
             AND subject LIKE '{subject_like}'"
        );
        scalar(self.database(), &sql).await
    }

    async fn finish(mut self) {
        assert_eq!(self.ctx.tree.snapshot().num_faults, 0, "no fault: {:?}", self.ctx.tree.snapshot().faults);
        self.order_relay.stop().await;
        drop(self.handle.take());
        // The dropped consumer and relay stop on their own; give them a moment to let go.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.bus.close().await;
        if self.transport == Transport::Amqp {
            delete_amqp_names(&self.namespace, "payment", &["order-events"]).await;
        }
        self.store.drop_now().await;
    }
}

fn order_envelope(
    order_id: &str,
    user_id: &str,
    total: &str,
    currency: &str,
    method: &str,
    token: &str,
) -> EventEnvelope {
    let payload = OrderCreated {
        order_id: order_id.into(),
        user_id: user_id.into(),
        items: vec![OrderLine {
            sku: "MUG-1".into(),
            name: "Mug".into(),
            quantity: 2,
            unit_price: "9.99".into(),
            line_total: "19.98".into(),
        }],
        total: total.into(),
        currency: currency.into(),
        payment: PaymentInstruction { method: method.into(), token: token.into() },
    };
    EventEnvelope::new(&events::source_of(ORDER_SERVICE), ORDER_CREATED, order_id, &payload).unwrap()
}

fn customer(user_id: &str) -> Caller {
    Caller { user_id: user_id.into(), roles: vec![Role::Customer], token_id: "t".into() }
}

fn admin() -> Caller {
    Caller { user_id: "admin-1".into(), roles: vec![Role::Admin], token_id: "t".into() }
}

/// Runs a scenario on RabbitMQ and on the in-process bus, each with MariaDB and SQLite.
macro_rules! on_every_bus_and_store {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[actix_rt::test]
            async fn rabbitmq_mariadb() {
                super::$scenario(Sandbox::start(Transport::Amqp, StoreKind::MariaDb).await).await
            }

            #[actix_rt::test]
            async fn rabbitmq_sqlite() {
                super::$scenario(Sandbox::start(Transport::Amqp, StoreKind::Sqlite).await).await
            }

            #[actix_rt::test]
            async fn in_process_mariadb() {
                super::$scenario(Sandbox::start(Transport::InProcess, StoreKind::MariaDb).await).await
            }

            #[actix_rt::test]
            async fn in_process_sqlite() {
                super::$scenario(Sandbox::start(Transport::InProcess, StoreKind::Sqlite).await).await
            }
        }
    };
}

/// Runs a scenario where the bus does not matter on both stores (in-process bus).
macro_rules! on_both_stores {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[actix_rt::test]
            async fn mariadb() {
                super::$scenario(Sandbox::start(Transport::InProcess, StoreKind::MariaDb).await).await
            }

            #[actix_rt::test]
            async fn sqlite() {
                super::$scenario(Sandbox::start(Transport::InProcess, StoreKind::Sqlite).await).await
            }
        }
    };
}

on_every_bus_and_store!(a_visa_order_is_charged_and_announced);
on_every_bus_and_store!(each_failing_token_fails_with_its_reason);
on_every_bus_and_store!(an_order_created_delivered_twice_is_charged_once);
on_both_stores!(a_customer_reads_only_their_own_payments);
on_both_stores!(the_routes_answer_as_the_api_says);

async fn a_visa_order_is_charged_and_announced(sandbox: Sandbox) {
    let trace = TraceParent::new_root();
    let envelope = order_envelope("order-visa", "user-1", "19.98", "USD", "card", "tok_visa");
    enqueue(sandbox.database(), ORDER_SERVICE, &envelope, Some(trace.to_string())).await;

    let payment = sandbox.wait_for_payment("order-visa").await;
    assert_eq!(payment.status, PaymentStatus::Succeeded);
    assert_eq!((payment.amount.as_str(), payment.currency.as_str(), payment.method.as_str()), ("19.98", "USD", "card"));
    assert_eq!(payment.failure_reason, None);
    let provider_ref = payment.provider_ref.clone().unwrap();
    assert!(provider_ref.starts_with("sim_ch_"), "{provider_ref}");

    let succeeded = sandbox.outbox_payloads(events::PAYMENT_SUCCEEDED, "order-visa").await;
    assert_eq!(succeeded.len(), 1, "one payment.succeeded in the outbox");
    let event: PaymentSucceeded = serde_json::from_value(succeeded[0].clone()).unwrap();
    assert_eq!(
        event,
        PaymentSucceeded {
            payment_id: payment.id.clone(),
            order_id: "order-visa".into(),
            user_id: "user-1".into(),
            amount: "19.98".into(),
            currency: "USD".into(),
            provider_ref,
        }
    );
    assert!(sandbox.outbox_payloads(events::PAYMENT_FAILED, "order-visa").await.is_empty());
    let traceparent = rows(
        sandbox.database(),
        "SELECT traceparent FROM bus_outbox WHERE service = 'payment' AND subject = 'order-visa'",
    )
    .await;
    let carried = TraceParent::parse(traceparent[0][0].as_deref().unwrap_or_default()).expect("a traceparent");
    assert_eq!(carried.trace_id_hex(), trace.trace_id_hex(), "the event continues the order's trace");
    sandbox.finish().await;
}

async fn each_failing_token_fails_with_its_reason(sandbox: Sandbox) {
    let cases = [
        ("order-declined", "19.98", "USD", "card", "tok_chargeDeclined", "card_declined"),
        ("order-poor", "19.98", "USD", "card", "tok_insufficientFunds", "insufficient_funds"),
        ("order-unknown-token", "19.98", "USD", "card", "tok_nonsense", "invalid_token"),
        ("order-paypal", "19.98", "USD", "paypal", "tok_visa", "unsupported_method"),
        ("order-doubloons", "19.98", "XDB", "card", "tok_visa", "unsupported_currency"),
        ("order-bad-total", "-1", "USD", "card", "tok_visa", "invalid_amount"),
    ];
    for (order_id, total, currency, method, token, _) in cases {
        let envelope = order_envelope(order_id, "user-1", total, currency, method, token);
        enqueue(sandbox.database(), ORDER_SERVICE, &envelope, None).await;
    }
    for (order_id, total, currency, method, _, reason) in cases {
        let payment = sandbox.wait_for_payment(order_id).await;
        assert_eq!(payment.status, PaymentStatus::Failed, "{order_id}");
        assert_eq!(payment.failure_reason.as_deref(), Some(reason), "{order_id}");
        assert_eq!(payment.method, method);
        assert_eq!(payment.currency, currency);
        let failed = sandbox.outbox_payloads(events::PAYMENT_FAILED, order_id).await;
        assert_eq!(failed.len(), 1, "one payment.failed for {order_id}");
        let event: PaymentFailed = serde_json::from_value(failed[0].clone()).unwrap();
        assert_eq!((event.reason.as_str(), event.payment_id.as_str()), (reason, payment.id.as_str()));
        assert_eq!(event.user_id, "user-1");
        if reason != "invalid_amount" && reason != "unsupported_currency" {
            assert_eq!(event.amount, total);
        }
        assert!(sandbox.outbox_payloads(events::PAYMENT_SUCCEEDED, order_id).await.is_empty());
    }
    sandbox.finish().await;
}

async fn an_order_created_delivered_twice_is_charged_once(sandbox: Sandbox) {
    let database = sandbox.database().clone();
    let first = sandbox.order_created("order-dup", "user-1", "5.00", "card", "tok_visa").await;
    let payment = sandbox.wait_for_payment("order-dup").await;
    wait_until("the first delivery is marked sent", WITHIN, || async {
        scalar(
            &database,
            &format!("SELECT COUNT(*) FROM bus_outbox WHERE event_id = '{}' AND sent_at IS NOT NULL", first.id),
        )
        .await
            == 1
    })
    .await;

    // The same event again, as after a relay crash between publishing and marking it sent...
    database.execute(&format!("UPDATE bus_outbox SET sent_at = NULL WHERE event_id = '{}'", first.id)).await.unwrap();
    // ...and the same order under a new event id, as a republishing order service would.
    let second = order_envelope("order-dup", "user-1", "5.00", "USD", "card", "tok_visa");
    enqueue(&database, ORDER_SERVICE, &second, None).await;
    // A later order: once it is paid, both duplicates have been consumed (one queue, in order).
    sandbox.order_created("order-after-dup", "user-1", "1.00", "card", "tok_visa").await;
    sandbox.wait_for_payment("order-after-dup").await;
    wait_until("the second event id is consumed", WITHIN, || async {
        scalar(
            &database,
            &format!("SELECT COUNT(*) FROM bus_inbox WHERE consumer = 'payment' AND event_id = '{}'", second.id),
        )
        .await
            == 1
    })
    .await;
    wait_until("the first event is published again", WITHIN, || async {
        scalar(
            &database,
            &format!("SELECT COUNT(*) FROM bus_outbox WHERE event_id = '{}' AND sent_at IS NOT NULL", first.id),
        )
        .await
            == 1
    })
    .await;
    wait_until("the consumer recognised the redelivered event", WITHIN, || async {
        sandbox.consumer().snapshot().num_duplicates >= 1
    })
    .await;
    // A late duplicate would show now.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let payments = sandbox.payments_of("order-dup").await;
    assert_eq!(payments.total_elements, 1, "one payment for the order");
    assert_eq!(payments.items[0], payment, "the first payment is unchanged");
    assert_eq!(sandbox.outbox_count("order-dup").await, 1, "one payment event for the order");
    let charged = scalar(&database, "SELECT COUNT(*) FROM payments WHERE order_id = 'order-dup'").await;
    assert_eq!(charged, 1);
    sandbox.finish().await;
}

async fn a_customer_reads_only_their_own_payments(sandbox: Sandbox) {
    sandbox.order_created("order-ada-1", "ada", "10.00", "card", "tok_visa").await;
    sandbox.order_created("order-ada-2", "ada", "20.00", "card", "tok_chargeDeclined").await;
    sandbox.order_created("order-bob-1", "bob", "30.00", "card", "tok_visa").await;
    let ada_payment = sandbox.wait_for_payment("order-ada-1").await;
    sandbox.wait_for_payment("order-ada-2").await;
    let bob_payment = sandbox.wait_for_payment("order-bob-1").await;

    let own = sandbox.ask(GetPayment { caller: customer("ada"), id: ada_payment.id.clone() }).await.unwrap();
    assert_eq!(own, ada_payment);
    let error = sandbox.ask(GetPayment { caller: customer("ada"), id: bob_payment.id.clone() }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (404, "payment_not_found"), "someone else's is not found");
    let error = sandbox.ask(GetPayment { caller: customer("ada"), id: "no-such-payment".into() }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (404, "payment_not_found"));
    let seen_by_admin = sandbox.ask(GetPayment { caller: admin(), id: bob_payment.id.clone() }).await.unwrap();
    assert_eq!(seen_by_admin, bob_payment);
    let error = sandbox.ask(GetPayment { caller: customer("ada"), id: "x".repeat(65) }).await.unwrap_err();
    assert_eq!((error.http_status(), error.code.as_str()), (400, "invalid_payment_id"));

    let list = |caller: Caller, order_id: Option<&str>| {
        sandbox.ask(ListPayments { caller, order_id: order_id.map(str::to_string), page: PageRequest::default() })
    };
    let ada = list(customer("ada"), None).await.unwrap();
    assert_eq!(ada.total_elements, 2);
    assert!(ada.items.iter().all(|payment| payment.order_id.starts_with("order-ada")), "{ada:?}");
    assert!(ada.items[0].created_at >= ada.items[1].created_at, "newest first");
    assert_eq!(list(customer("ada"), Some("order-bob-1")).await.unwrap().total_elements, 0);
    assert_eq!(list(customer("bob"), None).await.unwrap().total_elements, 1);
    assert_eq!(list(admin(), None).await.unwrap().total_elements, 3);
    let only = list(admin(), Some("order-ada-2")).await.unwrap();
    assert_eq!(only.items.len(), 1);
    assert_eq!(only.items[0].failure_reason.as_deref(), Some("card_declined"));
    let paged = sandbox
        .ask(ListPayments { caller: admin(), order_id: None, page: PageRequest::new(Some(1), Some(2)).unwrap() })
        .await
        .unwrap();
    assert_eq!((paged.items.len(), paged.total_pages), (1, 2));
    let error = list(customer("ada"), Some("' OR '1'='1")).await.unwrap_err();
    assert_eq!(error.code, "invalid_order_id");
    sandbox.finish().await;
}

async fn the_routes_answer_as_the_api_says(sandbox: Sandbox) {
    sandbox.order_created("order-route", "ada", "12.50", "card", "tok_visa").await;
    let payment = sandbox.wait_for_payment("order-route").await;
    let handle = sandbox.handle.as_ref().unwrap();
    sandbox.ctx.cluster.add_local(handle.endpoint.clone());
    let cluster = web::Data::new(sandbox.ctx.cluster.clone());
    let app = actix_test::init_service(
        App::new()
            .app_data(cluster)
            .app_data(emporium_cluster::edge::query_config())
            .wrap_fn(|request, service| {
                // The gateway's part: the verified caller from the `x-test-user` header.
                if let Some(user) = request.headers().get("x-test-user").and_then(|value| value.to_str().ok()) {
                    let caller = if user == "admin" { admin() } else { customer(user) };
                    request.extensions_mut().insert(caller);
                }
                actix_web::dev::Service::call(service, request)
            })
            .configure(emporium_payment::routes),
    )
    .await;
    let get = |path: String, user: Option<&'static str>| {
        let mut request = actix_test::TestRequest::get().uri(&path);
        if let Some(user) = user {
            request = request.insert_header(("x-test-user", user));
        }
        request.to_request()
    };

    let response = actix_test::call_service(&app, get(format!("/api/v1/payments/{}", payment.id), None)).await;
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["error"]["code"], "missing_token");

    let response = actix_test::call_service(&app, get(format!("/api/v1/payments/{}", payment.id), Some("ada"))).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["orderId"], "order-route");
    assert_eq!(body["amount"], "12.50");
    assert_eq!(body["status"], "SUCCEEDED");
    assert!(body["providerRef"].as_str().unwrap().starts_with("sim_ch_"));

    let response = actix_test::call_service(&app, get(format!("/api/v1/payments/{}", payment.id), Some("bob"))).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["error"]["code"], "payment_not_found");

    let response =
        actix_test::call_service(&app, get("/api/v1/payments?orderId=order-route&page=0&size=5".into(), Some("ada")))
            .await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!((body["totalElements"].as_u64(), body["items"][0]["id"].as_str()), (Some(1), Some(payment.id.as_str())));

    let response = actix_test::call_service(&app, get("/api/v1/payments".into(), Some("bob"))).await;
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["totalElements"], 0, "bob has no payments");

    let response = actix_test::call_service(&app, get("/api/v1/payments?size=1000".into(), Some("admin"))).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["error"]["code"], "invalid_page");
    let response = actix_test::call_service(&app, get("/api/v1/payments?userId=bob".into(), Some("admin"))).await;
    assert_eq!(response.status(), 400);
    drop(app);
    sandbox.finish().await;
}
