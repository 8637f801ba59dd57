//! Secrets from Vault (issue 13, item 9), against a stand-in that speaks the documented HTTP API
//! of Vault's KV version 2 engine, token lookup and renewal, and AppRole sign-in: no Vault
//! server can be installed where the tests run (docker-compose.yml runs a real one).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use support::*;

const ROOT_TOKEN: &str = "stand-in-root-token";
const APPROLE_TOKEN: &str = "stand-in-approle-token";
const ROLE_ID: &str = "emporium-role";
const SECRET_ID: &str = "emporium-secret-id";

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    reads: Vec<String>,
    renewals: usize,
    logins: usize,
}

struct VaultStandIn {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

fn token_of(request: &HttpRequest) -> Option<String> {
    request.headers().get("x-vault-token").and_then(|value| value.to_str().ok()).map(str::to_string)
}

fn denied() -> HttpResponse {
    HttpResponse::Forbidden().json(json!({"errors": ["permission denied"]}))
}

impl VaultStandIn {
    /// KV v2 at `secret/`: `secret/emporium` holds `cluster_secret` (the tests' cluster secret)
    /// and `smtp_url`. AppRole tokens live 2 s and renew.
    fn start() -> VaultStandIn {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let port = free_port();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let shared = seen.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let seen = web::Data::from(shared.clone());
                    App::new()
                        .app_data(seen)
                        .route("/v1/auth/token/lookup-self", web::get().to(lookup_self))
                        .route("/v1/auth/token/renew-self", web::post().to(renew_self))
                        .route("/v1/auth/approle/login", web::post().to(approle_login))
                        .route("/v1/{mount}/data/{path:.*}", web::get().to(read_secret))
                })
                .workers(1)
                .bind(("127.0.0.1", port))
                .expect("the stand-in binds its port")
                .run();
                ready_tx.send(()).unwrap();
                let _ = server.await;
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("the stand-in starts");
        VaultStandIn { url: format!("http://127.0.0.1:{port}"), seen }
    }
}

fn known(token: Option<String>) -> bool {
    matches!(token.as_deref(), Some(ROOT_TOKEN | APPROLE_TOKEN))
}

async fn lookup_self(request: HttpRequest) -> HttpResponse {
    match token_of(&request).as_deref() {
        // A root token: no TTL, not renewable.
        Some(ROOT_TOKEN) => {
            HttpResponse::Ok().json(json!({"data": {"ttl": 0, "renewable": false, "policies": ["root"]}}))
        }
        Some(APPROLE_TOKEN) => HttpResponse::Ok().json(json!({"data": {"ttl": 2, "renewable": true}})),
        _ => denied(),
    }
}

async fn renew_self(request: HttpRequest, seen: web::Data<Mutex<Seen>>) -> HttpResponse {
    if token_of(&request).as_deref() != Some(APPROLE_TOKEN) {
        return denied();
    }
    seen.lock().unwrap().renewals += 1;
    HttpResponse::Ok().json(json!({"auth": {"client_token": APPROLE_TOKEN, "lease_duration": 2, "renewable": true}}))
}

async fn approle_login(body: web::Json<Value>, seen: web::Data<Mutex<Seen>>) -> HttpResponse {
    if body["role_id"] != ROLE_ID || body["secret_id"] != SECRET_ID {
        return HttpResponse::BadRequest().json(json!({"errors": ["invalid role or secret ID"]}));
    }
    seen.lock().unwrap().logins += 1;
    HttpResponse::Ok()
        .json(json!({"auth": {"client_token": APPROLE_TOKEN, "lease_duration": 2, "renewable": true, "policies": ["emporium"]}}))
}

async fn read_secret(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    seen: web::Data<Mutex<Seen>>,
) -> HttpResponse {
    if !known(token_of(&request)) {
        return denied();
    }
    let (mount, path) = path.into_inner();
    seen.lock().unwrap().reads.push(format!("{mount}/{path}"));
    if (mount.as_str(), path.as_str()) != ("secret", "emporium") {
        return HttpResponse::NotFound().json(json!({"errors": []}));
    }
    HttpResponse::Ok().json(json!({
        "data": {
            "data": {"cluster_secret": SECRET, "smtp_url": "smtp://127.0.0.1:2525"},
            "metadata": {"version": 3, "created_time": "2026-12-06T00:00:00Z", "destroyed": false}
        },
        "lease_duration": 0,
        "renewable": false
    }))
}

