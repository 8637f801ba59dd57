//! Three registry peers with real processes: every peer holds the whole directory; nodes keep
//! registering, discovering and acknowledging configuration through what is left when peers
//! are killed one after another; a peer that comes back converges; a peer cut off while a node
//! died does not bring the dead node back.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

/// Three registries started as peers of each other (each lists all three URLs, its own
/// included), on one copy of `config/`.
struct Peers {
    registries: Vec<NodeProcess>,
    urls: Vec<String>,
    config: ConfigDir,
}

impl Peers {
    fn start(prefix: &str) -> Peers {
        let config = ConfigDir::copy_of_repository_config();
        let listens: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let urls: Vec<String> = listens.iter().map(|listen| format!("http://{listen}")).collect();
        let all = urls.join(",");
        let config_dir = config.path.to_str().unwrap().to_string();
        let mut registries: Vec<NodeProcess> = listens
            .iter()
            .enumerate()
            .map(|(index, listen)| {
                let args = ["--role", "registry", "--listen", listen, "--config-dir", &config_dir, "--registry", &all];
                NodeProcess::launch(&format!("{prefix}-{index}"), &args, &[])
            })
            .collect();
        for registry in &mut registries {
            registry.wait_started(Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
        }
        Peers { registries, urls, config }
    }

    /// The registry URLs starting with peer `first` (a node sticks to the first that answers).
    fn urls_from(&self, first: usize) -> String {
        (0..3).map(|offset| self.urls[(first + offset) % 3].clone()).collect::<Vec<_>>().join(",")
    }

    /// Waits until every peer in `alive` lists exactly `ids` for `service`.
    async fn all_list(&self, alive: &[usize], service: &str, ids: &[&str]) {
        let mut expected: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        expected.sort();
        eventually(Duration::from_secs(15), &format!("peers {alive:?} list {service}: {ids:?}"), || async {
            for &index in alive {
                let mut listed: Vec<String> =
                    instances(&self.registries[index], service).await.into_iter().map(|(id, _)| id).collect();
                listed.sort();
                if listed != expected {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }

    /// Waits until peer `index` shows every instance current on configuration version
    /// `version` (any version when `None`); answers the version.
    async fn all_acked(&self, index: usize, count: usize, version: Option<u64>) -> u64 {
        let url = self.registries[index].url("/registry/v1/config/acks");
        eventually(Duration::from_secs(15), &format!("peer {index}: {count} instances acked"), || async {
            let (_, acks) = get_json(&url).await;
            let rows = acks["instances"].as_array()?;
            let current = acks["configVersion"].as_u64()?;
            (rows.len() == count
                && rows.iter().all(|row| row["current"] == true)
                && version.is_none_or(|version| version == current))
            .then_some(current)
        })
        .await
    }
}

#[tokio::test]
async fn nodes_keep_working_through_the_peers_that_are_left_and_a_returning_peer_converges() {
    let mut peers = Peers::start("peer");
    let _echo_1 = start_node("peer-echo-1", "echo", &peers.urls_from(0));
    let mut echo_2 = start_node("peer-echo-2", "echo", &peers.urls_from(1));
    let probe = start_node("peer-probe", "probe", &peers.urls_from(2));
    peers.all_list(&[0, 1, 2], "echo", &["echo@peer-echo-1", "echo@peer-echo-2"]).await;
    peers.all_list(&[0, 1, 2], "registry", &["registry@peer-0", "registry@peer-1", "registry@peer-2"]).await;
    // 3 registries + 2 echo + 1 probe, acked on every peer whichever one each acked to.
    let version = peers.all_acked(2, 6, None).await;
    assert_eq!(peers.all_acked(0, 6, None).await, version, "the same files are the same version on every peer");

    // A node killed while following peer 1 is gone from every peer.
    echo_2.kill9();
    peers.all_list(&[0, 1, 2], "echo", &["echo@peer-echo-1"]).await;

    // Peer 0 dies: a node that names it first registers through the others; discovery works.
    peers.registries[0].kill9();
    let _echo_3 = start_node("peer-echo-3", "echo", &peers.urls_from(0));
    peers.all_list(&[1, 2], "echo", &["echo@peer-echo-1", "echo@peer-echo-3"]).await;
    let (status, body) = ask(&probe, "probe", "RelayEcho", json!({"text": "through peers"})).await;
    assert_eq!(status, 200, "{body}");

    // A configuration change reaches every node and is acked through what is left.
    peers.config.write("order.toml", "[log]\nlevel = \"warn\"\n");
    let state_url = peers.registries[1].url("/registry/v1/state");
    let changed = eventually(Duration::from_secs(10), "peer 1 serves the new files", || async {
        let (_, state) = get_json(&state_url).await;
        state["configVersion"].as_u64().filter(|current| *current != version)
    })
    .await;
    peers.all_acked(1, 5, Some(changed)).await;
    assert_eq!(peers.all_acked(2, 5, Some(changed)).await, changed);

    // Peer 1 dies too: one peer carries the cluster.
    peers.registries[1].kill9();
    let _echo_4 = start_node("peer-echo-4", "echo", &peers.urls_from(1));
    peers.all_list(&[2], "echo", &["echo@peer-echo-1", "echo@peer-echo-3", "echo@peer-echo-4"]).await;
    peers.all_acked(2, 5, Some(changed)).await;

    // Peer 0 comes back empty and converges on what peer 2 holds.
    peers.registries[0].restart();
    peers.all_list(&[0, 2], "echo", &["echo@peer-echo-1", "echo@peer-echo-3", "echo@peer-echo-4"]).await;
    peers.all_acked(0, 6, Some(changed)).await;
}

#[tokio::test]
async fn a_peer_cut_off_while_a_node_died_does_not_bring_it_back() {
    let peers = Peers::start("part");
    let _alive = start_node("part-alive", "echo", &peers.urls_from(0));
    let mut doomed = start_node("part-doomed", "echo", &peers.urls_from(0));
    peers.all_list(&[0, 1, 2], "echo", &["echo@part-alive", "echo@part-doomed"]).await;

    // Peer 2 stops (no replication either way) while the doomed node dies.
    let stopped = Instant::now();
    signal(&peers.registries[2], "-STOP");
    doomed.kill9();
    peers.all_list(&[0, 1], "echo", &["echo@part-alive"]).await;
    // Cut off for longer than a lease: its copies are all stale when it comes back.
    while stopped.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&peers.registries[2], "-CONT");

    // It drops the dead node, keeps the live one, and never hands the dead one back.
    let resumed = Instant::now();
    peers.all_list(&[2], "echo", &["echo@part-alive"]).await;
    while resumed.elapsed() < Duration::from_secs(3) {
        for index in [0, 1] {
            let listed = instances(&peers.registries[index], "echo").await;
            assert_eq!(listed.len(), 1, "peer {index} after the heal: {listed:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peers.all_list(&[0, 1, 2], "echo", &["echo@part-alive"]).await;
}

/// Sends `signal` (`-STOP`, `-CONT`) to `node`.
fn signal(node: &NodeProcess, signal: &str) {
    let status = std::process::Command::new("kill").args([signal, &node.pid().to_string()]).status().unwrap();
    assert!(status.success());
}
