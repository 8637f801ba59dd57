//! The error policy of the edge, pinned for the inventory routes (mounted as the gateway mounts
//! them, with a stand-in for its middleware that sets the request id and the verified caller),
//! on a fresh SQLite store: a client mistake is a 4xx with a clear code, a store that is
//! unavailable is 503 `inventory_store_unavailable` with `Retry-After`, and a bug is 500
//! `internal_error` with the request id and nothing of its cause.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::RETRY_AFTER;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpMessage as _, ResponseError as _, web};
use emporium_cluster::edge::{self, ApiError, INTERNAL_ERROR_MESSAGE, RequestContext};
use emporium_cluster::{Cluster, ServiceContext, ServiceHandle, Settings};
use emporium_contracts::ServiceError;
use emporium_contracts::identity::{Caller, Role};
use emporium_inventory::InventoryOptions;
use emporium_inventory::error::InventoryError;
use emporium_store::{Database, StoreError};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The request id the stand-in gateway gives every request.
const REQUEST_ID: &str = "req-inventory-error-policy";
/// The header the stand-in gateway reads the caller's role from.
const ROLE_HEADER: &str = "x-test-role";

fn request_context() -> RequestContext {
    RequestContext { request_id: REQUEST_ID.into(), trace: None, deadline: None, client_address: None }
}

/// The caller the gateway would have verified, named by the test's role header.
fn caller_named(role: &str) -> Caller {
    let roles = if role == "admin" { vec![Role::Admin] } else { vec![Role::Customer] };
    Caller { user_id: format!("{role}-1"), roles, token_id: "t".into() }
}

/// The inventory service on a fresh SQLite file, its asks going through a cluster of its own.
struct Inventory {
    cluster: Cluster,
    database: Database,
    path: PathBuf,
    _handle: ServiceHandle,
    _settings: watch::Sender<Arc<Settings>>,
}

impl Inventory {
    async fn start() -> Inventory {
        let path = std::env::temp_dir().join(format!("inventory-error-policy-{}.db", uuid::Uuid::new_v4().simple()));
        let database = Database::open_sqlite_file(&path).await.unwrap();
        let (settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
        let ctx = ServiceContext::standalone("inventory-error-policy", settings_rx);
        let handle = emporium_inventory::start(ctx.clone(), InventoryOptions { database: database.clone(), bus: None })
            .await
            .unwrap();
        ctx.cluster.add_local(handle.endpoint.clone());
        Inventory { cluster: ctx.cluster.clone(), database, path, _handle: handle, _settings: settings_tx }
    }

    async fn finish(self) {
        self.database.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

macro_rules! app {
    ($inventory:expr) => {
        init_service(
            App::new()
                .app_data(web::Data::new($inventory.cluster.clone()))
                .app_data(edge::json_config(edge::DEFAULT_BODY_LIMIT))
                .app_data(edge::query_config())
                .app_data(edge::path_config())
                .wrap_fn(|request, service| {
                    request.extensions_mut().insert(request_context());
                    let role =
                        request.headers().get(ROLE_HEADER).and_then(|value| value.to_str().ok()).map(caller_named);
                    if let Some(caller) = role {
                        request.extensions_mut().insert(caller);
                    }
                    service.call(request)
                })
                .configure(emporium_inventory::routes),
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

fn get(uri: &str, role: &str) -> TestRequest {
    TestRequest::get().uri(uri).insert_header((ROLE_HEADER, role))
}

#[actix_rt::test]
async fn a_client_mistake_is_a_4xx_with_a_clear_code() {
    let inventory = Inventory::start().await;
    let app = app!(inventory);
    for (uri, status, code) in [
        ("/api/v1/inventory?size=0", 400, "invalid_page"),
        ("/api/v1/inventory?reorderNeeded=maybe", 400, "invalid_query"),
        ("/api/v1/inventory?where=1", 400, "invalid_query"),
        ("/api/v1/inventory/availability", 400, "invalid_query"),
        ("/api/v1/inventory/NO-SUCH-SKU", 404, "unknown_sku"),
    ] {
        let (got_status, retry_after, body) = answer(call_service(&app, get(uri, "customer").to_request()).await).await;
        assert_eq!(
            (got_status, retry_after, body["error"]["code"].as_str()),
            (status, None, Some(code)),
            "{uri}: {body}"
        );
    }
    let set = TestRequest::put()
        .uri("/api/v1/inventory/MUG-1")
        .insert_header((ROLE_HEADER, "customer"))
        .set_json(json!({"available": 5, "reorderLevel": 1, "reorderQuantity": 10}));
    let (status, _, body) = answer(call_service(&app, set.to_request()).await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    inventory.finish().await;
}

#[actix_rt::test]
async fn an_unavailable_store_is_503_inventory_store_unavailable_with_retry_after() {
    let inventory = Inventory::start().await;
    let app = app!(inventory);
    inventory.database.close().await;
    for uri in ["/api/v1/inventory/MUG-1", "/api/v1/inventory", "/api/v1/inventory/availability?sku=MUG-1"] {
        let (status, retry_after, body) = answer(call_service(&app, get(uri, "customer").to_request()).await).await;
        assert_eq!(
            (status, retry_after.as_deref(), body["error"]["code"].as_str()),
            (503, Some("1"), Some("inventory_store_unavailable")),
            "{uri}: {body}"
        );
    }
    inventory.finish().await;
}

#[actix_rt::test]
async fn a_bug_is_500_internal_error_with_the_request_id_and_no_internals() {
    let inventory = Inventory::start().await;
    let app = app!(inventory);
    // A schema the code does not expect: every statement on it is a bug, not an outage.
    inventory.database.execute("DROP TABLE inventory_stock").await.unwrap();
    let (status, retry_after, body) =
        answer(call_service(&app, get("/api/v1/inventory/MUG-1", "customer").to_request()).await).await;
    assert_eq!((status, retry_after), (500, None));
    assert_eq!(
        body,
        json!({"error": {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "requestId": REQUEST_ID}})
    );
    inventory.finish().await;
}

#[actix_rt::test]
async fn an_unexpected_store_error_converts_to_500_without_its_cause() {
    let cause = StoreError::Database(sqlx::Error::ColumnNotFound("secret_column".into()));
    let bug = ServiceError::from(InventoryError::from(cause));
    let response = ApiError::for_request(bug, &request_context()).error_response();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = serde_json::from_slice(&actix_web::body::to_bytes(response.into_body()).await.unwrap()).unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["requestId"].as_str()),
        (Some("internal_error"), Some(REQUEST_ID))
    );
    assert!(!body.to_string().contains("secret_column"), "{body}");
}
