//! One order gives one trace (issue 13, item 1): four nodes on MariaDB and RabbitMQ export
//! their spans over OTLP/HTTP to a receiver this test runs (the protobuf decoded with
//! `opentelemetry-proto`), and the spans of one order form one tree from the gateway's request
//! to the notification, through asks on other nodes, the outbox relays and the broker.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;
use support::*;

/// A span as received, with the `service.name` of the node that sent it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: SpanKind,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver on a free loopback port: `POST /v1/traces` with protobuf bodies.
struct OtlpReceiver {
    url: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    num_requests: Arc<Mutex<usize>>,
}

impl OtlpReceiver {
    fn start() -> OtlpReceiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let num_requests = Arc::new(Mutex::new(0));
        let port = free_port();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (kept, counted) = (spans.clone(), num_requests.clone());
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let (kept, counted) = (kept.clone(), counted.clone());
                    App::new().app_data(web::PayloadConfig::new(16 * 1024 * 1024)).route(
                        "/v1/traces",
                        web::post().to(move |body: web::Bytes| {
                            let (kept, counted) = (kept.clone(), counted.clone());
                            async move {
                                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                                    return HttpResponse::BadRequest().finish();
                                };
                                *counted.lock().unwrap() += 1;
                                kept.lock().unwrap().extend(received_spans(request));
                                HttpResponse::Ok().content_type("application/x-protobuf").finish()
                            }
                        }),
                    )
                })
                .workers(1)
                .bind(("127.0.0.1", port))
                .expect("the receiver binds its port")
                .run();
                ready_tx.send(()).unwrap();
                let _ = server.await;
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("the receiver starts");
        OtlpReceiver { url: format!("http://127.0.0.1:{port}"), spans, num_requests }
    }

    fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().iter().filter(|span| span.trace_id == trace_id).cloned().collect()
    }
}

fn text_of(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn received_spans(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let hex = |bytes: &[u8]| bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>();
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| resource.attributes.iter())
            .find(|attribute| attribute.key == "service.name")
            .map(|attribute| text_of(&attribute.value))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind(),
                    attributes: span.attributes.iter().map(|kv| (kv.key.clone(), text_of(&kv.value))).collect(),
                });
            }
        }
    }
    spans
}

/// Four nodes and a registry, every node exporting to `otlp`.
struct TracedCluster {
    _registry: RegistryNode,
    nodes: Vec<NodeProcess>,
    gateway_http: String,
    _database: MariaDb,
    _vhost: RabbitVhost,
    _data: Vec<DataDir>,
}

impl TracedCluster {
    fn start(otlp: &str) -> TracedCluster {
        let database = MariaDb::create("traces_db");
        let vhost = RabbitVhost::create("traces");
        let registry = start_registry("traces-registry");
        let gateway_http = format!("127.0.0.1:{}", free_port());
        let mut nodes = Vec::new();
        let mut data = Vec::new();
        for roles in ["gateway,auth", "product,inventory", "order", "payment,notification"] {
            let dir = DataDir::new();
            nodes.push(start_cluster_node(
                &format!("traces-{}", roles.replace(',', "-")),
                roles,
                &registry.url,
                &dir,
                &gateway_http,
                &[
                    ("EMPORIUM_MYSQL_URL", database.url.as_str()),
                    ("EMPORIUM_AMQP_URL", vhost.url.as_str()),
                    ("EMPORIUM_OTLP_ENDPOINT", otlp),
                ],
            ));
            data.push(dir);
        }
        TracedCluster {
            _registry: registry,
            nodes,
            gateway_http: format!("http://{gateway_http}"),
            _database: database,
            _vhost: vhost,
            _data: data,
        }
    }

    async fn wait_until_ready(&self) {
        for node in &self.nodes {
            eventually(Duration::from_secs(30), &format!("{} ready", node.node_id), || async {
                (get_json(&node.url("/health/ready")).await.0 == 200).then_some(())
            })
            .await;
        }
    }
}

