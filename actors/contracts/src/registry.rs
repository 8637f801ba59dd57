//! The registry's wire types: instances, leases, watch events, configuration documents and
//! acknowledgements (API.md section 3).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The lifecycle state of a service instance as the registry sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceStatus {
    /// Registered, not serving yet.
    Starting,
    /// Serving; the only status that receives traffic.
    Up,
    /// Failed (its supervisor gave up); kept visible so operators see why.
    Down,
    /// Draining or taken out by an operator.
    OutOfService,
}

/// What an instance tells the registry when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterInstance {
    /// Unique id of the instance (stable across re-registrations of the same process).
    pub id: String,
    /// The service it runs (`inventory`).
    pub service: String,
    /// The node (process) it runs in.
    pub node_id: String,
    /// `host:port` of the node's cluster listener.
    pub address: String,
    /// Its current status.
    pub status: InstanceStatus,
    /// All roles of its node.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Build version of its node.
    #[serde(default)]
    pub version: String,
    /// Free-form metadata (for example the public HTTP address of a gateway).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// A lease of its own, in milliseconds (a Eureka client's `durationInSecs`); the
    /// registry's `lease_millis` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_millis: Option<u64>,
}

/// An instance as the registry lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// Unique id of the instance.
    pub id: String,
    /// The service it runs.
    pub service: String,
    /// The node it runs in.
    pub node_id: String,
    /// `host:port` of the node's cluster listener.
    pub address: String,
    /// Its status.
    pub status: InstanceStatus,
    /// All roles of its node.
    pub roles: Vec<String>,
    /// Build version of its node.
    pub version: String,
    /// When it first registered.
    pub registered_at: DateTime<Utc>,
    /// When its lease was last renewed.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its own lease, in milliseconds, when it asked for one (see [`RegisterInstance`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_millis: Option<u64>,
}

/// The metadata key and value that mark an instance registered through the registry's Eureka
/// API: a service outside Emporium, with no Emporium node endpoints.
pub const REGISTERED_THROUGH_EUREKA: (&str, &str) = ("registeredThrough", "eureka");

impl InstanceInfo {
    /// Whether it runs in an Emporium node (not registered through the Eureka API), so its
    /// address serves the node endpoints (`/metrics`, `/admin/v1/...`) and the cluster
    /// credential may be sent there.
    pub fn is_emporium_node(&self) -> bool {
        let (key, value) = REGISTERED_THROUGH_EUREKA;
        self.metadata.get(key).map(String::as_str) != Some(value)
    }
}

/// The answer to a registration: the lease terms the instance must keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// The instance the lease is for.
    pub instance_id: String,
    /// How often to renew, in milliseconds.
    pub heartbeat_millis: u64,
    /// How long without renewal before eviction, in milliseconds.
    pub lease_millis: u64,
}

/// The optional body of a heartbeat: a status change travels with the renewal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// A new status, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<InstanceStatus>,
    /// The configuration version the instance runs (0: none applied yet). A registry that
    /// holds no acknowledgement for the instance (it restarted, or a peer took over) records
    /// it as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<u64>,
}

/// An operator's status override (`PUT /registry/v1/instances/{id}/status`), as Eureka's:
/// `OUT_OF_SERVICE` takes the instance out of traffic whatever it reports; `UP` lifts the
/// override and the instance's own status applies again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusOverride {
    /// `OUT_OF_SERVICE` or `UP`.
    pub status: InstanceStatus,
}

/// One entry of the registry's event journal (`GET /registry/v1/journal`): an instance's
/// registration, status change or removal, or an operator's action recorded by a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Sequence number within this registry's run.
    pub id: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it: an operator's account, or `registry`.
    pub who: String,
    /// What happened (`instance_evicted`, `inject_fault` ...).
    pub action: String,
    /// To what (`order-1 order/saga`).
    pub target: String,
    /// `ok` or `failed`.
    pub result: String,
    /// Anything more, in words.
    pub detail: String,
}

/// What a gateway records in the journal (`POST /registry/v1/journal`); the registry adds the
/// id and the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JournalRecord {
    /// The operator's account.
    pub who: String,
    /// The action.
    pub action: String,
    /// Its target.
    pub target: String,
    /// `ok` or `failed`.
    pub result: String,
    /// Anything more.
    #[serde(default)]
    pub detail: String,
}

/// Why an instance left the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// It deregistered itself (graceful shutdown).
    Deregistered,
    /// Its lease lapsed.
    LeaseExpired,
    /// Its node's watch connection closed and its node listener refuses connections: the
    /// process is gone (killed, crashed), well before its lease would lapse.
    ProcessGone,
}

/// The registry's own state, beside its instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryState {
    /// The version of the last change.
    pub version: u64,
    /// The current configuration version.
    pub config_version: u64,
    /// Number of registered instances.
    pub num_instances: usize,
    /// True while eviction is paused because most leases lapsed at once.
    pub self_preservation: bool,
    /// Why self-preservation is on, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_preservation_reason: Option<String>,
}

