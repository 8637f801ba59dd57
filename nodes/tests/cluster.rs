//! The cluster foundation as a user sees it: real `emporium` processes on loopback.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

#[tokio::test]
async fn registration_is_visible_and_the_node_is_ready() {
    let registry = start_registry("reg-visible");
    let echo = start_node("echo-visible", "echo", &registry.url);
    eventually(Duration::from_secs(10), "echo instance UP", || async {
        let found = instances(&registry.node, "echo").await;
        (found == vec![("echo@echo-visible".to_string(), "UP".to_string())]).then_some(())
    })
    .await;
    let registry_instances = instances(&registry.node, "registry").await;
    assert_eq!(registry_instances, vec![("registry@reg-visible".to_string(), "UP".to_string())]);
    eventually(Duration::from_secs(5), "echo node ready", || async {
        let (status, _) = get_json(&echo.url("/health/ready")).await;
        (status == 200).then_some(())
    })
    .await;
    let (status, body) = get_json(&echo.url("/health/live")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("live")));
}

/// Waits until `node` follows the registry's watch stream (the connection the registry ties
/// to it).
async fn watching(node: &NodeProcess) {
    eventually(Duration::from_secs(10), "the node follows the watch stream", || async {
        node.output().contains("following the registry's watch stream").then_some(())
    })
    .await;
}

/// How long after `since` the registry stops listing any `service` instance (8 s at most).
async fn gone_after(registry: &NodeProcess, service: &str, since: Instant) -> Duration {
    eventually(Duration::from_secs(8), &format!("{service} evicted"), || async {
        instances(registry, service).await.is_empty().then_some(())
    })
    .await;
    since.elapsed()
}

