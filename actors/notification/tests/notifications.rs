//! The notification service end to end on its bus and stores: events published by a stand-in
//! publisher (its outbox and relay) reach the service over RabbitMQ or the in-process bus, on
//! MariaDB or SQLite; emails go to a real SMTP server started by the test (`ops/smtp`,
//! aiosmtpd), or to one that is down.

mod support;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpMessage, test as actix_test, web};
use emporium_bus::{Bus, ConsumerHandle, RelayHandle};
use emporium_cluster::{ServiceContext, ServiceHandle, Settings};
use emporium_contracts::events::{
    self, EventEnvelope, OrderCancelled, OrderConfirmed, OrderCreated, OrderLine, PaymentFailed, PaymentInstruction,
    UserRegistered,
};
use emporium_contracts::identity::{Caller, Role};
use emporium_contracts::notification::{
    ListNotifications, NotificationChannel, NotificationKind, NotificationStatus, NotificationView,
};
use emporium_contracts::page::{Page, PageRequest};
use emporium_contracts::{Request, ServiceError};
use emporium_notification::{DeliverySettings, NotificationOptions, SmtpSettings};
use emporium_runtime::CallMeta;
use emporium_runtime::monitor::ActorSnapshot;
use emporium_store::Database;
use support::*;
use tokio::sync::watch;

const WITHIN: Duration = Duration::from_secs(20);
/// The stand-in publisher of every event.
const PUBLISHER: &str = "publisher";
const FROM: &str = "Emporium <no-reply@emporium.local>";

/// Where email goes in a test.
enum Mail {
    /// No SMTP configured.
    Off,
    /// A real SMTP server that refuses the first `n` messages with 451.
    Server { temp_fail: u32 },
    /// An SMTP URL nothing listens on.
    Down,
}

/// One test's notification service, with its bus, database, SMTP server and publisher.
struct Sandbox {
    transport: Transport,
    namespace: String,
    bus: Bus,
    store: TestStore,
    ctx: ServiceContext,
    handle: Option<ServiceHandle>,
    publisher_relay: RelayHandle,
    smtp_server: Option<SmtpServer>,
    _settings: watch::Sender<Arc<Settings>>,
}

impl Sandbox {
    async fn start(transport: Transport, kind: StoreKind, mail: Mail, delivery: DeliverySettings) -> Sandbox {
        let namespace = unique_namespace("ntf");
        let bus = connect_bus(transport, &namespace).await;
        let store = TestStore::create(kind, "notification").await;
        let (ctx, settings) = service_context("notification-test");
        let smtp_server = match mail {
            Mail::Server { temp_fail } => Some(SmtpServer::start(temp_fail)),
            _ => None,
        };
        let smtp_url = match (&mail, &smtp_server) {
            (Mail::Off, _) => None,
            (Mail::Down, _) => Some(format!("smtp://127.0.0.1:{}", closed_port())),
            (Mail::Server { .. }, server) => server.as_ref().map(SmtpServer::url),
        };
        let options = NotificationOptions {
            database: store.database.clone(),
            bus: bus.clone(),
            smtp: smtp_url.map(|url| SmtpSettings::parse(&url).unwrap()),
            from_address: FROM.into(),
            delivery,
        };
        let handle = emporium_notification::start(ctx.clone(), options).await.expect("the notification service starts");
        let publisher_relay = bus.start_relay(&ctx, PUBLISHER, store.database.clone()).await.unwrap();
        bus.start_delivery();
        Sandbox {
            transport,
            namespace,
            bus,
            store,
            ctx,
            handle: Some(handle),
            publisher_relay,
            smtp_server,
            _settings: settings,
        }
    }

    fn database(&self) -> &Database {
        &self.store.database
    }

