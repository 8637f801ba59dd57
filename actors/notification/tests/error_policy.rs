//! The error policy of the edge, pinned for the notification route (mounted as the gateway
//! mounts it, with a stand-in for its middleware that sets the request id and the verified
//! caller), on a fresh test database and the in-process bus: a client mistake is a 4xx with a
//! clear code, a store that is unavailable is 503 `notification_store_unavailable` with
//! `Retry-After`, and a bug is 500 `internal_error` with the request id and nothing of its cause.

mod support;

use actix_web::body::MessageBody;
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::RETRY_AFTER;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpMessage as _, ResponseError as _, web};
use emporium_bus::Bus;
use emporium_cluster::edge::{self, ApiError, INTERNAL_ERROR_MESSAGE, RequestContext};
use emporium_cluster::{ServiceContext, ServiceHandle, Settings};
use emporium_contracts::ServiceError;
use emporium_contracts::identity::{Caller, Role};
use emporium_notification::error::NotificationError;
use emporium_notification::{DEFAULT_FROM_ADDRESS, DeliverySettings, NotificationOptions};
use emporium_store::StoreError;
use serde_json::{Value, json};
use support::*;
use tokio::sync::watch;

/// The request id the stand-in gateway gives every request.
const REQUEST_ID: &str = "req-notification-error-policy";
/// The header the stand-in gateway reads the signed-in user from.
const USER_HEADER: &str = "x-test-user";

fn request_context() -> RequestContext {
    RequestContext { request_id: REQUEST_ID.into(), trace: None, deadline: None, client_address: None }
}

/// The notification service (no SMTP) on a fresh database of `kind` and the in-process bus.
struct Notifications {
    ctx: ServiceContext,
    store: TestStore,
    bus: Bus,
    handle: Option<ServiceHandle>,
    _settings: watch::Sender<std::sync::Arc<Settings>>,
}

impl Notifications {
    async fn start(kind: StoreKind) -> Notifications {
        let bus = connect_bus(Transport::InProcess, &unique_namespace("ntferr")).await;
        let store = TestStore::create(kind, "notification_errors").await;
        let (ctx, settings) = service_context("notification-error-policy");
        let options = NotificationOptions {
            database: store.database.clone(),
            bus: bus.clone(),
            smtp: None,
            from_address: DEFAULT_FROM_ADDRESS.into(),
            delivery: DeliverySettings::default(),
        };
        let handle = emporium_notification::start(ctx.clone(), options).await.expect("the notification service starts");
        ctx.cluster.add_local(handle.endpoint.clone());
        Notifications { ctx, store, bus, handle: Some(handle), _settings: settings }
    }

    async fn finish(mut self) {
        drop(self.handle.take());
        self.bus.close().await;
        self.store.drop_now().await;
    }
}

macro_rules! app {
    ($notifications:expr) => {
        init_service(
            App::new()
                .app_data(web::Data::new($notifications.ctx.cluster.clone()))
                .app_data(edge::query_config())
                .wrap_fn(|request, service| {
                    request.extensions_mut().insert(request_context());
                    let user = request.headers().get(USER_HEADER).and_then(|value| value.to_str().ok());
                    if let Some(user) = user {
                        let caller = Caller { user_id: user.into(), roles: vec![Role::Customer], token_id: "t".into() };
                        request.extensions_mut().insert(caller);
                    }
                    service.call(request)
                })
                .configure(emporium_notification::routes),
        )
        .await
    };
}

/// Status, `Retry-After` and JSON body of an answer.
async fn answer<B: MessageBody>(response: ServiceResponse<B>) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let retry_after = response.headers().get(RETRY_AFTER).map(|value| value.to_str().unwrap().to_string());
    let body = read_body(response).await;
    (status, retry_after, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn get_as_ada(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri).insert_header((USER_HEADER, "ada"))
}

#[actix_rt::test]
async fn a_client_mistake_is_a_4xx_with_a_clear_code() {
    let notifications = Notifications::start(StoreKind::Sqlite).await;
    let app = app!(notifications);
    for (uri, status, code) in [
        ("/api/v1/notifications?size=0", 400, "invalid_page"),
        ("/api/v1/notifications?page=-1", 400, "invalid_page"),
        ("/api/v1/notifications?page=first", 400, "invalid_query"),
        ("/api/v1/notifications?userId=bob", 400, "invalid_query"),
    ] {
        let (got_status, retry_after, body) = answer(call_service(&app, get_as_ada(uri).to_request()).await).await;
        assert_eq!(
            (got_status, retry_after, body["error"]["code"].as_str()),
            (status, None, Some(code)),
            "{uri}: {body}"
        );
    }
    let request = TestRequest::get().uri("/api/v1/notifications");
    let (status, _, body) = answer(call_service(&app, request.to_request()).await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")), "{body}");
    notifications.finish().await;
}

#[actix_rt::test]
async fn an_unavailable_store_is_503_notification_store_unavailable_with_retry_after() {
    for kind in StoreKind::BOTH {
        let notifications = Notifications::start(kind).await;
        let app = app!(notifications);
        notifications.store.database.close().await;
        let (status, retry_after, body) =
            answer(call_service(&app, get_as_ada("/api/v1/notifications").to_request()).await).await;
        assert_eq!(
            (status, retry_after.as_deref(), body["error"]["code"].as_str()),
            (503, Some("1"), Some("notification_store_unavailable")),
            "{kind:?}: {body}"
        );
        notifications.finish().await;
    }
}

#[actix_rt::test]
async fn a_bug_is_500_internal_error_with_the_request_id_and_no_internals() {
    for kind in StoreKind::BOTH {
        let notifications = Notifications::start(kind).await;
        let app = app!(notifications);
        // A schema the code does not expect: every statement on it is a bug, not an outage.
        notifications.store.database.execute("DROP TABLE notifications").await.unwrap();
        let (status, retry_after, body) =
            answer(call_service(&app, get_as_ada("/api/v1/notifications").to_request()).await).await;
        assert_eq!((status, retry_after), (500, None), "{kind:?}: {body}");
        assert_eq!(
            body,
            json!({"error": {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "requestId": REQUEST_ID}}),
            "{kind:?}"
        );
        notifications.finish().await;
    }
}

#[actix_rt::test]
async fn an_unexpected_store_error_converts_to_500_without_its_cause() {
    let cause = StoreError::Database(sqlx::Error::ColumnNotFound("secret_column".into()));
    let bug = ServiceError::from(NotificationError::from(cause));
    let response = ApiError::for_request(bug, &request_context()).error_response();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = serde_json::from_slice(&actix_web::body::to_bytes(response.into_body()).await.unwrap()).unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["requestId"].as_str()),
        (Some("internal_error"), Some(REQUEST_ID))
    );
    assert!(!body.to_string().contains("secret_column"), "{body}");
}
