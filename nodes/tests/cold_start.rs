//! A cold start of a cluster on a fresh MariaDB database (issue #9): seven database nodes
//! (auth, payment, notification, and two each of inventory and order) started at the same
//! moment all migrate the same empty database and all become ready, five rounds in a row.
//! Before the migration lock, six of seven died on the race.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// The roles of the seven nodes of a round, one process each, all on the same database.
const DATABASE_NODE_ROLES: [&str; 7] = ["auth", "inventory", "order", "payment", "notification", "inventory", "order"];

/// Cold starts in a row; each on its own fresh database and RabbitMQ virtual host.
const NUM_ROUNDS: usize = 5;

/// How long a round's nodes have to start and become ready (a node gives up waiting for the
/// migration lock after 60 s, so a stuck start shows as a failure here, not a hang).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long a node has to exit after SIGTERM.
const EXIT_WITHIN: Duration = Duration::from_secs(15);

/// What one round measured.
struct RoundTimings {
    all_started: Duration,
    all_ready: Duration,
}

/// Every node's name, readiness answer and output, for a failure message.
fn describe(nodes: &[NodeProcess], readiness: &[(u16, serde_json::Value)]) -> String {
    nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let ready =
                readiness.get(index).map_or("not asked".to_string(), |(status, body)| format!("{status} {body}"));
            format!("=== node {} (/health/ready: {ready}) ===\n{}", node.node_id, node.output())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The answer of a node's `/health/ready`, or 0 when nothing answered.
async fn readiness_of(node: &NodeProcess) -> (u16, serde_json::Value) {
    match client().get(node.url("/health/ready")).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(serde_json::Value::Null))
        }
        Err(error) => (0, serde_json::Value::String(error.to_string())),
    }
}

/// One query's single value through the `mariadb` client.
fn query_value(database: &MariaDb, sql: &str) -> String {
    let output = Command::new("mariadb")
        .args(["--protocol=tcp", "-h127.0.0.1", "-uroot", "-N", "-B", &database.name, "-e", sql])
        .output()
        .expect("the mariadb client is installed");
    assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A registry, then the seven database nodes launched together on a fresh database; waits
/// until every one is ready, checks them, stops them with SIGTERM.
async fn cold_start_round(round: usize) -> RoundTimings {
    let database = MariaDb::create(&format!("cold_start_r{round}"));
    let vhost = RabbitVhost::create(&format!("cold-start-r{round}"));
    let registry = start_registry(&format!("cold-r{round}-registry"));
    let data_dirs: Vec<DataDir> = DATABASE_NODE_ROLES.iter().map(|_| DataDir::new()).collect();
    let env = [
        ("EMPORIUM_MYSQL_URL", database.url.as_str()),
        ("EMPORIUM_AMQP_URL", vhost.url.as_str()),
        ("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ];

    let launched_at = Instant::now();
    let mut nodes: Vec<NodeProcess> = DATABASE_NODE_ROLES
        .iter()
        .zip(&data_dirs)
        .enumerate()
        .map(|(index, (role, data_dir))| {
            let data_dir = data_dir.path.to_str().unwrap().to_string();
            NodeProcess::launch(
                &format!("cold-r{round}-{index}-{role}"),
                &["--role", role, "--registry", &registry.url, "--listen", "127.0.0.1:0", "--data-dir", &data_dir],
                &env,
            )
        })
        .collect();

    let mut start_failures = Vec::new();
    for node in &mut nodes {
        let remaining = READY_WITHIN.saturating_sub(launched_at.elapsed());
        if let Err(reason) = node.wait_started(remaining) {
            start_failures.push(format!("{}: {reason}", node.node_id));
        }
    }
    assert!(
        start_failures.is_empty(),
        "round {round}: {} of {} nodes did not start:\n{}\n{}",
        start_failures.len(),
        nodes.len(),
        start_failures.join("\n"),
        describe(&nodes, &[])
    );
    let all_started = launched_at.elapsed();

    let mut readiness = Vec::new();
    loop {
        readiness.clear();
        for node in &nodes {
            readiness.push(readiness_of(node).await);
        }
        if readiness.iter().all(|(status, _)| *status == 200) {
            break;
        }
        if launched_at.elapsed() > READY_WITHIN {
            panic!(
                "round {round}: {} of {} nodes not ready within {READY_WITHIN:?}:\n{}",
                readiness.iter().filter(|(status, _)| *status != 200).count(),
                nodes.len(),
                describe(&nodes, &readiness)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_ready = launched_at.elapsed();

    for node in &mut nodes {
        let exit_status_opt = node.exit_status_opt();
        assert!(
            exit_status_opt.is_none(),
            "round {round}: {} exited ({exit_status_opt:?}):\n{}",
            node.node_id,
            node.output()
        );
        let (status, tree) = get_json(&node.url("/admin/v1/supervision")).await;
        assert_eq!(status, 200, "{tree}");
        assert_eq!(tree["node"]["numFaults"], 0, "round {round}: {} recorded faults: {tree}", node.node_id);
    }
    assert_eq!(
        query_value(&database, "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 0"),
        "0",
        "round {round}: a migration is recorded as failed"
    );
    let num_applied = query_value(&database, "SELECT COUNT(*) FROM _sqlx_migrations");
    let num_distinct = query_value(&database, "SELECT COUNT(DISTINCT version) FROM _sqlx_migrations");
    assert_eq!(num_applied, num_distinct, "round {round}: a migration was applied twice");

    for node in &mut nodes {
        let status = node.sigterm(EXIT_WITHIN);
        assert!(status.success(), "round {round}: {} exited with {status:?}:\n{}", node.node_id, node.output());
    }
    RoundTimings { all_started, all_ready }
}

#[tokio::test]
async fn seven_database_nodes_started_together_on_a_fresh_database_all_become_ready_five_times() {
    for round in 1..=NUM_ROUNDS {
        let timings = cold_start_round(round).await;
        eprintln!(
            "round {round}: {} nodes started in {:?}, all ready in {:?}",
            DATABASE_NODE_ROLES.len(),
            timings.all_started,
            timings.all_ready
        );
    }
}