#[tokio::test]
async fn one_order_is_one_trace_from_the_gateway_to_the_notification() {
    let receiver = OtlpReceiver::start();
    let cluster = TracedCluster::start(&receiver.url);
    cluster.wait_until_ready().await;
    let api = Api::new(cluster.gateway_http.clone());
    eventually(Duration::from_secs(20), "the gateway holds the keys", || async {
        (api.get("/.well-known/jwks.json", None).await.0 == 200).then_some(())
    })
    .await;
    let admin = api.admin_token().await;
    let product = json!({"sku": "TRACE-1", "name": "Traced mug", "description": "A mug", "price": "9.50",
        "currency": "USD", "category": "things", "attributes": {}});
    assert_eq!(api.post("/api/v1/products", Some(&admin), product).await.0, 201);
    let (status, _, _) = api
        .send(
            "PUT",
            "/api/v1/inventory/TRACE-1",
            Some(&admin),
            Some(json!({"available": 5, "reorderLevel": 0, "reorderQuantity": 0})),
        )
        .await;
    assert_eq!(status, 200);
    let customer = api.sign_up("tracy").await;

    let order = json!({"items": [{"sku": "TRACE-1", "quantity": 2}], "currency": "USD",
        "payment": {"method": "card", "token": "tok_visa"}});
    let (status, placed, headers) = api.send("POST", "/api/v1/orders", Some(&customer), Some(order)).await;
    assert_eq!(status, 201, "{placed}");
    let traceparent = headers["traceparent"].to_str().unwrap().to_string();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_string();
    let order_id = placed["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(30), "the order is confirmed and the customer notified", || async {
        let (_, order) = api.get(&format!("/api/v1/orders/{order_id}"), Some(&customer)).await;
        let (_, notifications) = api.get("/api/v1/notifications", Some(&customer)).await;
        let confirmed = notifications["items"]
            .as_array()?
            .iter()
            .any(|item| item["kind"].as_str().is_some_and(|kind| kind.contains("confirmed")));
        (order["status"] == "CONFIRMED" && confirmed).then_some(())
    })
    .await;

    // Every hop has reported its span (batches leave each node every 500 ms).
    let wanted = |spans: &[ReceivedSpan]| {
        let has = |kind: SpanKind, service_part: &str, name_part: &str| {
            spans
                .iter()
                .any(|span| span.kind == kind && span.service.contains(service_part) && span.name.contains(name_part))
        };
        has(SpanKind::Server, "gateway", "POST /api/v1/orders")
            && has(SpanKind::Client, "order", "inventory/")
            && has(SpanKind::Server, "inventory", "inventory/")
            && has(SpanKind::Producer, "order", "publish")
            && has(SpanKind::Consumer, "payment", "process")
            && has(SpanKind::Producer, "payment", "publish")
            && has(SpanKind::Consumer, "order", "process")
            && spans.iter().any(|span| {
                span.kind == SpanKind::Client
                    && span.service.contains("order")
                    && span.attributes.get("db.system.name").map(String::as_str) == Some("mysql")
            })
            && spans.iter().any(|span| {
                span.kind == SpanKind::Consumer
                    && span.service.contains("notification")
                    && span.attributes.get("cloudevents.event_type").is_some_and(|kind| kind.contains("confirmed"))
            })
    };
    // A node's batch can arrive before the batch of the node that made a parent span (the
    // order's `publish` of `order.confirmed` after the consumers' spans it led to), so the wait
    // is also for every parent to be in: one root, or the wait times out.
    let roots = |spans: &[ReceivedSpan]| {
        let ids: BTreeSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
        spans.iter().filter(|span| !ids.contains(span.parent_span_id.as_str())).count()
    };
    let spans = eventually(Duration::from_secs(30), "every hop's span of the order, in one tree", || async {
        let spans = receiver.trace(&trace_id);
        (wanted(&spans) && roots(&spans) == 1).then_some(spans)
    })
    .await;

    // One tree: a single root (the gateway's request span), every other span's parent in the
    // trace, across at least four nodes.
    let ids: BTreeSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    let roots: Vec<&ReceivedSpan> = spans.iter().filter(|span| !ids.contains(span.parent_span_id.as_str())).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    let root = roots[0];
    assert_eq!((root.kind, root.name.as_str()), (SpanKind::Server, "POST /api/v1/orders"));
    assert!(root.parent_span_id.is_empty() || root.parent_span_id.chars().all(|c| c == '0'), "{root:?}");
    assert_eq!(root.attributes.get("http.request.method").map(String::as_str), Some("POST"));
    assert_eq!(root.attributes.get("http.route").map(String::as_str), Some("/api/v1/orders"));
    assert_eq!(root.attributes.get("http.response.status_code").map(String::as_str), Some("201"));
    let services: BTreeSet<&str> = spans.iter().map(|span| span.service.as_str()).collect();
    assert!(services.len() >= 4, "spans from every node: {services:?}");

    // The notification's consumer span leads back to the gateway through the broker hops.
    let by_id: HashMap<&str, &ReceivedSpan> = spans.iter().map(|span| (span.span_id.as_str(), span)).collect();
    let notified = spans
        .iter()
        .find(|span| {
            span.kind == SpanKind::Consumer
                && span.service.contains("notification")
                && span.attributes.get("cloudevents.event_type").is_some_and(|kind| kind.contains("confirmed"))
        })
        .unwrap_or_else(|| panic!("the notification's span of order.confirmed: {spans:#?}"));
    let mut kinds_on_the_way = Vec::new();
    let mut current = notified;
    while let Some(parent) = by_id.get(current.parent_span_id.as_str()) {
        kinds_on_the_way.push(parent.kind);
        current = parent;
    }
    assert_eq!(current.span_id, root.span_id, "the chain ends at the gateway's span");
    let producers = kinds_on_the_way.iter().filter(|kind| **kind == SpanKind::Producer).count();
    assert!(producers >= 2, "order.created, then the payment's and the order's events: {kinds_on_the_way:?}");

    // The order's transaction, a database span under the order actor's handling.
    let transaction = spans
        .iter()
        .find(|span| span.service.contains("order") && span.attributes.contains_key("db.system.name"))
        .unwrap();
    assert_eq!(transaction.name, "TRANSACTION");
    assert_eq!(transaction.attributes.get("db.operation.name").map(String::as_str), Some("TRANSACTION"));
    assert_eq!(by_id[transaction.parent_span_id.as_str()].kind, SpanKind::Internal, "{transaction:?}");

    // Semantic conventions on the messaging spans.
    let publish = spans.iter().find(|span| span.kind == SpanKind::Producer).unwrap();
    assert_eq!(publish.attributes.get("messaging.system").map(String::as_str), Some("rabbitmq"));
    assert_eq!(publish.attributes.get("messaging.operation.type").map(String::as_str), Some("send"));
    assert!(publish.attributes.contains_key("messaging.message.id"), "{publish:?}");
    let process = spans.iter().find(|span| span.kind == SpanKind::Consumer).unwrap();
    assert_eq!(process.attributes.get("messaging.operation.type").map(String::as_str), Some("process"));
    assert!(*receiver.num_requests.lock().unwrap() >= 1);
}

