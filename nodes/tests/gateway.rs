//! Auth and the gateway as a user meets them: sign up, sign in, refresh, sign out, who am I,
//! and every kind of bad input, through the gateway of a real node.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use support::*;

fn register_body(username: &str, email: &str, password: &str) -> serde_json::Value {
    json!({"username": username, "email": email, "fullName": "Ada Lovelace", "password": password})
}

#[tokio::test]
async fn a_user_signs_up_signs_in_refreshes_and_signs_out() {
    let data = DataDir::new();
    let (node, _config) = start_single_node("auth-flow", "registry,gateway,auth", &data, &[]);
    let api = Api::new(node.http(""));

    let (status, user, headers) = api
        .send(
            "POST",
            "/api/v1/auth/register",
            None,
            Some(register_body("ada", "ada@example.com", "correct horse battery")),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!((user["username"].as_str(), user["email"].as_str()), (Some("ada"), Some("ada@example.com")));
    assert_eq!(user["roles"], json!(["customer"]));
    assert!(user.get("password").is_none() && user.get("passwordHash").is_none());
    assert!(headers.contains_key("x-request-id") && headers.contains_key("traceparent"));

    let (status, error) = api
        .post("/api/v1/auth/register", None, register_body("ada", "other@example.com", "correct horse battery"))
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("username_taken")));
    let (status, error) = api
        .post("/api/v1/auth/register", None, register_body("ada2", "ADA@example.com", "correct horse battery"))
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("email_taken")));

    let (status, pair) = api
        .post("/api/v1/auth/login", None, json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(status, 200, "{pair}");
    assert_eq!(pair["tokenType"], "Bearer");
    assert_eq!(pair["expiresIn"], 900);
    let access = pair["accessToken"].as_str().unwrap().to_string();
    let refresh = pair["refreshToken"].as_str().unwrap().to_string();

    let (status, me) = api.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!((status, me["id"].clone()), (200, user["id"].clone()));

    let (status, wrong) =
        api.post("/api/v1/auth/login", None, json!({"email": "ada@example.com", "password": "wrong password!"})).await;
    let (status_unknown, unknown) = api
        .post("/api/v1/auth/login", None, json!({"email": "nobody@example.com", "password": "wrong password!"}))
        .await;
    assert_eq!((status, status_unknown), (401, 401));
    assert_eq!(wrong, unknown, "the same answer for a wrong password and an unknown user");
    assert_eq!(wrong["error"]["code"], "invalid_credentials");

    let (status, rotated) = api.post("/api/v1/auth/refresh", None, json!({"refreshToken": refresh})).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, error) = api.post("/api/v1/auth/refresh", None, json!({"refreshToken": refresh})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("invalid_refresh_token")));
    // Reusing a rotated token revoked the whole family, the new one included.
    let (status, _) = api.post("/api/v1/auth/refresh", None, json!({"refreshToken": rotated["refreshToken"]})).await;
    assert_eq!(status, 401);

    let (status, pair) =
        api.post("/api/v1/auth/login", None, json!({"username": "ada", "password": "correct horse battery"})).await;
    assert_eq!(status, 200);
    let access = pair["accessToken"].as_str().unwrap().to_string();
    let (status, _, _) = api.send("POST", "/api/v1/auth/logout", Some(&access), None).await;
    assert_eq!(status, 204);
    let (status, _) = api.post("/api/v1/auth/refresh", None, json!({"refreshToken": pair["refreshToken"]})).await;
    assert_eq!(status, 401, "logout revoked the refresh token");

    let (status, jwks) = api.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, 200);
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key["kid"].as_str().is_some_and(|kid| !kid.is_empty()));
}

