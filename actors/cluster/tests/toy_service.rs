//! A toy service added the way a real one is: everything in its own module (its crate, in
//! real life) and one line in the node's catalog. The node starts it with its settings
//! section, supervises it, routes asks to it and mounts its public routes; an unknown key in
//! its section stops the node at start.

use std::time::Duration;

use emporium_cluster::service::{Environment, NodePaths};
use emporium_cluster::{ClusterSecret, Node, NodeOptions, NodeSetup, ServiceCatalog, Telemetry};

/// What would be the toy's crate: contracts, settings, actor, routes and definition.
mod greeter {
    use emporium_cluster::settings::ServiceSettings;
    use emporium_cluster::{NodeSetup, ServiceContext, ServiceDefinition, ServiceHandle};
    use emporium_contracts::Request;
    use emporium_runtime::{Behavior, CallMeta, LocalEndpoint, Reply, ServiceHandler};
    use futures::future::LocalBoxFuture;
    use serde::{Deserialize, Serialize};

    /// Asks for a greeting.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Greet {
        pub name: String,
    }

    impl Request for Greet {
        type Reply = String;
        const SERVICE: &'static str = "greeter";
        const NAME: &'static str = "Greet";
        const IDEMPOTENT: bool = true;
    }

    /// The `[greeter]` section.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct GreeterSettings {
        /// The word before the name.
        pub greeting: String,
    }

    impl Default for GreeterSettings {
        fn default() -> Self {
            GreeterSettings { greeting: "hello".to_string() }
        }
    }

    impl ServiceSettings for GreeterSettings {
        const SECTION: &'static str = "greeter";
    }

    struct Worker {
        greeting: String,
    }

    impl Behavior for Worker {}

    impl ServiceHandler<Greet> for Worker {
        fn handle(&mut self, message: Greet, _meta: &CallMeta) -> Reply<String> {
            let reply = format!("{}, {}", self.greeting, message.name);
            Box::pin(async move { Ok(reply) })
        }
    }

    fn start(ctx: ServiceContext, settings: GreeterSettings) -> ServiceHandle {
        let mut group = ctx.group("greeter");
        let worker = group.spawn("worker", move || Worker { greeting: settings.greeting.clone() });
        let supervision = group.finish();
        let endpoint = LocalEndpoint::builder("greeter", supervision.health.clone()).route::<Greet, _>(&worker).build();
        ServiceHandle::new(endpoint, supervision)
    }

    fn routes(config: &mut actix_web::web::ServiceConfig) {
        config.route("/api/v1/greeting", actix_web::web::get().to(|| async { "hello from the greeter" }));
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        utoipa::openapi::OpenApiBuilder::new().build()
    }

    /// The one function the node's catalog calls.
    pub fn definition() -> ServiceDefinition {
        ServiceDefinition::new("greeter", "greets", start_on_node)
            .with_settings::<GreeterSettings>()
            .with_routes(routes, openapi)
    }

    fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let settings = setup.settings::<GreeterSettings>();
            let handle = start(setup.context(), settings);
            setup.node().add_service(handle);
            Ok(())
        })
    }
}

/// The node's list of services: the one line that adds the toy.
fn catalog() -> ServiceCatalog {
    ServiceCatalog::new(vec![greeter::definition()])
}

fn options(env_overrides: Vec<(String, String)>) -> NodeOptions {
    NodeOptions {
        node_id: "toy-node".to_string(),
        roles: vec!["greeter".to_string()],
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        registry_urls: vec!["http://127.0.0.1:9".to_string()],
        profile: "local".to_string(),
        secret: ClusterSecret::generate(),
        env_overrides,
        version: "test".to_string(),
        drain_timeout: Duration::from_secs(1),
        settings_schema: catalog().settings_schema(),
    }
}

fn paths(data_dir: &std::path::Path) -> NodePaths {
    NodePaths {
        data_dir: data_dir.to_path_buf(),
        config_dir: None,
        config_repo: None,
        profile: "local".to_string(),
        http: "127.0.0.1:0".parse().unwrap(),
    }
}

#[test]
fn a_toy_service_is_its_module_plus_one_line_in_the_catalog() {
    actix_web::rt::System::new().block_on(async {
        let telemetry = Telemetry::init("warn").unwrap();
        let data_dir = std::env::temp_dir().join(format!("toy-service-{}", uuid::Uuid::new_v4().simple()));

        let refused =
            Node::bind(options(vec![("EMPORIUM__GREETER__GRETING".to_string(), "hi".to_string())]), telemetry.clone());
        let error = refused.err().expect("an unknown key of the section stops the node").to_string();
        assert!(error.contains("greeter") && error.contains("greting"), "{error}");

        let node = Node::bind(options(vec![("EMPORIUM__GREETER__GREETING".to_string(), "hi".to_string())]), telemetry)
            .unwrap();
        let node = NodeSetup::new(node, catalog(), vec!["greeter"], paths(&data_dir), Environment::default())
            .start_all()
            .await
            .unwrap();

        let reply = node.cluster().service("greeter").ask(greeter::Greet { name: "Ada".to_string() }).await.unwrap();
        assert_eq!(reply, "hi, Ada", "the service read its own section, with the environment override");

        let tree = serde_json::to_value(node.supervision_snapshot()).unwrap();
        assert!(tree.to_string().contains("greeter/worker"), "{tree}");

        let routes = catalog().public_routes();
        assert_eq!(routes.len(), 1);
        let mount = routes[0].clone();
        let app = actix_web::test::init_service(actix_web::App::new().configure(move |config| mount(config))).await;
        let response = actix_web::test::call_service(
            &app,
            actix_web::test::TestRequest::get().uri("/api/v1/greeting").to_request(),
        )
        .await;
        assert!(response.status().is_success());
        let _ = std::fs::remove_dir_all(&data_dir);
    });
}
