//! Follows the registry's watch stream into the directory, reconnecting with backoff; tells
//! the live configuration when the configuration version moved.

use std::time::Duration;

use emporium_contracts::registry::{InstanceStatus, WatchChange};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry_client::RegistryClient;
use crate::service_ref::Cluster;

/// Starts following the registry into `cluster`'s directory. `config_version_tx` receives
/// every configuration version the registry announces. An instance that (re-)registers UP lets
/// the open circuit breaker of its service probe at once.
pub fn start(
    client: RegistryClient,
    cluster: Cluster,
    config_version_tx: watch::Sender<u64>,
    ping_interval: Duration,
    node_id: String,
) -> JoinHandle<()> {
    let directory = cluster.directory().clone();
    let call_sites = cluster.clone();
    tokio::spawn(async move {
        let call_sites = call_sites.call_sites();
        let mut backoff = Duration::from_millis(50);
        let mut was_connected = false;
        loop {
            match client.watch(None, ping_interval * 3, Some(&node_id)).await {
                Ok(events) => {
                    let mut events = std::pin::pin!(events);
                    if !was_connected {
                        tracing::info!("following the registry's watch stream");
                    }
                    was_connected = true;
                    backoff = Duration::from_millis(50);
                    while let Some(event) = events.next().await {
                        match event {
                            Ok(event) => {
                                let config_version = match &event.change {
                                    WatchChange::Snapshot { state, .. } => Some(state.config_version),
                                    WatchChange::ConfigChanged { config_version } => Some(*config_version),
                                    _ => None,
                                };
                                // Registered (first time, or again after a restart under the
                                // same id) or back UP: heartbeats do not emit upserts. A
                                // snapshot counts too: a node that just started may have opened
                                // breakers while it knew no instance yet.
                                let came_up: Vec<String> = match &event.change {
                                    WatchChange::InstanceUpserted { instance }
                                        if instance.status == InstanceStatus::Up =>
                                    {
                                        vec![instance.service.clone()]
                                    }
                                    WatchChange::Snapshot { instances, .. } => instances
                                        .iter()
                                        .filter(|instance| instance.status == InstanceStatus::Up)
                                        .map(|instance| instance.service.clone())
                                        .collect(),
                                    _ => Vec::new(),
                                };
                                directory.apply(event);
                                for service in came_up {
                                    call_sites.instance_came_up(&service);
                                }
                                if let Some(version) = config_version {
                                    config_version_tx.send_if_modified(|current| {
                                        let changed = *current != version;
                                        *current = version;
                                        changed
                                    });
                                }
                            }
                            Err(reason) => {
                                tracing::warn!(reason = %reason, "watch stream ended");
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    if was_connected {
                        tracing::warn!(error = %error, "registry unreachable; routing from the stale directory");
                        was_connected = false;
                    }
                }
            }
            directory.mark_stale();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    })
}
