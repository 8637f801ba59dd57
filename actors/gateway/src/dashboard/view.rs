//! The cluster as the dashboard shows it ([`ClusterView`]), assembled from the registry (its
//! instances with fresh heartbeat times, its state, its journal) and each node's supervision
//! snapshot. Faults are kept here too, so the timeline still shows those of a node that died.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use emporium_contracts::registry::{InstanceInfo, InstanceStatus, JournalEntry, RegistryState};
use serde::Serialize;
use serde_json::Value;

/// Timeline entries kept by a gateway (newest win).
pub const TIMELINE_CAPACITY: usize = 500;
/// Timeline entries sent with each view.
const TIMELINE_SENT: usize = 200;
/// Journal entries sent with each view.
pub const JOURNAL_SENT: usize = 100;

/// One view of the whole cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// When it was assembled.
    pub at: DateTime<Utc>,
    /// The registry as seen from this gateway.
    pub registry: RegistryView,
    /// Every registered node.
    pub nodes: Vec<NodeView>,
    /// Faults, breaker openings, dead letters, escalations and evictions, newest first.
    pub faults: Vec<Value>,
    /// The registry's event journal, newest first.
    pub journal: Vec<JournalEntry>,
}

/// The registry's side.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryView {
    /// Whether it answered this time.
    pub reachable: bool,
    /// Whether evictions are paused.
    pub self_preservation: bool,
    /// The version of its state.
    pub state_version: Option<u64>,
    /// The configuration version every instance should run.
    pub config_version: Option<u64>,
}

/// One node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// Its id.
    pub node_id: String,
    /// Its cluster listener.
    pub address: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Its build version.
    pub version: String,
    /// The worst status of its instances, or `UNREACHABLE` when it did not answer.
    pub status: String,
    /// Whether its supervision snapshot came back.
    pub reachable: bool,
    /// Since its last heartbeat.
    pub lease_age_millis: i64,
    /// Until its lease lapses.
    pub lease_expires_in_millis: i64,
    /// Since the node started.
    pub uptime_seconds: Option<f64>,
    /// Resident memory.
    pub rss_bytes: Option<u64>,
    /// CPU time used.
    pub cpu_seconds: Option<f64>,
    /// Its log filter.
    pub log_level: Option<String>,
    /// Whether faults may be injected.
    pub chaos_enabled: bool,
    /// The configuration version it applied.
    pub config_version_applied: Option<u64>,
    /// Its instances, as the registry lists them.
    pub instances: Vec<InstanceInfo>,
    /// Its supervision tree (services, their policy and actors).
    pub services: Vec<Value>,
    /// Its call sites and breakers.
    pub call_sites: Vec<Value>,
    /// Its outbox lag, when it runs the bus.
    pub outbox: Value,
    /// Its consumers, when it runs the bus.
    pub consumers: Vec<Value>,
}

/// The worst of the statuses, as an operator ranks them.
fn worst_status(instances: &[InstanceInfo]) -> &'static str {
    let rank = |status: InstanceStatus| match status {
        InstanceStatus::Up => 0,
        InstanceStatus::Starting => 1,
        InstanceStatus::OutOfService => 2,
        InstanceStatus::Down => 3,
    };
    match instances.iter().map(|instance| instance.status).max_by_key(|status| rank(*status)) {
        Some(InstanceStatus::Up) | None => "UP",
        Some(InstanceStatus::Starting) => "STARTING",
        Some(InstanceStatus::OutOfService) => "OUT_OF_SERVICE",
        Some(InstanceStatus::Down) => "DOWN",
    }
}