/// The spans a gRPC OTLP receiver got, by name.
#[derive(Default, Clone)]
struct GrpcReceiver {
    names: Arc<Mutex<Vec<(String, SpanKind)>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<
        tonic::Response<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        let spans = received_spans(request.into_inner());
        self.names.lock().unwrap().extend(spans.into_iter().map(|span| (span.name, span.kind)));
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tokio::test]
async fn spans_go_over_grpc_when_the_protocol_says_so() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
    let receiver = GrpcReceiver::default();
    let port = free_port();
    let server = tonic::transport::Server::builder()
        .serve(([127, 0, 0, 1], port).into(), TraceServiceServer::new(receiver.clone()));
    let server = tokio::spawn(server);
    let endpoint = format!("http://127.0.0.1:{port}");
    let data = DataDir::new();
    let (node, _config) = start_single_node(
        "traces-grpc",
        "registry,gateway,auth",
        &data,
        &[("EMPORIUM_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
    );
    let api = Api::new(node.http(""));
    api.admin_token().await;
    eventually(Duration::from_secs(20), "the sign-in's spans over gRPC", || async {
        let names = receiver.names.lock().unwrap().clone();
        let server_span =
            names.iter().any(|(name, kind)| name == "POST /api/v1/auth/login" && *kind == SpanKind::Server);
        let handled = names.iter().any(|(_, kind)| *kind == SpanKind::Internal);
        (server_span && handled).then_some(())
    })
    .await;
    assert!(node.output().contains("\"protocol\":\"Grpc\""), "{}", node.output());
    server.abort();
}
