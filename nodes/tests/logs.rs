//! The log lines an operator joins with traces (issue 13, item 2): one access-log line per
//! public request, and the trace and span ids at the top level of every line written while a
//! request or an ask is handled.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn json_lines(node: &NodeProcess) -> Vec<Value> {
    node.output().lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

#[tokio::test]
async fn every_request_has_an_access_line_and_its_lines_carry_the_trace() {
    let data = DataDir::new();
    let (node, _config) = start_single_node("logs-all", "all", &data, &[]);
    let api = Api::new(node.http(""));
    let customer = api.sign_up("lena").await;

    // A sign-in that continues the caller's trace.
    let response = api
        .client
        .post(format!("{}/api/v1/auth/login", api.base))
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    let traceparent = response.headers()["traceparent"].to_str().unwrap().to_string();
    let span_id = traceparent.split('-').nth(2).unwrap().to_string();
    // A signed-in request: its access line names the user.
    let (status, _) = api.get("/api/v1/orders", Some(&customer)).await;
    assert_eq!(status, 200);

    let lines = eventually(Duration::from_secs(10), "both access lines", || async {
        let lines = json_lines(&node);
        let access = lines.iter().filter(|line| line["target"] == "emporium::access").count();
        (access >= 4).then_some(lines)
    })
    .await;

    let sign_in = lines
        .iter()
        .find(|line| line["target"] == "emporium::access" && line["request_id"] == request_id.as_str())
        .expect("the sign-in's access line");
    assert_eq!(sign_in["method"], "POST");
    assert_eq!(sign_in["route"], "/api/v1/auth/login");
    assert_eq!(sign_in["status"], 200);
    assert!(sign_in["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{sign_in}");
    assert_eq!((sign_in["trace_id"].as_str(), sign_in["span_id"].as_str()), (Some(TRACE_ID), Some(span_id.as_str())));
    assert!(sign_in.get("user_id").is_none(), "no user before signing in: {sign_in}");

    // The auth actor's own line, written while it handled the sign-in ask, has the same trace.
    let handled = lines
        .iter()
        .find(|line| line["message"] == "signed in" && line["trace_id"] == TRACE_ID)
        .unwrap_or_else(|| panic!("no \"signed in\" line with the trace id:\n{}", node.output()));
    assert!(handled["span_id"].as_str().is_some_and(|id| id.len() == 16), "{handled}");

    let listing = lines
        .iter()
        .find(|line| line["target"] == "emporium::access" && line["route"] == "/api/v1/orders")
        .expect("the order listing's access line");
    assert_eq!((listing["method"].as_str(), listing["status"].as_u64()), (Some("GET"), Some(200)));
    assert!(listing["user_id"].as_str().is_some_and(|id| !id.is_empty()), "{listing}");

    // No line written inside a request, an ask or a handled message lacks its trace.
    let request_spans = ["http_request", "handle", "cluster_ask"];
    for line in &lines {
        let in_request = line["target"] == "emporium::access"
            || line["span"]["name"].as_str().is_some_and(|name| request_spans.contains(&name));
        if in_request {
            assert!(line["trace_id"].as_str().is_some_and(|id| id.len() == 32), "no trace_id: {line}");
            assert!(line["span_id"].as_str().is_some_and(|id| id.len() == 16), "no span_id: {line}");
        }
    }
}
