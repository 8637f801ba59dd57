//! The registry's HTTP routes, driven through `Registry::configure` on an in-process app.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{App, test};
use bytes::Bytes;
use emporium_cluster::credential::{ClusterSecret, OperatorAccess};
use emporium_registry::{Registry, RegistryOptions};
use serde_json::{Value, json};

const SECRET: &str = "registry-test-secret-0123456789";
/// Polling far apart keeps the refresh route in charge of reloads during a test.
const QUIET_APPLICATION: &str = "[registry]\nconfig_poll_millis = 600000\n";

/// A scratch configuration directory, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new(files: &[(&str, &str)]) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "emporium-registry-routes-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let dir = ConfigDir(path);
        for (name, text) in files {
            dir.write(name, text);
        }
        dir
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_registry(dir: &ConfigDir) -> Registry {
    emporium_registry::start(RegistryOptions {
        config_dir: dir.path().to_path_buf(),
        profile: "local".to_string(),
        schema: emporium_cluster::settings::SettingsSchema::default(),
        built_in_when_missing: false,
        peers: Vec::new(),
        config_repo: None,
        access: OperatorAccess::new(ClusterSecret::new(SECRET.to_string()).unwrap()),
    })
    .unwrap()
}

macro_rules! app {
    ($registry:expr) => {{
        let registry = $registry.clone();
        test::init_service(App::new().configure(move |cfg| registry.configure(cfg))).await
    }};
}

fn authorized(request: test::TestRequest) -> test::TestRequest {
    request.insert_header((AUTHORIZATION, format!("Cluster {SECRET}")))
}

fn registration(id: &str, service: &str) -> Value {
    json!({
        "id": id,
        "service": service,
        "nodeId": "node-a",
        "address": "127.0.0.1:9100",
        "status": "UP",
        "roles": [service],
        "version": "0.1.0",
        "metadata": {"zone": "a"}
    })
}

async fn read_json<B: MessageBody>(response: ServiceResponse<B>) -> (StatusCode, Value) {
    let status = response.status();
    let body = test::read_body(response).await;
    let json = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
    (status, json)
}

/// Sends a request to the app and reads the status and JSON body.
macro_rules! call {
    ($app:expr, $request:expr) => {
        read_json(test::call_service(&$app, ($request).to_request()).await).await
    };
}

async fn next_chunk<B: MessageBody + Unpin>(body: &mut B) -> String {
    let chunk = tokio::time::timeout(
        Duration::from_secs(5),
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx)),
    )
    .await
    .expect("a chunk within 5 s");
    let bytes: Bytes = chunk.expect("the stream is open").ok().expect("a chunk, not an error");
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, expected_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], expected_code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
}

#[actix_web::test]
async fn writes_and_reads_need_the_cluster_credential() {
    let dir = ConfigDir::new(&[("application.toml", QUIET_APPLICATION)]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    let wrong = format!("Cluster {SECRET}-not");

    let (status, body) =
        call!(app, test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("a-1", "inventory")));
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");
    let (status, body) = call!(
        app,
        test::TestRequest::post()
            .uri("/registry/v1/instances")
            .insert_header((AUTHORIZATION, wrong.as_str()))
            .set_json(registration("a-1", "inventory"))
    );
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");
    // The credential is checked before the body is read.
    let (status, body) = call!(
        app,
        test::TestRequest::post()
            .uri("/registry/v1/instances")
            .insert_header((CONTENT_TYPE, "application/json"))
            .set_payload("{oops")
    );
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");

    for uri in ["/registry/v1/instances", "/registry/v1/state", "/registry/v1/config/inventory", "/registry/v1/watch"] {
        let (status, body) = call!(app, test::TestRequest::get().uri(uri));
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");
        let (status, body) =
            call!(app, test::TestRequest::get().uri(uri).insert_header((AUTHORIZATION, wrong.as_str())));
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");
    }
    let (status, body) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/instances")));
    assert_eq!((status, body), (StatusCode::OK, json!([])));
}

