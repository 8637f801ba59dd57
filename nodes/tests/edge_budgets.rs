//! Bounded waits at the edge, with real processes: a gateway killed and restarted under a
//! stream of signed-in requests never answers 401 to a valid token (503 `auth_unavailable`
//! until it holds auth's keys), and an order service whose MariaDB goes silent (connections
//! accepted, never answered) answers 503 `*_unavailable` with `Retry-After` in under a second.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every role but the gateway, on embedded stores.
const BACKEND_ROLES: &str = "auth,product,inventory,order,payment,notification";

/// What one signed-in request of the stream got: a status, or no connection (the gateway is
/// down or restarting).
#[derive(Debug, Default)]
struct StreamTally {
    statuses: Vec<u16>,
    unanswered: usize,
    refusals: Vec<Value>,
}

#[tokio::test]
async fn a_restarted_gateway_never_answers_401_to_a_valid_token() {
    let registry = start_registry("reg-gw-restart");
    let data = DataDir::new();
    let _backend = start_node_with_data("backend-gw-restart", BACKEND_ROLES, &registry.url, &data);
    let http = format!("127.0.0.1:{}", free_port());
    let mut gateway = NodeProcess::start(
        "gw-restart",
        &["--role", "gateway", "--registry", &registry.url, "--listen", "127.0.0.1:0", "--http", &http],
        &[],
    );
    eventually(Duration::from_secs(20), "the gateway is ready", || async {
        (get_json(&gateway.url("/health/ready")).await.0 == 200).then_some(())
    })
    .await;
    let api = Api::new(format!("http://{http}"));
    let token = api.sign_up("stream_user").await;

    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (stop, url, token) = (stop.clone(), format!("http://{http}/api/v1/orders"), token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            let mut tally = StreamTally::default();
            while !stop.load(Ordering::Acquire) {
                match client.get(&url).bearer_auth(&token).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        if status != 200 {
                            tally.refusals.push(response.json().await.unwrap_or(Value::Null));
                        }
                        tally.statuses.push(status);
                    }
                    Err(_) => {
                        tally.unanswered += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            tally
        })
    };
    let count_ok = |statuses: &[u16]| statuses.iter().filter(|&&status| status == 200).count();

    for round in 0..3 {
        // Let the stream run on the live gateway, then kill it and start it again at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        gateway.restart();
        gateway.wait_started(Duration::from_secs(30)).unwrap_or_else(|reason| panic!("round {round}: {reason}"));
        eventually(Duration::from_secs(20), "the restarted gateway is ready", || async {
            (get_json(&gateway.url("/health/ready")).await.0 == 200).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
    let tally = stream.await.unwrap();

    let unauthorized: Vec<&Value> = tally
        .statuses
        .iter()
        .zip(tally.refusals.iter().chain(std::iter::repeat(&Value::Null)))
        .filter(|(status, _)| **status == 401)
        .map(|(_, body)| body)
        .collect();
    assert!(unauthorized.is_empty(), "a valid token was refused: {unauthorized:?}");
    for (status, body) in tally.statuses.iter().filter(|&&status| status != 200).zip(&tally.refusals) {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(*status == 503 && code.ends_with("_unavailable"), "{status} {body}");
    }
    assert!(count_ok(&tally.statuses) > 10, "the stream went through: {tally:?}");
}

/// A TCP proxy to MariaDB that can go silent: from then on it keeps every connection open
/// (old and new) and forwards nothing, like a server that hangs.
struct SilenceableProxy {
    address: String,
    silent: Arc<AtomicBool>,
}

impl SilenceableProxy {
    async fn start(upstream: &'static str) -> SilenceableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let silent = Arc::new(AtomicBool::new(false));
        let accept_silent = silent.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let silent = accept_silent.clone();
                tokio::spawn(async move {
                    if silent.load(Ordering::Acquire) {
                        hold_forever(client).await;
                        return;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        forward(client_read, server_write, silent.clone()),
                        forward(server_read, client_write, silent)
                    );
                });
            }
        });
        SilenceableProxy { address, silent }
    }

    fn go_silent(&self) {
        self.silent.store(true, Ordering::Release);
    }
}

async fn hold_forever<T>(_connection: T) {
    std::future::pending::<()>().await;
}

/// Copies `from` to `to` until the proxy goes silent, then holds both ends open.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = wait_for(&silent) => break,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(length) => {
                if silent.load(Ordering::Acquire) {
                    break;
                }
                if to.write_all(&buffer[..length]).await.is_err() {
                    return;
                }
            }
        }
    }
    hold_forever((from, to)).await;
}

async fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// Multi-threaded: the proxy's tasks run while the test thread waits for a node to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_answers_503_within_a_second() {
    let database = MariaDb::create("emporium_silent_db");
    let proxy = SilenceableProxy::start("127.0.0.1:3306").await;
    let proxied_url = database.url.replace("127.0.0.1:3306", &proxy.address);
    assert_ne!(proxied_url, database.url, "the test database is on 127.0.0.1:3306");

    let registry = start_registry("reg-silent-db");
    let http = format!("127.0.0.1:{}", free_port());
    let data = DataDir::new();
    let data_dir = data.path.to_str().unwrap().to_string();
    let front = NodeProcess::start(
        "front-silent-db",
        &[
            "--role",
            "gateway,auth,product,inventory,payment,notification",
            "--registry",
            &registry.url,
            "--listen",
            "127.0.0.1:0",
            "--http",
            &http,
            "--data-dir",
            &data_dir,
        ],
        &[("EMPORIUM_MYSQL_URL", database.url.as_str())],
    );
    let orders = NodeProcess::start(
        "orders-silent-db",
        &["--role", "order", "--registry", &registry.url, "--listen", "127.0.0.1:0", "--data-dir", &data_dir],
        &[("EMPORIUM_MYSQL_URL", proxied_url.as_str())],
    );
    let api = Api::new(format!("http://{http}"));
    eventually(Duration::from_secs(20), "the order node is ready", || async {
        (get_json(&orders.url("/health/ready")).await.0 == 200).then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "the gateway is ready", || async {
        (get_json(&front.url("/health/ready")).await.0 == 200).then_some(())
    })
    .await;
    let token = api.sign_up("silent_db_user").await;
    eventually(Duration::from_secs(20), "the order list answers", || async {
        (api.get("/api/v1/orders", Some(&token)).await.0 == 200).then_some(())
    })
    .await;

    proxy.go_silent();
    for attempt in 0..6 {
        let started = Instant::now();
        let (status, body, headers) = api.send("GET", "/api/v1/orders", Some(&token), None).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 503, "attempt {attempt}: {body}");
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(code.ends_with("_unavailable"), "attempt {attempt}: {body}");
        assert!(headers.contains_key("retry-after"), "attempt {attempt}: no Retry-After");
        assert!(elapsed < Duration::from_secs(1), "attempt {attempt}: answered after {elapsed:?}");
    }
    eventually(Duration::from_secs(10), "the order node reports its database", || async {
        let (status, body) = get_json(&orders.url("/health/ready")).await;
        (status == 503 && body.to_string().contains("database")).then_some(())
    })
    .await;
}
