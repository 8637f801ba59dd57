//! The HTTP routes as the gateway mounts them: an actix-web app with `edge::json_config`, the
//! cluster as app data (auth is local to it), and a stand-in for the gateway's token check
//! that puts the test's `Caller` on the request. Statuses, headers and JSON error codes are
//! checked exactly; then the OpenAPI fragment.

mod support;

use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CACHE_CONTROL, RETRY_AFTER};
use actix_web::test::{TestRequest, call_service, init_service, read_body_json};
use actix_web::{App, HttpMessage as _, web};
use emporium_auth::{ADMIN_USERNAME, LoginLimits};
use emporium_cluster::edge::json_config;
use emporium_contracts::identity::Caller;
use serde_json::{Value, json};
use support::{ADMIN_PASSWORD, Harness, Store};

/// The header the test's gateway stand-in reads the verified caller from.
const CALLER_HEADER: &str = "x-test-caller";

macro_rules! app {
    ($harness:expr) => {
        init_service(
            App::new()
                .app_data(web::Data::new($harness.ctx.cluster.clone()))
                .app_data(json_config(1024 * 1024))
                .wrap_fn(|request, service| {
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

fn as_caller(request: TestRequest, caller: &Caller) -> TestRequest {
    request.insert_header((CALLER_HEADER, serde_json::to_string(caller).unwrap()))
}

async fn error_code(response: ServiceResponse) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = read_body_json(response).await;
    (status, body["error"]["code"].as_str().unwrap_or_default().to_string())
}

#[actix_rt::test]
async fn every_route_answers_its_status_and_json() {
    support::run(Store::Sqlite, async |harness: &mut Harness| {
        let app = app!(harness);
        let register = json!({"username": "ada", "email": "ada@example.com", "fullName": "Ada Lovelace", "password": "correct horse"});

        let response = call_service(&app, TestRequest::post().uri("/api/v1/auth/register").set_json(&register).to_request()).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let ada: Value = read_body_json(response).await;
        assert_eq!((ada["username"].as_str(), ada["fullName"].as_str(), ada["roles"].clone()), (Some("ada"), Some("Ada Lovelace"), json!(["customer"])));
        assert!(ada["createdAt"].is_string() && ada.get("password").is_none() && ada.get("passwordHash").is_none());
        let again = call_service(&app, TestRequest::post().uri("/api/v1/auth/register").set_json(&register).to_request()).await;
        assert_eq!(error_code(again).await, (StatusCode::CONFLICT, "username_taken".into()));

        let login = call_service(&app, TestRequest::post().uri("/api/v1/auth/login").set_json(json!({"email": "ada@example.com", "password": "correct horse"})).to_request()).await;
        assert_eq!(login.status(), StatusCode::OK);
        assert_eq!(login.headers().get(CACHE_CONTROL).unwrap(), "no-store");
        let pair: Value = read_body_json(login).await;
        assert_eq!((pair["tokenType"].as_str(), pair["expiresIn"].as_u64()), (Some("Bearer"), Some(900)));
        let tokens: emporium_contracts::auth::TokenPair = serde_json::from_value(pair).unwrap();
        let ada_caller = harness.caller_of(&tokens).await;

        let wrong = call_service(&app, TestRequest::post().uri("/api/v1/auth/login").set_json(json!({"username": "ada", "password": "nope nope"})).to_request()).await;
        assert_eq!(error_code(wrong).await, (StatusCode::UNAUTHORIZED, "invalid_credentials".into()));

        let me = call_service(&app, TestRequest::get().uri("/api/v1/auth/me").to_request()).await;
        assert_eq!(error_code(me).await, (StatusCode::UNAUTHORIZED, "missing_token".into()));
        let me = call_service(&app, as_caller(TestRequest::get().uri("/api/v1/auth/me"), &ada_caller).to_request()).await;
        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = read_body_json(me).await;
        assert_eq!(me, ada);

        let refreshed = call_service(&app, TestRequest::post().uri("/api/v1/auth/refresh").set_json(json!({"refreshToken": tokens.refresh_token})).to_request()).await;
        assert_eq!(refreshed.status(), StatusCode::OK);
        assert_eq!(refreshed.headers().get(CACHE_CONTROL).unwrap(), "no-store");
        let replayed = call_service(&app, TestRequest::post().uri("/api/v1/auth/refresh").set_json(json!({"refreshToken": tokens.refresh_token})).to_request()).await;
        assert_eq!(error_code(replayed).await, (StatusCode::UNAUTHORIZED, "invalid_refresh_token".into()));

        let jwks = call_service(&app, TestRequest::get().uri("/.well-known/jwks.json").to_request()).await;
        assert_eq!(jwks.status(), StatusCode::OK);
        assert_eq!(jwks.headers().get(CACHE_CONTROL).unwrap(), "public, max-age=60");
        let jwks: Value = read_body_json(jwks).await;
        assert_eq!((jwks["keys"][0]["kty"].as_str(), jwks["keys"][0]["crv"].as_str(), jwks["keys"][0]["use"].as_str()), (Some("OKP"), Some("Ed25519"), Some("sig")));

        let logout = call_service(&app, TestRequest::post().uri("/api/v1/auth/logout").to_request()).await;
        assert_eq!(error_code(logout).await, (StatusCode::UNAUTHORIZED, "missing_token".into()));
        let logout = call_service(&app, as_caller(TestRequest::post().uri("/api/v1/auth/logout"), &ada_caller).to_request()).await;
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let logout = as_caller(TestRequest::post().uri("/api/v1/auth/logout"), &ada_caller).set_json(json!({"refreshToken": "x"}));
        assert_eq!(call_service(&app, logout.to_request()).await.status(), StatusCode::NO_CONTENT);
        let logout = as_caller(TestRequest::post().uri("/api/v1/auth/logout"), &ada_caller).set_payload("{not json");
        assert_eq!(error_code(call_service(&app, logout.to_request()).await).await, (StatusCode::BAD_REQUEST, "malformed_json".into()));
        let logout = as_caller(TestRequest::post().uri("/api/v1/auth/logout"), &ada_caller).set_payload(r#"{"refreshToken": 5}"#);
        assert_eq!(error_code(call_service(&app, logout.to_request()).await).await, (StatusCode::BAD_REQUEST, "invalid_body".into()));

        let ada_id = ada["id"].as_str().unwrap();
        let delete = as_caller(TestRequest::delete().uri(&format!("/api/v1/auth/users/{ada_id}")), &ada_caller);
        assert_eq!(error_code(call_service(&app, delete.to_request()).await).await, (StatusCode::FORBIDDEN, "forbidden".into()));
        let rotate = as_caller(TestRequest::post().uri("/api/v1/auth/keys/rotate"), &ada_caller);
        assert_eq!(error_code(call_service(&app, rotate.to_request()).await).await, (StatusCode::FORBIDDEN, "forbidden".into()));
        let rotate = TestRequest::post().uri("/api/v1/auth/keys/rotate");
        assert_eq!(error_code(call_service(&app, rotate.to_request()).await).await, (StatusCode::UNAUTHORIZED, "missing_token".into()));

        let admin = harness.caller_of(&harness.log_in(ADMIN_USERNAME, ADMIN_PASSWORD, None).await.unwrap()).await;
        let too_soon = call_service(&app, as_caller(TestRequest::post().uri("/api/v1/auth/keys/rotate"), &admin).to_request()).await;
        assert_eq!(too_soon.headers().get(RETRY_AFTER).unwrap(), "300", "the first key was made at start");
        assert_eq!(error_code(too_soon).await, (StatusCode::TOO_MANY_REQUESTS, "rotation_too_soon".into()));
        harness.clock.advance(std::time::Duration::from_secs(300));
        let rotate = call_service(&app, as_caller(TestRequest::post().uri("/api/v1/auth/keys/rotate"), &admin).to_request()).await;
        assert_eq!(rotate.status(), StatusCode::OK);
        let rotated: Value = read_body_json(rotate).await;
        assert_eq!(rotated["verifyingKids"].as_array().unwrap().len(), 2);
        let delete = as_caller(TestRequest::delete().uri(&format!("/api/v1/auth/users/{ada_id}")), &admin);
        assert_eq!(call_service(&app, delete.to_request()).await.status(), StatusCode::NO_CONTENT);
        let delete = as_caller(TestRequest::delete().uri(&format!("/api/v1/auth/users/{ada_id}")), &admin);
        assert_eq!(error_code(call_service(&app, delete.to_request()).await).await, (StatusCode::NOT_FOUND, "user_not_found".into()));
        let me = call_service(&app, as_caller(TestRequest::get().uri("/api/v1/auth/me"), &ada_caller).to_request()).await;
        assert_eq!(error_code(me).await, (StatusCode::UNAUTHORIZED, "user_not_found".into()));
    })
    .await;
}

#[actix_rt::test]
async fn bad_bodies_and_methods_get_clear_json_errors() {
    support::run(Store::Sqlite, async |harness: &mut Harness| {
        let app = app!(harness);
        let post = |body: &'static str| {
            TestRequest::post()
                .uri("/api/v1/auth/register")
                .insert_header(("content-type", "application/json"))
                .set_payload(body)
                .to_request()
        };
        let cases = [
            (r#"{"username": "ada", "#, StatusCode::BAD_REQUEST, "malformed_json"),
            (
                r#"{"username": 5, "email": "a@b.co", "fullName": "A", "password": "12345678"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                r#"{"username": "ada", "email": "a@b.co", "password": "12345678"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                r#"{"username": "ada", "email": "a@b.co", "fullName": "A", "password": "12345678", "admin": true}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                r#"{"username": "ada", "email": "not-an-email", "fullName": "A", "password": "12345678"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_email",
            ),
            (
                r#"{"username": "ada", "email": "a@b.co", "fullName": "A", "password": "1234567"}"#,
                StatusCode::BAD_REQUEST,
                "weak_password",
            ),
        ];
        for (body, status, code) in cases {
            assert_eq!(error_code(call_service(&app, post(body)).await).await, (status, code.to_string()), "{body}");
        }
        let text = TestRequest::post()
            .uri("/api/v1/auth/login")
            .insert_header(("content-type", "text/plain"))
            .set_payload("hi");
        assert_eq!(
            error_code(call_service(&app, text.to_request()).await).await,
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into())
        );
        let huge = format!(
            r#"{{"username": "ada", "email": "a@b.co", "fullName": "A", "password": "{}"}}"#,
            "p".repeat(3 * 1024 * 1024)
        );
        let huge = TestRequest::post()
            .uri("/api/v1/auth/register")
            .insert_header(("content-type", "application/json"))
            .set_payload(huge);
        assert_eq!(
            error_code(call_service(&app, huge.to_request()).await).await,
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
        );

        let wrong_method = call_service(&app, TestRequest::get().uri("/api/v1/auth/login").to_request()).await;
        assert_eq!(wrong_method.headers().get(ALLOW).unwrap(), "POST");
        assert_eq!(error_code(wrong_method).await, (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()));
        let wrong_method = call_service(&app, TestRequest::post().uri("/.well-known/jwks.json").to_request()).await;
        assert_eq!(error_code(wrong_method).await, (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()));
    })
    .await;
}

#[actix_rt::test]
async fn too_many_attempts_carries_retry_after() {
    let limits = LoginLimits {
        free_failures_per_client: 1,
        first_delay: std::time::Duration::from_secs(30),
        ..LoginLimits::default()
    };
    support::run_with(
        Store::Sqlite,
        |options| options.login_limits = limits,
        async |harness: &mut Harness| {
            let app = app!(harness);
            let login = || {
                TestRequest::post()
                    .uri("/api/v1/auth/login")
                    .set_json(json!({"username": "ada", "password": "nope nope"}))
                    .to_request()
            };
            assert_eq!(
                error_code(call_service(&app, login()).await).await,
                (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
            );
            let refused = call_service(&app, login()).await;
            assert_eq!(refused.headers().get(RETRY_AFTER).unwrap(), "30");
            assert_eq!(error_code(refused).await, (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts".into()));
        },
    )
    .await;
}

#[test]
fn the_openapi_fragment_describes_exactly_these_routes() {
    let document = serde_json::to_value(emporium_auth::openapi()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let mut operations: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| format!("{method} {path}")))
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "delete /api/v1/auth/users/{id}",
            "get /.well-known/jwks.json",
            "get /api/v1/auth/me",
            "post /api/v1/auth/keys/rotate",
            "post /api/v1/auth/login",
            "post /api/v1/auth/logout",
            "post /api/v1/auth/refresh",
            "post /api/v1/auth/register",
        ]
    );
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An access token from POST /api/v1/auth/login"})
    );
    let secured = |method: &str, path: &str| paths[path][method].get("security").is_some();
    for (method, path) in [
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/me"),
        ("delete", "/api/v1/auth/users/{id}"),
        ("post", "/api/v1/auth/keys/rotate"),
    ] {
        assert!(secured(method, path), "{method} {path} needs a token");
    }
    for (method, path) in [
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("get", "/.well-known/jwks.json"),
    ] {
        assert!(!secured(method, path), "{method} {path} is public");
    }
    assert!(paths["/api/v1/auth/register"]["post"]["responses"].get("201").is_some());
    assert!(paths["/api/v1/auth/login"]["post"]["responses"]["429"]["headers"].get("Retry-After").is_some());
    let schemas = &document["components"]["schemas"];
    let register = &schemas["RegisterRequest"];
    let mut required: Vec<&str> =
        register["required"].as_array().unwrap().iter().map(|name| name.as_str().unwrap()).collect();
    required.sort();
    assert_eq!(required, ["email", "fullName", "password", "username"]);
    assert_eq!(register["properties"]["password"]["format"], "password");
    assert_eq!(schemas["UserView"]["properties"]["roles"]["type"], "array");
    for schema in [
        "LoginRequest",
        "TokenPair",
        "Jwks",
        "Jwk",
        "SigningKeyRotated",
        "ErrorBody",
        "LogoutRequest",
        "RefreshRequest",
    ] {
        assert!(schemas.get(schema).is_some(), "{schema} is described");
    }
}
