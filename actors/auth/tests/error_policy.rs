//! The error policy of the edge, pinned for the auth routes (mounted as the gateway mounts them,
//! with a stand-in for its middleware that sets the request id and the verified caller): a
//! client mistake is a 4xx with a clear code, a store that is unavailable is 503
//! `auth_store_unavailable` with `Retry-After`, and a bug is 500 `internal_error` with the
//! request id and nothing of its cause.

mod support;

use actix_web::body::MessageBody;
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::RETRY_AFTER;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpMessage as _, ResponseError as _, web};
use emporium_auth::AuthError;
use emporium_cluster::edge::{ApiError, INTERNAL_ERROR_MESSAGE, RequestContext, json_config};
use emporium_contracts::ServiceError;
use emporium_contracts::identity::Caller;
use serde_json::{Value, json};
use support::{Harness, Store};

/// The request id the stand-in gateway gives every request.
const REQUEST_ID: &str = "req-auth-error-policy";
/// The header the stand-in gateway reads the verified caller from.
const CALLER_HEADER: &str = "x-test-caller";

fn request_context() -> RequestContext {
    RequestContext { request_id: REQUEST_ID.into(), trace: None, deadline: None, client_address: None }
}

macro_rules! app {
    ($harness:expr) => {
        init_service(
            App::new()
                .app_data(web::Data::new($harness.ctx.cluster.clone()))
                .app_data(json_config(1024 * 1024))
                .wrap_fn(|request, service| {
                    request.extensions_mut().insert(request_context());
                    if let Some(caller) = request.headers().get(CALLER_HEADER) {
                        let caller: Caller = serde_json::from_slice(caller.as_bytes()).unwrap();
                        request.extensions_mut().insert(caller);
                    }
                    service.call(request)
                })
                .configure(emporium_auth::routes),
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

/// A signed-in customer, registered and verified as the gateway would.
async fn customer(harness: &Harness) -> Caller {
    harness.register("ada", "correct horse").await;
    harness.caller_of(&harness.log_in("ada", "correct horse", None).await.unwrap()).await
}

fn me(caller: &Caller) -> TestRequest {
    TestRequest::get().uri("/api/v1/auth/me").insert_header((CALLER_HEADER, serde_json::to_string(caller).unwrap()))
}

#[actix_rt::test]
async fn a_client_mistake_is_a_4xx_with_a_clear_code() {
    support::run(Store::Sqlite, async |harness: &mut Harness| {
        let app = app!(harness);
        let weak = json!({"username": "ada", "email": "ada@example.com", "fullName": "Ada", "password": "short"});
        let request = TestRequest::post().uri("/api/v1/auth/register").set_json(weak);
        let (status, retry_after, body) = answer(call_service(&app, request.to_request()).await).await;
        assert_eq!((status, retry_after, body["error"]["code"].as_str()), (400, None, Some("weak_password")), "{body}");
        assert!(body["error"].get("requestId").is_none(), "{body}");

        let request = TestRequest::get().uri("/api/v1/auth/me");
        let (status, _, body) = answer(call_service(&app, request.to_request()).await).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")), "{body}");
    })
    .await;
}

#[actix_rt::test]
async fn an_unavailable_store_is_503_auth_store_unavailable_with_retry_after() {
    support::run(Store::Sqlite, async |harness: &mut Harness| {
        let app = app!(harness);
        let ada = customer(harness).await;
        harness.database.close().await;

        let (status, retry_after, body) = answer(call_service(&app, me(&ada).to_request()).await).await;
        assert_eq!(
            (status, retry_after.as_deref(), body["error"]["code"].as_str()),
            (503, Some("1"), Some("auth_store_unavailable")),
            "{body}"
        );
        let login = json!({"username": "ada", "password": "correct horse"});
        let request = TestRequest::post().uri("/api/v1/auth/login").set_json(login);
        let (status, retry_after, body) = answer(call_service(&app, request.to_request()).await).await;
        assert_eq!(
            (status, retry_after.is_some(), body["error"]["code"].as_str()),
            (503, true, Some("auth_store_unavailable"))
        );
    })
    .await;
}

#[actix_rt::test]
async fn a_bug_is_500_internal_error_with_the_request_id_and_no_internals() {
    support::run(Store::Sqlite, async |harness: &mut Harness| {
        let app = app!(harness);
        let ada = customer(harness).await;
        // A schema the code does not expect: every statement on it is a bug, not an outage.
        harness.database.execute("DROP TABLE auth_refresh_tokens").await.unwrap();
        harness.database.execute("DROP TABLE auth_users").await.unwrap();

        let (status, retry_after, body) = answer(call_service(&app, me(&ada).to_request()).await).await;
        assert_eq!((status, retry_after), (500, None));
        assert_eq!(
            body,
            json!({"error": {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "requestId": REQUEST_ID}})
        );
    })
    .await;
}

#[actix_rt::test]
async fn an_unexpected_store_error_converts_to_500_without_its_cause() {
    let bug = ServiceError::from(AuthError::Store(sqlx::Error::ColumnNotFound("password_hash_v2".into())));
    let response = ApiError::for_request(bug, &request_context()).error_response();
    assert_eq!(response.status().as_u16(), 500);
    let body: Value = serde_json::from_slice(&actix_web::body::to_bytes(response.into_body()).await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
    assert_eq!(body["error"]["requestId"], REQUEST_ID);
    assert!(!body.to_string().contains("password_hash_v2"), "{body}");
}