    async fn ask<M: Request>(&self, message: M) -> Result<M::Reply, ServiceError> {
        let meta = CallMeta { deadline: Some(std::time::Instant::now() + Duration::from_secs(30)), trace: None };
        let handle = self.handle.as_ref().expect("running");
        handle.endpoint.route::<M>().expect("the notification service handles it").ask(message, meta).await
    }

    /// Publishes `payload` as an event of `event_type` about `subject`.
    async fn publish<T: serde::Serialize>(&self, event_type: &str, subject: &str, payload: &T) -> EventEnvelope {
        let envelope = EventEnvelope::new("/emporium/test", event_type, subject, payload).unwrap();
        enqueue(self.database(), PUBLISHER, &envelope, None).await;
        envelope
    }

    async fn user_registered(&self, user_id: &str, email: &str) -> EventEnvelope {
        let payload = UserRegistered {
            user_id: user_id.into(),
            username: user_id.into(),
            email: email.into(),
            full_name: format!("{user_id} Lovelace"),
        };
        self.publish(events::USER_REGISTERED, user_id, &payload).await
    }

    async fn order_created(&self, order_id: &str, user_id: &str) -> EventEnvelope {
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
            total: "19.98".into(),
            currency: "USD".into(),
            payment: PaymentInstruction { method: "card".into(), token: "tok_visa".into() },
        };
        self.publish(events::ORDER_CREATED, order_id, &payload).await
    }

    async fn notifications_of(&self, user_id: &str) -> Page<NotificationView> {
        let caller = Caller { user_id: user_id.into(), roles: vec![Role::Customer], token_id: "t".into() };
        self.ask(ListNotifications { caller, page: PageRequest::default() }).await.unwrap()
    }

    async fn wait_for_notifications(&self, user_id: &str, count: u64) -> Vec<NotificationView> {
        wait_until(&format!("{count} notification(s) of {user_id}"), WITHIN, || async {
            self.notifications_of(user_id).await.total_elements >= count
        })
        .await;
        self.notifications_of(user_id).await.items
    }

    /// `(status, attempts, last error)` of the notification of `event_id`.
    async fn delivery_of(&self, event_id: &str) -> (String, i64, Option<String>) {
        let row = rows(
            self.database(),
            &format!("SELECT status, last_error FROM notifications WHERE event_id = '{event_id}'"),
        )
        .await;
        let attempts =
            scalar(self.database(), &format!("SELECT attempts FROM notifications WHERE event_id = '{event_id}'")).await;
        (row[0][0].clone().unwrap_or_default(), attempts, row[0][1].clone())
    }

    async fn wait_for_status(&self, event_id: &str, status: &str) -> (String, i64, Option<String>) {
        wait_until(&format!("the notification of {event_id} to be {status}"), WITHIN, || async {
            scalar(
                self.database(),
                &format!("SELECT COUNT(*) FROM notifications WHERE event_id = '{event_id}' AND status = '{status}'"),
            )
            .await
                == 1
        })
        .await;
        self.delivery_of(event_id).await
    }

    fn consumer(&self, exchange: &str) -> &ConsumerHandle {
        let handle = self.handle.as_ref().expect("running");
        handle
            .resources
            .iter()
            .filter_map(|resource| resource.downcast_ref::<ConsumerHandle>())
            .find(|consumer| consumer.spec().exchange == exchange)
            .expect("a consumer of the exchange")
    }

    fn mailer_snapshot(&self) -> ActorSnapshot {
        self.ctx
            .tree
            .snapshot()
            .services
            .into_iter()
            .flat_map(|service| service.actors)
            .find(|actor| actor.path == "notification/mailer")
            .expect("the mailer runs")
    }

    fn smtp_server(&self) -> &SmtpServer {
        self.smtp_server.as_ref().expect("an SMTP server")
    }

    async fn finish(mut self, expected_faults: usize) {
        let tree = self.ctx.tree.snapshot();
        assert_eq!(tree.faults.len(), expected_faults, "faults: {:?}", tree.faults);
        self.publisher_relay.stop().await;
        drop(self.handle.take());
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.bus.close().await;
        if self.transport == Transport::Amqp {
            delete_amqp_names(&self.namespace, "notification", &["order-events", "payment-events", "auth-events"])
                .await;
        }
        self.store.drop_now().await;
    }
}