/// One change on the watch stream. `version` grows by one per change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchEvent {
    /// The registry version after this change.
    pub version: u64,
    /// The change.
    #[serde(flatten)]
    pub change: WatchChange,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum WatchChange {
    /// The whole state: sent first on every new stream (and when `since` is too old).
    Snapshot {
        /// Every registered instance.
        instances: Vec<InstanceInfo>,
        /// The registry state.
        state: RegistryState,
    },
    /// An instance registered or changed (status, heartbeat after re-registration).
    InstanceUpserted {
        /// The instance as it is now.
        instance: InstanceInfo,
    },
    /// An instance left.
    InstanceRemoved {
        /// Its id.
        id: String,
        /// Its service.
        service: String,
        /// Why.
        reason: RemovalReason,
    },
    /// The configuration changed; nodes fetch it, apply it and ack `config_version`.
    ConfigChanged {
        /// The new configuration version.
        config_version: u64,
    },
    /// Self-preservation switched on or off.
    StateChanged {
        /// The registry state.
        state: RegistryState,
    },
}

/// A merged configuration document for one service and profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDocument {
    /// The service it was merged for.
    pub service: String,
    /// The profile it was merged for.
    pub profile: String,
    /// The configuration version.
    pub version: u64,
    /// The files that went into it, first to last (later files win).
    pub sources: Vec<String>,
    /// The merged settings.
    pub settings: serde_json::Value,
    /// The commit the files come from, when the registry reads a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// An instance telling the registry which configuration version it now runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigAck {
    /// The configuration version applied.
    pub version: u64,
    /// Whether it applied cleanly; false with `error` when the node refused it.
    #[serde(default = "default_true")]
    pub applied: bool,
    /// Why the node refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn default_true() -> bool {
    true
}

/// One row of `GET /registry/v1/config/acks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigAckStatus {
    /// The instance.
    pub instance_id: String,
    /// Its service.
    pub service: String,
    /// Its node.
    pub node_id: String,
    /// The version it last acked (none yet: `None`).
    pub applied_version: Option<u64>,
    /// When it acked.
    pub acked_at: Option<DateTime<Utc>>,
    /// Whether its last ack applied cleanly.
    pub applied: bool,
    /// The error of a refused version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether it runs the current version.
    pub current: bool,
}

/// The answer of `GET /registry/v1/config/acks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigAcks {
    /// The current configuration version.
    pub config_version: u64,
    /// One row per registered instance.
    pub instances: Vec<ConfigAckStatus>,
}

/// What a registry sends each of its peers (`POST /registry/v1/peers/sync`): its whole view
/// of the instances, and what it knows to be gone. Peers merge it entry by entry, newest
/// renewal or change winning (see the registry's `peers` module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSync {
    /// The sending registry (random per run).
    pub registry_id: String,
    /// Every instance it holds.
    pub instances: Vec<PeerInstance>,
    /// Instances it removed, while it remembers them.
    pub removed: Vec<RemovedInstance>,
}

/// One instance as a peer holds it. Its `instance.lastHeartbeatAt` is the time of the last
/// renewal that peer saw: the version of the lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInstance {
    /// The instance, with its effective status.
    pub instance: InstanceInfo,
    /// The status the instance itself reported last.
    pub reported: InstanceStatus,
    /// Whether an operator holds it out of service.
    pub out_of_service: bool,
    /// When its registration or status last changed: the version of everything but the lease.
    pub changed_at: DateTime<Utc>,
    /// Its last configuration acknowledgement, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<PeerAck>,
}

/// A configuration acknowledgement as a peer holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAck {
    /// The acknowledgement.
    pub ack: ConfigAck,
    /// When it was given.
    pub acked_at: DateTime<Utc>,
}

/// An instance a peer removed. Copies of it last renewed at or before `goneAsOf` are gone
/// everywhere; a copy renewed later is alive and stays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedInstance {
    /// The instance.
    pub id: String,
    /// Its service.
    pub service: String,
    /// Why it left.
    pub reason: RemovalReason,
    /// For a lease that lapsed, the last renewal the peer saw; for a deregistration or a
    /// process found gone, when it happened.
    pub gone_as_of: DateTime<Utc>,
}

/// A peer's answer to a [`PeerSync`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSyncReply {
    /// The answering registry (a registry that reaches itself through its peer list learns so).
    pub registry_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_event_is_flat_json_with_a_type_tag() {
        let event = WatchEvent { version: 7, change: WatchChange::ConfigChanged { config_version: 3 } };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json, serde_json::json!({"version": 7, "type": "config_changed", "configVersion": 3}));
        let back: WatchEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn status_uses_the_eureka_spelling() {
        let text = serde_json::to_string(&InstanceStatus::OutOfService).unwrap();
        assert_eq!(text, "\"OUT_OF_SERVICE\"");
    }
}