/// The nodes of `instances`, each with its supervision snapshot (`None`: it did not answer).
pub fn node_views(
    instances: Vec<InstanceInfo>,
    snapshots: &BTreeMap<String, Value>,
    lease_millis: u64,
    now: DateTime<Utc>,
) -> Vec<NodeView> {
    let mut by_node: BTreeMap<String, Vec<InstanceInfo>> = BTreeMap::new();
    for instance in instances {
        by_node.entry(instance.node_id.clone()).or_default().push(instance);
    }
    by_node
        .into_iter()
        .map(|(node_id, instances)| {
            let first = &instances[0];
            let last_heartbeat = instances.iter().map(|instance| instance.last_heartbeat_at).max().unwrap_or(now);
            let lease_age_millis = (now - last_heartbeat).num_milliseconds().max(0);
            let snapshot = snapshots.get(&node_id);
            let process = snapshot.map(|snapshot| &snapshot["process"]);
            let sections = snapshot.map(|snapshot| &snapshot["sections"]);
            NodeView {
                address: first.address.clone(),
                roles: first.roles.clone(),
                version: first.version.clone(),
                status: if snapshot.is_some() { worst_status(&instances) } else { "UNREACHABLE" }.to_string(),
                reachable: snapshot.is_some(),
                lease_age_millis,
                lease_expires_in_millis: lease_millis as i64 - lease_age_millis,
                uptime_seconds: snapshot.and_then(|snapshot| snapshot["uptimeSeconds"].as_f64()),
                rss_bytes: process.and_then(|process| process["rssBytes"].as_u64()),
                cpu_seconds: process.and_then(|process| process["cpuSeconds"].as_f64()),
                log_level: snapshot.and_then(|snapshot| snapshot["logLevel"].as_str()).map(str::to_string),
                chaos_enabled: snapshot.and_then(|snapshot| snapshot["chaosEnabled"].as_bool()).unwrap_or(false),
                config_version_applied: snapshot.and_then(|snapshot| snapshot["configVersion"].as_u64()),
                services: array(snapshot.map(|snapshot| &snapshot["node"]["services"])),
                call_sites: array(snapshot.map(|snapshot| &snapshot["callSites"])),
                outbox: sections.map(|sections| sections["outbox"].clone()).unwrap_or(Value::Null),
                consumers: array(sections.map(|sections| &sections["consumers"])),
                node_id,
                instances,
            }
        })
        .collect()
}

