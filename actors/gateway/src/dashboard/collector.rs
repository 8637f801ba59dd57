//! The one collector of a gateway's dashboard data: while at least one page is open it builds
//! a [`ClusterView`] every second (one registry round and one supervision read per node, however
//! many pages watch) and shares it with every open stream; with no page open it sleeps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use emporium_cluster::Cluster;
use emporium_cluster::admin::NodeAdminClient;
use emporium_cluster::registry_client::RegistryClient;
use emporium_cluster::settings::Settings;
use emporium_contracts::registry::InstanceInfo;
use futures::future::join_all;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::view::{ClusterView, JOURNAL_SENT, Timeline, node_views, registry_view};

/// How often open pages get a new view.
pub const VIEW_PERIOD: Duration = Duration::from_secs(1);
/// How long one registry call or one node's snapshot may take before the view goes without it.
const READ_BUDGET: Duration = Duration::from_millis(800);

/// A view serialized once for every stream.
pub type SharedView = Option<Arc<String>>;

/// The collector.
pub struct Collector {
    registry: RegistryClient,
    nodes: NodeAdminClient,
    cluster: Cluster,
    settings: watch::Receiver<Arc<Settings>>,
    timeline: Mutex<Timeline>,
    views_tx: watch::Sender<SharedView>,
    page_opened: Notify,
}

impl Collector {
    /// A collector reading from `registry` and the nodes (with `nodes`), falling back on the
    /// gateway's own directory (`cluster`) while the registry does not answer.
    pub fn new(
        registry: RegistryClient,
        nodes: NodeAdminClient,
        cluster: Cluster,
        settings: watch::Receiver<Arc<Settings>>,
    ) -> Arc<Collector> {
        let (views_tx, _) = watch::channel(None);
        Arc::new(Collector {
            registry,
            nodes,
            cluster,
            settings,
            timeline: Mutex::default(),
            views_tx,
            page_opened: Notify::new(),
        })
    }

    /// The views for one open page, the latest at once.
    pub fn subscribe(&self) -> watch::Receiver<SharedView> {
        let mut views_rx = self.views_tx.subscribe();
        views_rx.mark_changed();
        self.page_opened.notify_one();
        views_rx
    }

    /// Builds views while pages are open; runs until the gateway stops.
    pub async fn run(self: Arc<Self>) {
        loop {
            if self.views_tx.receiver_count() == 0 {
                self.page_opened.notified().await;
                continue;
            }
            let view = self.collect().await;
            match serde_json::to_string(&view) {
                Ok(text) => {
                    self.views_tx.send_replace(Some(Arc::new(text)));
                }
                Err(error) => tracing::error!(error = %error, "the dashboard view does not serialize"),
            }
            tokio::time::sleep(VIEW_PERIOD).await;
        }
    }

    /// The instances as the registry lists them now, or this gateway's directory when the
    /// registry does not answer; `true` when they come from the registry.
    pub async fn instances(&self) -> (Vec<InstanceInfo>, bool) {
        match tokio::time::timeout(READ_BUDGET, self.registry.instances()).await {
            Ok(Ok(instances)) => (instances, true),
            _ => (self.cluster.directory().snapshot().instances, false),
        }
    }

    /// The cluster listener of `node_id`, from the registry (or the directory).
    pub async fn node_address(&self, node_id: &str) -> Option<String> {
        let (instances, _) = self.instances().await;
        instances
            .into_iter()
            .find(|instance| instance.node_id == node_id && instance.is_emporium_node())
            .map(|instance| instance.address)
    }

    /// Every node's cluster listener, by node id.
    pub async fn node_addresses(&self) -> BTreeMap<String, String> {
        let (instances, _) = self.instances().await;
        instances
            .into_iter()
            .filter(InstanceInfo::is_emporium_node)
            .map(|instance| (instance.node_id, instance.address))
            .collect()
    }

    /// One view of the cluster now.
    pub async fn collect(&self) -> ClusterView {
        let state = async { tokio::time::timeout(READ_BUDGET, self.registry.state()).await.ok().and_then(Result::ok) };
        let journal = async {
            tokio::time::timeout(READ_BUDGET, self.registry.journal(JOURNAL_SENT)).await.ok().and_then(Result::ok)
        };
        let ((instances, reachable), state, journal) = futures::join!(self.instances(), state, journal);
        // The cluster credential goes to Emporium nodes only, not to services registered
        // through the Eureka API.
        let addresses: BTreeMap<String, String> = instances
            .iter()
            .filter(|instance| instance.is_emporium_node())
            .map(|instance| (instance.node_id.clone(), instance.address.clone()))
            .collect();
        let reads = addresses.iter().map(|(node_id, address)| async move {
            let snapshot = tokio::time::timeout(READ_BUDGET, self.nodes.supervision(address)).await;
            (node_id.clone(), snapshot.ok().and_then(Result::ok))
        });
        let snapshots: BTreeMap<String, Value> =
            join_all(reads).await.into_iter().filter_map(|(node_id, snapshot)| Some((node_id, snapshot?))).collect();
        let journal = journal.unwrap_or_default();
        let faults = {
            let mut timeline = self.timeline.lock();
            for (node_id, snapshot) in &snapshots {
                timeline.add_faults(node_id, snapshot);
            }
            timeline.add_evictions(&journal);
            timeline.newest()
        };
        let lease_millis = self.settings.borrow().registry.lease_millis;
        ClusterView {
            at: Utc::now(),
            registry: registry_view(state.as_ref(), reachable && state.is_some()),
            nodes: node_views(instances, &snapshots, lease_millis, Utc::now()),
            faults,
            journal,
        }
    }
}
