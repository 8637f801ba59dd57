//! The order saga end to end, through the gateway: on one embedded process, and on a cluster
//! of separate nodes on MariaDB and RabbitMQ, surviving a dead inventory and a dead payment
//! service.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// Creates a product and its stock as the admin.
async fn stock_product(api: &Api, admin: &str, sku: &str, price: &str, available: i64) {
    let product = json!({"sku": sku, "name": format!("Product {sku}"), "description": "A thing", "price": price,
        "currency": "USD", "category": "things", "attributes": {}});
    let (status, body) = api.post("/api/v1/products", Some(admin), product).await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = api
        .send(
            "PUT",
            &format!("/api/v1/inventory/{sku}"),
            Some(admin),
            Some(json!({"available": available, "reorderLevel": 0, "reorderQuantity": 0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn order_body(lines: &[(&str, i64)], token: &str) -> Value {
    json!({
        "items": lines.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect::<Vec<_>>(),
        "currency": "USD",
        "payment": {"method": "card", "token": token},
    })
}

async fn stock_of(api: &Api, token: &str, sku: &str) -> (i64, i64) {
    let (status, stock) = api.get(&format!("/api/v1/inventory/{sku}"), Some(token)).await;
    assert_eq!(status, 200, "{stock}");
    (stock["available"].as_i64().unwrap(), stock["reserved"].as_i64().unwrap())
}

async fn final_order(api: &Api, token: &str, id: &str) -> Value {
    eventually(Duration::from_secs(20), "the order reaches a final state", || async {
        let (status, order) = api.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
        (status == 200 && order["status"] != "PENDING_PAYMENT").then_some(order)
    })
    .await
}

/// The scenario every deployment must pass: paid, declined, out of stock, unknown SKU,
/// bad quantities, idempotency, someone else's order.
async fn the_order_saga(api: &Api) {
    let admin = api.admin_token().await;
    stock_product(api, &admin, "MUG-1", "12.50", 10).await;
    stock_product(api, &admin, "TEA-1", "4.20", 3).await;
    let customer = api.sign_up("grace").await;

    // A paid order ends CONFIRMED with the stock committed.
    let (status, order) =
        api.post("/api/v1/orders", Some(&customer), order_body(&[("MUG-1", 2), ("TEA-1", 1)], "tok_visa")).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "PENDING_PAYMENT");
    assert_eq!(order["total"], "29.20");
    assert_eq!(order["items"][0]["lineTotal"], "25.00");
    let confirmed = final_order(api, &customer, order["id"].as_str().unwrap()).await;
    assert_eq!(confirmed["status"], "CONFIRMED", "{confirmed}");
    eventually(Duration::from_secs(20), "stock committed", || async {
        (stock_of(api, &customer, "MUG-1").await == (8, 0) && stock_of(api, &customer, "TEA-1").await == (2, 0))
            .then_some(())
    })
    .await;
    let (status, payments) =
        api.get(&format!("/api/v1/payments?orderId={}", order["id"].as_str().unwrap()), Some(&customer)).await;
    assert_eq!(status, 200, "{payments}");
    assert_eq!(payments["items"][0]["status"], "SUCCEEDED", "{payments}");
    assert_eq!(payments["items"][0]["amount"], "29.20");
    eventually(Duration::from_secs(20), "notifications stored", || async {
        let (_, notifications) = api.get("/api/v1/notifications", Some(&customer)).await;
        let kinds: Vec<String> = notifications["items"]
            .as_array()?
            .iter()
            .filter_map(|item| item["kind"].as_str().map(str::to_string))
            .collect();
        (kinds.iter().any(|kind| kind.contains("confirmed")) && kinds.iter().any(|kind| kind.contains("created")))
            .then_some(())
    })
    .await;

    // A declined card ends CANCELLED with the stock restored.
    let (status, order) =
        api.post("/api/v1/orders", Some(&customer), order_body(&[("TEA-1", 2)], "tok_chargeDeclined")).await;
    assert_eq!(status, 201, "{order}");
    let cancelled = final_order(api, &customer, order["id"].as_str().unwrap()).await;
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["cancellationReason"].as_str()),
        (Some("CANCELLED"), Some("card_declined"))
    );
    eventually(Duration::from_secs(20), "stock restored", || async {
        (stock_of(api, &customer, "TEA-1").await == (2, 0)).then_some(())
    })
    .await;

    // Refusals.
    let (status, error) = api.post("/api/v1/orders", Some(&customer), order_body(&[("TEA-1", 5)], "tok_visa")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("out_of_stock")), "{error}");
    assert_eq!(error["error"]["details"], json!([{"sku": "TEA-1", "requested": 5, "available": 2}]));
    let (status, error) = api.post("/api/v1/orders", Some(&customer), order_body(&[("NOPE-9", 1)], "tok_visa")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("unknown_sku")), "{error}");
    let (status, error) = api.post("/api/v1/orders", Some(&customer), order_body(&[("MUG-1", -1)], "tok_visa")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_quantity")), "{error}");
    // A total past the largest amount is refused, not paid as "0.00".
    stock_product(api, &admin, "GOLD-1", "999999999.99", 5).await;
    let (status, error) = api.post("/api/v1/orders", Some(&customer), order_body(&[("GOLD-1", 2)], "tok_visa")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("order_too_large")), "{error}");
    // Stock only for what the catalog sells; strict numbers.
    let stock = json!({"available": 5, "reorderLevel": 0, "reorderQuantity": 0});
    let (status, error, _) = api.send("PUT", "/api/v1/inventory/NOPE-9", Some(&admin), Some(stock)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("unknown_sku")), "{error}");
    let stock = json!({"available": "5", "reorderLevel": 0, "reorderQuantity": 0});
    let (status, error, _) = api.send("PUT", "/api/v1/inventory/MUG-1", Some(&admin), Some(stock)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_body")), "{error}");
    let mut euros = order_body(&[("MUG-1", 1)], "tok_visa");
    euros["currency"] = json!("XXX");
    let (status, error) = api.post("/api/v1/orders", Some(&customer), euros).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("unsupported_currency")));
    assert_eq!(stock_of(api, &customer, "MUG-1").await, (8, 0), "refusals reserved nothing");

    // Idempotency-Key: same body, same order; another body, 422.
    let place = |key: &'static str, body: Value| {
        let client = api.client.clone();
        let url = format!("{}/api/v1/orders", api.base);
        let token = customer.clone();
        async move {
            let response =
                client.post(url).bearer_auth(token).header("idempotency-key", key).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (first_status, first) = place("key-1", order_body(&[("MUG-1", 1)], "tok_visa")).await;
    let (second_status, second) = place("key-1", order_body(&[("MUG-1", 1)], "tok_visa")).await;
    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first["id"], second["id"]);
    let (status, error) = place("key-1", order_body(&[("MUG-1", 2)], "tok_visa")).await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("idempotency_key_reused")));

    // Someone else's order is not found; an admin sees it.
    let other = api.sign_up("heidi").await;
    let (status, _) = api.get(&format!("/api/v1/orders/{}", first["id"].as_str().unwrap()), Some(&other)).await;
    assert_eq!(status, 404);
    let (status, _) = api.get(&format!("/api/v1/orders/{}", first["id"].as_str().unwrap()), Some(&admin)).await;
    assert_eq!(status, 200);
    let (status, mine) = api.get("/api/v1/orders?status=CONFIRMED", Some(&customer)).await;
    assert_eq!(status, 200);
    assert!(mine["items"].as_array().unwrap().iter().all(|order| order["status"] == "CONFIRMED"));
}

