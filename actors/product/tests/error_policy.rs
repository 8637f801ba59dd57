//! The error policy of the edge, pinned for the catalog routes (mounted as the gateway mounts
//! them, with a stand-in for its middleware that sets the request id), on the embedded store: a
//! client mistake is a 4xx with a clear code, a store that is unavailable is 503
//! `product_store_unavailable` with `Retry-After`, and a bug is 500 `internal_error` with the
//! request id and nothing of its cause.

mod support;

use actix_web::body::MessageBody;
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::RETRY_AFTER;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpMessage as _, ResponseError as _, web};
use emporium_cluster::edge::{self, ApiError, INTERNAL_ERROR_MESSAGE, RequestContext};
use emporium_contracts::ServiceError;
use emporium_product::error::ProductError;
use emporium_store::StoreError;
use serde_json::{Value, json};

/// The request id the stand-in gateway gives every request.
const REQUEST_ID: &str = "req-product-error-policy";

fn request_context() -> RequestContext {
    RequestContext { request_id: REQUEST_ID.into(), trace: None, deadline: None, client_address: None }
}

macro_rules! app {
    ($catalog:expr) => {
        init_service(
            App::new()
                .app_data(web::Data::new($catalog.cluster.clone()))
                .app_data(edge::json_config(edge::DEFAULT_BODY_LIMIT))
                .app_data(edge::query_config())
                .app_data(edge::path_config())
                .wrap_fn(|request, service| {
                    request.extensions_mut().insert(request_context());
                    service.call(request)
                })
                .configure(emporium_product::routes),
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

/// The catalog on a fresh embedded store, and that store's database.
async fn start() -> (support::TestStore, support::Catalog, emporium_store::Database) {
    let (store, products) = support::TestStore::open("sqlite").await;
    let database = match &store {
        support::TestStore::Sqlite { database, .. } => database.clone(),
        support::TestStore::MongoDb { .. } => unreachable!("opened as sqlite"),
    };
    (store, support::Catalog::start(products).await, database)
}

#[actix_rt::test]
async fn a_client_mistake_is_a_4xx_with_a_clear_code() {
    let (store, catalog, _database) = start().await;
    let app = app!(catalog);
    for (uri, status, code) in [
        ("/api/v1/products?size=0", 400, "invalid_page"),
        ("/api/v1/products?where=1", 400, "invalid_query"),
        ("/api/v1/products?sort=price", 400, "invalid_sort"),
        ("/api/v1/products/no-such-product", 404, "product_not_found"),
    ] {
        let (got_status, retry_after, body) =
            answer(call_service(&app, TestRequest::get().uri(uri).to_request()).await).await;
        assert_eq!(
            (got_status, retry_after, body["error"]["code"].as_str()),
            (status, None, Some(code)),
            "{uri}: {body}"
        );
    }
    let request = TestRequest::post().uri("/api/v1/products").set_json(json!({"sku": "A"}));
    let (status, _, body) = answer(call_service(&app, request.to_request()).await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")), "{body}");
    store.drop_it().await;
}

#[actix_rt::test]
async fn an_unavailable_store_is_503_product_store_unavailable_with_retry_after() {
    let (store, catalog, database) = start().await;
    let app = app!(catalog);
    database.close().await;
    for uri in ["/api/v1/products", "/api/v1/products/0123456789abcdef01234567"] {
        let (status, retry_after, body) =
            answer(call_service(&app, TestRequest::get().uri(uri).to_request()).await).await;
        assert_eq!(
            (status, retry_after.as_deref(), body["error"]["code"].as_str()),
            (503, Some("1"), Some("product_store_unavailable")),
            "{uri}: {body}"
        );
    }
    store.drop_it().await;
}

#[actix_rt::test]
async fn a_bug_is_500_internal_error_with_the_request_id_and_no_internals() {
    let (store, catalog, database) = start().await;
    let app = app!(catalog);
    // A schema the code does not expect: every statement on it is a bug, not an outage.
    database.execute("DROP TABLE products").await.unwrap();
    let (status, retry_after, body) =
        answer(call_service(&app, TestRequest::get().uri("/api/v1/products").to_request()).await).await;
    assert_eq!((status, retry_after), (500, None));
    assert_eq!(
        body,
        json!({"error": {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "requestId": REQUEST_ID}})
    );
    store.drop_it().await;
}

#[actix_rt::test]
async fn an_unexpected_store_error_converts_to_500_without_its_cause() {
    let cause = StoreError::Database(sqlx::Error::ColumnNotFound("secret_column".into()));
    let bug = ServiceError::from(ProductError::from(cause));
    let response = ApiError::for_request(bug, &request_context()).error_response();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = serde_json::from_slice(&actix_web::body::to_bytes(response.into_body()).await.unwrap()).unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["requestId"].as_str()),
        (Some("internal_error"), Some(REQUEST_ID))
    );
    assert!(!body.to_string().contains("secret_column"), "{body}");
}