/// Quick retries for tests: 3 attempts, 100 ms then 200 ms apart.
fn quick_delivery() -> DeliverySettings {
    DeliverySettings {
        max_attempts: 3,
        first_retry_delay: Duration::from_millis(100),
        max_retry_delay: Duration::from_millis(400),
        poll_interval: Duration::from_millis(50),
        send_timeout: Duration::from_secs(5),
        ..DeliverySettings::default()
    }
}

macro_rules! on_every_bus_and_store {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[actix_rt::test]
            async fn rabbitmq_mariadb() {
                super::$scenario(Transport::Amqp, StoreKind::MariaDb).await
            }

            #[actix_rt::test]
            async fn rabbitmq_sqlite() {
                super::$scenario(Transport::Amqp, StoreKind::Sqlite).await
            }

            #[actix_rt::test]
            async fn in_process_mariadb() {
                super::$scenario(Transport::InProcess, StoreKind::MariaDb).await
            }

            #[actix_rt::test]
            async fn in_process_sqlite() {
                super::$scenario(Transport::InProcess, StoreKind::Sqlite).await
            }
        }
    };
}

macro_rules! on_both_stores {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[actix_rt::test]
            async fn mariadb() {
                super::$scenario(Transport::InProcess, StoreKind::MariaDb).await
            }

            #[actix_rt::test]
            async fn sqlite() {
                super::$scenario(Transport::InProcess, StoreKind::Sqlite).await
            }
        }
    };
}

on_every_bus_and_store!(every_event_is_stored_once_even_when_delivered_twice);
on_every_bus_and_store!(a_real_smtp_server_receives_the_emails);
on_every_bus_and_store!(a_down_smtp_server_is_retried_then_failed_while_events_flow);
on_both_stores!(a_refusing_smtp_server_is_retried_until_it_takes_the_email);
on_both_stores!(the_route_lists_the_callers_own_notifications);