#[actix_web::test]
async fn public_reads_let_reads_through_but_not_writes() {
    let dir = ConfigDir::new(&[("application.toml", "[registry]\npublic_reads = true\nconfig_poll_millis = 600000\n")]);
    let registry = start_registry(&dir);
    assert!(registry.settings().await.registry.public_reads);
    let app = app!(registry);

    let (status, body) = call!(app, test::TestRequest::get().uri("/registry/v1/instances"));
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, body) = call!(app, test::TestRequest::get().uri("/registry/v1/state"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["numInstances"], 0);

    let (status, body) =
        call!(app, test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("a-1", "inventory")));
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");
    let (status, body) = call!(app, test::TestRequest::post().uri("/registry/v1/config/refresh"));
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");
}

#[actix_web::test]
async fn an_instance_registers_renews_changes_status_and_leaves() {
    let dir = ConfigDir::new(&[("application.toml", QUIET_APPLICATION)]);
    let registry = start_registry(&dir);
    let app = app!(registry);

    let (status, lease) = call!(
        app,
        authorized(
            test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("inv-1", "inventory"))
        )
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lease, json!({"instanceId": "inv-1", "heartbeatMillis": 1000, "leaseMillis": 2800}));
    call!(
        app,
        authorized(test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("ord-1", "order")))
    );

    let (status, instances) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/instances")));
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> =
        instances.as_array().unwrap().iter().map(|instance| instance["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["inv-1", "ord-1"]);
    let inventory = &instances[0];
    assert_eq!(inventory["service"], "inventory");
    assert_eq!(inventory["nodeId"], "node-a");
    assert_eq!(inventory["status"], "UP");
    assert_eq!(inventory["metadata"]["zone"], "a");
    assert!(inventory["registeredAt"].is_string() && inventory["lastHeartbeatAt"].is_string());

    let (status, only_orders) =
        call!(app, authorized(test::TestRequest::get().uri("/registry/v1/instances?service=order")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(only_orders.as_array().unwrap().len(), 1);
    assert_eq!(only_orders[0]["id"], "ord-1");

    let (status, lease) =
        call!(app, authorized(test::TestRequest::put().uri("/registry/v1/instances/inv-1/heartbeat")));
    assert_eq!((status, &lease["instanceId"]), (StatusCode::OK, &json!("inv-1")));
    let (status, _) = call!(
        app,
        authorized(
            test::TestRequest::put()
                .uri("/registry/v1/instances/inv-1/heartbeat")
                .set_json(json!({"status": "OUT_OF_SERVICE"})),
        )
    );
    assert_eq!(status, StatusCode::OK);
    let (_, instances) =
        call!(app, authorized(test::TestRequest::get().uri("/registry/v1/instances?service=inventory")));
    assert_eq!(instances[0]["status"], "OUT_OF_SERVICE");

    let (status, body) = call!(app, authorized(test::TestRequest::delete().uri("/registry/v1/instances/inv-1")));
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = call!(app, authorized(test::TestRequest::put().uri("/registry/v1/instances/inv-1/heartbeat")));
    assert_error(status, &body, StatusCode::NOT_FOUND, "unknown_instance");
    let (status, body) = call!(app, authorized(test::TestRequest::delete().uri("/registry/v1/instances/inv-1")));
    assert_error(status, &body, StatusCode::NOT_FOUND, "unknown_instance");

    let (status, state) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/state")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["numInstances"], 1);
    assert!(state["configVersion"].as_u64().unwrap() > 1, "the files' fingerprint: {state}");
    assert_eq!(state["selfPreservation"], false);
}

#[actix_web::test]
async fn bad_bodies_and_paths_get_json_errors_never_500() {
    let dir = ConfigDir::new(&[("application.toml", QUIET_APPLICATION)]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    let post = || authorized(test::TestRequest::post().uri("/registry/v1/instances"));

    let (status, body) = call!(app, post().insert_header((CONTENT_TYPE, "application/json")).set_payload("{\"id\": "));
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let (status, body) = call!(app, post().set_json(json!({"id": "a-1"})));
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let (status, body) = call!(app, post().set_payload(registration("a-1", "inventory").to_string()));
    assert_eq!(status, StatusCode::OK, "a body without a content type is read as json: {body}");
    let (status, body) = call!(app, post().insert_header((CONTENT_TYPE, "text/plain")).set_payload("id=a-1"));
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let mut huge = registration("a-2", "inventory");
    huge["metadata"]["blob"] = json!("x".repeat(70 * 1024));
    let (status, body) = call!(app, post().set_json(huge));
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let (status, body) = call!(app, post().set_json(registration("", "inventory")));
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_instance");
    let (status, body) = call!(app, post().set_json(registration(&"x".repeat(201), "inventory")));
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_instance");

    let (status, body) = call!(
        app,
        authorized(
            test::TestRequest::put()
                .uri("/registry/v1/instances/a-1/heartbeat")
                .set_payload("{\"status\": \"SLEEPY\"}")
        )
    );
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let (status, body) = call!(
        app,
        authorized(
            test::TestRequest::put()
                .uri("/registry/v1/instances/a-1/config-ack")
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload("[")
        )
    );
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let (status, body) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/watch?since=yesterday")));
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let (status, body) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/nothing/here")));
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[actix_web::test]
async fn a_watch_starts_with_a_snapshot_then_streams_changes_and_pings() {
    let dir =
        ConfigDir::new(&[("application.toml", "[registry]\nwatch_ping_millis = 200\nconfig_poll_millis = 600000\n")]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    call!(
        app,
        authorized(
            test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("inv-1", "inventory"))
        )
    );

    let response =
        test::call_service(&app, authorized(test::TestRequest::get().uri("/registry/v1/watch")).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get(CONTENT_TYPE).unwrap(), "text/event-stream");
    let mut body = response.into_body();

    let first = next_chunk(&mut body).await;
    let lines: Vec<&str> = first.lines().collect();
    assert!(first.ends_with("\n\n"), "{first:?}");
    assert_eq!(lines[1], "event: snapshot", "{first}");
    let snapshot: Value = serde_json::from_str(lines[2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(snapshot["type"], "snapshot");
    let version = snapshot["version"].as_u64().unwrap();
    assert_eq!(lines[0], format!("id: {version}"));
    assert_eq!(snapshot["instances"][0]["id"], "inv-1");
    assert_eq!(snapshot["state"]["numInstances"], 1);

    call!(
        app,
        authorized(test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("ord-1", "order")))
    );
    let second = next_chunk(&mut body).await;
    assert!(second.starts_with(&format!("id: {}\nevent: instance_upserted\ndata: {{", version + 1)), "{second}");
    assert!(second.contains("\"id\":\"ord-1\""), "{second}");

    assert_eq!(next_chunk(&mut body).await, ": ping\n\n");

    // Resuming from a version in the log replays what came after it, not a snapshot.
    let response = test::call_service(
        &app,
        authorized(test::TestRequest::get().uri(&format!("/registry/v1/watch?since={version}"))).to_request(),
    )
    .await;
    let mut body = response.into_body();
    assert!(next_chunk(&mut body).await.contains("event: instance_upserted\ndata: "));
    // ... and a version this registry never reached gets a snapshot.
    let response =
        test::call_service(&app, authorized(test::TestRequest::get().uri("/registry/v1/watch?since=1")).to_request())
            .await;
    let mut body = response.into_body();
    assert!(next_chunk(&mut body).await.contains("event: snapshot\n"));
}

#[actix_web::test]
async fn configuration_is_served_refreshed_and_acked() {
    let dir = ConfigDir::new(&[
        ("application.toml", QUIET_APPLICATION),
        ("inventory.toml", "[log]\nlevel = \"debug\"\n"),
        ("inventory-prod.toml", "[log]\nlevel = \"warn\"\n"),
    ]);
    let registry = start_registry(&dir);
    let app = app!(registry);

    let (status, document) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/config/inventory")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["service"], "inventory");
    assert_eq!(document["profile"], "local");
    let first = document["version"].as_u64().unwrap();
    assert_eq!(document["sources"], json!(["application.toml", "inventory.toml"]));
    assert_eq!(document["settings"]["log"]["level"], "debug");
    let (_, document) =
        call!(app, authorized(test::TestRequest::get().uri("/registry/v1/config/inventory?profile=prod")));
    assert_eq!(document["settings"]["log"]["level"], "warn");
    assert_eq!(document["sources"], json!(["application.toml", "inventory.toml", "inventory-prod.toml"]));
    for uri in [
        "/registry/v1/config/Inventory",
        "/registry/v1/config/inventory?profile=..%2F..%2Fetc",
        "/registry/v1/config/..%2Fsecrets",
    ] {
        let (status, body) = call!(app, authorized(test::TestRequest::get().uri(uri)));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "invalid_name", "{uri}: {body}");
    }

    let refresh = || authorized(test::TestRequest::post().uri("/registry/v1/config/refresh"));
    let (status, body) = call!(app, refresh());
    assert_eq!((status, body), (StatusCode::OK, json!({"configVersion": first, "changed": false})));
    dir.write("inventory.toml", "[log]\nlevel = \"trace\"\n");
    let (status, body) = call!(app, refresh());
    assert_eq!((status, body["changed"].as_bool()), (StatusCode::OK, Some(true)));
    let second = body["configVersion"].as_u64().unwrap();
    assert_ne!(second, first, "another version for other files");

    dir.write("inventory.toml", "[log]\nlevel = \"trace\"\nverbosity = 3\n");
    let (status, body) = call!(app, refresh());
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid_config");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("inventory.toml:3: key log.verbosity:"), "{message}");
    let (_, document) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/config/inventory")));
    assert_eq!(
        (document["version"].as_u64(), document["settings"]["log"]["level"].as_str()),
        (Some(second), Some("trace"))
    );

    call!(
        app,
        authorized(
            test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("inv-1", "inventory"))
        )
    );
    call!(
        app,
        authorized(test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("ord-1", "order")))
    );
    let ack = |id: &str, body: Value| {
        authorized(test::TestRequest::put().uri(&format!("/registry/v1/instances/{id}/config-ack")).set_json(body))
    };
    let (status, body) = call!(app, ack("inv-1", json!({"version": second})));
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = call!(app, ack("ghost", json!({"version": second})));
    assert_error(status, &body, StatusCode::NOT_FOUND, "unknown_instance");

    let (status, acks) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/config/acks")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(acks["configVersion"], second);
    let inventory = &acks["instances"][0];
    assert_eq!((inventory["instanceId"].as_str(), inventory["appliedVersion"].as_u64()), (Some("inv-1"), Some(second)));
    assert_eq!((inventory["applied"].as_bool(), inventory["current"].as_bool()), (Some(true), Some(true)));
    assert!(inventory["ackedAt"].is_string());
    let order = &acks["instances"][1];
    assert_eq!((order["instanceId"].as_str(), order["appliedVersion"].is_null()), (Some("ord-1"), true));
    assert_eq!(order["current"], false);
}

#[actix_web::test]
async fn prometheus_discovers_one_target_per_node_with_the_credential() {
    let dir = ConfigDir::new(&[("application.toml", QUIET_APPLICATION)]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    let targets = || test::TestRequest::get().uri("/registry/v1/prometheus/targets");

    let (status, body) = call!(app, targets());
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "cluster_credential_required");
    let (status, body) = call!(app, authorized(targets()));
    assert_eq!((status, body), (StatusCode::OK, json!([])));

    let mut second_node = registration("ord-1", "order");
    second_node["nodeId"] = json!("node-b");
    second_node["address"] = json!("127.0.0.1:9200");
    second_node["roles"] = json!(["order", "gateway"]);
    for body in [registration("inv-1", "inventory"), registration("pay-1", "payment"), second_node] {
        let (status, _) =
            call!(app, authorized(test::TestRequest::post().uri("/registry/v1/instances").set_json(body)));
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = call!(app, authorized(targets()));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([
            {"targets": ["127.0.0.1:9100"], "labels": {"node": "node-a", "roles": "inventory,payment"}},
            {"targets": ["127.0.0.1:9200"], "labels": {"node": "node-b", "roles": "gateway,order"}},
        ])
    );
}

#[actix_web::test]
async fn file_edits_are_picked_up_by_the_poller_and_announced() {
    let dir = ConfigDir::new(&[("application.toml", "[registry]\nconfig_poll_millis = 50\n")]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    let response =
        test::call_service(&app, authorized(test::TestRequest::get().uri("/registry/v1/watch")).to_request()).await;
    let mut body = response.into_body();
    let snapshot = next_chunk(&mut body).await;
    assert!(snapshot.contains("event: snapshot\n"));
    let data: Value = serde_json::from_str(snapshot.split("data: ").nth(1).unwrap().trim()).unwrap();
    let first = data["state"]["configVersion"].as_u64().unwrap();

    dir.write("application.toml", "[registry]\nconfig_poll_millis = 50\nlease_millis = 4000\n");
    let announced = next_chunk(&mut body).await;
    assert!(
        announced.contains("event: config_changed\ndata: ")
            && !announced.contains(&format!("\"configVersion\":{first}")),
        "{announced}"
    );
    assert_eq!(registry.settings().await.registry.lease_millis, 4000, "the registry follows its own settings live");
    let (_, lease) = call!(
        app,
        authorized(
            test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("inv-1", "inventory"))
        )
    );
    assert_eq!(lease["leaseMillis"], 4000);
}

#[actix_web::test]
async fn a_bad_file_at_start_is_one_line_naming_the_file_and_key() {
    let dir = ConfigDir::new(&[("application.toml", "[registry]\nlease_milis = 3000\n")]);
    let error = emporium_registry::start(RegistryOptions {
        config_dir: dir.path().to_path_buf(),
        profile: "local".to_string(),
        schema: emporium_cluster::settings::SettingsSchema::default(),
        built_in_when_missing: false,
        peers: Vec::new(),
        config_repo: None,
        access: OperatorAccess::new(ClusterSecret::generate()),
    })
    .err()
    .expect("a bad file refuses to start");
    let message = error.to_string();
    assert!(message.contains("application.toml:2: key registry.lease_milis: unknown field"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[actix_web::test]
async fn a_lapsed_lease_is_evicted_by_the_sweep_and_announced() {
    let dir = ConfigDir::new(&[(
        "application.toml",
        "[registry]\nheartbeat_millis = 50\nlease_millis = 200\nconfig_poll_millis = 600000\n",
    )]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    let (status, lease) = call!(
        app,
        authorized(
            test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("inv-1", "inventory"))
        )
    );
    assert_eq!((status, &lease["leaseMillis"]), (StatusCode::OK, &json!(200)));
    let response =
        test::call_service(&app, authorized(test::TestRequest::get().uri("/registry/v1/watch")).to_request()).await;
    let mut body = response.into_body();
    assert!(next_chunk(&mut body).await.contains("event: snapshot\n"));

    let removed = next_chunk(&mut body).await;
    assert!(removed.contains("event: instance_removed\n"), "{removed}");
    assert!(removed.contains("\"reason\":\"lease_expired\""), "{removed}");
    let (status, body) = call!(app, authorized(test::TestRequest::put().uri("/registry/v1/instances/inv-1/heartbeat")));
    assert_error(status, &body, StatusCode::NOT_FOUND, "unknown_instance");
}

/// The node mounts the routes inside `HttpServer::new`, whose factory runs on every worker.
#[actix_web::test]
async fn the_handle_can_cross_threads() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Registry>();
}

/// What a Spring Boot config client does: `GET /config/{application}/{profile}` with HTTP Basic
/// (`spring.cloud.config.username`/`password`), answered with Spring's `Environment`.
#[actix_web::test]
async fn spring_config_clients_get_the_environment_document() {
    let dir = ConfigDir::new(&[
        ("application.toml", QUIET_APPLICATION),
        ("order.toml", "[log]\nlevel = \"debug\"\n"),
        ("order-prod.toml", "[log]\nlevel = \"warn\"\n"),
    ]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    let basic = format!("Basic {}", base64_of(&format!("spring:{SECRET}")));

    let (status, environment) =
        call!(app, test::TestRequest::get().uri("/config/order/prod").insert_header((AUTHORIZATION, basic.clone())));
    assert_eq!(status, StatusCode::OK, "{environment}");
    assert_eq!(environment["name"], "order");
    assert_eq!(environment["profiles"], json!(["prod"]));
    assert_eq!(environment["label"], Value::Null);
    assert_eq!(environment["state"], Value::Null);
    assert!(environment["version"].as_str().unwrap().parse::<u64>().is_ok(), "{environment}");
    let sources = environment["propertySources"].as_array().unwrap();
    let names: Vec<&str> = sources.iter().map(|source| source["name"].as_str().unwrap()).collect();
    assert!(names[0].ends_with("/order-prod.toml") && names[0].starts_with("file:"), "{names:?}");
    assert!(names[1].ends_with("/order.toml") && names[2].ends_with("/application.toml"), "{names:?}");
    assert_eq!(sources[0]["source"], json!({"log.level": "warn"}));
    assert_eq!(sources[2]["source"], json!({"registry.config_poll_millis": 600000}));

    // The cluster credential works as for every registry read; none gets 401.
    let (status, _) = call!(app, authorized(test::TestRequest::get().uri("/config/order/default")));
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call!(app, test::TestRequest::get().uri("/config/order/prod"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("cluster_credential_required"))
    );
    let wrong = format!("Basic {}", base64_of("spring:wrong-password"));
    let (status, _) =
        call!(app, test::TestRequest::get().uri("/config/order/prod").insert_header((AUTHORIZATION, wrong)));
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A directory has no labels; bad names and unknown routes get JSON errors.
    let (status, body) = call!(app, authorized(test::TestRequest::get().uri("/config/order/prod/main")));
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("no_such_label")));
    let (status, body) = call!(app, authorized(test::TestRequest::get().uri("/config/order/p%20rod")));
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_name")));
    let (status, body) = call!(app, authorized(test::TestRequest::get().uri("/config/order")));
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A Eureka client's cycle (register, fetch, heartbeat, status override, cancel) with HTTP
/// Basic, the XML Prometheus reads, and Emporium's own instances seen as Eureka applications.
#[actix_web::test]
async fn eureka_clients_register_renew_override_and_cancel() {
    let dir = ConfigDir::new(&[("application.toml", QUIET_APPLICATION)]);
    let registry = start_registry(&dir);
    let app = app!(registry);
    let basic = || (AUTHORIZATION, format!("Basic {}", base64_of(&format!("eureka:{SECRET}"))));
    let json_accept = || (actix_web::http::header::ACCEPT, "application/json");

    call!(
        app,
        authorized(test::TestRequest::post().uri("/registry/v1/instances").set_json(registration("order@n1", "order")))
    );
    let spring_instance = json!({"instance": {
        "instanceId": "10.1.2.3:billing:8080", "hostName": "billing.local", "app": "BILLING", "ipAddr": "10.1.2.3",
        "status": "UP", "overriddenStatus": "UNKNOWN", "port": {"$": 8080, "@enabled": "true"},
        "securePort": {"$": 443, "@enabled": "false"}, "countryId": 1,
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "metadata": {"management.port": "8080"}, "vipAddress": "billing", "secureVipAddress": "billing",
        "isCoordinatingDiscoveryServer": "false", "lastUpdatedTimestamp": "1", "lastDirtyTimestamp": "1"
    }});
    let (status, _) = call!(
        app,
        test::TestRequest::post().uri("/eureka/apps/BILLING").insert_header(basic()).set_json(&spring_instance)
    );
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The Eureka view (JSON, as Spring clients ask for it).
    let (status, apps) =
        call!(app, test::TestRequest::get().uri("/eureka/apps").insert_header(basic()).insert_header(json_accept()));
    assert_eq!(status, StatusCode::OK, "{apps}");
    assert_eq!(apps["applications"]["apps__hashcode"], "UP_2_");
    let names: Vec<&str> =
        apps["applications"]["application"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["BILLING", "ORDER"]);
    let billing = &apps["applications"]["application"][0]["instance"][0];
    assert_eq!(billing["instanceId"], "10.1.2.3:billing:8080");
    assert_eq!(billing["port"], json!({"$": 8080, "@enabled": "true"}));
    assert_eq!(billing["leaseInfo"]["durationInSecs"], 90);
    assert_eq!(billing["metadata"]["registeredThrough"], "eureka");
    let order = &apps["applications"]["application"][1]["instance"][0];
    assert_eq!((order["hostName"].as_str(), order["port"]["$"].as_i64()), (Some("127.0.0.1"), Some(9100)));

    // The registry's own list has it, with its own lease.
    let (_, listed) = call!(app, authorized(test::TestRequest::get().uri("/registry/v1/instances?service=billing")));
    assert_eq!(
        (listed[0]["address"].as_str(), listed[0]["leaseMillis"].as_u64()),
        (Some("10.1.2.3:8080"), Some(90_000))
    );

    // XML by default (what Prometheus's eureka_sd_configs reads).
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/eureka/apps").insert_header(basic()).to_request())
            .await;
    assert_eq!(response.headers().get(CONTENT_TYPE).unwrap(), "application/xml");
    let xml = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    assert!(
        xml.starts_with("<?xml")
            && xml
                .contains("<application><name>BILLING</name><instance><instanceId>10.1.2.3:billing:8080</instanceId>"),
        "{xml}"
    );
    assert!(
        xml.contains("<port enabled=\"true\">8080</port>") && xml.contains("<apps__hashcode>UP_2_</apps__hashcode>"),
        "{xml}"
    );

    // Heartbeat, one app, one instance, status override and its removal.
    let (status, _) = call!(
        app,
        test::TestRequest::put()
            .uri("/eureka/apps/BILLING/10.1.2.3:billing:8080?status=UP&lastDirtyTimestamp=1")
            .insert_header(basic())
    );
    assert_eq!(status, StatusCode::OK);
    let (status, one) = call!(
        app,
        test::TestRequest::get().uri("/eureka/apps/BILLING").insert_header(basic()).insert_header(json_accept())
    );
    assert_eq!((status, one["application"]["instance"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    let (status, _) = call!(
        app,
        test::TestRequest::put()
            .uri("/eureka/apps/BILLING/10.1.2.3:billing:8080/status?value=OUT_OF_SERVICE")
            .insert_header(basic())
    );
    assert_eq!(status, StatusCode::OK);
    let (_, instance) = call!(
        app,
        test::TestRequest::get()
            .uri("/eureka/apps/BILLING/10.1.2.3:billing:8080")
            .insert_header(basic())
            .insert_header(json_accept())
    );
    assert_eq!(instance["instance"]["status"], "OUT_OF_SERVICE");
    let (status, _) = call!(
        app,
        test::TestRequest::delete()
            .uri("/eureka/apps/BILLING/10.1.2.3:billing:8080/status?value=UP")
            .insert_header(basic())
    );
    assert_eq!(status, StatusCode::OK);
    let (_, instance) = call!(
        app,
        test::TestRequest::get()
            .uri("/eureka/instances/10.1.2.3:billing:8080")
            .insert_header(basic())
            .insert_header(json_accept())
    );
    assert_eq!(instance["instance"]["status"], "UP");

    // Cancel; then a heartbeat is 404, which tells a Eureka client to register again.
    let (status, _) = call!(
        app,
        test::TestRequest::delete().uri("/eureka/apps/BILLING/10.1.2.3:billing:8080").insert_header(basic())
    );
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        call!(app, test::TestRequest::put().uri("/eureka/apps/BILLING/10.1.2.3:billing:8080").insert_header(basic()));
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_instance")));
    let (status, _) = call!(app, test::TestRequest::get().uri("/eureka/apps/BILLING").insert_header(basic()));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No credential, a bad body, a bad override, an invalid name: JSON errors, nothing stored.
    let (status, _) = call!(app, test::TestRequest::get().uri("/eureka/apps"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call!(
        app,
        test::TestRequest::post().uri("/eureka/apps/BILLING").insert_header(basic()).set_payload("<instance/>")
    );
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_json")));
    let (status, body) = call!(
        app,
        test::TestRequest::put().uri("/eureka/apps/ORDER/order@n1/status?value=DOWN").insert_header(basic())
    );
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
    let (status, body) = call!(
        app,
        test::TestRequest::post().uri("/eureka/apps/MY_APP").insert_header(basic()).set_json(&spring_instance)
    );
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_name")));
}