/// Sends `signal` (`-STOP`, `-CONT`) to `node`.
fn signal(node: &NodeProcess, signal: &str) {
    let status = std::process::Command::new("kill").args([signal, &node.pid().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_killed_process_leaves_the_registry_long_before_its_lease() {
    let registry = start_registry("reg-gone");
    let mut echo = start_node("echo-gone", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;
    watching(&echo).await;
    echo.kill9();
    let took = gone_after(&registry.node, "echo", Instant::now()).await;
    // The lease is 2.8 s: far below it, the closed watch connection and the refused listener did
    // it (ops/bench/cluster.py measures the figure: a few milliseconds).
    assert!(took < Duration::from_millis(2000), "evicted after {took:?}");
    assert!(registry.node.output().contains("listener refuses connections"), "{}", registry.node.output());
}

/// A process that answers nothing and closes nothing (what a host cut off the network looks like
/// from the registry) is evicted by its lease.
#[tokio::test]
async fn a_silent_process_is_evicted_by_its_lease() {
    let registry = start_registry("reg-silent");
    let echo = start_node("echo-silent", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;
    watching(&echo).await;
    signal(&echo, "-STOP");
    let took = gone_after(&registry.node, "echo", Instant::now()).await;
    signal(&echo, "-CONT");
    // Lease 2.8 s after the last renewal (0-1 s before the stop), a sweep every 140 ms. Generous
    // bound for a loaded machine; the point is that the lease, not a probe, did it.
    assert!(took > Duration::from_millis(1500) && took < Duration::from_secs(6), "evicted after {took:?}");
    assert!(registry.node.output().contains("lease lapsed; instance evicted"), "{}", registry.node.output());
}

#[tokio::test]
async fn a_process_stopped_for_a_second_is_not_evicted() {
    let registry = start_registry("reg-stall");
    let echo = start_node("echo-stall", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;
    watching(&echo).await;
    // A pause like a long GC: the process holds its connections but answers nothing.
    signal(&echo, "-STOP");
    let stopped_at = Instant::now();
    while stopped_at.elapsed() < Duration::from_secs(1) {
        assert_eq!(instances(&registry.node, "echo").await.len(), 1, "evicted while stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&echo, "-CONT");
    // It renews its lease again and stays.
    let resumed_at = Instant::now();
    while resumed_at.elapsed() < Duration::from_secs(3) {
        assert_eq!(instances(&registry.node, "echo").await.len(), 1, "evicted after resuming");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sigterm_deregisters_at_once_and_exits_zero() {
    let registry = start_registry("reg-term");
    let mut echo = start_node("echo-term", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;
    let status = echo.sigterm(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}:\n{}", echo.output());
    // Deregistration happened before exit: no waiting for the lease.
    assert!(instances(&registry.node, "echo").await.is_empty());
    assert!(echo.output().contains("node stopped"));
}

#[tokio::test]
async fn an_ask_reaches_a_service_on_another_node() {
    let registry = start_registry("reg-ask");
    let _echo = start_node("echo-ask", "echo", &registry.url);
    let probe = start_node("probe-ask", "probe", &registry.url);
    let reply = eventually(Duration::from_secs(10), "relayed echo", || async {
        let (status, body) = ask(&probe, "probe", "RelayEcho", json!({"text": "hello"})).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(reply, json!({"text": "hello", "nodeId": "echo-ask"}));
}

#[tokio::test]
async fn asks_keep_working_while_one_of_two_instances_is_killed() {
    let registry = start_registry("reg-failover");
    let mut first = start_node("echo-a", "echo", &registry.url);
    let _second = start_node("echo-b", "echo", &registry.url);
    let probe = start_node("probe-failover", "probe", &registry.url);
    eventually(Duration::from_secs(10), "both echo instances UP", || async {
        (instances(&registry.node, "echo").await.len() == 2).then_some(())
    })
    .await;
    // Both instances take traffic.
    let measure = json!({"count": 200, "concurrency": 8, "payloadBytes": 16});
    // Until the probe's directory has caught up, a run may see fewer instances.
    eventually(Duration::from_secs(10), "probe spreads asks over both instances", || async {
        let (status, body) = ask(&probe, "probe", "MeasureAsks", measure.clone()).await;
        let both = body["answeredBy"].as_object().is_some_and(|nodes| nodes.len() == 2);
        (status == 200 && both && body["numErrors"] == 0).then_some(())
    })
    .await;

    first.kill9();
    // Right after the kill the directory still lists the dead instance: asks must be retried
    // on the live one, so none fails.
    for _ in 0..5 {
        let (status, body) =
            ask(&probe, "probe", "MeasureAsks", json!({"count": 100, "concurrency": 4, "payloadBytes": 16})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["numErrors"], 0, "{body}");
        assert_eq!(body["answeredBy"]["echo-b"], 100, "{body}");
    }
}

#[tokio::test]
async fn a_panic_is_a_recorded_fault_and_the_actor_goes_on() {
    let registry = start_registry("reg-panic");
    let echo = start_node("echo-panic", "echo", &registry.url);
    assert_eq!(ask(&echo, "echo", "IncrementCounter", json!({})).await, (200, json!(1)));
    assert_eq!(ask(&echo, "echo", "IncrementCounter", json!({})).await, (200, json!(2)));

    let (status, error) = ask(&echo, "echo", "Crash", json!({"mode": "panic"})).await;
    assert_eq!(status, 500, "{error}");
    assert_eq!(error["error"]["code"], "actor_fault");

    // Fresh state behind the same address: the counter starts again.
    assert_eq!(ask(&echo, "echo", "IncrementCounter", json!({})).await, (200, json!(1)));
    let (status, tree) = get_json(&echo.url("/admin/v1/supervision")).await;
    assert_eq!(status, 200);
    let faults = tree["node"]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "{tree}");
    assert_eq!(faults[0]["messageType"], "Crash");
    assert_eq!(faults[0]["kind"], "panic");
    assert_eq!(faults[0]["actorPath"], "echo/worker");
    assert!(faults[0]["error"].as_str().unwrap().contains("echo worker asked to panic"));
    assert_eq!(faults[0]["flightRecord"].as_array().unwrap().last().unwrap()["messageType"], "Crash");
    let worker = &tree["node"]["services"][0]["actors"][0];
    assert_eq!(worker["numRestarts"], 1);
    assert_eq!(worker["numPanics"], 1);

    // A panic after an await and a fatal error are handled the same way.
    let (status, _) = ask(&echo, "echo", "Crash", json!({"mode": "panic_after_await"})).await;
    assert_eq!(status, 500);
    let (status, _) = ask(&echo, "echo", "Crash", json!({"mode": "fatal"})).await;
    assert_eq!(status, 500);
    assert_eq!(ask(&echo, "echo", "Echo", json!({"text": "still here"})).await.0, 200);
    let (_, tree) = get_json(&echo.url("/admin/v1/supervision")).await;
    assert_eq!(tree["node"]["numFaults"], 3);
    assert_eq!(get_json(&echo.url("/health/live")).await.0, 200);
}

#[tokio::test]
async fn past_its_intensity_the_instance_is_down_in_the_registry() {
    let registry = start_registry("reg-down");
    let echo = start_node("echo-down", "echo", &registry.url);
    eventually(Duration::from_secs(10), "echo UP", || async {
        (instances(&registry.node, "echo").await == vec![("echo@echo-down".to_string(), "UP".to_string())])
            .then_some(())
    })
    .await;
    // Default intensity: 5 restarts in 10 s; the sixth fault escalates.
    for _ in 0..6 {
        let (status, body) = ask(&echo, "echo", "Crash", json!({"mode": "fatal"})).await;
        assert!(status == 500 || status == 503, "{status} {body}");
    }
    eventually(Duration::from_secs(5), "echo DOWN in the registry", || async {
        (instances(&registry.node, "echo").await == vec![("echo@echo-down".to_string(), "DOWN".to_string())])
            .then_some(())
    })
    .await;
    let (status, body) = ask(&echo, "echo", "Echo", json!({"text": "x"})).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "service_down");
    let (status, body) = get_json(&echo.url("/health/ready")).await;
    assert_eq!(status, 503);
    assert!(body["reasons"][0].as_str().unwrap().contains("echo is down"), "{body}");
    assert_eq!(get_json(&echo.url("/health/live")).await.0, 200, "the node stays up");
}

#[tokio::test]
async fn cluster_endpoints_refuse_calls_without_the_credential() {
    let registry = start_registry("reg-auth");
    let echo = start_node("echo-auth", "echo", &registry.url);
    let url = echo.url("/cluster/v1/ask/echo/Echo");
    for header in [None, Some("Cluster wrong-secret-wrong-secret"), Some("Bearer x")] {
        let mut request = client().post(&url).json(&json!({"text": "x"}));
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cluster_credential_required");
    }
    let response = client().get(echo.url("/admin/v1/supervision")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = client().get(registry.node.url("/registry/v1/instances")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // A node started with another secret is refused by the registry and says so.
    let stranger = NodeProcess::start(
        "stranger",
        &["--role", "echo", "--registry", &registry.url, "--listen", "127.0.0.1:0"],
        &[("EMPORIUM_CLUSTER_SECRET", "another-secret-another-secret")],
    );
    eventually(Duration::from_secs(5), "credential refusal logged", || async {
        stranger.output().contains("EMPORIUM_CLUSTER_SECRET").then_some(())
    })
    .await;
    assert!(instances(&registry.node, "echo").await.iter().all(|(id, _)| id != "echo@stranger"));
}

#[tokio::test]
async fn malformed_and_unknown_asks_get_clear_errors() {
    let registry = start_registry("reg-bad");
    let echo = start_node("echo-bad", "echo", &registry.url);
    let (status, body) = ask(&echo, "echo", "Echo", json!({"text": 5})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("malformed_message")));
    let (status, body) = ask(&echo, "echo", "NoSuchMessage", json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_message")));
    let (status, body) = ask(&echo, "inventory", "ReserveStock", json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("unknown_service")));
    let (status, body) = get_json(&echo.url("/no/such/route")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    // A body over the node listener's limit (8 MiB), refused by actix-web from its
    // Content-Length before any of it is sent: the envelope all the same.
    let address = echo.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
    let head = format!(
        "POST /cluster/v1/ask/echo/Echo HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        auth(),
        9 * 1024 * 1024
    );
    let answer = tokio::task::spawn_blocking(move || raw_exchange(&address, head.as_bytes())).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
}

#[tokio::test]
async fn a_config_edit_reaches_every_node_and_is_acked() {
    let registry = start_registry("reg-config");
    let echo = start_node("echo-config", "echo", &registry.url);
    let probe = start_node("probe-config", "probe", &registry.url);
    let acks_url = registry.node.url("/registry/v1/config/acks");
    let first_version = eventually(Duration::from_secs(10), "all instances ack the first version", || async {
        let (_, acks) = get_json(&acks_url).await;
        let rows = acks["instances"].as_array()?;
        (rows.len() == 3 && rows.iter().all(|row| row["current"] == true))
            .then(|| acks["configVersion"].as_u64().unwrap())
    })
    .await;

    let base = std::fs::read_to_string(registry.config.path.join("application.toml")).unwrap();
    registry.config.write("application.toml", &base.replace("timeout_millis = 2000", "timeout_millis = 1234"));
    let edited_at = Instant::now();
    eventually(Duration::from_secs(10), "all instances ack the edit", || async {
        let (_, acks) = get_json(&acks_url).await;
        let rows = acks["instances"].as_array()?;
        let version = acks["configVersion"].as_u64()?;
        (version != first_version && rows.len() == 3 && rows.iter().all(|row| row["appliedVersion"] == version))
            .then_some(())
    })
    .await;
    eprintln!("config edit applied and acked on 3 instances in {:?}", edited_at.elapsed());
    // The probe node applied the new resilience setting to its call site.
    ask(&probe, "probe", "RelayEcho", json!({"text": "x"})).await;
    let (_, tree) = get_json(&probe.url("/admin/v1/supervision")).await;
    assert_eq!(tree["callSites"][0]["settings"]["timeout_millis"], 1234, "{tree}");

    // An invalid edit is refused: the old version keeps being served.
    registry.config.write("application.toml", &format!("{base}\n[log]\nlevle = \"debug\"\n"));
    let response = client()
        .post(registry.node.url("/registry/v1/config/refresh"))
        .header("authorization", auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let (status, body) = get_json(&echo.url("/health/ready")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_directory_keeps_routing_while_the_registry_is_down() {
    let mut registry = start_registry("reg-outage");
    let _echo = start_node("echo-outage", "echo", &registry.url);
    let probe = start_node("probe-outage", "probe", &registry.url);
    eventually(Duration::from_secs(10), "relay works", || async {
        (ask(&probe, "probe", "RelayEcho", json!({"text": "x"})).await.0 == 200).then_some(())
    })
    .await;

    registry.node.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..10 {
        let (status, body) = ask(&probe, "probe", "RelayEcho", json!({"text": "during outage"})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, tree) = get_json(&probe.url("/admin/v1/supervision")).await;
    assert_eq!(tree["directory"]["stale"], true, "{tree}");

    // The registry comes back with no memory: nodes register again.
    registry.node.restart();
    eventually(Duration::from_secs(10), "instances re-registered", || async {
        let echo = instances(&registry.node, "echo").await;
        let probe = instances(&registry.node, "probe").await;
        (echo.len() == 1 && probe.len() == 1).then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "directory fresh again", || async {
        let (_, tree) = get_json(&probe.url("/admin/v1/supervision")).await;
        (tree["directory"]["stale"] == false).then_some(())
    })
    .await;
}

#[test]
fn bad_flags_unknown_roles_and_taken_ports_exit_with_one_line() {
    let run = |args: &[&str]| {
        let output =
            std::process::Command::new(env!("CARGO_BIN_EXE_emporium")).args(args).env_clear().output().unwrap();
        (output.status, String::from_utf8_lossy(&output.stderr).to_string())
    };
    let (status, stderr) = run(&["--no-such-flag"]);
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--no-such-flag"), "{stderr}");

    let (status, stderr) = run(&["--role", "wizard"]);
    assert!(!status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown role \"wizard\""), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (status, stderr) = run(&["--role", "echo", "--listen", &address]);
    assert!(!status.success());
    let error_lines: Vec<_> = stderr.lines().filter(|line| line.starts_with("emporium:")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(error_lines[0].contains(&format!("cannot listen on {address}")), "{stderr}");
}

#[tokio::test]
async fn metrics_show_asks_actors_breakers_and_leases() {
    let registry = start_registry("reg-metrics");
    let _echo = start_node("echo-metrics", "echo", &registry.url);
    let probe = start_node("probe-metrics", "probe", &registry.url);
    eventually(Duration::from_secs(10), "relay works", || async {
        (ask(&probe, "probe", "RelayEcho", json!({"text": "x"})).await.0 == 200).then_some(())
    })
    .await;
    let text = |node: &NodeProcess| {
        let url = node.url("/metrics");
        async move { client().get(url).send().await.unwrap().text().await.unwrap() }
    };
    let probe_metrics = text(&probe).await;
    for expected in [
        "emporium_asks_total{service=\"echo\",message=\"Echo\",path=\"remote\",outcome=\"ok\"}",
        "emporium_ask_duration_seconds_bucket{service=\"echo\",message=\"Echo\",path=\"remote\"",
        "emporium_breaker_state{service=\"echo\"} 0",
        "emporium_actor_mailbox_depth{actor=\"probe/caller\"}",
        "emporium_actor_restarts_total{actor=\"probe/caller\"} 0",
        "emporium_cluster_requests_total{service=\"probe\",message=\"RelayEcho\",status=\"200\"}",
        "emporium_http_requests_total{listener=\"cluster\",route=\"/cluster/v1/ask/{service}/{message}\"",
        "emporium_directory_stale 0",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "emporium_build_info{version=",
    ] {
        assert!(probe_metrics.contains(expected), "missing {expected} in:\n{probe_metrics}");
    }
    let registry_metrics = text(&registry.node).await;
    assert!(registry_metrics.contains("emporium_registry_instances{"), "{registry_metrics}");
}

#[tokio::test]
async fn reservations_are_asked_from_another_node_and_never_oversell() {
    let registry = start_registry("reg-reserve");
    let data = DataDir::new();
    let inventory = start_node_with_data("inventory-reserve", "inventory", &registry.url, &data);
    let probe = start_node("probe-reserve", "probe", &registry.url);
    let admin = json!({"userId": "admin-1", "roles": ["admin"], "tokenId": "t"});
    let set = json!({"caller": admin, "sku": "LAST-FIVE", "request": {"available": 5, "reorderLevel": 0, "reorderQuantity": 0}});
    assert_eq!(ask(&inventory, "inventory", "SetStock", set).await.0, 200);

    let request = json!({"request": {"orderId": "order-1", "lines": [{"sku": "LAST-FIVE", "quantity": 2}]}});
    let reservation = eventually(Duration::from_secs(10), "reservation through the probe", || async {
        let (status, body) = ask(&probe, "probe", "RelayReserveStock", request.clone()).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(reservation["status"], "RESERVED");
    // The same order again: the same reservation, no second hold.
    let (status, again) = ask(&probe, "probe", "RelayReserveStock", request.clone()).await;
    assert_eq!((status, again), (200, reservation));

    // 20 concurrent one-unit reservations for the 3 units left.
    let (status, run) =
        ask(&probe, "probe", "MeasureReservations", json!({"count": 20, "concurrency": 20, "sku": "LAST-FIVE"})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["numOk"], 3, "{run}");
    assert_eq!(run["numErrors"], 17, "{run}");
    let errors = run["errors"].as_object().unwrap();
    assert!(errors.keys().all(|error| error.starts_with("out_of_stock")), "{run}");
    let (_, stock) = ask(&inventory, "inventory", "GetStock", json!({"sku": "LAST-FIVE"})).await;
    assert_eq!((stock["available"].as_u64(), stock["reserved"].as_u64()), (Some(0), Some(5)));
}