#[tokio::test]
async fn the_order_saga_on_one_embedded_process() {
    let data = DataDir::new();
    let (node, _config) = start_single_node("saga-embedded", "all", &data, &[]);
    let api = Api::new(node.http(""));
    the_order_saga(&api).await;
}

/// A cluster of one node per role on MariaDB and RabbitMQ.
struct Cluster {
    registry: RegistryNode,
    nodes: Vec<(String, NodeProcess)>,
    gateway_http: String,
    _database: MariaDb,
    _vhost: RabbitVhost,
    _data: Vec<DataDir>,
}

impl Cluster {
    fn start(prefix: &str) -> Cluster {
        let database = MariaDb::create(&format!("{prefix}_db"));
        let vhost = RabbitVhost::create(prefix);
        let registry = start_registry(&format!("{prefix}-registry"));
        let mut nodes = Vec::new();
        let mut data = Vec::new();
        let gateway_port = free_port();
        let mongodb = std::env::var("EMPORIUM_TEST_MONGODB_URL")
            .expect("EMPORIUM_TEST_MONGODB_URL is needed (ops/test.sh starts a MongoDB-compatible server)");
        let mongodb_url = format!("{}/{prefix}_{gateway_port}", mongodb.trim_end_matches('/'));
        for role in ["auth", "product", "inventory", "order", "payment", "notification", "gateway"] {
            let dir = DataDir::new();
            let http = format!("127.0.0.1:{gateway_port}");
            let node = start_cluster_node(
                &format!("{prefix}-{role}"),
                role,
                &registry.url,
                &dir,
                &http,
                &[
                    ("EMPORIUM_MYSQL_URL", database.url.as_str()),
                    ("EMPORIUM_AMQP_URL", vhost.url.as_str()),
                    ("EMPORIUM_MONGODB_URL", mongodb_url.as_str()),
                ],
            );
            nodes.push((role.to_string(), node));
            data.push(dir);
        }
        Cluster {
            registry,
            nodes,
            gateway_http: format!("http://127.0.0.1:{gateway_port}"),
            _database: database,
            _vhost: vhost,
            _data: data,
        }
    }

