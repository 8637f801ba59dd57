//! The node's directory cache: every instance the registry knows, fed by the watch stream.
//!
//! While the registry is unreachable the directory keeps its last known instances and says it
//! is stale; it is never emptied by surprise. Instances that refused a connection are set
//! aside for a moment so the next calls go elsewhere before the registry evicts them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use emporium_contracts::registry::{InstanceInfo, InstanceStatus, RegistryState, WatchChange, WatchEvent};
use parking_lot::RwLock;
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;

/// How long an instance that refused a connection is skipped.
const SET_ASIDE_FOR: Duration = Duration::from_secs(2);

/// One instance with its live in-flight count, as the transport picks from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The instance.
    pub instance: InstanceInfo,
    in_flight: Arc<AtomicUsize>,
}

impl Endpoint {
    /// Calls in flight to this instance from this node.
    pub fn num_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a call in flight until the guard drops.
    pub fn track(&self) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightGuard { in_flight: self.in_flight.clone() }
    }
}

/// Decrements an instance's in-flight count when dropped.
pub struct InFlightGuard {
    in_flight: Arc<AtomicUsize>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the directory shows about itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySnapshot {
    /// The registry version last applied.
    pub version: u64,
    /// True while the watch stream is down: instances are the last known ones.
    pub stale: bool,
    /// When the last event or snapshot arrived.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The registry's state as last seen.
    pub registry: RegistryState,
    /// Every known instance.
    pub instances: Vec<InstanceInfo>,
}

#[derive(Default)]
struct DirectoryState {
    version: u64,
    stale: bool,
    synced: bool,
    last_synced_at: Option<DateTime<Utc>>,
    registry: RegistryState,
    endpoints: BTreeMap<String, Endpoint>,
    in_flight_by_id: HashMap<String, Arc<AtomicUsize>>,
    set_aside_until: HashMap<String, Instant>,
}

/// The directory cache; cheap to clone.
#[derive(Clone)]
pub struct Directory {
    state: Arc<RwLock<DirectoryState>>,
    version_tx: Arc<watch::Sender<u64>>,
}

impl Default for Directory {
    fn default() -> Self {
        let (version_tx, _) = watch::channel(0);
        Directory { state: Arc::default(), version_tx: Arc::new(version_tx) }
    }
}

impl Directory {
    /// An empty directory (stale until the first snapshot).
    pub fn new() -> Self {
        let directory = Directory::default();
        directory.state.write().stale = true;
        directory
    }

    /// Applies one event of the watch stream.
    pub fn apply(&self, event: WatchEvent) {
        let mut state = self.state.write();
        match event.change {
            WatchChange::Snapshot { instances, state: registry } => {
                state.endpoints.clear();
                for instance in instances {
                    upsert(&mut state, instance);
                }
                state.registry = registry;
                state.synced = true;
            }
            WatchChange::InstanceUpserted { instance } => upsert(&mut state, instance),
            WatchChange::InstanceRemoved { id, .. } => {
                state.endpoints.remove(&id);
                state.in_flight_by_id.remove(&id);
            }
            WatchChange::StateChanged { state: registry } => state.registry = registry,
            WatchChange::ConfigChanged { config_version } => state.registry.config_version = config_version,
        }
        state.version = event.version;
        state.registry.version = event.version;
        state.stale = false;
        state.last_synced_at = Some(Utc::now());
        drop(state);
        self.version_tx.send_replace(event.version);
    }

    /// The watch stream broke: keep the instances, flag them stale.
    pub fn mark_stale(&self) {
        self.state.write().stale = true;
    }

    /// Whether the directory has not heard from the registry since its stream broke.
    pub fn is_stale(&self) -> bool {
        self.state.read().stale
    }

    /// Whether a snapshot ever arrived.
    pub fn is_synced(&self) -> bool {
        self.state.read().synced
    }

    /// Follows the applied registry version.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// Sets an instance aside for a moment after it refused a connection.
    pub fn set_aside(&self, instance_id: &str) {
        self.state.write().set_aside_until.insert(instance_id.to_string(), Instant::now() + SET_ASIDE_FOR);
    }

    /// The UP instances of `service` not in `exclude`, without those set aside unless every
    /// one is (a slow instance is still better than none). Only Emporium nodes answer asks:
    /// instances registered through the Eureka API are never candidates.
    pub fn candidates(&self, service: &str, exclude: &[String]) -> Vec<Endpoint> {
        let now = Instant::now();
        let state = self.state.read();
        let (fresh, set_aside): (Vec<Endpoint>, Vec<Endpoint>) = state
            .endpoints
            .values()
            .filter(|endpoint| endpoint.instance.service == service && endpoint.instance.status == InstanceStatus::Up)
            .filter(|endpoint| endpoint.instance.is_emporium_node() && !exclude.contains(&endpoint.instance.id))
            .cloned()
            .partition(|endpoint| state.set_aside_until.get(&endpoint.instance.id).is_none_or(|until| *until <= now));
        if fresh.is_empty() { set_aside } else { fresh }
    }

