//! A service outside Emporium, registered through the registry's Eureka API, is reached through
//! the gateway by its service name (`[gateway.http_routes.*]`): forwarded as it was asked,
//! with the route's access rule, and clear JSON errors when no instance is UP or it cannot be
//! reached.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// A plain HTTP service on a thread: answers every request with what it received, as JSON.
fn start_echo_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut headers = serde_json::Map::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
                    if name == "content-length" {
                        length = value.parse().unwrap_or(0);
                    }
                    headers.insert(name, Value::String(value));
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut parts = request_line.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let answer = json!({
                "method": method,
                "target": target,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            })
            .to_string();
            let response = format!(
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-backend: echo\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

fn eureka_instance(port: u16) -> Value {
    json!({"instance": {
        "instanceId": format!("127.0.0.1:billing:{port}"), "hostName": "127.0.0.1", "app": "BILLING",
        "ipAddr": "127.0.0.1", "status": "UP", "port": {"$": port, "@enabled": "true"},
        "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
    }})
}

#[tokio::test]
async fn a_service_registered_through_eureka_is_reached_through_the_gateway() {
    let registry = start_registry("http-routes-registry");
    let application = std::fs::read_to_string(registry.config.path.join("application.toml")).unwrap();
    registry.config.write(
        "application.toml",
        &format!(
            "{application}\n[gateway.http_routes.billing]\nprefix = \"/api/v1/billing\"\nservice = \"billing\"\naccess = \"public\"\n\n\
             [gateway.http_routes.ledger]\nprefix = \"/api/v1/ledger\"\nservice = \"billing\"\naccess = \"admin\"\nstrip_prefix = true\n"
        ),
    );
    // Served before the gateway starts (it reads its routes at start).
    let (status, body) = post_json(&registry.node.url("/registry/v1/config/refresh"), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let data = DataDir::new();
    let http = format!("127.0.0.1:{}", free_port());
    let _gateway = start_cluster_node("http-routes-gateway", "gateway,auth", &registry.url, &data, &http, &[]);
    let api = Api::new(format!("http://{http}"));

    let port = start_echo_backend();
    let (status, body) = post_json(&registry.node.url("/eureka/apps/BILLING"), &eureka_instance(port)).await;
    assert_eq!(status, 204, "{body}");

    // Public: forwarded as asked, once the gateway's directory has the instance.
    let echoed = eventually(Duration::from_secs(10), "the gateway reaches billing", || async {
        let (status, body) = api.get("/api/v1/billing/invoices?month=11", None).await;
        (status == 201).then_some(body)
    })
    .await;
    assert_eq!(
        (echoed["method"].as_str(), echoed["target"].as_str()),
        (Some("GET"), Some("/api/v1/billing/invoices?month=11"))
    );
    assert!(echoed["headers"]["x-request-id"].as_str().is_some_and(|id| !id.is_empty()), "{echoed}");
    assert!(echoed["headers"]["traceparent"].as_str().is_some(), "{echoed}");
    assert_eq!(echoed["headers"]["x-forwarded-for"], "127.0.0.1");
    let (status, echoed) = api.post("/api/v1/billing/payments", None, json!({"amount": 12})).await;
    assert_eq!((status, echoed["method"].as_str()), (201, Some("POST")));
    assert_eq!(serde_json::from_str::<Value>(echoed["body"].as_str().unwrap()).unwrap(), json!({"amount": 12}));

    // Admin only, with the prefix stripped.
    let (status, body) = api.get("/api/v1/ledger/entries", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")), "{body}");
    let customer = api.sign_up("ledger-reader").await;
    let (status, body) = api.get("/api/v1/ledger/entries", Some(&customer)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let admin = api.admin_token().await;
    let (status, echoed) = api.get("/api/v1/ledger/entries", Some(&admin)).await;
    assert_eq!((status, echoed["target"].as_str()), (201, Some("/entries")), "{echoed}");
    assert_eq!(echoed["headers"]["x-forwarded-prefix"], "/api/v1/ledger");
    assert!(echoed["headers"]["authorization"].as_str().is_some_and(|value| value.starts_with("Bearer ")));

    // Cancelled: 503 no_instance. Registered at a port nobody listens on: 502 bad_gateway.
    let id = format!("127.0.0.1:billing:{port}");
    let cancel = client()
        .delete(registry.node.url(&format!("/eureka/apps/BILLING/{id}")))
        .header("authorization", auth())
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let body = eventually(Duration::from_secs(10), "no instance left", || async {
        let (status, body) = api.get("/api/v1/billing/invoices", None).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["error"]["code"], "no_instance", "{body}");
    let closed = free_port();
    let (status, _) = post_json(&registry.node.url("/eureka/apps/BILLING"), &eureka_instance(closed)).await;
    assert_eq!(status, 204);
    let body = eventually(Duration::from_secs(10), "the unreachable instance", || async {
        let (status, body) = api.get("/api/v1/billing/invoices", None).await;
        (status == 502).then_some(body)
    })
    .await;
    assert_eq!(body["error"]["code"], "bad_gateway", "{body}");
}
