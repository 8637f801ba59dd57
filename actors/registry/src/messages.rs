//! The messages the registry actor handles; each replies `Result<T, RegistryError>`.

use actix::Message;
use emporium_contracts::registry::{
    ConfigAck, ConfigAcks, ConfigDocument, Heartbeat, InstanceInfo, InstanceStatus, JournalEntry, JournalRecord, Lease,
    RegisterInstance, RegistryState, WatchEvent,
};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::error::RegistryError;

/// Register an instance (or update it when its id is known) and hand out its lease.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, RegistryError>")]
pub struct Register(pub RegisterInstance);

/// Renew the lease of an instance, possibly changing its status.
#[derive(Debug, Message)]
#[rtype(result = "Result<Lease, RegistryError>")]
pub struct RenewLease {
    /// The instance.
    pub instance_id: String,
    /// The heartbeat's body.
    pub heartbeat: Heartbeat,
}

/// Remove an instance that is shutting down.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct Deregister {
    /// The instance.
    pub instance_id: String,
}

/// A node's watch connection closed: the registry checks whether the node is gone.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatcherClosed {
    /// The node the connection named.
    pub node_id: String,
}

/// A node's listener refused connections after its watch connection closed: its instances
/// leave at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct NodeGone {
    /// The node.
    pub node_id: String,
    /// The listener address that refused.
    pub address: String,
}

/// List the registered instances, of one service or all.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<InstanceInfo>, RegistryError>")]
pub struct ListInstances {
    /// Only instances of this service, when given.
    pub service: Option<String>,
}

/// Read the registry's own state.
#[derive(Debug, Message)]
#[rtype(result = "Result<RegistryState, RegistryError>")]
pub struct GetState;

/// Open a watch: the events to send first and a receiver of every later change, taken in one
/// step so that nothing falls between them.
#[derive(Debug, Message)]
#[rtype(result = "Result<Subscription, RegistryError>")]
pub struct Subscribe {
    /// The last version the watcher saw; `None` starts with a snapshot.
    pub since: Option<u64>,
}

/// What a [`Subscribe`] answers.
#[derive(Debug)]
pub struct Subscription {
    /// A snapshot, or the backlog after `since`.
    pub initial_events: Vec<WatchEvent>,
    /// Every change after those.
    pub events_rx: broadcast::Receiver<WatchEvent>,
}

/// Merge the configuration of a service for a profile.
#[derive(Debug, Message)]
#[rtype(result = "Result<ConfigDocument, RegistryError>")]
pub struct GetConfig {
    /// The service.
    pub service: String,
    /// The profile; the registry's own when `None`.
    pub profile: Option<String>,
}

/// Merge a peer registry's view.
#[derive(Debug, Message)]
#[rtype(result = "Result<emporium_contracts::registry::PeerSyncReply, RegistryError>")]
pub struct MergePeerView(pub emporium_contracts::registry::PeerSync);

/// The Spring Cloud Config `Environment` of an application (`GET /config/...`).
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::spring_config::SpringEnvironment, RegistryError>")]
pub struct GetSpringEnvironment(pub crate::spring_config::EnvironmentRequest);

/// Re-read the configuration directory now.
#[derive(Debug, Message)]
#[rtype(result = "Result<RefreshOutcome, RegistryError>")]
pub struct RefreshConfig;

/// The answer of [`RefreshConfig`] (and of `POST /registry/v1/config/refresh`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshOutcome {
    /// The configuration version served now.
    pub config_version: u64,
    /// Whether the files changed (and the version with them).
    pub changed: bool,
    /// The commit served, when the configuration comes from git.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_revision: Option<String>,
}

/// Record the configuration version an instance applied.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct AckConfig {
    /// The instance.
    pub instance_id: String,
    /// What it applied.
    pub ack: ConfigAck,
}

/// List the applied configuration version of every instance.
#[derive(Debug, Message)]
#[rtype(result = "Result<ConfigAcks, RegistryError>")]
pub struct ListConfigAcks;

/// An operator's status override of one instance.
#[derive(Debug, Message)]
#[rtype(result = "Result<InstanceInfo, RegistryError>")]
pub struct OverrideStatus {
    /// The instance.
    pub instance_id: String,
    /// `OUT_OF_SERVICE` or `UP`.
    pub status: InstanceStatus,
}

/// Records an operator's action in the journal.
#[derive(Debug, Message)]
#[rtype(result = "Result<JournalEntry, RegistryError>")]
pub struct RecordInJournal(pub JournalRecord);

/// Lists the journal.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<JournalEntry>, RegistryError>")]
pub struct ListJournal {
    /// Only entries after this id (0: all).
    pub since: u64,
    /// At most this many, newest first.
    pub limit: usize,
}