#[tokio::test]
async fn bad_input_gets_clear_json_errors_never_500() {
    let data = DataDir::new();
    let (node, _config) = start_single_node("auth-bad-input", "registry,gateway,auth", &data, &[]);
    let api = Api::new(node.http(""));
    let client = &api.client;
    let url = |path: &str| format!("{}{path}", api.base);

    let raw = |body: &'static str| {
        client.post(url("/api/v1/auth/register")).header("content-type", "application/json").body(body).send()
    };
    let code_of = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        (status, body["error"]["code"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(code_of(raw("{\"username\": ").await.unwrap()).await, (400, "malformed_json".into()));
    assert_eq!(
        code_of(
            raw("{\"username\": 5, \"email\": \"a@b.c\", \"fullName\": \"x\", \"password\": \"12345678\"}")
                .await
                .unwrap()
        )
        .await,
        (400, "invalid_body".into())
    );
    assert_eq!(code_of(raw("{\"username\": \"someone\"}").await.unwrap()).await, (400, "invalid_body".into()));
    let text = client
        .post(url("/api/v1/auth/register"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(text).await, (415, "unsupported_media_type".into()));

    let (status, error) =
        api.post("/api/v1/auth/register", None, register_body("bob", "not-an-email", "correct horse battery")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_email")));
    let (status, error) =
        api.post("/api/v1/auth/register", None, register_body("bob", "bob@example.com", "short")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("weak_password")));
    let (status, error) = api
        .post(
            "/api/v1/auth/register",
            None,
            register_body("b'; DROP TABLE users; --", "bob@example.com", "correct horse battery"),
        )
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_username")));

    let big = "a".repeat(3 * 1024 * 1024);
    let response = client
        .post(url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(response).await, (413, "payload_too_large".into()));

    let (status, error) = api.get("/api/v1/no/such/route", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));

    // Tokens that must not pass.
    let token = api.sign_up("carol").await;
    let parts: Vec<&str> = token.split('.').collect();
    let payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let encode = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let alg_none = format!("{}.{}.", encode(&none_header), parts[1]);
    let mut admin_payload = payload.clone();
    admin_payload["roles"] = json!(["admin"]);
    let tampered = format!("{}.{}.{}", parts[0], encode(&admin_payload), parts[2]);
    let (_, jwks) = api.get("/.well-known/jwks.json", None).await;
    let public_key = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let mut hs_header = header.clone();
    hs_header["alg"] = json!("HS256");
    let signing_input = format!("{}.{}", encode(&hs_header), parts[1]);
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public_key),
        signing_input.as_bytes(),
    );
    let hs256 = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    for (what, forged) in [
        ("alg none", alg_none),
        ("tampered payload", tampered),
        ("HS256 with the public key", hs256),
        ("garbage", "abc.def.ghi".to_string()),
    ] {
        let (status, error) = api.get("/api/v1/auth/me", Some(&forged)).await;
        assert_eq!((status, error["error"]["code"].as_str()), (401, Some("invalid_token")), "{what}: {error}");
    }
    let (status, error) = api.get("/api/v1/auth/me", None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("missing_token")));

    // A customer on an admin route.
    let (status, error) = api.post("/api/v1/auth/keys/rotate", Some(&token), json!({})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("forbidden")));
}

#[tokio::test]
async fn expired_tokens_and_deleted_users_are_refused() {
    let data = DataDir::new();
    let env =
        [("EMPORIUM__AUTH__ACCESS_TOKEN_LIFETIME_SECS", "1"), ("EMPORIUM__GATEWAY__USER_CHECK_TTL_MILLIS", "100")];
    let (node, _config) = start_single_node("auth-expiry", "registry,gateway,auth", &data, &env);
    let api = Api::new(node.http(""));
    let admin = api.admin_token().await;
    let token = api.sign_up("dave").await;
    let (status, me) = api.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(status, 200);

    // The user is deleted: the still-valid token stops working.
    let (status, _, _) =
        api.send("DELETE", &format!("/api/v1/auth/users/{}", me["id"].as_str().unwrap()), Some(&admin), None).await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, error) = api.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("user_not_found")), "{error}");

    // Tokens expire (1 s lifetime here).
    let token = api.sign_up("erin").await;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1, "{claims}");
    // Claims are in whole seconds and the gateway allows 5 s of clock skew: 1 + 5 + 1 s of rounding.
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    let (status, error) = api.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("token_expired")), "{error}");
}

