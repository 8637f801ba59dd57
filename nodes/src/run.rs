//! Running one node: flags and environment to [`NodeOptions`], telemetry, the roles' services,
//! then serve until SIGTERM or Ctrl-C.

use std::time::Duration;

use emporium_cluster::service::NodePaths;
use emporium_cluster::trace_export::{TraceExport, TraceExportSettings};
use emporium_cluster::{ClusterSecret, Node, NodeOptions, NodeSetup, Telemetry};

use crate::cli::Cli;
use crate::services;

fn generated_node_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("node-{}", &id[..8])
}

/// Runs one node with the roles of `cli` until SIGTERM or Ctrl-C.
pub async fn run_node(cli: Cli) -> anyhow::Result<()> {
    let initial_level = std::env::var("EMPORIUM__LOG__LEVEL").ok().filter(|level| !level.trim().is_empty());
    let telemetry = Telemetry::init(initial_level.as_deref().unwrap_or("info")).map_err(anyhow::Error::msg)?;
    // Secrets from Vault are read before anything uses a secret; the session renews the token
    // until the node stops.
    let (environment, mut vault) = emporium_cluster::vault::process_environment().await?;
    let env_overrides = environment.config_overrides();

    let roles = cli.role.0.clone();
    let catalog = services::catalog();
    let has_registry = roles.contains(&"registry");
    let registry_urls = if !cli.registry.is_empty() {
        cli.registry.clone()
    } else if has_registry {
        Vec::new()
    } else {
        vec!["http://127.0.0.1:8761".to_string()]
    };
    let secret = match environment.secret("EMPORIUM_CLUSTER_SECRET")? {
        Some(secret) => ClusterSecret::new(secret).map_err(anyhow::Error::msg)?,
        None => {
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
        roles: roles.iter().map(|role| role.to_string()).collect(),
        listen,
        advertise: cli.advertise.clone(),
        registry_urls,
        profile: cli.profile.clone(),
        secret: secret.clone(),
        env_overrides,
        version: env!("CARGO_PKG_VERSION").to_string(),
        drain_timeout: Duration::from_secs(10),
        settings_schema: catalog.settings_schema(),
    };
    // Spans are always kept in the node's recent-trace ring (the dashboard's click-through);
    // exported over OTLP too when a collector is configured.
    let (trace_export, export_sink) =
        match TraceExportSettings::from_environment(&environment, &options.roles).map_err(anyhow::Error::msg)? {
            Some(settings) => {
                let (export, sink) = TraceExport::start(&settings, &options.node_id).map_err(anyhow::Error::msg)?;
                (Some(export), Some(sink))
            }
            None => (None, None),
        };
    emporium_cluster::recent::install_span_sink(export_sink).map_err(anyhow::Error::msg)?;
    let node = Node::bind(options, telemetry)?;
    if !has_registry {
        node.prefetch_config(Duration::from_secs(1)).await;
    }
    let paths = NodePaths {
        data_dir: cli.data_dir.clone(),
        config_dir: cli.config_dir.clone().or_else(|| {
            let default = std::path::PathBuf::from("config");
            default.is_dir().then_some(default)
        }),
        config_repo: cli.config_repo.clone().map(|location| (location, cli.config_label.clone())),
        profile: cli.profile.clone(),
        http: cli.http,
    };
    let node = NodeSetup::new(node, catalog, roles, paths, environment).start_all().await?;
    crate::allocator::give_back_start_up_memory();
    let outcome = node.run(shutdown_signal()).await;
    if let Some(trace_export) = trace_export {
        // Sends the spans still queued; blocking, so off the async threads.
        let _ = tokio::task::spawn_blocking(move || trace_export.shutdown(Duration::from_secs(2))).await;
    }
    if let Some(vault) = vault.as_mut() {
        vault.stop();
    }
    outcome?;
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