/// A registry node whose cluster secret comes from Vault (the harness's own is blanked).
fn registry_with(env: &[(&str, &str)]) -> (NodeProcess, String, ConfigDir) {
    let config = ConfigDir::copy_of_repository_config();
    let listen = format!("127.0.0.1:{}", free_port());
    let config_dir = config.path.to_str().unwrap().to_string();
    let mut all_env = vec![("EMPORIUM_CLUSTER_SECRET", "")];
    all_env.extend_from_slice(env);
    let node = NodeProcess::start(
        "vault-registry",
        &["--role", "registry", "--listen", &listen, "--config-dir", &config_dir],
        &all_env,
    );
    (node, format!("http://{listen}"), config)
}

#[tokio::test]
async fn the_cluster_secret_comes_from_vault_with_a_token() {
    let vault = VaultStandIn::start();
    let (node, url, _config) = registry_with(&[
        ("EMPORIUM_VAULT_ADDR", vault.url.as_str()),
        ("EMPORIUM_VAULT_TOKEN", ROOT_TOKEN),
        ("EMPORIUM_CLUSTER_SECRET_VAULT", "secret/emporium#cluster_secret"),
    ]);
    // The registry takes the harness's secret, which only Vault gave it.
    let (status, _) = get_json(&format!("{url}/registry/v1/instances")).await;
    assert_eq!(status, 200, "{}", node.output());
    let output = node.output();
    let provided = output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "secret provided" && line["secret"] == "EMPORIUM_CLUSTER_SECRET")
        .unwrap_or_else(|| panic!("no \"secret provided\" line:\n{output}"));
    assert_eq!(provided["source"], "vault");
    assert_eq!(provided["location"], "secret/emporium#cluster_secret");
    assert!(!output.contains(SECRET) && !output.contains(ROOT_TOKEN), "a secret reached the log:\n{output}");
    assert_eq!(vault.seen.lock().unwrap().reads, vec!["secret/emporium".to_string()]);
}

#[tokio::test]
async fn approle_signs_in_and_the_token_is_renewed_while_the_node_runs() {
    let vault = VaultStandIn::start();
    let (node, url, _config) = registry_with(&[
        ("EMPORIUM_VAULT_ADDR", vault.url.as_str()),
        ("EMPORIUM_VAULT_ROLE_ID", ROLE_ID),
        ("EMPORIUM_VAULT_SECRET_ID", SECRET_ID),
        ("EMPORIUM_CLUSTER_SECRET_VAULT", "secret/emporium#cluster_secret"),
    ]);
    assert_eq!(get_json(&format!("{url}/registry/v1/instances")).await.0, 200, "{}", node.output());
    assert_eq!(vault.seen.lock().unwrap().logins, 1);
    // A 2 s token is renewed every second or so.
    eventually(Duration::from_secs(10), "two renewals", || async {
        (vault.seen.lock().unwrap().renewals >= 2).then_some(())
    })
    .await;
    assert!(!node.output().contains(SECRET_ID) && !node.output().contains(APPROLE_TOKEN));
}

#[tokio::test]
async fn a_secret_vault_cannot_give_stops_the_start_with_the_reason() {
    let vault = VaultStandIn::start();
    for (env, expected) in [
        (
            vec![
                ("EMPORIUM_VAULT_TOKEN", ROOT_TOKEN),
                ("EMPORIUM_CLUSTER_SECRET_VAULT", "secret/emporium#no_such_key"),
            ],
            "no text under the key \"no_such_key\"",
        ),
        (
            vec![
                ("EMPORIUM_VAULT_TOKEN", ROOT_TOKEN),
                ("EMPORIUM_CLUSTER_SECRET_VAULT", "secret/elsewhere#cluster_secret"),
            ],
            "cannot read secret/elsewhere#cluster_secret",
        ),
        (
            vec![
                ("EMPORIUM_VAULT_TOKEN", "wrong-token"),
                ("EMPORIUM_CLUSTER_SECRET_VAULT", "secret/emporium#cluster_secret"),
            ],
            "permission denied",
        ),
        (
            vec![
                ("EMPORIUM_VAULT_TOKEN", ROOT_TOKEN),
                ("EMPORIUM_CLUSTER_SECRET_VAULT", "secret/emporium#cluster_secret"),
                ("EMPORIUM_CLUSTER_SECRET", "also-given-in-the-environment"),
            ],
            "not several",
        ),
    ] {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut all_env = vec![("EMPORIUM_CLUSTER_SECRET", ""), ("EMPORIUM_VAULT_ADDR", vault.url.as_str())];
        all_env.extend(env);
        let mut node = NodeProcess::launch("vault-refused", &["--role", "registry", "--listen", &listen], &all_env);
        assert!(node.wait_started(Duration::from_secs(15)).is_err(), "the node started anyway");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = node.exit_status_opt() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "the node did not exit:\n{}", node.output());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(!status.success());
        let output = node.output();
        assert!(output.contains(expected), "{expected:?} not in:\n{output}");
        assert!(!output.contains(ROOT_TOKEN), "the token reached the output:\n{output}");
    }
}
