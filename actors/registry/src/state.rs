//! The registry's state as a plain value: instances and their leases, the version counter, the
//! bounded log of watch events, self-preservation and configuration acks.
//!
//! Nothing here reads a clock: every operation that depends on time takes `now` (monotonic, for
//! leases) and `wall` (for display), so tests step time explicitly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use emporium_cluster::settings::RegistrySettings;
use emporium_contracts::registry::{
    ConfigAck, ConfigAckStatus, ConfigAcks, Heartbeat, InstanceInfo, InstanceStatus, Lease, PeerAck, PeerInstance,
    RegisterInstance, RegistryState, RemovalReason, RemovedInstance, WatchChange, WatchEvent,
};

use crate::config_store::is_valid_name;
use crate::error::RegistryError;

/// How many watch events the log keeps for `since` resumption.
pub const EVENT_LOG_CAPACITY: usize = 1024;

/// The bounds of a lease an instance asks for itself (a Eureka client's `durationInSecs`).
pub const MIN_OWN_LEASE_MILLIS: u64 = 1_000;
/// See [`MIN_OWN_LEASE_MILLIS`].
pub const MAX_OWN_LEASE_MILLIS: u64 = 300_000;

/// How long the registry remembers a removed instance for its peers.
pub const REMOVED_MEMORY: Duration = Duration::from_secs(60);

/// The longest instance id accepted.
pub const MAX_INSTANCE_ID_LEN: usize = 200;

/// One registered instance and the monotonic time of its last renewal.
#[derive(Debug, Clone)]
struct Registration {
    info: InstanceInfo,
    renewed_at: Instant,
    /// The status the instance itself last reported; `info.status` is this unless an
    /// operator's override holds it out of service.
    reported: InstanceStatus,
    /// When its registration or status last changed (peers merge by it).
    changed_at: DateTime<Utc>,
}

impl Registration {
    /// Its own lease, else the registry's.
    fn lease(&self, terms: &RegistrySettings) -> Duration {
        Duration::from_millis(self.info.lease_millis.unwrap_or(terms.lease_millis))
    }
}

/// The last configuration ack of one instance.
#[derive(Debug, Clone)]
struct AckRecord {
    version: u64,
    applied: bool,
    error: Option<String>,
    acked_at: DateTime<Utc>,
}

/// Instances, leases, versioned events and acks: the registry actor's state.
#[derive(Debug)]
pub struct InstanceTable {
    terms: RegistrySettings,
    instances: BTreeMap<String, Registration>,
    acks: HashMap<String, AckRecord>,
    version: u64,
    config_version: u64,
    event_log: VecDeque<WatchEvent>,
    unpublished: Vec<WatchEvent>,
    self_preservation_reason: Option<String>,
    /// Instances an operator took out of service (until put back UP or removed).
    out_of_service: std::collections::HashSet<String>,
    /// Instances removed lately, for peers ([`InstanceTable::merge_peer`]), with the monotonic
    /// time of removal (forgotten after [`REMOVED_MEMORY`]).
    removed: HashMap<String, (RemovedInstance, Instant)>,
}

impl InstanceTable {
    /// An empty table whose first change will carry `initial_version + 1`.
    pub fn new(terms: RegistrySettings, initial_version: u64, config_version: u64) -> Self {
        InstanceTable {
            terms,
            instances: BTreeMap::new(),
            acks: HashMap::new(),
            version: initial_version,
            config_version,
            event_log: VecDeque::with_capacity(EVENT_LOG_CAPACITY),
            unpublished: Vec::new(),
            self_preservation_reason: None,
            out_of_service: Default::default(),
            removed: HashMap::new(),
        }
    }

    /// The lease terms in force.
    pub fn terms(&self) -> &RegistrySettings {
        &self.terms
    }

    /// Replaces the lease terms (configuration changed); applies from the next operation on.
    pub fn set_terms(&mut self, terms: RegistrySettings) {
        self.terms = terms;
    }

    /// The version of the last change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The current configuration version.
    pub fn config_version(&self) -> u64 {
        self.config_version
    }

    /// The number of registered instances.
    pub fn num_instances(&self) -> usize {
        self.instances.len()
    }

    /// Whether eviction is paused.
    pub fn self_preservation(&self) -> bool {
        self.self_preservation_reason.is_some()
    }

