//! The gateway's key refresh as `start` runs it: a supervised task in the gateway's group,
//! shown in the supervision snapshot, asking the key refresher at start, and ended by the
//! node's stop signal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emporium_cluster::{ServiceContext, Settings};
use emporium_gateway::GatewayOptions;
use emporium_runtime::monitor::{ActorSnapshot, ActorStatus};
use tokio::sync::watch;

fn actor(ctx: &ServiceContext, path: &str) -> ActorSnapshot {
    let snapshot = ctx.tree.snapshot();
    let gateway = snapshot.services.into_iter().find(|service| service.service == "gateway").expect("in the tree");
    gateway.actors.into_iter().find(|actor| actor.path == path).unwrap_or_else(|| panic!("{path} in the tree"))
}

#[actix_web::test]
async fn the_key_refresh_is_a_supervised_task_that_ends_on_the_stop_signal() {
    let (_settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
    let ctx = ServiceContext::standalone("gateway-task-test", settings_rx);
    let options = GatewayOptions {
        listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        routes: Vec::new(),
        openapi: Vec::new(),
        settings: emporium_gateway::GatewaySettings::default(),
        registry: None,
    };
    let gateway = emporium_gateway::start(ctx.clone(), options).unwrap();

    assert_eq!(actor(&ctx, "gateway/key-refresh").status, ActorStatus::Running);
    // Its first fetch, at start, reaches the refresher (which cannot reach an auth service here).
    let started = Instant::now();
    while actor(&ctx, "gateway/keys").num_handled < 1 {
        assert!(started.elapsed() < Duration::from_secs(10), "the key refresh never asked the refresher");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(ctx.lifecycle.stop(Duration::from_secs(5)).await, Vec::<String>::new(), "the key refresh ended");
    let snapshot = ctx.tree.snapshot();
    assert!(snapshot.faults.is_empty(), "{:?}", snapshot.faults);
    gateway.server.stop(true).await;
}