    /// Picks an instance of `service` by the power of two choices on in-flight calls.
    pub fn pick(&self, service: &str, exclude: &[String]) -> Option<Endpoint> {
        let candidates = self.candidates(service, exclude);
        match candidates.len() {
            0 => None,
            1 => candidates.into_iter().next(),
            len => {
                let mut rng = rand::rng();
                let first = rng.random_range(0..len);
                let mut second = rng.random_range(0..len - 1);
                if second >= first {
                    second += 1;
                }
                let pick =
                    if candidates[second].num_in_flight() < candidates[first].num_in_flight() { second } else { first };
                candidates.into_iter().nth(pick)
            }
        }
    }

    /// Every known instance, sorted by service and id.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        let mut instances: Vec<_> =
            self.state.read().endpoints.values().map(|endpoint| endpoint.instance.clone()).collect();
        instances.sort_by(|left, right| (&left.service, &left.id).cmp(&(&right.service, &right.id)));
        instances
    }

    /// A serializable copy.
    pub fn snapshot(&self) -> DirectorySnapshot {
        let state = self.state.read();
        DirectorySnapshot {
            version: state.version,
            stale: state.stale,
            last_synced_at: state.last_synced_at,
            registry: state.registry.clone(),
            instances: state.endpoints.values().map(|endpoint| endpoint.instance.clone()).collect(),
        }
    }
}

fn upsert(state: &mut DirectoryState, instance: InstanceInfo) {
    let in_flight = state.in_flight_by_id.entry(instance.id.clone()).or_default().clone();
    state.endpoints.insert(instance.id.clone(), Endpoint { instance, in_flight });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, service: &str, status: InstanceStatus) -> InstanceInfo {
        InstanceInfo {
            id: id.into(),
            service: service.into(),
            node_id: "n".into(),
            address: "127.0.0.1:1".into(),
            status,
            roles: vec![],
            version: String::new(),
            registered_at: Utc::now(),
            last_heartbeat_at: Utc::now(),
            metadata: Default::default(),
            lease_millis: None,
        }
    }

    fn snapshot(version: u64, instances: Vec<InstanceInfo>) -> WatchEvent {
        WatchEvent { version, change: WatchChange::Snapshot { instances, state: RegistryState::default() } }
    }

    #[test]
    fn only_up_instances_of_the_service_in_emporium_nodes_are_candidates() {
        let directory = Directory::new();
        assert!(directory.is_stale());
        directory.apply(snapshot(
            3,
            vec![
                instance("a", "echo", InstanceStatus::Up),
                instance("b", "echo", InstanceStatus::Down),
                instance("c", "other", InstanceStatus::Up),
                {
                    let mut spring = instance("d", "echo", InstanceStatus::Up);
                    spring.metadata.insert("registeredThrough".into(), "eureka".into());
                    spring
                },
            ],
        ));
        assert!(!directory.is_stale());
        let ids: Vec<_> = directory.candidates("echo", &[]).into_iter().map(|e| e.instance.id).collect();
        assert_eq!(ids, vec!["a"]);
        assert!(directory.pick("echo", &["a".to_string()]).is_none());
    }

    #[test]
    fn stale_directory_keeps_its_instances_and_removal_events_apply() {
        let directory = Directory::new();
        directory.apply(snapshot(
            1,
            vec![instance("a", "echo", InstanceStatus::Up), instance("b", "echo", InstanceStatus::Up)],
        ));
        directory.mark_stale();
        assert!(directory.is_stale());
        assert_eq!(directory.candidates("echo", &[]).len(), 2);
        directory.apply(WatchEvent {
            version: 2,
            change: WatchChange::InstanceRemoved {
                id: "a".into(),
                service: "echo".into(),
                reason: emporium_contracts::registry::RemovalReason::LeaseExpired,
            },
        });
        assert_eq!(directory.instances().len(), 1);
        assert_eq!(directory.snapshot().version, 2);
    }

    #[test]
    fn power_of_two_choices_prefers_the_idle_instance() {
        let directory = Directory::new();
        directory.apply(snapshot(
            1,
            vec![instance("busy", "echo", InstanceStatus::Up), instance("idle", "echo", InstanceStatus::Up)],
        ));
        let busy = directory.candidates("echo", &["idle".to_string()]).remove(0);
        let _guards: Vec<_> = (0..5).map(|_| busy.track()).collect();
        for _ in 0..20 {
            assert_eq!(directory.pick("echo", &[]).unwrap().instance.id, "idle");
        }
    }

    #[test]
    fn an_instance_set_aside_is_skipped() {
        let directory = Directory::new();
        directory.apply(snapshot(
            1,
            vec![instance("a", "echo", InstanceStatus::Up), instance("b", "echo", InstanceStatus::Up)],
        ));
        directory.set_aside("a");
        for _ in 0..10 {
            assert_eq!(directory.pick("echo", &[]).unwrap().instance.id, "b");
        }
        directory.set_aside("b");
        assert_eq!(directory.candidates("echo", &[]).len(), 2, "when every instance is set aside, all are candidates");
    }
}