    /// Registers an instance, or updates it when its id is known (keeping `registeredAt`).
    pub fn register(
        &mut self,
        registration: RegisterInstance,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Lease, RegistryError> {
        validate_registration(&registration)?;
        let registered_at = self.instances.get(&registration.id).map_or(wall, |known| known.info.registered_at);
        let reported = registration.status;
        let info = InstanceInfo {
            status: self.effective_status(&registration.id, reported),
            id: registration.id,
            service: registration.service,
            node_id: registration.node_id,
            address: registration.address,
            roles: registration.roles,
            version: registration.version,
            registered_at,
            last_heartbeat_at: wall,
            metadata: registration.metadata,
            lease_millis: registration.lease_millis,
        };
        let id = info.id.clone();
        self.removed.remove(&id);
        let registration = Registration { info: info.clone(), renewed_at: now, reported, changed_at: wall };
        self.instances.insert(id.clone(), registration);
        self.emit(WatchChange::InstanceUpserted { instance: info });
        Ok(self.lease(&id))
    }

    /// Renews the lease of `id`; a status in the heartbeat changes the instance (and emits).
    pub fn heartbeat(
        &mut self,
        id: &str,
        heartbeat: Heartbeat,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Lease, RegistryError> {
        let held_out = self.out_of_service.contains(id);
        let registration = self.instances.get_mut(id).ok_or_else(|| RegistryError::UnknownInstance(id.to_string()))?;
        registration.renewed_at = now;
        registration.info.last_heartbeat_at = wall;
        if let Some(status) = heartbeat.status {
            registration.reported = status;
        }
        let status = if held_out { InstanceStatus::OutOfService } else { registration.reported };
        let changed = (status != registration.info.status).then(|| {
            registration.info.status = status;
            registration.changed_at = wall;
            registration.info.clone()
        });
        if let Some(instance) = changed {
            self.emit(WatchChange::InstanceUpserted { instance });
        }
        if let Some(version) = heartbeat.config_version {
            self.ack_from_heartbeat(id, version, wall);
        }
        Ok(self.lease(id))
    }

    /// A heartbeat names the configuration version the instance runs: recorded as its ack
    /// when the registry holds none (it restarted, or the instance moved from a peer) or holds
    /// an older applied one. A refusal stays: it says why the instance is behind.
    fn ack_from_heartbeat(&mut self, id: &str, version: u64, wall: DateTime<Utc>) {
        let stale = match self.acks.get(id) {
            None => true,
            Some(record) => record.applied && record.version != version,
        };
        if stale {
            self.acks.insert(id.to_string(), AckRecord { version, applied: true, error: None, acked_at: wall });
        }
    }

    /// An operator takes `id` out of service (`OUT_OF_SERVICE`: no traffic, whatever it
    /// reports) or lifts that (`UP`: its own status applies again). Answers the instance.
    pub fn override_status(
        &mut self,
        id: &str,
        status: InstanceStatus,
        wall: DateTime<Utc>,
    ) -> Result<InstanceInfo, RegistryError> {
        let held_out = match status {
            InstanceStatus::OutOfService => true,
            InstanceStatus::Up => false,
            other => {
                return Err(RegistryError::InvalidInstance(format!(
                    "an operator sets OUT_OF_SERVICE or UP, not {other:?}"
                )));
            }
        };
        let registration = self.instances.get_mut(id).ok_or_else(|| RegistryError::UnknownInstance(id.to_string()))?;
        let status = if held_out { InstanceStatus::OutOfService } else { registration.reported };
        if held_out {
            self.out_of_service.insert(id.to_string());
        } else {
            self.out_of_service.remove(id);
        }
        let changed = status != registration.info.status;
        registration.info.status = status;
        registration.changed_at = wall;
        let instance = registration.info.clone();
        if changed {
            self.emit(WatchChange::InstanceUpserted { instance: instance.clone() });
        }
        Ok(instance)
    }

    fn effective_status(&self, id: &str, reported: InstanceStatus) -> InstanceStatus {
        if self.out_of_service.contains(id) { InstanceStatus::OutOfService } else { reported }
    }

    /// Removes `id` because it asked to leave.
    pub fn deregister(&mut self, id: &str, now: Instant, wall: DateTime<Utc>) -> Result<InstanceInfo, RegistryError> {
        self.remove(id, RemovalReason::Deregistered, now, wall)
            .ok_or_else(|| RegistryError::UnknownInstance(id.to_string()))
    }

    /// Removes `id`, remembers it for peers (as of `gone_as_of`) and announces it.
    fn remove(
        &mut self,
        id: &str,
        reason: RemovalReason,
        now: Instant,
        gone_as_of: DateTime<Utc>,
    ) -> Option<InstanceInfo> {
        let registration = self.instances.remove(id)?;
        self.acks.remove(id);
        self.out_of_service.remove(id);
        let service = registration.info.service.clone();
        let removed = RemovedInstance { id: id.to_string(), service: service.clone(), reason, gone_as_of };
        self.removed.insert(id.to_string(), (removed, now));
        self.emit(WatchChange::InstanceRemoved { id: id.to_string(), service, reason });
        Some(registration.info)
    }

    /// The listener addresses of `node_id`'s instances.
    pub fn addresses_of_node(&self, node_id: &str) -> Vec<String> {
        let mut addresses: Vec<String> = self
            .instances
            .values()
            .filter(|registration| registration.info.node_id == node_id)
            .map(|registration| registration.info.address.clone())
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// Removes the instances of `node_id` at `address` (its process is gone). Positive evidence,
    /// so self-preservation does not hold it back. Returns the removed.
    pub fn remove_node(
        &mut self,
        node_id: &str,
        address: &str,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<InstanceInfo> {
        let ids: Vec<String> = self
            .instances
            .values()
            .filter(|registration| registration.info.node_id == node_id && registration.info.address == address)
            .map(|registration| registration.info.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.remove(id, RemovalReason::ProcessGone, now, wall)).collect()
    }

    /// Registered instances, of one service or all, sorted by service then id.
    pub fn list(&self, service: Option<&str>) -> Vec<InstanceInfo> {
        let mut instances: Vec<InstanceInfo> = self
            .instances
            .values()
            .filter(|registration| service.is_none_or(|service| registration.info.service == service))
            .map(|registration| registration.info.clone())
            .collect();
        instances.sort_by(|left, right| (&left.service, &left.id).cmp(&(&right.service, &right.id)));
        instances
    }

    /// The registry's own state.
    pub fn state(&self) -> RegistryState {
        RegistryState {
            version: self.version,
            config_version: self.config_version,
            num_instances: self.instances.len(),
            self_preservation: self.self_preservation_reason.is_some(),
            self_preservation_reason: self.self_preservation_reason.clone(),
        }
    }

    /// The whole state as the first event of a watch stream, at the current version.
    pub fn snapshot(&self) -> WatchEvent {
        WatchEvent {
            version: self.version,
            change: WatchChange::Snapshot { instances: self.list(None), state: self.state() },
        }
    }

    /// Evicts instances whose lease lapsed, unless so many lapsed at once that the registry is
    /// more likely cut off than they are all dead (self-preservation). Returns the evicted.
    pub fn sweep(&mut self, now: Instant) -> Vec<InstanceInfo> {
        let lapsed: Vec<String> = self
            .instances
            .values()
            .filter(|registration| {
                now.saturating_duration_since(registration.renewed_at) > registration.lease(&self.terms)
            })
            .map(|registration| registration.info.id.clone())
            .collect();
        let total = self.instances.len();
        let preserve = total > 0
            && total >= self.terms.self_preservation_min_instances
            && lapsed.len() as f64 > self.terms.self_preservation_threshold * total as f64;
        if preserve {
            if self.self_preservation_reason.is_none() {
                self.self_preservation_reason =
                    Some(format!("{} of {total} leases lapsed at once; eviction paused", lapsed.len()));
                self.emit(WatchChange::StateChanged { state: self.state() });
            }
            return Vec::new();
        }
        if self.self_preservation_reason.take().is_some() {
            self.emit(WatchChange::StateChanged { state: self.state() });
        }
        let mut evicted = Vec::with_capacity(lapsed.len());
        for id in lapsed {
            // Gone as of its last renewal: a peer that saw a later one keeps it.
            let Some(last_renewal) = self.instances.get(&id).map(|registration| registration.info.last_heartbeat_at)
            else {
                continue;
            };
            evicted.extend(self.remove(&id, RemovalReason::LeaseExpired, now, last_renewal));
        }
        self.removed.retain(|_, (_, removed_at)| now.saturating_duration_since(*removed_at) < REMOVED_MEMORY);
        evicted
    }

    /// This registry's view for its peers: every instance, and what it removed lately.
    pub fn peer_view(&self) -> (Vec<PeerInstance>, Vec<RemovedInstance>) {
        let instances = self
            .instances
            .values()
            .map(|registration| PeerInstance {
                instance: registration.info.clone(),
                reported: registration.reported,
                out_of_service: self.out_of_service.contains(&registration.info.id),
                changed_at: registration.changed_at,
                ack: self.acks.get(&registration.info.id).map(|record| PeerAck {
                    ack: ConfigAck { version: record.version, applied: record.applied, error: record.error.clone() },
                    acked_at: record.acked_at,
                }),
            })
            .collect();
        let removed = self.removed.values().map(|(removed, _)| removed.clone()).collect();
        (instances, removed)
    }

    /// Merges a peer's view (eventual consistency, as Eureka's peers): a removal applies to a
    /// copy renewed no later than it; an instance is taken when it is new here and its lease is
    /// still running, and no removal here supersedes it; a later renewal renews the lease; a
    /// later change replaces status, override and registration; a later ack replaces the ack.
    /// Stale copies (a lease run out, a renewal older than a removal) never come back.
    pub fn merge_peer(
        &mut self,
        instances: Vec<PeerInstance>,
        removed: Vec<RemovedInstance>,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        for gone in removed {
            let superseded = self
                .instances
                .get(&gone.id)
                .is_some_and(|registration| registration.info.last_heartbeat_at <= gone.gone_as_of);
            if superseded {
                self.remove(&gone.id, gone.reason, now, gone.gone_as_of);
            } else if !self.instances.contains_key(&gone.id) {
                let newer = self.removed.get(&gone.id).is_none_or(|(known, _)| known.gone_as_of < gone.gone_as_of);
                if newer {
                    self.removed.insert(gone.id.clone(), (gone, now));
                }
            }
        }
        for peer in instances {
            self.merge_peer_instance(peer, now, wall);
        }
    }

    fn merge_peer_instance(&mut self, peer: PeerInstance, now: Instant, wall: DateTime<Utc>) {
        let id = peer.instance.id.clone();
        let renewal = peer.instance.last_heartbeat_at;
        if self.removed.get(&id).is_some_and(|(gone, _)| renewal <= gone.gone_as_of) {
            return;
        }
        let lease = Duration::from_millis(peer.instance.lease_millis.unwrap_or(self.terms.lease_millis));
        let age = (wall - renewal).to_std().unwrap_or(Duration::ZERO);
        if age > lease {
            return;
        }
        let renewed_at = now.checked_sub(age).unwrap_or(now);
        if let Some(ack) = &peer.ack {
            let newer = self.acks.get(&id).is_none_or(|record| record.acked_at < ack.acked_at);
            if newer {
                let record = AckRecord {
                    version: ack.ack.version,
                    applied: ack.ack.applied,
                    error: ack.ack.error.clone(),
                    acked_at: ack.acked_at,
                };
                self.acks.insert(id.clone(), record);
            }
        }
        let Some(local) = self.instances.get_mut(&id) else {
            self.removed.remove(&id);
            if peer.out_of_service {
                self.out_of_service.insert(id.clone());
            }
            let registration = Registration {
                info: peer.instance.clone(),
                renewed_at,
                reported: peer.reported,
                changed_at: peer.changed_at,
            };
            self.instances.insert(id, registration);
            self.emit(WatchChange::InstanceUpserted { instance: peer.instance });
            return;
        };
        if renewal > local.info.last_heartbeat_at {
            local.info.last_heartbeat_at = renewal;
            local.renewed_at = local.renewed_at.max(renewed_at);
        }
        if peer.changed_at > local.changed_at {
            let last_heartbeat_at = local.info.last_heartbeat_at;
            let changed = local.info != InstanceInfo { last_heartbeat_at, ..peer.instance.clone() };
            local.info = InstanceInfo { last_heartbeat_at, ..peer.instance };
            local.reported = peer.reported;
            local.changed_at = peer.changed_at;
            if peer.out_of_service {
                self.out_of_service.insert(id.clone());
            } else {
                self.out_of_service.remove(&id);
            }
            if changed {
                let instance = self.instances[&id].info.clone();
                self.emit(WatchChange::InstanceUpserted { instance });
            }
        }
    }

    /// The events after `since`, when the log still holds all of them; `None` means the caller
    /// must start from a snapshot (too old, or a version this registry never reached).
    pub fn events_since(&self, since: u64) -> Option<Vec<WatchEvent>> {
        if since == self.version {
            return Some(Vec::new());
        }
        if since > self.version {
            return None;
        }
        let oldest = self.event_log.front()?.version;
        if oldest > since + 1 {
            return None;
        }
        Some(self.event_log.iter().filter(|event| event.version > since).cloned().collect())
    }

    /// Records a new configuration version and announces it.
    pub fn set_config_version(&mut self, config_version: u64) {
        if config_version != self.config_version {
            self.config_version = config_version;
            self.emit(WatchChange::ConfigChanged { config_version });
        }
    }

    /// Records which configuration version instance `id` runs.
    pub fn ack_config(&mut self, id: &str, ack: ConfigAck, wall: DateTime<Utc>) -> Result<(), RegistryError> {
        if !self.instances.contains_key(id) {
            return Err(RegistryError::UnknownInstance(id.to_string()));
        }
        let record = AckRecord { version: ack.version, applied: ack.applied, error: ack.error, acked_at: wall };
        self.acks.insert(id.to_string(), record);
        Ok(())
    }

    /// The applied configuration version of every registered instance.
    pub fn config_acks(&self) -> ConfigAcks {
        let instances = self
            .list(None)
            .into_iter()
            .map(|instance| {
                let ack = self.acks.get(&instance.id);
                let applied_version = ack.map(|ack| ack.version);
                ConfigAckStatus {
                    applied_version,
                    acked_at: ack.map(|ack| ack.acked_at),
                    applied: ack.is_some_and(|ack| ack.applied),
                    error: ack.and_then(|ack| ack.error.clone()),
                    current: ack.is_some_and(|ack| ack.applied) && applied_version == Some(self.config_version),
                    instance_id: instance.id,
                    service: instance.service,
                    node_id: instance.node_id,
                }
            })
            .collect();
        ConfigAcks { config_version: self.config_version, instances }
    }

    /// Registered instances counted by service and status (for gauges).
    pub fn counts_by_service_and_status(&self) -> HashMap<(String, InstanceStatus), usize> {
        let mut counts = HashMap::new();
        for registration in self.instances.values() {
            *counts.entry((registration.info.service.clone(), registration.info.status)).or_insert(0) += 1;
        }
        counts
    }

    /// The events emitted since the last call, oldest first, for broadcasting.
    pub fn take_unpublished(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.unpublished)
    }

    fn lease(&self, id: &str) -> Lease {
        let own = self.instances.get(id).and_then(|registration| registration.info.lease_millis);
        Lease {
            instance_id: id.to_string(),
            heartbeat_millis: self.terms.heartbeat_millis,
            lease_millis: own.unwrap_or(self.terms.lease_millis),
        }
    }

    fn emit(&mut self, change: WatchChange) {
        self.version += 1;
        let event = WatchEvent { version: self.version, change };
        if self.event_log.len() == EVENT_LOG_CAPACITY {
            self.event_log.pop_front();
        }
        self.event_log.push_back(event.clone());
        self.unpublished.push(event);
    }
}

/// Whether `id` is fit for a URL path segment: ASCII letters, digits and `-_.:@~`.
fn is_valid_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_INSTANCE_ID_LEN
        && id.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.:@~".contains(&byte))
}

fn validate_registration(registration: &RegisterInstance) -> Result<(), RegistryError> {
    let invalid = |message: String| Err(RegistryError::InvalidInstance(message));
    if !is_valid_instance_id(&registration.id) {
        return invalid(format!(
            "id must be 1 to {MAX_INSTANCE_ID_LEN} characters of ascii letters, digits and -_.:@~"
        ));
    }
    if !is_valid_name(&registration.service) {
        return invalid("service must match ^[a-z][a-z0-9-]{0,62}$".to_string());
    }
    if registration.node_id.trim().is_empty() {
        return invalid("node_id must not be empty".to_string());
    }
    if registration.address.trim().is_empty() {
        return invalid("address must not be empty".to_string());
    }
    if registration.lease_millis.is_some_and(|lease| !(MIN_OWN_LEASE_MILLIS..=MAX_OWN_LEASE_MILLIS).contains(&lease)) {
        return invalid(format!("lease_millis must be {MIN_OWN_LEASE_MILLIS} to {MAX_OWN_LEASE_MILLIS}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn terms() -> RegistrySettings {
        RegistrySettings {
            heartbeat_millis: 1_000,
            lease_millis: 3_000,
            self_preservation_threshold: 0.5,
            self_preservation_min_instances: 4,
            ..RegistrySettings::default()
        }
    }

    fn registration(id: &str, service: &str) -> RegisterInstance {
        RegisterInstance {
            id: id.to_string(),
            service: service.to_string(),
            node_id: "node-a".to_string(),
            address: "127.0.0.1:9000".to_string(),
            status: InstanceStatus::Up,
            roles: vec![service.to_string()],
            version: "0.1.0".to_string(),
            metadata: BTreeMap::new(),
            lease_millis: None,
        }
    }

    fn wall(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn ids(instances: &[InstanceInfo]) -> Vec<&str> {
        instances.iter().map(|instance| instance.id.as_str()).collect()
    }

    #[test]
    fn an_instance_may_ask_for_a_lease_of_its_own_within_bounds() {
        let start = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        let eureka = RegisterInstance { lease_millis: Some(90_000), ..registration("billing-1", "billing") };
        assert_eq!(table.register(eureka, start, wall(0)).unwrap().lease_millis, 90_000);
        table.register(registration("inv-1", "inventory"), start, wall(0)).unwrap();
        let evicted = table.sweep(start + 4 * SECOND);
        assert_eq!(ids(&evicted), ["inv-1"], "the registry's lease for the others");
        assert!(table.sweep(start + 90 * SECOND).is_empty());
        assert_eq!(ids(&table.sweep(start + 91 * SECOND)), ["billing-1"]);
        for lease in [999, 300_001] {
            let too = RegisterInstance { lease_millis: Some(lease), ..registration("x", "billing") };
            assert!(matches!(table.register(too, start, wall(0)), Err(RegistryError::InvalidInstance(_))));
        }
    }

    #[test]
    fn a_lease_is_renewed_by_heartbeats_and_lapses_without_them() {
        let start = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        let lease = table.register(registration("inv-1", "inventory"), start, wall(0)).unwrap();
        assert_eq!((lease.heartbeat_millis, lease.lease_millis), (1_000, 3_000));
        table.register(registration("ord-1", "order"), start, wall(0)).unwrap();
        assert_eq!(table.version(), 2);

        table.heartbeat("inv-1", Heartbeat::default(), start + 2 * SECOND, wall(2)).unwrap();
        assert_eq!(table.version(), 2, "a plain renewal is not a change");
        assert_eq!(table.list(Some("inventory"))[0].last_heartbeat_at, wall(2));

        assert!(table.sweep(start + 3 * SECOND).is_empty(), "exactly the lease is not yet lapsed");
        let evicted = table.sweep(start + 3 * SECOND + Duration::from_millis(1));
        assert_eq!(ids(&evicted), ["ord-1"]);
        assert_eq!(ids(&table.list(None)), ["inv-1"]);
        let removal = table.events_since(2).unwrap();
        assert_eq!(
            removal[0].change,
            WatchChange::InstanceRemoved {
                id: "ord-1".into(),
                service: "order".into(),
                reason: RemovalReason::LeaseExpired
            }
        );

        table.deregister("inv-1", Instant::now(), wall(9)).unwrap();
        assert!(matches!(
            table.events_since(3).unwrap()[0].change,
            WatchChange::InstanceRemoved { reason: RemovalReason::Deregistered, .. }
        ));
        assert!(matches!(
            table.heartbeat("inv-1", Heartbeat::default(), start, wall(5)),
            Err(RegistryError::UnknownInstance(_))
        ));
        assert!(matches!(table.deregister("inv-1", Instant::now(), wall(9)), Err(RegistryError::UnknownInstance(_))));
        assert_eq!(table.take_unpublished().len(), 4);
        assert!(table.take_unpublished().is_empty());
    }

    #[test]
    fn re_registering_keeps_registered_at_and_emits_an_upsert() {
        let start = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        table.register(registration("inv-1", "inventory"), start, wall(0)).unwrap();
        let mut again = registration("inv-1", "inventory");
        again.address = "127.0.0.1:9001".into();
        table.register(again, start + SECOND, wall(1)).unwrap();
        let instance = &table.list(None)[0];
        assert_eq!(instance.registered_at, wall(0));
        assert_eq!(instance.last_heartbeat_at, wall(1));
        assert_eq!(instance.address, "127.0.0.1:9001");
        assert_eq!(table.version(), 2);
        assert!(matches!(table.events_since(1).unwrap()[0].change, WatchChange::InstanceUpserted { .. }));
    }

    #[test]
    fn a_status_change_on_a_heartbeat_is_an_event() {
        let start = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        let mut starting = registration("inv-1", "inventory");
        starting.status = InstanceStatus::Starting;
        table.register(starting, start, wall(0)).unwrap();
        let up = Heartbeat { status: Some(InstanceStatus::Up), config_version: None };
        table.heartbeat("inv-1", up.clone(), start, wall(1)).unwrap();
        assert_eq!(table.version(), 2);
        match &table.events_since(1).unwrap()[0].change {
            WatchChange::InstanceUpserted { instance } => assert_eq!(instance.status, InstanceStatus::Up),
            other => panic!("unexpected {other:?}"),
        }
        table.heartbeat("inv-1", up, start, wall(2)).unwrap();
        assert_eq!(table.version(), 2, "the same status again is no change");
    }

    #[test]
    fn an_operator_override_holds_an_instance_out_of_service_until_lifted() {
        let mut table = InstanceTable::new(terms(), 0, 0);
        let now = Instant::now();
        table.register(registration("a", "echo"), now, wall(0)).unwrap();
        let instance = table.override_status("a", InstanceStatus::OutOfService, wall(9)).unwrap();
        assert_eq!(instance.status, InstanceStatus::OutOfService);
        let heartbeat = Heartbeat { status: Some(InstanceStatus::Up), config_version: None };
        table.heartbeat("a", heartbeat, now, wall(1)).unwrap();
        table.register(registration("a", "echo"), now, wall(2)).unwrap();
        assert_eq!(
            table.list(None)[0].status,
            InstanceStatus::OutOfService,
            "heartbeats and re-registration keep it out"
        );
        assert_eq!(table.override_status("a", InstanceStatus::Up, wall(9)).unwrap().status, InstanceStatus::Up);
        assert!(table.override_status("a", InstanceStatus::Down, wall(9)).is_err());
        assert!(matches!(
            table.override_status("b", InstanceStatus::Up, wall(9)),
            Err(RegistryError::UnknownInstance(_))
        ));
    }

    #[test]
    fn registrations_are_validated() {
        let mut table = InstanceTable::new(terms(), 0, 1);
        let now = Instant::now();
        for broken in [
            RegisterInstance { id: String::new(), ..registration("x", "inventory") },
            RegisterInstance { id: "a".repeat(201), ..registration("x", "inventory") },
            RegisterInstance { id: "node/inventory".into(), ..registration("x", "inventory") },
            registration("x", ""),
            registration("x", "Inventory"),
            RegisterInstance { node_id: " ".into(), ..registration("x", "inventory") },
            RegisterInstance { address: String::new(), ..registration("x", "inventory") },
        ] {
            assert!(matches!(table.register(broken, now, wall(0)), Err(RegistryError::InvalidInstance(_))));
        }
        table.register(registration(&"a".repeat(200), "inventory"), now, wall(0)).unwrap();
        assert_eq!(table.version(), 1);
    }

    #[test]
    fn list_filters_by_service_and_sorts_by_service_then_id() {
        let now = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        for (id, service) in [("b", "order"), ("z", "inventory"), ("a", "order"), ("c", "inventory")] {
            table.register(registration(id, service), now, wall(0)).unwrap();
        }
        assert_eq!(ids(&table.list(None)), ["c", "z", "a", "b"]);
        assert_eq!(ids(&table.list(Some("order"))), ["a", "b"]);
        assert!(table.list(Some("payment")).is_empty());
    }

    #[test]
    fn self_preservation_pauses_eviction_says_why_and_lifts() {
        let start = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        for index in 0..8 {
            table.register(registration(&format!("i-{index}"), "inventory"), start, wall(0)).unwrap();
        }
        let later = start + 5 * SECOND;
        table.heartbeat("i-6", Heartbeat::default(), later, wall(5)).unwrap();
        table.heartbeat("i-7", Heartbeat::default(), later, wall(5)).unwrap();
        let before = table.version();

        assert!(table.sweep(later).is_empty(), "6 of 8 lapsed: nothing is evicted");
        let state = table.state();
        assert!(state.self_preservation);
        assert_eq!(state.self_preservation_reason.as_deref(), Some("6 of 8 leases lapsed at once; eviction paused"));
        assert_eq!(table.num_instances(), 8);
        let events = table.events_since(before).unwrap();
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0].change, WatchChange::StateChanged { state } if state.self_preservation));

        assert!(table.sweep(later + SECOND).is_empty(), "still paused");
        assert_eq!(table.version(), before + 1, "staying paused is not a change");

        // Four come back: 2 of 8 lapsed is at or below the threshold, so eviction resumes.
        let recovered = later + 2 * SECOND;
        for index in 0..4 {
            table.heartbeat(&format!("i-{index}"), Heartbeat::default(), recovered, wall(7)).unwrap();
        }
        let evicted = table.sweep(recovered);
        assert_eq!(ids(&evicted), ["i-4", "i-5"]);
        assert!(!table.state().self_preservation);
        assert_eq!(table.state().self_preservation_reason, None);
        let events = table.events_since(before + 1).unwrap();
        assert!(matches!(&events[0].change, WatchChange::StateChanged { state } if !state.self_preservation));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn few_instances_are_evicted_even_when_all_lapse() {
        let start = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        for index in 0..3 {
            table.register(registration(&format!("i-{index}"), "inventory"), start, wall(0)).unwrap();
        }
        assert_eq!(table.sweep(start + 4 * SECOND).len(), 3, "below the minimum, no self-preservation");
        assert!(!table.self_preservation());
    }

    #[test]
    fn events_since_serves_the_log_then_asks_for_a_snapshot() {
        let now = Instant::now();
        let mut table = InstanceTable::new(terms(), 100, 1);
        table.register(registration("i-0", "inventory"), now, wall(0)).unwrap();
        assert_eq!(table.version(), 101);
        assert_eq!(table.events_since(100).unwrap().len(), 1);
        assert_eq!(table.events_since(101).unwrap(), Vec::new());
        assert_eq!(table.events_since(99), None, "before the first event of this registry");
        assert_eq!(table.events_since(5_000), None, "a version this registry never reached");

        for index in 0..EVENT_LOG_CAPACITY + 10 {
            let status = if index % 2 == 0 { InstanceStatus::Down } else { InstanceStatus::Up };
            table.heartbeat("i-0", Heartbeat { status: Some(status), config_version: None }, now, wall(1)).unwrap();
        }
        let version = table.version();
        assert_eq!(version, 101 + EVENT_LOG_CAPACITY as u64 + 10);
        let oldest_kept = version - EVENT_LOG_CAPACITY as u64 + 1;
        let backlog = table.events_since(oldest_kept - 1).unwrap();
        assert_eq!(backlog.len(), EVENT_LOG_CAPACITY);
        assert_eq!(backlog[0].version, oldest_kept);
        assert_eq!(table.events_since(oldest_kept - 2), None, "fell out of the log");
        assert_eq!(table.events_since(version - 3).unwrap().len(), 3);

        let snapshot = table.snapshot();
        assert_eq!(snapshot.version, version);
        assert!(matches!(snapshot.change, WatchChange::Snapshot { ref instances, .. } if instances.len() == 1));
    }

    /// `to` merges the view of `from`, at the same moment (`now`, `wall`).
    fn sync(from: &InstanceTable, to: &mut InstanceTable, now: Instant, wall: DateTime<Utc>) {
        let (instances, removed) = from.peer_view();
        to.merge_peer(instances, removed, now, wall);
    }

    #[test]
    fn peers_take_registrations_renewals_overrides_and_acks() {
        let start = Instant::now();
        let (mut a, mut b) = (InstanceTable::new(terms(), 0, 1), InstanceTable::new(terms(), 500, 1));
        a.register(registration("inv-1", "inventory"), start, wall(0)).unwrap();
        a.ack_config("inv-1", ConfigAck { version: 1, applied: true, error: None }, wall(0)).unwrap();
        sync(&a, &mut b, start, wall(0));
        assert_eq!(ids(&b.list(None)), ["inv-1"]);
        assert!(b.config_acks().instances[0].current, "the ack came along");
        assert!(b.take_unpublished().iter().any(|event| matches!(event.change, WatchChange::InstanceUpserted { .. })));

        // Renewals at a keep the copy at b alive past its own lease.
        a.heartbeat("inv-1", Heartbeat::default(), start + 2 * SECOND, wall(2)).unwrap();
        sync(&a, &mut b, start + 2 * SECOND, wall(2));
        assert!(b.sweep(start + 4 * SECOND).is_empty(), "renewed at 2 s through a");
        assert_eq!(b.list(None)[0].last_heartbeat_at, wall(2));

        // An override at b reaches a; a merge with nothing new changes nothing.
        b.override_status("inv-1", InstanceStatus::OutOfService, wall(3)).unwrap();
        sync(&b, &mut a, start + 3 * SECOND, wall(3));
        assert_eq!(a.list(None)[0].status, InstanceStatus::OutOfService);
        let version = a.version();
        sync(&b, &mut a, start + 3 * SECOND, wall(3));
        assert_eq!(a.version(), version, "the same view twice is no change");
        a.heartbeat(
            "inv-1",
            Heartbeat { status: Some(InstanceStatus::Up), config_version: None },
            start + 3 * SECOND,
            wall(3),
        )
        .unwrap();
        assert_eq!(a.list(None)[0].status, InstanceStatus::OutOfService, "the override holds on a too");
    }

    #[test]
    fn a_removal_wins_over_older_copies_and_stale_copies_never_come_back() {
        let start = Instant::now();
        let (mut a, mut b) = (InstanceTable::new(terms(), 0, 1), InstanceTable::new(terms(), 500, 1));
        a.register(registration("dead", "inventory"), start, wall(0)).unwrap();
        a.register(registration("leaving", "order"), start, wall(0)).unwrap();
        sync(&a, &mut b, start, wall(0));
        assert_eq!(b.list(None).len(), 2);

        // a finds "dead"'s process gone and "leaving" deregisters; b, cut off meanwhile, still
        // holds both, then the two meet again.
        a.remove_node("node-a", "127.0.0.1:9000", start + SECOND, wall(1));
        assert!(a.list(None).is_empty());
        sync(&b, &mut a, start + SECOND, wall(1));
        assert!(a.list(None).is_empty(), "b's older copies do not resurrect them");
        sync(&a, &mut b, start + SECOND, wall(1));
        assert!(b.list(None).is_empty(), "a's removals apply at b");
        assert!(b.take_unpublished().iter().any(|event| matches!(event.change, WatchChange::InstanceRemoved { .. })));

        // A copy whose lease ran out is not taken, even with no removal known.
        let mut c = InstanceTable::new(terms(), 900, 1);
        let mut d = InstanceTable::new(terms(), 900, 1);
        c.register(registration("old", "inventory"), start, wall(0)).unwrap();
        sync(&c, &mut d, start + 4 * SECOND, wall(4));
        assert!(d.list(None).is_empty(), "renewed 4 s ago, lease 3 s: stale");
    }

    #[test]
    fn an_instance_alive_elsewhere_survives_a_peer_that_evicted_it() {
        let start = Instant::now();
        let (mut a, mut b) = (InstanceTable::new(terms(), 0, 1), InstanceTable::new(terms(), 500, 1));
        a.register(registration("inv-1", "inventory"), start, wall(0)).unwrap();
        sync(&a, &mut b, start, wall(0));
        // b is cut off: it sees no renewal and evicts; a keeps getting them.
        a.heartbeat("inv-1", Heartbeat::default(), start + 3 * SECOND, wall(3)).unwrap();
        assert_eq!(ids(&b.sweep(start + 4 * SECOND)), ["inv-1"]);
        sync(&b, &mut a, start + 4 * SECOND, wall(4));
        assert_eq!(ids(&a.list(None)), ["inv-1"], "b's removal is as of 0 s; a saw a renewal at 3 s");
        sync(&a, &mut b, start + 4 * SECOND, wall(4));
        assert_eq!(ids(&b.list(None)), ["inv-1"], "and it comes back at b");
        assert!(b.sweep(start + 5 * SECOND).is_empty(), "with the lease of its renewal at a");
    }

    #[test]
    fn heartbeats_fill_in_acks_but_never_hide_a_refusal() {
        let start = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 7);
        table.register(registration("inv-1", "inventory"), start, wall(0)).unwrap();
        let beat = |version| Heartbeat { status: None, config_version: Some(version) };
        table.heartbeat("inv-1", beat(7), start, wall(1)).unwrap();
        let row = &table.config_acks().instances[0];
        assert_eq!((row.applied_version, row.current), (Some(7), true), "a restarted registry learns it");

        table.set_config_version(8);
        let refusal = ConfigAck { version: 8, applied: false, error: Some("bad key".into()) };
        table.ack_config("inv-1", refusal, wall(2)).unwrap();
        table.heartbeat("inv-1", beat(7), start, wall(3)).unwrap();
        let row = &table.config_acks().instances[0];
        assert_eq!((row.applied_version, row.error.as_deref()), (Some(8), Some("bad key")), "the refusal stays");

        table.set_config_version(9);
        table.ack_config("inv-1", ConfigAck { version: 9, applied: true, error: None }, wall(4)).unwrap();
        table.heartbeat("inv-1", beat(9), start, wall(5)).unwrap();
        assert!(table.config_acks().instances[0].current);
    }

    #[test]
    fn config_changes_are_events_and_acks_say_who_runs_the_current_version() {
        let now = Instant::now();
        let mut table = InstanceTable::new(terms(), 0, 1);
        table.register(registration("inv-1", "inventory"), now, wall(0)).unwrap();
        table.register(registration("ord-1", "order"), now, wall(0)).unwrap();
        table.register(registration("pay-1", "payment"), now, wall(0)).unwrap();
        assert!(matches!(
            table.ack_config("nobody", ConfigAck { version: 1, applied: true, error: None }, wall(1)),
            Err(RegistryError::UnknownInstance(_))
        ));
        table.ack_config("inv-1", ConfigAck { version: 1, applied: true, error: None }, wall(1)).unwrap();
        table.ack_config("ord-1", ConfigAck { version: 1, applied: true, error: None }, wall(1)).unwrap();

        table.set_config_version(2);
        assert_eq!(table.events_since(3).unwrap()[0].change, WatchChange::ConfigChanged { config_version: 2 });
        table.set_config_version(2);
        assert_eq!(table.version(), 4, "the same version again is no change");
        table.ack_config("inv-1", ConfigAck { version: 2, applied: true, error: None }, wall(2)).unwrap();
        let refused = ConfigAck { version: 2, applied: false, error: Some("bad level".into()) };
        table.ack_config("ord-1", refused, wall(2)).unwrap();

        let acks = table.config_acks();
        assert_eq!(acks.config_version, 2);
        let rows: Vec<_> = acks
            .instances
            .iter()
            .map(|row| (row.instance_id.as_str(), row.applied_version, row.applied, row.current))
            .collect();
        assert_eq!(
            rows,
            [("inv-1", Some(2), true, true), ("ord-1", Some(2), false, false), ("pay-1", None, false, false)]
        );
        assert_eq!(acks.instances[0].acked_at, Some(wall(2)));
        assert_eq!(acks.instances[1].error.as_deref(), Some("bad level"));

        table.deregister("inv-1", Instant::now(), wall(9)).unwrap();
        table.register(registration("inv-1", "inventory"), now, wall(3)).unwrap();
        assert_eq!(table.config_acks().instances[0].applied_version, None, "acks leave with the instance");
    }
}
