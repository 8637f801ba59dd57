//! No event is lost for want of a queue: a cluster on MariaDB and RabbitMQ whose payment and
//! notification nodes start only after the first order was placed (and its `order.created`
//! published) still confirms that order and notifies its buyer, because every node's bus
//! declared the whole topology before it published. The exchanges and queues carry the
//! cluster's `EMPORIUM_BUS_NAMESPACE`.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const WITHIN: Duration = Duration::from_secs(30);

/// The nodes of one role each, started with the same stores, broker and namespace.
struct LateCluster {
    registry: RegistryNode,
    database: MariaDb,
    vhost: RabbitVhost,
    namespace: String,
    gateway_http: String,
    nodes: Vec<(String, NodeProcess)>,
    data: Vec<DataDir>,
}

impl LateCluster {
    fn new(prefix: &str) -> LateCluster {
        let database = MariaDb::create(&format!("{prefix}_db"));
        let vhost = RabbitVhost::create(prefix);
        let registry = start_registry(&format!("{prefix}-registry"));
        LateCluster {
            registry,
            database,
            vhost,
            namespace: format!("{prefix}{}", unique_suffix().replace('-', "x")),
            gateway_http: format!("127.0.0.1:{}", free_port()),
            nodes: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Starts one node per role of `roles` at once and waits until each is ready.
    async fn start(&mut self, roles: &[&str]) {
        let mut started = Vec::new();
        for role in roles {
            let data = DataDir::new();
            let data_dir = data.path.to_str().unwrap().to_string();
            let mut args = vec![
                "--role",
                *role,
                "--registry",
                &self.registry.url,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &data_dir,
            ];
            if *role == "gateway" {
                args.extend(["--http", self.gateway_http.as_str()]);
            }
            let node = NodeProcess::launch(
                &format!("late-{role}"),
                &args,
                &[
                    ("EMPORIUM_MYSQL_URL", self.database.url.as_str()),
                    ("EMPORIUM_AMQP_URL", self.vhost.url.as_str()),
                    ("EMPORIUM_BUS_NAMESPACE", self.namespace.as_str()),
                    ("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD),
                ],
            );
            started.push((role.to_string(), node));
            self.data.push(data);
        }
        for (role, node) in &mut started {
            if let Err(reason) = node.wait_started(WITHIN) {
                panic!("the {role} node did not start ({reason}):\n{}", node.output());
            }
        }
        for (role, node) in &started {
            eventually(WITHIN, &format!("the {role} node is ready"), || async {
                (get_json(&node.url("/health/ready")).await.0 == 200).then_some(())
            })
            .await;
        }
        self.nodes.extend(started);
    }

    fn api(&self) -> Api {
        Api::new(format!("http://{}", self.gateway_http))
    }

    /// The first column of the first row of `sql` on the cluster's database.
    fn scalar(&self, sql: &str) -> i64 {
        let output = Command::new("mariadb")
            .args(["--protocol=tcp", "-h127.0.0.1", "-uroot", "-N", "-B", &self.database.name, "-e", sql])
            .output()
            .expect("the mariadb client is installed");
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or_else(|_| panic!("{sql} answers a number"))
    }

    /// The queues of the cluster's virtual host.
    fn queues(&self) -> Vec<String> {
        let output = Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "--no-table-headers", "-p", &self.vhost.name, "name"])
            .output()
            .expect("rabbitmqctl is installed");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).lines().map(|line| line.trim().to_string()).collect()
    }
}

async fn stock_product(api: &Api, admin: &str, sku: &str) {
    let product = json!({"sku": sku, "name": "Late lamp", "description": "A thing", "price": "30.00",
        "currency": "USD", "category": "things", "attributes": {}});
    let (status, body) = api.post("/api/v1/products", Some(admin), product).await;
    assert_eq!(status, 201, "{body}");
    let stock = json!({"available": 5, "reorderLevel": 0, "reorderQuantity": 0});
    let (status, body, _) = api.send("PUT", &format!("/api/v1/inventory/{sku}"), Some(admin), Some(stock)).await;
    assert_eq!(status, 200, "{body}");
}

/// The kinds of the notifications `token`'s user has, sorted.
async fn notification_kinds(api: &Api, token: &str) -> Option<Vec<String>> {
    let (status, notifications) = api.get("/api/v1/notifications", Some(token)).await;
    if status != 200 {
        return None;
    }
    let mut kinds: Vec<String> = notifications["items"]
        .as_array()?
        .iter()
        .filter_map(|item| item["kind"].as_str().map(str::to_string))
        .collect();
    kinds.sort();
    Some(kinds)
}

#[tokio::test]
async fn an_order_placed_before_payment_and_notification_started_is_confirmed_and_notified() {
    let mut cluster = LateCluster::new("late");
    cluster.start(&["auth", "product", "inventory", "order", "gateway"]).await;
    let api = cluster.api();
    eventually(WITHIN, "the gateway sees auth", || async {
        (api.get("/.well-known/jwks.json", None).await.0 == 200).then_some(())
    })
    .await;
    let admin = api.admin_token().await;
    stock_product(&api, &admin, "LATE-1").await;
    let buyer = api.sign_up("late-buyer").await;

    let body = json!({"items": [{"sku": "LATE-1", "quantity": 1}], "currency": "USD",
        "payment": {"method": "card", "token": "tok_visa"}});
    let (status, order) = api.post("/api/v1/orders", Some(&buyer), body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PENDING_PAYMENT");
    let order_id = order["id"].as_str().unwrap().to_string();
    // Its order.created left the outbox while no payment or notification node existed.
    eventually(WITHIN, "order.created is published", || async {
        let sql = format!(
            "SELECT COUNT(*) FROM bus_outbox WHERE service = 'order' AND routing_key = 'order.created' \
             AND subject = '{order_id}' AND sent_at IS NOT NULL"
        );
        (cluster.scalar(&sql) == 1).then_some(())
    })
    .await;
    let (_, pending) = api.get(&format!("/api/v1/orders/{order_id}"), Some(&buyer)).await;
    assert_eq!(pending["status"], "PENDING_PAYMENT", "no payment service yet: {pending}");

    cluster.start(&["payment", "notification"]).await;
    let confirmed: Value = eventually(WITHIN, "the order is paid", || async {
        let (status, order) = api.get(&format!("/api/v1/orders/{order_id}"), Some(&buyer)).await;
        (status == 200 && order["status"] != "PENDING_PAYMENT").then_some(order)
    })
    .await;
    assert_eq!(confirmed["status"], "CONFIRMED", "{confirmed}");
    let expected = vec!["order.confirmed".to_string(), "order.created".to_string(), "user.registered".to_string()];
    let kinds = eventually(WITHIN, "the buyer's notifications", || async {
        notification_kinds(&api, &buyer).await.filter(|kinds| kinds.len() >= expected.len())
    })
    .await;
    assert_eq!(kinds, expected, "one notification per event, the early ones included");

    // Every exchange and queue of the cluster carries its namespace.
    let queues = cluster.queues();
    let prefix = format!("{}.", cluster.namespace);
    for queue in ["payment.order-events", "notification.auth-events", "inventory.order-events", "order.payment-events"]
    {
        assert!(queues.contains(&format!("{prefix}{queue}")), "{prefix}{queue} in {queues:?}");
    }
    assert!(queues.iter().all(|queue| queue.starts_with(&prefix)), "{queues:?}");
    assert_eq!(
        cluster.scalar("SELECT COUNT(*) FROM bus_outbox WHERE sent_at IS NULL AND routing_key = 'order.created'"),
        0
    );
}
