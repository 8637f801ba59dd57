//! The error policy of the edge, pinned for the order routes (mounted as the gateway mounts
//! them, with a stand-in for its middleware that sets the request id and the verified caller),
//! on a fresh SQLite store and the in-process bus: a client mistake is a 4xx with a clear code,
//! a store that is unavailable is 503 `order_unavailable` with `Retry-After`, and a bug is 500
//! `internal_error` with the request id and nothing of its cause.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::RETRY_AFTER;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpMessage as _, ResponseError as _, web};
use emporium_bus::{Bus, BusConfig};
use emporium_cluster::edge::{self, ApiError, INTERNAL_ERROR_MESSAGE, RequestContext};
use emporium_cluster::{Cluster, ServiceContext, ServiceHandle, Settings};
use emporium_contracts::ServiceError;
use emporium_contracts::identity::{Caller, Role};
use emporium_order::OrderOptions;
use emporium_order::error::OrderError;
use emporium_store::{Database, StoreError};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The request id the stand-in gateway gives every request.
const REQUEST_ID: &str = "req-order-error-policy";
/// The header the stand-in gateway reads the signed-in user from.
const USER_HEADER: &str = "x-test-user";

fn request_context() -> RequestContext {
    RequestContext { request_id: REQUEST_ID.into(), trace: None, deadline: None, client_address: None }
}

/// The order service alone (no catalog, no inventory) on a fresh SQLite file.
struct Orders {
    cluster: Cluster,
    database: Database,
    path: PathBuf,
    bus: Bus,
    handle: Option<ServiceHandle>,
    _settings: watch::Sender<Arc<Settings>>,
}

impl Orders {
    async fn start() -> Orders {
        let path = std::env::temp_dir().join(format!("order-error-policy-{}.db", uuid::Uuid::new_v4().simple()));
        let database = Database::open_sqlite_file(&path).await.unwrap();
        let (settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
        let ctx = ServiceContext::standalone("order-error-policy", settings_rx);
        let bus = Bus::connect(BusConfig::default()).await.unwrap();
        let options = OrderOptions { database: database.clone(), bus: bus.clone() };
        let handle = emporium_order::start(ctx.clone(), options).await.unwrap();
        ctx.cluster.add_local(handle.endpoint.clone());
        Orders { cluster: ctx.cluster.clone(), database, path, bus, handle: Some(handle), _settings: settings_tx }
    }

    async fn finish(mut self) {
        drop(self.handle.take());
        self.bus.close().await;
        self.database.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

macro_rules! app {
    ($orders:expr) => {
        init_service(
            App::new()
                .app_data(web::Data::new($orders.cluster.clone()))
                .app_data(edge::json_config(edge::DEFAULT_BODY_LIMIT))
                .app_data(edge::query_config())
                .app_data(edge::path_config())
                .wrap_fn(|request, service| {
                    request.extensions_mut().insert(request_context());
                    let user = request.headers().get(USER_HEADER).and_then(|value| value.to_str().ok());
                    if let Some(user) = user {
                        let caller = Caller { user_id: user.into(), roles: vec![Role::Customer], token_id: "t".into() };
                        request.extensions_mut().insert(caller);
                    }
                    service.call(request)
                })
                .configure(emporium_order::routes),
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

fn as_ada(request: TestRequest) -> TestRequest {
    request.insert_header((USER_HEADER, "ada"))
}

#[actix_rt::test]
async fn a_client_mistake_is_a_4xx_with_a_clear_code() {
    let orders = Orders::start().await;
    let app = app!(orders);
    for (uri, status, code) in [
        ("/api/v1/orders?size=0", 400, "invalid_page"),
        ("/api/v1/orders?status=SHIPPED", 400, "invalid_query"),
        ("/api/v1/orders?from=yesterday", 400, "invalid_query"),
        ("/api/v1/orders?where=1", 400, "invalid_query"),
        ("/api/v1/orders/no-such-order", 404, "order_not_found"),
    ] {
        let (got_status, retry_after, body) =
            answer(call_service(&app, as_ada(TestRequest::get().uri(uri)).to_request()).await).await;
        assert_eq!(
            (got_status, retry_after, body["error"]["code"].as_str()),
            (status, None, Some(code)),
            "{uri}: {body}"
        );
    }
    let (status, _, body) =
        answer(call_service(&app, TestRequest::get().uri("/api/v1/orders").to_request()).await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")), "{body}");
    let place = as_ada(TestRequest::post().uri("/api/v1/orders")).set_json(json!({"items": []}));
    let (status, _, body) = answer(call_service(&app, place.to_request()).await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")), "{body}");
    orders.finish().await;
}

#[actix_rt::test]
async fn an_unavailable_store_is_503_order_unavailable_with_retry_after() {
    let orders = Orders::start().await;
    let app = app!(orders);
    orders.database.close().await;
    for uri in ["/api/v1/orders", "/api/v1/orders/some-order"] {
        let (status, retry_after, body) =
            answer(call_service(&app, as_ada(TestRequest::get().uri(uri)).to_request()).await).await;
        assert_eq!(
            (status, retry_after.as_deref(), body["error"]["code"].as_str()),
            (503, Some("1"), Some("order_unavailable")),
            "{uri}: {body}"
        );
    }
    orders.finish().await;
}

#[actix_rt::test]
async fn a_bug_is_500_internal_error_with_the_request_id_and_no_internals() {
    let orders = Orders::start().await;
    let app = app!(orders);
    // A schema the code does not expect: every statement on it is a bug, not an outage.
    orders.database.execute("DROP TABLE order_items").await.unwrap();
    orders.database.execute("DROP TABLE orders").await.unwrap();
    let (status, retry_after, body) =
        answer(call_service(&app, as_ada(TestRequest::get().uri("/api/v1/orders")).to_request()).await).await;
    assert_eq!((status, retry_after), (500, None));
    assert_eq!(
        body,
        json!({"error": {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "requestId": REQUEST_ID}})
    );
    orders.finish().await;
}

#[actix_rt::test]
async fn an_unexpected_store_error_converts_to_500_without_its_cause() {
    let cause = StoreError::Database(sqlx::Error::ColumnNotFound("secret_column".into()));
    let bug = ServiceError::from(OrderError::from(cause));
    let response = ApiError::for_request(bug, &request_context()).error_response();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = serde_json::from_slice(&actix_web::body::to_bytes(response.into_body()).await.unwrap()).unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["requestId"].as_str()),
        (Some("internal_error"), Some(REQUEST_ID))
    );
    assert!(!body.to_string().contains("secret_column"), "{body}");
}
