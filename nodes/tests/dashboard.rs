//! The supervisor dashboard's data and actions through the gateway, against a real cluster of
//! three processes: a registry, a node with the gateway and auth, and a product node where
//! chaos is enabled. (The page itself is driven in a real browser by ops/browser/.)

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

struct Cluster {
    registry: RegistryNode,
    edge: NodeProcess,
    product: NodeProcess,
    api: Api,
    _data: (DataDir, DataDir),
}

async fn start() -> Cluster {
    let registry = start_registry("dash-registry");
    let (edge_data, product_data) = (DataDir::new(), DataDir::new());
    let http = format!("127.0.0.1:{}", free_port());
    let edge = start_cluster_node("dash-edge", "gateway,auth", &registry.url, &edge_data, &http, &[]);
    let product = start_cluster_node(
        "dash-product",
        "product",
        &registry.url,
        &product_data,
        "127.0.0.1:0",
        &[("EMPORIUM__CHAOS__ENABLED", "true")],
    );
    for node in [&registry.node, &edge, &product] {
        eventually(Duration::from_secs(30), &format!("{} ready", node.node_id), || async {
            (get_json(&node.url("/health/ready")).await.0 == 200).then_some(())
        })
        .await;
    }
    let api = Api::new(edge.http(""));
    Cluster { registry, edge, product, api, _data: (edge_data, product_data) }
}

async fn snapshot(api: &Api, token: &str) -> Value {
    let (status, view) = api.get("/api/v1/dashboard/snapshot", Some(token)).await;
    assert_eq!(status, 200, "{view}");
    view
}

fn node<'a>(view: &'a Value, node_id: &str) -> Option<&'a Value> {
    view["nodes"].as_array().unwrap().iter().find(|node| node["nodeId"] == node_id)
}

fn actor<'a>(node: &'a Value, path: &str) -> &'a Value {
    let actors = node["services"].as_array().unwrap().iter().flat_map(|service| service["actors"].as_array().unwrap());
    actors.into_iter().find(|actor| actor["path"] == path).unwrap_or_else(|| panic!("no actor {path}"))
}

