//! The Prometheus view of the directory: every node's `/metrics` endpoint as a target group of
//! the HTTP service-discovery format (<https://prometheus.io/docs/prometheus/latest/http_sd/>),
//! served at `GET /registry/v1/prometheus/targets`.

use std::collections::{BTreeMap, BTreeSet};

use emporium_contracts::registry::InstanceInfo;
use serde::Serialize;

/// One target group: the node's cluster listener and the labels every series scraped from it
/// gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetGroup {
    /// `host:port` of the node's cluster listener, which serves `/metrics`.
    pub targets: Vec<String>,
    /// `node` (its id) and `roles` (its roles, sorted, comma-joined: `gateway,order`). The
    /// build is the `version` label of `emporium_build_info`, not a target label, so that the
    /// two never clash.
    pub labels: BTreeMap<&'static str, String>,
}

/// One group per node, whatever the status of its instances: a node that stops answering is
/// shown as `up == 0` by Prometheus until its lease is evicted. Instances registered through
/// the Eureka API are not Emporium nodes (no `/metrics` of Emporium's) and are left out.
pub fn target_groups(instances: &[InstanceInfo]) -> Vec<TargetGroup> {
    let mut nodes: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for instance in instances.iter().filter(|instance| instance.is_emporium_node()) {
        let roles = nodes.entry((&instance.node_id, &instance.address)).or_default();
        roles.extend(instance.roles.iter().map(String::as_str));
        roles.insert(&instance.service);
    }
    nodes
        .into_iter()
        .map(|((node_id, address), roles)| TargetGroup {
            targets: vec![address.to_string()],
            labels: BTreeMap::from([
                ("node", node_id.to_string()),
                ("roles", roles.into_iter().collect::<Vec<_>>().join(",")),
            ]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use emporium_contracts::registry::InstanceStatus;

    fn instance(service: &str, node_id: &str, address: &str, roles: &[&str]) -> InstanceInfo {
        InstanceInfo {
            id: format!("{service}-{node_id}"),
            service: service.to_string(),
            node_id: node_id.to_string(),
            address: address.to_string(),
            status: InstanceStatus::Up,
            roles: roles.iter().map(|role| role.to_string()).collect(),
            version: "1.2.3".to_string(),
            registered_at: Utc::now(),
            last_heartbeat_at: Utc::now(),
            metadata: BTreeMap::new(),
            lease_millis: None,
        }
    }

    #[test]
    fn one_group_per_node_with_its_roles_sorted() {
        let instances = [
            instance("order", "node-b", "10.0.0.2:8761", &["order", "gateway"]),
            instance("registry", "node-a", "10.0.0.1:8761", &["registry"]),
            instance("gateway", "node-b", "10.0.0.2:8761", &["order", "gateway"]),
        ];
        let json = serde_json::to_value(target_groups(&instances)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"targets": ["10.0.0.1:8761"], "labels": {"node": "node-a", "roles": "registry"}},
                {"targets": ["10.0.0.2:8761"], "labels": {"node": "node-b", "roles": "gateway,order"}},
            ])
        );
    }

    #[test]
    fn instances_registered_through_eureka_are_not_targets() {
        let mut spring = instance("billing", "10.0.0.7:billing:8080", "10.0.0.7:8080", &[]);
        spring.metadata.insert("registeredThrough".to_string(), "eureka".to_string());
        let groups = target_groups(&[spring, instance("order", "n1", "127.0.0.1:9001", &["order"])]);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].targets, ["127.0.0.1:9001"]);
    }

    #[test]
    fn an_empty_directory_is_an_empty_list() {
        assert_eq!(serde_json::to_string(&target_groups(&[])).unwrap(), "[]");
    }
}
