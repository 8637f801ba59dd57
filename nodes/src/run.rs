//! Running one node: flags and environment to [`NodeOptions`], telemetry, the roles' services,
//! then serve until SIGTERM or Ctrl-C.

use std::time::Duration;

use emporium_cluster::{ClusterSecret, Node, NodeOptions, Telemetry};

use crate::cli::Cli;
use crate::roles::Role;
use crate::wiring::Wiring;

fn generated_node_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("node-{}", &id[..8])
}

/// Runs one node with the roles of `cli` until SIGTERM or Ctrl-C.
pub async fn run_node(cli: Cli) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let env_overrides: Vec<(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(emporium_cluster::settings::ENV_OVERRIDE_PREFIX))
        .cloned()
        .collect();
    let initial_level = env_overrides
        .iter()
        .find(|(name, _)| name == "EMPORIUM__LOG__LEVEL")
        .map_or("info", |(_, level)| level.as_str());
    let telemetry = Telemetry::init(initial_level).map_err(anyhow::Error::msg)?;

    let roles = cli.role.0.clone();
    let has_registry = roles.contains(&Role::Registry);
    let registry_urls = if !cli.registry.is_empty() {
        cli.registry.clone()
    } else if has_registry {
        Vec::new()
    } else {
        vec!["http://127.0.0.1:8761".to_string()]
    };
    let secret = match std::env::var("EMPORIUM_CLUSTER_SECRET") {
        Ok(secret) if !secret.is_empty() => ClusterSecret::new(secret).map_err(anyhow::Error::msg)?,
        _ => {
            if !registry_urls.is_empty() {
                tracing::warn!(
                    "EMPORIUM_CLUSTER_SECRET is unset: this node made up its own secret, so the registry and other nodes will refuse it"
                );
            }
            ClusterSecret::generate()
        }
    };
    let listen = cli.listen.unwrap_or_else(|| {
        if has_registry {
            "0.0.0.0:8761".parse().expect("valid address")
        } else {
            "127.0.0.1:0".parse().expect("valid address")
        }
    });
    let options = NodeOptions {
        node_id: cli.node_id.clone().unwrap_or_else(generated_node_id),
        roles: roles.iter().map(|role| role.name().to_string()).collect(),
        listen,
        advertise: cli.advertise.clone(),
        registry_urls,
        profile: cli.profile.clone(),
        secret: secret.clone(),
        env_overrides,
        version: env!("CARGO_PKG_VERSION").to_string(),
        drain_timeout: Duration::from_secs(10),
        settings_schema: Default::default(),
    };
    let mut node = Node::bind(options, telemetry)?;
    if !has_registry {
        node.prefetch_config(Duration::from_secs(1)).await;
    }
    let mut wiring = Wiring::new(&cli, env, secret);
    for role in &roles {
        wiring.start(&mut node, *role).await?;
    }
    wiring.finish(&node, has_registry);
    node.run(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
