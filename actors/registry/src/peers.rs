//! Registry peers: several registries (`--role registry --registry URL1,URL2,URL3`) hold the
//! same directory with no leader and no single point of failure, as Eureka's peers do.
//!
//! Each registry sends its whole view ([`PeerSync`]: every instance with the time of the last
//! renewal it saw and of its last change, the acks, and the instances it removed lately) to
//! every peer after each change and every [`SYNC_PERIOD`]; a peer merges it entry by entry
//! ([`crate::state::InstanceTable::merge_peer`]): the newest renewal renews the lease, the
//! newest change wins the status and registration, a removal applies to copies renewed no later
//! than it. So a registration, a status override or an eviction reaches every peer within one
//! round trip, a peer that was down or cut off converges within a period of coming back, and a
//! stale copy (its lease run out, or renewed before a known removal) never comes back.
//!
//! Limits: eventually consistent (a read from two peers may differ for about a period); the
//! wall clocks of the registries must agree to well under a lease (renewal times cross
//! machines); each round sends the whole directory, which suits hundreds of instances, not
//! hundreds of thousands. Configuration is not replicated: each registry serves its own
//! `config/` (the same files give the same version everywhere), and self-preservation is each
//! peer's own.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use emporium_cluster::credential::ClusterSecret;
use emporium_contracts::registry::{PeerSync, PeerSyncReply};
use tokio::sync::watch;

/// How often a registry sends its view to its peers when nothing changed (renewals).
pub const SYNC_PERIOD: Duration = Duration::from_millis(500);

/// How long a peer may take to answer one round.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// The path peers post their views to.
pub const SYNC_PATH: &str = "/registry/v1/peers/sync";

/// The sending side: the registry actor hands its latest view here; a task sends it to every
/// peer, the latest one only when the peers are slower than the changes.
pub(crate) struct PeerLink {
    registry_id: String,
    latest: watch::Sender<Option<Arc<PeerSync>>>,
}

impl PeerLink {
    /// Starts sending to `urls` (this registry's own URL may be among them: it finds out and
    /// leaves it), with the cluster credential `secret`.
    pub(crate) fn start(urls: Vec<String>, secret: ClusterSecret, registry_id: String) -> PeerLink {
        let (latest, views) = watch::channel(None);
        let own_id = registry_id.clone();
        actix::spawn(async move { send_views(urls, secret, own_id, views).await });
        PeerLink { registry_id, latest }
    }

    /// This registry's id.
    pub(crate) fn registry_id(&self) -> &str {
        &self.registry_id
    }

    /// Sends `view` to every peer (replacing one not sent yet).
    pub(crate) fn send(&self, view: PeerSync) {
        self.latest.send_replace(Some(Arc::new(view)));
    }
}

/// Sends each new view to every peer, and the last one again every [`SYNC_PERIOD`].
async fn send_views(
    urls: Vec<String>,
    secret: ClusterSecret,
    own_id: String,
    mut views: watch::Receiver<Option<Arc<PeerSync>>>,
) {
    let http = match reqwest::Client::builder().timeout(PEER_TIMEOUT).connect_timeout(PEER_TIMEOUT / 2).build() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(error = %error, "registry peers: no HTTP client; this registry replicates nothing");
            return;
        }
    };
    let mut myself: HashSet<String> = HashSet::new();
    let mut unreachable: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            changed = views.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(SYNC_PERIOD) => {}
        }
        let Some(view) = views.borrow_and_update().clone() else { continue };
        let body = match serde_json::to_vec(&*view) {
            Ok(body) => bytes::Bytes::from(body),
            Err(error) => {
                tracing::error!(error = %error, "registry peers: the view does not serialize");
                continue;
            }
        };
        let peers: Vec<&String> = urls.iter().filter(|url| !myself.contains(*url)).collect();
        let rounds = peers.iter().map(|url| {
            let request = http
                .post(format!("{url}{SYNC_PATH}"))
                .header(reqwest::header::AUTHORIZATION, secret.header_value())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            async move {
                let response = request.send().await.map_err(|error| error.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("answered {}", response.status()));
                }
                response.json::<PeerSyncReply>().await.map_err(|error| error.to_string())
            }
        });
        let answers = futures::future::join_all(rounds).await;
        for (url, answer) in peers.into_iter().zip(answers) {
            match answer {
                Ok(reply) if reply.registry_id == own_id => {
                    tracing::info!(url = %url, "registry peers: this URL is this registry; not sending to it");
                    myself.insert(url.clone());
                }
                Ok(_) => {
                    if unreachable.remove(url) {
                        tracing::info!(url = %url, "registry peer reachable again");
                    }
                }
                Err(error) => {
                    if unreachable.insert(url.clone()) {
                        tracing::warn!(url = %url, error = %error, "registry peer unreachable; will keep trying");
                    }
                }
            }
        }
        let num_peers = urls.len() - myself.len();
        metrics::gauge!("emporium_registry_peers").set(num_peers as f64);
        metrics::gauge!("emporium_registry_peers_reachable").set(num_peers.saturating_sub(unreachable.len()) as f64);
    }
}

/// A random id for this registry's run.
pub(crate) fn new_registry_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
