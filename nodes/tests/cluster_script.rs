//! `ops/cluster.sh` end to end (issue #10, item 9): `up` creates a fresh MariaDB database and
//! starts every role on non-default ports (on a RabbitMQ virtual host of the test's own); an
//! order placed through its gateway with an Idempotency-Key reaches CONFIRMED; `status` sees
//! every role ready; `down` stops every node. Whatever happens, the nodes are stopped, the
//! database dropped, the virtual host deleted and the state dir removed.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// The roles `ops/cluster.sh` starts, in its order.
const ROLES: [&str; 8] = ["registry", "auth", "product", "inventory", "order", "payment", "notification", "gateway"];

/// A registry port P such that P..=P+7 (the registry and the seven other nodes) are free now.
/// Taken below the kernel's ephemeral range, so that nodes of other tests binding port 0 do
/// not take them in the meantime.
fn free_port_block() -> u16 {
    let seed = std::process::id() as u64 * 7919 + free_port() as u64;
    for attempt in 0..200u64 {
        let first = 20_000 + ((seed + attempt * 37) % 10_000) as u16;
        let listeners: Vec<_> =
            (first..first + 8).map_while(|port| TcpListener::bind(("127.0.0.1", port)).ok()).collect();
        if listeners.len() == 8 {
            return first;
        }
    }
    panic!("no block of 8 free ports between 20000 and 30008");
}

/// A MariaDB database name that no one uses; the database itself is made by `ops/cluster.sh up`
/// and dropped on drop.
struct DroppedDatabase {
    name: String,
}

impl Drop for DroppedDatabase {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["--protocol=tcp", "-h127.0.0.1", "-uroot", "-e", &format!("DROP DATABASE IF EXISTS {}", self.name)])
            .status();
    }
}

/// `ops/cluster.sh` with the environment of one cluster; `down` and the state dir's removal on
/// drop.
struct ClusterScript {
    state_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl ClusterScript {
    fn run(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/cluster.sh");
        let mut command = Command::new(script);
        command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command.output().expect("ops/cluster.sh runs")
    }

    /// Runs `args` and panics with the script's output unless it exits 0.
    fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let printed = printed(&output);
        assert!(output.status.success(), "ops/cluster.sh {args:?} failed ({}):\n{printed}", output.status);
        printed
    }

    /// The pids the script recorded, one per role still recorded.
    fn recorded_pids(&self) -> Vec<u32> {
        ROLES
            .iter()
            .filter_map(|role| std::fs::read_to_string(self.state_dir.join(format!("run/{role}.pid"))).ok())
            .filter_map(|text| text.trim().parse().ok())
            .collect()
    }
}

impl Drop for ClusterScript {
    fn drop(&mut self) {
        let pids = self.recorded_pids();
        let output = self.run(&["down"]);
        if !output.status.success() {
            eprintln!("ops/cluster.sh down failed while cleaning up:\n{}", printed(&output));
            for pid in pids {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn process_runs(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn the_cluster_script_starts_a_cluster_that_takes_an_order_and_stops_it() {
    let unique = unique_suffix().replace('-', "_");
    let vhost = RabbitVhost::create("cluster-script");
    let database = DroppedDatabase { name: format!("cluster_script_{unique}") };
    let config = ConfigDir::copy_of_repository_config();
    let registry_port = free_port_block();
    let http = format!("127.0.0.1:{}", free_port());
    let state_dir = std::env::temp_dir().join(format!("emporium-cluster-script-{unique}"));
    let cluster = ClusterScript {
        env: vec![
            ("EMPORIUM_BIN".into(), env!("CARGO_BIN_EXE_emporium").into()),
            ("EMPORIUM_CLUSTER_DIR".into(), state_dir.display().to_string()),
            ("EMPORIUM_MYSQL_URL".into(), format!("mysql://root@127.0.0.1:3306/{}", database.name)),
            ("EMPORIUM_AMQP_URL".into(), vhost.url.clone()),
            ("EMPORIUM_BUS_NAMESPACE".into(), format!("clusterscript{unique}")),
            ("EMPORIUM_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
            ("EMPORIUM_CONFIG_DIR".into(), config.path.display().to_string()),
            ("EMPORIUM_REGISTRY_PORT".into(), registry_port.to_string()),
            ("EMPORIUM_HTTP".into(), http.clone()),
        ],
        state_dir,
    };

    let printed = cluster.run_ok(&["up"]);
    assert!(printed.contains(&format!("gateway    http://{http}")), "{printed}");
    assert!(printed.contains(&format!("registry   http://127.0.0.1:{registry_port}")), "{printed}");
    let status = cluster.run_ok(&["status"]);
    for role in ROLES {
        let line = status.lines().find(|line| line.starts_with(&format!("{role} "))).unwrap_or_default();
        assert!(line.ends_with(" yes"), "{role} is not ready:\n{status}");
    }
    // Idempotent: a second `up` starts nothing.
    let pids_before = cluster.recorded_pids();
    let printed = cluster.run_ok(&["up"]);
    assert_eq!(cluster.recorded_pids(), pids_before, "{printed}");
    assert_eq!(printed.matches("is already running").count(), ROLES.len(), "{printed}");

    // Through the gateway: the admin stocks a product, a customer registers, signs in and orders.
    let api = Api::new(format!("http://{http}"));
    let admin = api.admin_token().await;
    let product = json!({"sku": "SCRIPT-1", "name": "Scripted mug", "description": "A thing", "price": "9.50",
        "currency": "USD", "category": "things", "attributes": {}});
    let (status, body) = api.post("/api/v1/products", Some(&admin), product).await;
    assert_eq!(status, 201, "{body}");
    let stock = json!({"available": 5, "reorderLevel": 0, "reorderQuantity": 0});
    let (status, body, _) = api.send("PUT", "/api/v1/inventory/SCRIPT-1", Some(&admin), Some(stock)).await;
    assert_eq!(status, 200, "{body}");
    let customer = api.sign_up("scripted").await;

    let order_body = json!({"items": [{"sku": "SCRIPT-1", "quantity": 2}], "currency": "USD",
        "payment": {"method": "card", "token": "tok_visa"}});
    let place_order = || async {
        let response = api
            .client
            .post(format!("{}/api/v1/orders", api.base))
            .bearer_auth(&customer)
            .header("Idempotency-Key", "cluster-script-order-1")
            .json(&order_body)
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, order) = place_order().await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_str().expect("an order id").to_string();
    let (_, again) = place_order().await;
    assert_eq!(again["id"], order["id"], "the same Idempotency-Key gives the same order: {again}");

    let confirmed = eventually(Duration::from_secs(30), "the order is CONFIRMED", || async {
        let (status, order) = api.get(&format!("/api/v1/orders/{order_id}"), Some(&customer)).await;
        (status == 200 && order["status"] == "CONFIRMED").then_some(order)
    })
    .await;
    assert_eq!(confirmed["total"], "19.00", "{confirmed}");

    // `down` stops every node it started; `status` then says none is ready.
    let pids = cluster.recorded_pids();
    assert_eq!(pids.len(), ROLES.len());
    cluster.run_ok(&["down"]);
    let still_running: Vec<_> = pids.into_iter().filter(|pid| process_runs(*pid)).collect();
    assert!(still_running.is_empty(), "still running after down: {still_running:?}");
    assert!(!cluster.run(&["status"]).status.success(), "status fails once the cluster is down");
}