fn array(value: Option<&Value>) -> Vec<Value> {
    value.and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The registry's side from what it answered.
pub fn registry_view(state: Option<&RegistryState>, reachable: bool) -> RegistryView {
    RegistryView {
        reachable,
        self_preservation: state.is_some_and(|state| state.self_preservation),
        state_version: state.map(|state| state.version),
        config_version: state.map(|state| state.config_version),
    }
}

/// The faults and evictions seen so far, by time, bounded.
#[derive(Debug, Default)]
pub struct Timeline {
    entries: BTreeMap<(DateTime<Utc>, String), Value>,
}

impl Timeline {
    /// Adds the faults of a node's snapshot (kept by key: seen again, nothing changes).
    pub fn add_faults(&mut self, node_id: &str, snapshot: &Value) {
        for fault in snapshot["node"]["faults"].as_array().into_iter().flatten() {
            let Some(at) = fault["at"].as_str().and_then(|at| at.parse::<DateTime<Utc>>().ok()) else { continue };
            let key = format!("{node_id}/{}", fault["id"]);
            let entry = serde_json::json!({
                "key": key,
                "at": fault["at"],
                "nodeId": node_id,
                "kind": fault["kind"],
                "actorPath": fault["actorPath"],
                "messageType": fault["messageType"],
                "error": fault["error"],
                "traceId": fault.get("traceId").cloned().unwrap_or(Value::Null),
                "backtrace": fault.get("backtrace").cloned().unwrap_or(Value::Null),
                "flightRecord": fault["flightRecord"],
            });
            self.insert(at, key, entry);
        }
    }

    /// Adds the evictions the registry's journal tells of.
    pub fn add_evictions(&mut self, journal: &[JournalEntry]) {
        for entry in journal.iter().filter(|entry| entry.action == "instance_evicted") {
            let key = format!("journal/{}/{}", entry.id, entry.target);
            // Instance ids are `service@node`.
            let node_id = entry.target.rsplit_once('@').map_or(entry.target.as_str(), |(_, node)| node);
            let value = serde_json::json!({
                "key": key,
                "at": entry.at,
                "nodeId": node_id,
                "kind": "eviction",
                "actorPath": Value::Null,
                "messageType": Value::Null,
                "error": format!("{} evicted: {}", entry.target, entry.detail),
                "traceId": Value::Null,
                "backtrace": Value::Null,
                "flightRecord": [],
            });
            self.insert(entry.at, key, value);
        }
    }

    fn insert(&mut self, at: DateTime<Utc>, key: String, entry: Value) {
        self.entries.entry((at, key)).or_insert(entry);
        while self.entries.len() > TIMELINE_CAPACITY {
            self.entries.pop_first();
        }
    }

    /// The newest entries first.
    pub fn newest(&self) -> Vec<Value> {
        self.entries.values().rev().take(TIMELINE_SENT).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn instance(node_id: &str, service: &str, status: InstanceStatus, heartbeat: DateTime<Utc>) -> InstanceInfo {
        InstanceInfo {
            id: format!("{service}@{node_id}"),
            service: service.into(),
            node_id: node_id.into(),
            address: "127.0.0.1:9000".into(),
            status,
            roles: vec![service.into()],
            version: "0.1.0".into(),
            registered_at: heartbeat,
            last_heartbeat_at: heartbeat,
            metadata: BTreeMap::new(),
            lease_millis: None,
        }
    }

    #[test]
    fn a_node_shows_its_worst_status_its_lease_and_its_snapshot() {
        let now = Utc::now();
        let heartbeat = now - chrono::Duration::milliseconds(400);
        let instances = vec![
            instance("a", "order", InstanceStatus::Up, heartbeat),
            instance("a", "payment", InstanceStatus::OutOfService, heartbeat),
            instance("b", "auth", InstanceStatus::Up, heartbeat),
        ];
        let snapshot = json!({"uptimeSeconds": 12.5, "process": {"rssBytes": 1024, "cpuSeconds": 0.5},
                              "logLevel": "info", "chaosEnabled": true, "configVersion": 3,
                              "node": {"services": [{"service": "order"}]}, "callSites": [],
                              "sections": {"outbox": {"numUnsent": 0}, "consumers": [{"consumer": "payment"}]}});
        let snapshots = BTreeMap::from([("a".to_string(), snapshot)]);
        let nodes = node_views(instances, &snapshots, 3000, now);
        assert_eq!(nodes.len(), 2);
        let a = &nodes[0];
        assert_eq!(
            (a.status.as_str(), a.reachable, a.lease_age_millis, a.lease_expires_in_millis),
            ("OUT_OF_SERVICE", true, 400, 2600)
        );
        assert_eq!((a.rss_bytes, a.log_level.as_deref(), a.chaos_enabled), (Some(1024), Some("info"), true));
        assert_eq!((a.services.len(), a.consumers.len(), a.config_version_applied), (1, 1, Some(3)));
        assert_eq!((nodes[1].status.as_str(), nodes[1].reachable), ("UNREACHABLE", false));
    }

    #[test]
    fn the_timeline_keeps_faults_once_newest_first_and_adds_evictions() {
        let mut timeline = Timeline::default();
        let snapshot = json!({"node": {"faults": [
            {"id": 1, "at": "2026-12-06T07:00:00Z", "kind": "panic", "actorPath": "order/saga",
             "messageType": "PlaceOrder", "error": "boom", "traceId": "ab", "flightRecord": [{"seq": 1}]},
            {"id": 2, "at": "2026-12-06T07:00:01Z", "kind": "breaker_opened", "actorPath": "calls/inventory",
             "messageType": "BreakerOpened", "error": "opened", "flightRecord": []}
        ]}});
        timeline.add_faults("order-1", &snapshot);
        timeline.add_faults("order-1", &snapshot);
        let evicted = JournalEntry {
            id: 9,
            at: "2026-12-06T07:00:02Z".parse().unwrap(),
            who: "registry".into(),
            action: "instance_evicted".into(),
            target: "payment@payment-1".into(),
            result: "ok".into(),
            detail: "payment: its lease lapsed".into(),
        };
        timeline.add_evictions(&[evicted]);
        let newest = timeline.newest();
        assert_eq!(newest.len(), 3, "a fault seen twice is kept once");
        assert_eq!((newest[0]["kind"].as_str(), newest[0]["nodeId"].as_str()), (Some("eviction"), Some("payment-1")));
        assert_eq!(newest[2]["key"], "order-1/1");
        assert_eq!(newest[2]["flightRecord"][0]["seq"], 1);
    }
}