async fn act(api: &Api, token: &str, action: Value) -> (u16, Value) {
    api.post("/api/v1/dashboard/actions", Some(token), action).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cluster_and_acts_on_it_for_admins_only() {
    let cluster = start().await;
    let api = &cluster.api;
    let admin = api.admin_token().await;
    let customer = api.sign_up("dash-customer").await;

    // The page and its assets need no token; everything they show does, and only an admin's.
    let (status, _, headers) = api.send("GET", "/dashboard", None, None).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    for asset in [
        "/dashboard",
        "/dashboard/assets/dashboard.js",
        "/dashboard/assets/dashboard.css",
        "/dashboard/assets/charts.js",
    ] {
        let (status, body, _) = api.send("GET", asset, None, None).await;
        assert_eq!(status, 200, "{asset}");
        // The one absolute URL allowed is SVG's namespace name, which nothing loads.
        let text = body.as_str().unwrap().replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(!text.contains("https://") && !text.contains("http://"), "{asset} must not load anything from outside");
    }
    for path in [
        "/api/v1/dashboard/snapshot",
        "/api/v1/dashboard/stream",
        "/api/v1/dashboard/traces/0af7651916cd43dd8448eb211c80319c",
    ] {
        let (status, body) = api.get(path, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("missing_token")), "{path}");
        let (status, body) = api.get(path, Some(&customer)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{path}");
    }
    let restart = json!({"action": "restart_service", "nodeId": "dash-product", "service": "product"});
    assert_eq!(act(api, &customer, restart.clone()).await.0, 403);

    // Every node, with its roles, process facts, tree and live settings.
    let view = snapshot(api, &admin).await;
    assert!(view["registry"]["reachable"].as_bool().unwrap(), "{}", view["registry"]);
    for node_id in ["dash-registry", "dash-edge", "dash-product"] {
        let node = node(&view, node_id).unwrap_or_else(|| panic!("{node_id} missing from {view}"));
        assert_eq!((node["status"].as_str(), node["reachable"].as_bool()), (Some("UP"), Some(true)), "{node}");
        assert!(node["rssBytes"].as_u64().unwrap() > 0 && node["uptimeSeconds"].as_f64().unwrap() > 0.0);
        assert_eq!(node["logLevel"], "info");
        assert!(node["leaseExpiresInMillis"].as_i64().unwrap() <= 3000);
    }
    let product = node(&view, "dash-product").unwrap();
    assert_eq!(product["chaosEnabled"], true);
    assert_eq!(node(&view, "dash-edge").unwrap()["chaosEnabled"], false);
    assert_eq!(actor(product, "product/catalog")["numRestarts"], 0);
    let service =
        product["services"].as_array().unwrap().iter().find(|service| service["service"] == "product").unwrap();
    assert_eq!(service["policy"]["intensity"]["maxRestarts"], 5);

    // A traced request: its spans on both nodes and the gateway's access line, by trace id.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = api
        .client
        .get(format!("{}/api/v1/products", api.base))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let trace = eventually(Duration::from_secs(5), "the trace's spans on both nodes", || async {
        let (status, trace) = api.get(&format!("/api/v1/dashboard/traces/{trace_id}"), Some(&admin)).await;
        assert_eq!(status, 200, "{trace}");
        let spans = trace["spans"].as_array().unwrap();
        let on = |node_id: &str| spans.iter().any(|span| span["nodeId"] == node_id);
        (on("dash-edge") && on("dash-product")).then_some(trace)
    })
    .await;
    let spans = trace["spans"].as_array().unwrap();
    assert!(spans.iter().any(|span| span["name"] == "ListProducts" && span["nodeId"] == "dash-product"), "{trace}");
    let logs = trace["logs"].as_array().unwrap();
    assert!(logs.iter().any(|line| line["target"] == "emporium::access" && line["nodeId"] == "dash-edge"), "{trace}");
    let (status, body) = api.get("/api/v1/dashboard/traces/not-a-trace", Some(&admin)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_trace_id")));

    // A panic injected where chaos is on: in the timeline with its flight record, and a restart.
    let inject =
        json!({"action": "inject_fault", "nodeId": "dash-product", "actor": "product/catalog", "fault": "panic"});
    let (status, answer) = act(api, &admin, inject).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["entry"]["who"], "admin@emporium.local");
    assert_eq!(answer["entry"]["result"], "ok");
    let fault = eventually(Duration::from_secs(2), "the injected panic in the timeline", || async {
        let view = snapshot(api, &admin).await;
        view["faults"].as_array().unwrap().iter().find(|fault| fault["nodeId"] == "dash-product").cloned()
    })
    .await;
    assert_eq!((fault["kind"].as_str(), fault["actorPath"].as_str()), (Some("panic"), Some("product/catalog")));
    let flight: Vec<&str> =
        fault["flightRecord"].as_array().unwrap().iter().map(|entry| entry["messageType"].as_str().unwrap()).collect();
    assert_eq!(flight.last(), Some(&"InjectedFault"), "{fault}");
    assert!(flight.contains(&"ListProducts"), "the message before the fault is in its flight record: {flight:?}");
    eventually(Duration::from_secs(2), "the restart counted", || async {
        let view = snapshot(api, &admin).await;
        (actor(node(&view, "dash-product")?, "product/catalog")["numRestarts"] == 1).then_some(())
    })
    .await;

    // Where chaos is off, injection is refused, and the refusal is audited too.
    let inject = json!({"action": "inject_fault", "nodeId": "dash-edge", "actor": "auth/accounts", "fault": "panic"});
    let (status, answer) = act(api, &admin, inject).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("chaos_disabled")), "{answer}");
    for (action, code, status) in [
        (
            json!({"action": "inject_fault", "nodeId": "dash-product", "actor": "product/nobody", "fault": "panic"}),
            "unknown_actor",
            404,
        ),
        (json!({"action": "restart_actor", "nodeId": "no-such-node", "actor": "x/y"}), "unknown_node", 404),
        (json!({"action": "format_disk", "nodeId": "dash-product"}), "invalid_action", 400),
        (json!({"action": "set_log_level", "nodeId": "dash-product", "level": "[[["}), "invalid_log_level", 400),
        (
            json!({"action": "set_instance_status", "instanceId": "product@dash-product", "status": "DOWN"}),
            "invalid_action",
            400,
        ),
    ] {
        let (answered, body) = act(api, &admin, action.clone()).await;
        assert_eq!((answered, body["error"]["code"].as_str()), (status, Some(code)), "{action}: {body}");
    }

    // Out of service and back: the registry and the dashboard agree.
    let registry_status = || async {
        instances(&cluster.registry.node, "product").await.into_iter().map(|(_, status)| status).collect::<Vec<_>>()
    };
    for status in ["OUT_OF_SERVICE", "UP"] {
        let action = json!({"action": "set_instance_status", "instanceId": "product@dash-product", "status": status});
        let (answered, body) = act(api, &admin, action).await;
        assert_eq!(answered, 200, "{body}");
        assert_eq!(registry_status().await, [status]);
        eventually(Duration::from_secs(2), "the dashboard shows the status", || async {
            let view = snapshot(api, &admin).await;
            (node(&view, "dash-product")?["status"] == status).then_some(())
        })
        .await;
    }

    // The log level, live, as the node itself reports it.
    let (status, body) =
        act(api, &admin, json!({"action": "set_log_level", "nodeId": "dash-product", "level": "debug"})).await;
    assert_eq!(status, 200, "{body}");
    let (_, supervision) = get_json(&cluster.product.url("/admin/v1/supervision")).await;
    assert_eq!(supervision["logLevel"], "debug");

    // Restarting the service restarts its actors.
    assert_eq!(act(api, &admin, restart).await.0, 200);
    eventually(Duration::from_secs(2), "the service restart counted", || async {
        let view = snapshot(api, &admin).await;
        (actor(node(&view, "dash-product")?, "product/catalog")["numRestarts"] == 2).then_some(())
    })
    .await;

    // The journal: every action with who did it and how it ended, newest first.
    let view = snapshot(api, &admin).await;
    let journal = view["journal"].as_array().unwrap();
    let mine: Vec<(&str, &str)> = journal
        .iter()
        .filter(|entry| entry["who"] == "admin@emporium.local")
        .map(|entry| (entry["action"].as_str().unwrap(), entry["result"].as_str().unwrap()))
        .collect();
    assert_eq!(mine.first(), Some(&("restart_service", "ok")), "{mine:?}");
    assert!(mine.contains(&("inject_fault", "failed")) && mine.contains(&("set_instance_status", "ok")), "{mine:?}");
    assert!(journal.iter().any(|entry| entry["action"] == "instance_registered" && entry["who"] == "registry"));

    // The live stream: a snapshot at once, then one a second.
    let response =
        api.client.get(format!("{}/api/v1/dashboard/stream", api.base)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut response = response;
    let mut text = String::new();
    let num_views = |text: &str| text.matches("event: snapshot\ndata: ").count();
    tokio::time::timeout(Duration::from_secs(5), async {
        while num_views(&text) < 2 {
            text.push_str(&String::from_utf8_lossy(&response.chunk().await.unwrap().unwrap()));
        }
    })
    .await
    .expect("two views within 5 s");
    let first = text.split("data: ").nth(1).unwrap().lines().next().unwrap();
    let streamed: Value = serde_json::from_str(first).unwrap();
    assert_eq!(streamed["nodes"].as_array().unwrap().len(), 3);

    // A node killed: evicted, and the eviction is in the timeline.
    let mut product = cluster.product;
    product.kill9();
    let eviction = eventually(Duration::from_secs(5), "the eviction in the timeline", || async {
        let view = snapshot(api, &admin).await;
        if node(&view, "dash-product").is_some() {
            return None;
        }
        view["faults"].as_array().unwrap().iter().find(|fault| fault["kind"] == "eviction").cloned()
    })
    .await;
    assert_eq!(eviction["nodeId"], "dash-product", "{eviction}");
    let faults = snapshot(api, &admin).await["faults"].clone();
    assert!(
        faults.as_array().unwrap().iter().any(|fault| fault["kind"] == "panic" && fault["nodeId"] == "dash-product"),
        "the gateway keeps the faults of a node that is gone"
    );
    drop(cluster.edge);
}