    fn node(&mut self, role: &str) -> &mut NodeProcess {
        &mut self.nodes.iter_mut().find(|(name, _)| name == role).unwrap().1
    }

    async fn wait_until_ready(&self) {
        for (role, node) in &self.nodes {
            eventually(Duration::from_secs(20), &format!("{role} node ready"), || async {
                (get_json(&node.url("/health/ready")).await.0 == 200).then_some(())
            })
            .await;
        }
        let _ = &self.registry;
    }
}

#[tokio::test]
async fn the_order_saga_on_a_cluster_of_nodes_surviving_failures() {
    let mut cluster = Cluster::start("saga");
    cluster.wait_until_ready().await;
    let api = Api::new(cluster.gateway_http.clone());
    eventually(Duration::from_secs(20), "gateway sees auth", || async {
        (api.get("/.well-known/jwks.json", None).await.0 == 200).then_some(())
    })
    .await;
    the_order_saga(&api).await;

    let admin = api.admin_token().await;
    let customer = api.sign_up("ivan").await;
    stock_product(&api, &admin, "LAMP-1", "30.00", 50).await;

    // The inventory node stops: orders are answered 503 quickly, the breaker opens, nothing
    // is persisted.
    let (_, before) = api.get("/api/v1/orders", Some(&customer)).await;
    cluster.node("inventory").kill9();
    let mut fast = 0;
    for _ in 0..8 {
        let started = std::time::Instant::now();
        let (status, error) =
            api.post("/api/v1/orders", Some(&customer), order_body(&[("LAMP-1", 1)], "tok_visa")).await;
        assert_eq!((status, error["error"]["code"].as_str()), (503, Some("inventory_unavailable")), "{error}");
        if started.elapsed() < Duration::from_millis(200) {
            fast += 1;
        }
    }
    assert!(fast >= 3, "once the breaker is open, refusals are fast ({fast} of 8 were)");
    let (_, tree) = get_json(&cluster.node("order").url("/admin/v1/supervision")).await;
    let inventory_site =
        tree["callSites"].as_array().unwrap().iter().find(|site| site["service"] == "inventory").cloned().unwrap();
    assert!(inventory_site["numBreakerOpened"].as_u64().unwrap() >= 1, "{inventory_site}");
    let (_, after) = api.get("/api/v1/orders", Some(&customer)).await;
    assert_eq!(before["totalElements"], after["totalElements"], "nothing persisted");

    // It comes back: orders work again.
    cluster.node("inventory").restart();
    let order = eventually(Duration::from_secs(30), "orders work again", || async {
        let (status, order) =
            api.post("/api/v1/orders", Some(&customer), order_body(&[("LAMP-1", 1)], "tok_visa")).await;
        (status == 201).then_some(order)
    })
    .await;
    assert_eq!(final_order(&api, &customer, order["id"].as_str().unwrap()).await["status"], "CONFIRMED");

    // The payment node dies with orders pending: after it restarts every order is final.
    cluster.node("payment").kill9();
    let mut pending = Vec::new();
    for _ in 0..5 {
        let (status, order) =
            api.post("/api/v1/orders", Some(&customer), order_body(&[("LAMP-1", 1)], "tok_visa")).await;
        assert_eq!(status, 201, "{order}");
        pending.push(order["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &pending {
        let (_, order) = api.get(&format!("/api/v1/orders/{id}"), Some(&customer)).await;
        assert_eq!(order["status"], "PENDING_PAYMENT", "no payment service, no outcome yet");
    }
    cluster.node("payment").restart();
    for id in &pending {
        assert_eq!(final_order(&api, &customer, id).await["status"], "CONFIRMED");
    }
    // Six orders paid: six units gone, none held once inventory has applied the confirmations.
    eventually(Duration::from_secs(20), "stock committed for every paid order", || async {
        (stock_of(&api, &customer, "LAMP-1").await == (50 - 6, 0)).then_some(())
    })
    .await;
}
