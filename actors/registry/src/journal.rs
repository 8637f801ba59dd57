//! The registry's event journal: what happened to instances (registered, status changed,
//! deregistered, evicted and why) and what operators did through a gateway's dashboard, in
//! one bounded list, newest last. It lives as long as the registry process; the dashboard
//! shows it as its event journal and its timeline's evictions.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use emporium_contracts::registry::{
    InstanceStatus, JournalEntry, JournalRecord, RemovalReason, WatchChange, WatchEvent,
};

/// Entries kept.
pub const JOURNAL_CAPACITY: usize = 1000;

/// Who the registry's own entries are by.
const REGISTRY: &str = "registry";

/// A status as the registry spells it (`OUT_OF_SERVICE`).
fn status_name(status: InstanceStatus) -> String {
    serde_json::to_value(status).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default()
}

/// The journal, and the statuses it last saw (to tell a registration from a change).
#[derive(Debug, Default)]
pub struct Journal {
    entries: VecDeque<JournalEntry>,
    last_id: u64,
    statuses: HashMap<String, InstanceStatus>,
}

impl Journal {
    /// Records an operator's action.
    pub fn record(&mut self, record: JournalRecord, wall: DateTime<Utc>) -> JournalEntry {
        self.push(wall, record.who, record.action, record.target, record.result, record.detail)
    }

    /// Records what a watch event says happened to an instance.
    pub fn observe(&mut self, event: &WatchEvent, wall: DateTime<Utc>) {
        match &event.change {
            WatchChange::InstanceUpserted { instance } => {
                let target = instance.id.clone();
                match self.statuses.insert(instance.id.clone(), instance.status) {
                    None => {
                        let detail =
                            format!("{} at {}, {}", instance.service, instance.address, status_name(instance.status));
                        self.push_registry(wall, "instance_registered", target, detail);
                    }
                    Some(previous) if previous != instance.status => {
                        let detail = format!("{} -> {}", status_name(previous), status_name(instance.status));
                        self.push_registry(wall, "instance_status_changed", target, detail);
                    }
                    Some(_) => {}
                }
            }
            WatchChange::InstanceRemoved { id, service, reason } => {
                self.statuses.remove(id);
                let (action, detail) = match reason {
                    RemovalReason::Deregistered => ("instance_deregistered", format!("{service}: shut down cleanly")),
                    RemovalReason::LeaseExpired => ("instance_evicted", format!("{service}: its lease lapsed")),
                    RemovalReason::ProcessGone => (
                        "instance_evicted",
                        format!("{service}: its process is gone (connection closed, port refused)"),
                    ),
                };
                self.push_registry(wall, action, id.clone(), detail);
            }
            WatchChange::Snapshot { .. } | WatchChange::StateChanged { .. } | WatchChange::ConfigChanged { .. } => {}
        }
    }

    /// The entries after `since` (all with 0), newest first, at most `limit`.
    pub fn list(&self, since: u64, limit: usize) -> Vec<JournalEntry> {
        self.entries.iter().rev().take_while(|entry| entry.id > since).take(limit).cloned().collect()
    }

    fn push_registry(&mut self, wall: DateTime<Utc>, action: &str, target: String, detail: String) {
        self.push(wall, REGISTRY.to_string(), action.to_string(), target, "ok".to_string(), detail);
    }

    fn push(
        &mut self,
        at: DateTime<Utc>,
        who: String,
        action: String,
        target: String,
        result: String,
        detail: String,
    ) -> JournalEntry {
        self.last_id += 1;
        let entry = JournalEntry { id: self.last_id, at, who, action, target, result, detail };
        if self.entries.len() == JOURNAL_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry.clone());
        entry
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use emporium_contracts::registry::InstanceInfo;

    use super::*;

    fn upsert(status: InstanceStatus) -> WatchEvent {
        let instance = InstanceInfo {
            id: "order@order-1".into(),
            service: "order".into(),
            node_id: "order-1".into(),
            address: "127.0.0.1:8765".into(),
            status,
            roles: vec!["order".into()],
            version: "0.1.0".into(),
            registered_at: Utc::now(),
            last_heartbeat_at: Utc::now(),
            metadata: BTreeMap::new(),
            lease_millis: None,
        };
        WatchEvent { version: 1, change: WatchChange::InstanceUpserted { instance } }
    }

    #[test]
    fn registrations_changes_and_evictions_are_told_apart() {
        let mut journal = Journal::default();
        journal.observe(&upsert(InstanceStatus::Up), Utc::now());
        journal.observe(&upsert(InstanceStatus::Up), Utc::now());
        journal.observe(&upsert(InstanceStatus::OutOfService), Utc::now());
        let removed = WatchChange::InstanceRemoved {
            id: "order@order-1".into(),
            service: "order".into(),
            reason: RemovalReason::ProcessGone,
        };
        journal.observe(&WatchEvent { version: 4, change: removed }, Utc::now());
        let actions: Vec<String> = journal.list(0, 10).into_iter().map(|entry| entry.action).collect();
        assert_eq!(actions, ["instance_evicted", "instance_status_changed", "instance_registered"], "newest first");
        assert_eq!(journal.list(2, 10).len(), 1, "since an id");
    }

    #[test]
    fn the_journal_is_bounded_and_keeps_operator_records() {
        let mut journal = Journal::default();
        for number in 0..JOURNAL_CAPACITY + 5 {
            let record = JournalRecord {
                who: "admin@emporium.local".into(),
                action: "restart_actor".into(),
                target: format!("order-1 order/saga {number}"),
                result: "ok".into(),
                detail: String::new(),
            };
            journal.record(record, Utc::now());
        }
        let entries = journal.list(0, usize::MAX);
        assert_eq!(entries.len(), JOURNAL_CAPACITY);
        assert_eq!(entries[0].id, (JOURNAL_CAPACITY + 5) as u64);
        assert_eq!(entries[0].who, "admin@emporium.local");
    }
}