async fn every_event_is_stored_once_even_when_delivered_twice(transport: Transport, kind: StoreKind) {
    let sandbox = Sandbox::start(transport, kind, Mail::Off, quick_delivery()).await;
    let database = sandbox.database().clone();
    sandbox.user_registered("ada", "ada@example.com").await;
    let created = sandbox.order_created("o-1", "ada").await;
    let confirmed =
        OrderConfirmed { order_id: "o-1".into(), user_id: "ada".into(), total: "19.98".into(), currency: "USD".into() };
    sandbox.publish(events::ORDER_CONFIRMED, "o-1", &confirmed).await;
    let failed = PaymentFailed {
        payment_id: "p-2".into(),
        order_id: "o-2".into(),
        user_id: "ada".into(),
        amount: "5.00".into(),
        currency: "USD".into(),
        reason: "card_declined".into(),
    };
    sandbox.publish(events::PAYMENT_FAILED, "o-2", &failed).await;
    let cancelled = OrderCancelled { order_id: "o-2".into(), user_id: "ada".into(), reason: "card_declined".into() };
    sandbox.publish(events::ORDER_CANCELLED, "o-2", &cancelled).await;
    sandbox.user_registered("bob", "bob@example.com").await;
    // Events nobody is told about are not consumed at all.
    sandbox.publish(events::USER_LOGGED_IN, "ada", &events::UserLoggedIn { user_id: "ada".into() }).await;

    let notifications = sandbox.wait_for_notifications("ada", 5).await;
    let mut kinds: Vec<NotificationKind> = notifications.iter().map(|notification| notification.kind).collect();
    kinds.sort_by_key(|kind| kind.event_type());
    assert_eq!(
        kinds,
        vec![
            NotificationKind::OrderCancelled,
            NotificationKind::OrderConfirmed,
            NotificationKind::OrderCreated,
            NotificationKind::PaymentFailed,
            NotificationKind::UserRegistered
        ]
    );
    for notification in &notifications {
        assert_eq!(notification.channel, NotificationChannel::Stored, "no SMTP: stored");
        assert_eq!(notification.status, NotificationStatus::Stored);
    }
    let order = notifications.iter().find(|notification| notification.event_id == created.id).unwrap();
    assert_eq!(order.subject, "Order o-1 received");
    assert!(order.body.contains("Total: 19.98 USD"), "{}", order.body);
    let payment =
        notifications.iter().find(|notification| notification.kind == NotificationKind::PaymentFailed).unwrap();
    assert!(payment.body.contains("the card was declined"), "{}", payment.body);
    assert!(notifications.windows(2).all(|pair| pair[0].created_at >= pair[1].created_at), "newest first");

    // order.created again, as after a relay crash between publishing and marking it sent.
    wait_until("the event is marked sent", WITHIN, || async {
        scalar(
            &database,
            &format!("SELECT COUNT(*) FROM bus_outbox WHERE event_id = '{}' AND sent_at IS NOT NULL", created.id),
        )
        .await
            == 1
    })
    .await;
    database.execute(&format!("UPDATE bus_outbox SET sent_at = NULL WHERE event_id = '{}'", created.id)).await.unwrap();
    wait_until("the redelivery is recognised", WITHIN, || async {
        sandbox.consumer("order-events").snapshot().num_duplicates >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sandbox.notifications_of("ada").await.total_elements, 5, "still one notification per event");
    assert_eq!(
        scalar(&database, &format!("SELECT COUNT(*) FROM notifications WHERE event_id = '{}'", created.id)).await,
        1
    );
    assert_eq!(sandbox.notifications_of("bob").await.total_elements, 1);
    assert_eq!(sandbox.notifications_of("admin-1").await.total_elements, 0, "an admin reads only their own");
    assert_eq!(scalar(&database, "SELECT COUNT(*) FROM notifications").await, 6);
    sandbox.finish(0).await;
}

async fn a_real_smtp_server_receives_the_emails(transport: Transport, kind: StoreKind) {
    let sandbox = Sandbox::start(transport, kind, Mail::Server { temp_fail: 0 }, quick_delivery()).await;
    let welcome = sandbox.user_registered("ada", "ada@example.com").await;
    sandbox.wait_for_notifications("ada", 1).await;
    let order = sandbox.order_created("o-mail", "ada").await;
    let stranger = sandbox.order_created("o-stranger", "carl").await;

    let (_, attempts, last_error) = sandbox.wait_for_status(&welcome.id, "SENT").await;
    assert_eq!((attempts, last_error), (1, None));
    sandbox.wait_for_status(&order.id, "SENT").await;
    let (status, attempts, _) = sandbox.wait_for_status(&stranger.id, "STORED").await;
    assert_eq!((status.as_str(), attempts), ("STORED", 0), "no address known for carl: stored only");
    let carl = sandbox.notifications_of("carl").await.items;
    assert_eq!(carl[0].channel, NotificationChannel::Stored);
    let ada = sandbox.notifications_of("ada").await.items;
    assert!(ada.iter().all(|notification| notification.channel == NotificationChannel::Email
        && notification.status == NotificationStatus::Sent));

    wait_until("the server wrote both messages", WITHIN, || async { sandbox.smtp_server().messages().len() == 2 })
        .await;
    let messages = sandbox.smtp_server().messages();
    for message in &messages {
        assert_eq!(message["rcptTos"], serde_json::json!(["ada@example.com"]));
        assert_eq!(message["mailFrom"], "no-reply@emporium.local");
    }
    let order_mail = messages
        .iter()
        .map(|message| message["data"].as_str().unwrap_or_default().to_string())
        .find(|data| data.contains("Subject: Order o-mail received"))
        .unwrap_or_else(|| panic!("no order email among {messages:?}"));
    assert!(order_mail.contains("Total: 19.98 USD"), "{order_mail}");
    assert!(order_mail.contains("2 x Mug (MUG-1)"), "{order_mail}");
    let order_notification = ada.iter().find(|notification| notification.event_id == order.id).unwrap();
    assert!(
        order_mail.contains(&format!("Message-ID: <{}@emporium.local>", order_notification.id)),
        "the Message-ID names the notification: {order_mail}"
    );
    assert_eq!(sandbox.mailer_snapshot().num_errors, 0);
    sandbox.finish(0).await;
}

async fn a_down_smtp_server_is_retried_then_failed_while_events_flow(transport: Transport, kind: StoreKind) {
    let delivery = DeliverySettings {
        first_retry_delay: Duration::from_millis(300),
        max_retry_delay: Duration::from_millis(600),
        ..quick_delivery()
    };
    let sandbox = Sandbox::start(transport, kind, Mail::Down, delivery).await;
    let welcome = sandbox.user_registered("ada", "ada@example.com").await;

    // Tried, failed, waiting for its next attempt.
    wait_until("a first failed attempt", WITHIN, || async {
        let (status, attempts, last_error) = sandbox.delivery_of_opt(&welcome.id).await;
        status.as_deref() == Some("PENDING") && attempts >= 1 && last_error.is_some()
    })
    .await;
    // The queue is not held up: later events are recorded meanwhile.
    let order = sandbox.order_created("o-1", "ada").await;
    wait_until("the later event is recorded", WITHIN, || async {
        sandbox.delivery_of_opt(&order.id).await.0.is_some()
    })
    .await;

    for event_id in [&welcome.id, &order.id] {
        let (_, attempts, last_error) = sandbox.wait_for_status(event_id, "FAILED").await;
        assert_eq!(attempts, 3, "max_attempts sends, then FAILED");
        let last_error = last_error.unwrap_or_default().to_lowercase();
        assert!(last_error.contains("connection"), "the error is kept: {last_error}");
    }
    let mailer = sandbox.mailer_snapshot();
    assert!(mailer.num_errors >= 3, "failed rounds count as errors: {mailer:?}");
    let failure_faults = || -> Vec<String> {
        let faults = sandbox.ctx.tree.snapshot().faults.into_iter();
        faults
            .filter(|fault| fault.message_type == emporium_notification::mailer::NOTIFICATION_FAILED)
            .map(|fault| fault.error)
            .collect()
    };
    // Recorded right after the FAILED row.
    wait_until("a fault per failed notification", WITHIN, || async { failure_faults().len() >= 2 }).await;
    let faults = failure_faults();
    assert_eq!(faults.len(), 2, "each notification that failed for good is a fault: {faults:?}");
    assert!(faults.iter().all(|fault| fault.contains("after 3 attempt(s)") && !fault.contains("ada@example.com")));
    assert_eq!(sandbox.consumer("order-events").snapshot().num_dead_lettered, 0);
    sandbox.finish(2).await;
}

async fn a_refusing_smtp_server_is_retried_until_it_takes_the_email(transport: Transport, kind: StoreKind) {
    let sandbox = Sandbox::start(transport, kind, Mail::Server { temp_fail: 2 }, quick_delivery()).await;
    let welcome = sandbox.user_registered("ada", "ada@example.com").await;
    let (_, attempts, last_error) = sandbox.wait_for_status(&welcome.id, "SENT").await;
    assert_eq!((attempts, last_error), (3, None), "two 451 answers, then taken");
    assert_eq!(sandbox.smtp_server().messages().len(), 1);
    assert!(sandbox.mailer_snapshot().num_errors >= 2);
    sandbox.finish(0).await;
}

async fn the_route_lists_the_callers_own_notifications(transport: Transport, kind: StoreKind) {
    let sandbox = Sandbox::start(transport, kind, Mail::Off, quick_delivery()).await;
    sandbox.user_registered("ada", "ada@example.com").await;
    sandbox.user_registered("bob", "bob@example.com").await;
    // Events of two exchanges arrive in any order: the order's comes once the welcome is in.
    sandbox.wait_for_notifications("ada", 1).await;
    sandbox.order_created("o-route", "ada").await;
    sandbox.wait_for_notifications("ada", 2).await;
    sandbox.wait_for_notifications("bob", 1).await;
    let handle = sandbox.handle.as_ref().unwrap();
    sandbox.ctx.cluster.add_local(handle.endpoint.clone());
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(sandbox.ctx.cluster.clone()))
            .app_data(emporium_cluster::edge::query_config())
            .wrap_fn(|request, service| {
                // The gateway's part: the verified caller from the `x-test-user` header.
                if let Some(user) = request.headers().get("x-test-user").and_then(|value| value.to_str().ok()) {
                    let roles = if user == "admin" { vec![Role::Admin] } else { vec![Role::Customer] };
                    let caller = Caller { user_id: user.to_string(), roles, token_id: "t".into() };
                    request.extensions_mut().insert(caller);
                }
                actix_web::dev::Service::call(service, request)
            })
            .configure(emporium_notification::routes),
    )
    .await;
    let get = |path: &str, user: Option<&str>| {
        let mut request = actix_test::TestRequest::get().uri(path);
        if let Some(user) = user {
            request = request.insert_header(("x-test-user", user.to_string()));
        }
        request.to_request()
    };

    let response = actix_test::call_service(&app, get("/api/v1/notifications", None)).await;
    assert_eq!(response.status(), 401);
    let response = actix_test::call_service(&app, get("/api/v1/notifications?page=0&size=1", Some("ada"))).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!((body["totalElements"].as_u64(), body["totalPages"].as_u64()), (Some(2), Some(2)));
    let item = &body["items"][0];
    assert_eq!(item["kind"], "order.created", "newest first");
    assert_eq!((item["channel"].as_str(), item["status"].as_str()), (Some("stored"), Some("STORED")));
    for field in ["id", "eventId", "subject", "body", "createdAt"] {
        assert!(item[field].is_string(), "{field} in {item}");
    }
    let response = actix_test::call_service(&app, get("/api/v1/notifications", Some("bob"))).await;
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["totalElements"], 1);
    assert_eq!(body["items"][0]["subject"], "Welcome to Emporium, bob Lovelace");
    let response = actix_test::call_service(&app, get("/api/v1/notifications", Some("admin"))).await;
    let body: serde_json::Value = actix_test::read_body_json(response).await;
    assert_eq!(body["totalElements"], 0, "own notifications only, admins too");
    let response = actix_test::call_service(&app, get("/api/v1/notifications?size=0", Some("ada"))).await;
    assert_eq!(response.status(), 400);
    let response = actix_test::call_service(&app, get("/api/v1/notifications?userId=bob", Some("ada"))).await;
    assert_eq!(response.status(), 400);
    drop(app);
    sandbox.finish(0).await;
}

impl Sandbox {
    /// Like [`Sandbox::delivery_of`], with `None`s while there is no notification yet.
    async fn delivery_of_opt(&self, event_id: &str) -> (Option<String>, i64, Option<String>) {
        let found = rows(
            self.database(),
            &format!("SELECT status, last_error FROM notifications WHERE event_id = '{event_id}'"),
        )
        .await;
        match found.first() {
            None => (None, 0, None),
            Some(row) => {
                let attempts = scalar(
                    self.database(),
                    &format!("SELECT attempts FROM notifications WHERE event_id = '{event_id}'"),
                )
                .await;
                (row[0].clone(), attempts, row[1].clone())
            }
        }
    }
}