#[tokio::test]
async fn the_gateway_reaches_auth_on_another_node_and_publishes_openapi() {
    let registry = start_registry("reg-gw");
    let auth_data = DataDir::new();
    let auth_dir = auth_data.path.to_str().unwrap().to_string();
    let _auth = NodeProcess::start(
        "auth-remote",
        &["--role", "auth", "--registry", &registry.url, "--listen", "127.0.0.1:0", "--data-dir", &auth_dir],
        &[("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    let http = format!("127.0.0.1:{}", free_port());
    let gateway = NodeProcess::start(
        "gateway-remote",
        &["--role", "gateway", "--registry", &registry.url, "--listen", "127.0.0.1:0", "--http", &http],
        &[],
    );
    let api = Api::new(gateway.http(""));
    eventually(Duration::from_secs(10), "auth reachable through the gateway", || async {
        (api.get("/.well-known/jwks.json", None).await.0 == 200).then_some(())
    })
    .await;
    let token = api.sign_up("frank").await;
    let (status, me) = api.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("frank")));
    let admin = api.admin_token().await;
    let (status, nodes) = api.get("/api/v1/cluster/nodes", Some(&admin)).await;
    assert_eq!(status, 200);
    let node_ids: Vec<&str> =
        nodes["nodes"].as_array().unwrap().iter().map(|node| node["nodeId"].as_str().unwrap()).collect();
    assert!(node_ids.contains(&"auth-remote") && node_ids.contains(&"gateway-remote"), "{nodes}");
    let (status, _) = api.get("/api/v1/cluster/nodes", Some(&token)).await;
    assert_eq!(status, 403);

    let (status, openapi) = api.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/.well-known/jwks.json",
        "/api/v1/inventory/{sku}",
        "/api/v1/cluster/nodes",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} missing from /openapi.json");
    }
}

/// An operator with an admin access token reads the node's supervision tree, the registry and
/// the config acknowledgements (the single-process default has no cluster secret to show);
/// a customer's token does not, and registry writes still need the cluster credential.
#[tokio::test]
async fn admin_access_tokens_read_the_operator_endpoints() {
    let data = DataDir::new();
    let (node, _config) = start_single_node("operator-reads", "registry,gateway,auth", &data, &[]);
    let api = Api::new(node.http(""));
    let admin = api.admin_token().await;
    let customer = api.sign_up("carol").await;
    let get = |path: &str, token: &str| client().get(node.url(path)).bearer_auth(token).send();
    for path in ["/admin/v1/supervision", "/registry/v1/instances", "/registry/v1/config/acks"] {
        let response = get(path, &admin).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path} with an admin token");
        let response = get(path, &customer).await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path} with a customer token");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
        let response = get(path, "not-a-token").await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path} with a forged token");
    }
    let (status, nodes) = api.get("/api/v1/cluster/nodes", Some(&admin)).await;
    assert_eq!(status, 200, "{nodes}");
    assert_eq!(nodes["source"], "registry", "{nodes}");
    // Heartbeat times are the registry's, fresh: they move on while nothing else changes.
    let first_beat = nodes["nodes"][0]["instances"][0]["lastHeartbeatAt"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(10), "another lastHeartbeatAt", || async {
        let (_, nodes) = api.get("/api/v1/cluster/nodes", Some(&admin)).await;
        let beat = nodes["nodes"][0]["instances"][0]["lastHeartbeatAt"].as_str().map(str::to_string);
        beat.filter(|beat| *beat != first_beat).map(|_| ())
    })
    .await;
    assert_eq!(api.get("/api/v1/cluster/nodes", Some(&customer)).await.0, 403);
    let refresh = client().post(node.url("/registry/v1/config/refresh")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(refresh.status().as_u16(), 401, "registry writes take the cluster credential only");
    let refresh = client().post(node.url("/registry/v1/config/refresh")).header("authorization", auth()).send();
    assert_eq!(refresh.await.unwrap().status().as_u16(), 200);
}
