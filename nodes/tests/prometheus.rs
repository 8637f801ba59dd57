//! The real Prometheus (Debian's `prometheus`, which ops/test.sh installs) discovers a three-node
//! cluster through the registry with the repository's own configuration and rules
//! (ops/prometheus/), scrapes every node and drops a node the registry evicted.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// A `prometheus` server in a scratch directory, killed and removed on drop.
struct PrometheusServer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl PrometheusServer {
    /// Starts Prometheus with ops/prometheus/prometheus.yml pointed at `registry_url`, scraping
    /// and discovering every second (the file says 5 s and 10 s).
    fn start(registry_url: &str) -> PrometheusServer {
        let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus");
        let shipped = std::fs::read_to_string(ops.join("prometheus.yml")).unwrap();
        PrometheusServer::start_with(|secret_file| {
            let mut config = shipped.clone();
            for (from, to) in [
                ("http://registry:8761", registry_url),
                ("/run/secrets/cluster_secret", secret_file.to_str().unwrap()),
                ("scrape_interval: 5s", "scrape_interval: 1s"),
                ("evaluation_interval: 5s", "evaluation_interval: 1s"),
                ("refresh_interval: 10s", "refresh_interval: 1s"),
            ] {
                assert!(
                    config.contains(from),
                    "ops/prometheus/prometheus.yml no longer says {from:?}: update this test"
                );
                config = config.replace(from, to);
            }
            config
        })
    }

    /// Starts Prometheus with the configuration `config` writes, given the path of a file that
    /// holds the cluster secret; the repository's rules are in `rules/`.
    fn start_with(config: impl FnOnce(&Path) -> String) -> PrometheusServer {
        let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus");
        let dir = std::env::temp_dir().join(format!("emporium-prometheus-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        std::fs::copy(ops.join("rules/emporium.yml"), dir.join("rules/emporium.yml")).unwrap();
        let secret_file = dir.join("cluster-secret");
        std::fs::write(&secret_file, SECRET).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config(&secret_file)).unwrap();

        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start `prometheus` ({error}): ops/test.sh installs it (apt-get install prometheus)")
            });
        PrometheusServer { child, dir, url: format!("http://{listen}") }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/...`: the `data` of a successful answer, `None` while the server starts.
    async fn api(&self, path_and_query: &str) -> Option<Value> {
        let response = client().get(format!("{}/api/v1/{path_and_query}", self.url)).send().await.ok()?;
        let body: Value = response.json().await.ok()?;
        (body["status"] == "success").then(|| body["data"].clone())
    }

    /// The active scrape targets as `(node label, health)`.
    async fn targets(&self) -> Option<Vec<(String, String)>> {
        let data = self.api("targets?state=active").await?;
        let mut targets: Vec<(String, String)> = data["activeTargets"]
            .as_array()?
            .iter()
            .map(|target| {
                let node = target["labels"]["node"].as_str().unwrap_or("?").to_string();
                (node, target["health"].as_str().unwrap_or("?").to_string())
            })
            .collect();
        targets.sort();
        Some(targets)
    }

    /// The result vector of an instant query.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let query: String = url_encode(promql);
        let data = self.api(&format!("query?query={query}")).await.unwrap_or(Value::Null);
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("prometheus log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The label `name` of every series of a query result, sorted.
fn label_values(result: &[Value], name: &str) -> Vec<String> {
    let mut values: Vec<String> =
        result.iter().map(|series| series["metric"][name].as_str().unwrap_or("?").to_string()).collect();
    values.sort();
    values
}

#[tokio::test]
async fn prometheus_discovers_scrapes_and_forgets_the_cluster_through_the_registry() {
    let registry = start_registry("prom-registry");
    let _first = start_node("prom-echo-1", "echo", &registry.url);
    let mut second = start_node("prom-echo-2", "echo", &registry.url);
    eventually(Duration::from_secs(15), "both echo nodes registered", || async {
        (instances(&registry.node, "echo").await.len() == 2).then_some(())
    })
    .await;

    let prometheus = PrometheusServer::start(&registry.url);
    let everyone_up = vec![
        ("prom-echo-1".to_string(), "up".to_string()),
        ("prom-echo-2".to_string(), "up".to_string()),
        ("prom-registry".to_string(), "up".to_string()),
    ];
    eventually(Duration::from_secs(60), "Prometheus scrapes all three nodes", || async {
        (prometheus.targets().await? == everyone_up).then_some(())
    })
    .await;

    // The series carry the registry's labels, and the nodes' own metrics are there.
    let up = eventually(Duration::from_secs(30), "up{job=\"emporium\"} for three nodes", || async {
        let result = prometheus.query("up{job=\"emporium\"} == 1").await;
        (result.len() == 3).then_some(result)
    })
    .await;
    assert_eq!(label_values(&up, "roles"), ["echo", "echo", "registry"]);
    let build = prometheus.query("emporium_build_info").await;
    assert_eq!(label_values(&build, "node"), ["prom-echo-1", "prom-echo-2", "prom-registry"]);
    assert!(build.iter().all(|series| series["metric"]["version"].as_str().is_some_and(|v| !v.is_empty())));
    let memory = prometheus.query("process_resident_memory_bytes > 1000000").await;
    assert_eq!(memory.len(), 3, "{memory:?}");
    let registered = eventually(Duration::from_secs(30), "the registry's instance gauge", || async {
        let result = prometheus.query("sum(emporium_registry_instances{service=\"echo\"})").await;
        (!result.is_empty()).then_some(result)
    })
    .await;
    assert_eq!(registered[0]["value"][1], "2");

    // The alert rules loaded and evaluate without errors.
    let rules = eventually(Duration::from_secs(30), "the rules evaluated", || async {
        let data = prometheus.api("rules").await?;
        let rules: Vec<Value> = data["groups"]
            .as_array()?
            .iter()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        rules.iter().all(|rule| rule["health"] == "ok").then_some(rules)
    })
    .await;
    assert!(rules.len() >= 8, "{rules:?}");

    // A node that dies is evicted by the registry and leaves Prometheus's targets.
    second.kill9();
    eventually(Duration::from_secs(30), "the killed node leaves the targets", || async {
        let targets = prometheus.targets().await?;
        (targets.len() == 2 && targets.iter().all(|(node, health)| node != "prom-echo-2" && health == "up"))
            .then_some(())
    })
    .await;
}

/// Prometheus's own Eureka discovery (`eureka_sd_configs`, a client nobody here wrote) finds
/// every node through the registry's Eureka API, with the cluster secret as the Basic password,
/// and scrapes each one's /metrics.
#[tokio::test]
async fn prometheus_discovers_the_cluster_through_the_eureka_api() {
    let registry = start_registry("eureka-registry");
    let _first = start_node("eureka-echo-1", "echo", &registry.url);
    let _second = start_node("eureka-echo-2", "echo", &registry.url);
    eventually(Duration::from_secs(15), "both echo nodes registered", || async {
        (instances(&registry.node, "echo").await.len() == 2).then_some(())
    })
    .await;

    let registry_url = registry.url.clone();
    let prometheus = PrometheusServer::start_with(|secret_file| {
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: eureka\n    eureka_sd_configs:\n      \
             - server: {registry_url}/eureka\n        refresh_interval: 1s\n        basic_auth:\n          \
             username: prometheus\n          password_file: {}\n",
            secret_file.display()
        )
    });
    // (application, instance id, health) of every active target of the job.
    let targets = || async {
        let data = prometheus.api("targets?state=active").await?;
        let mut targets: Vec<(String, String, String)> = data["activeTargets"]
            .as_array()?
            .iter()
            .map(|target| {
                let labels = &target["discoveredLabels"];
                let text = |value: &Value| value.as_str().unwrap_or("?").to_string();
                (
                    text(&labels["__meta_eureka_app_name"]),
                    text(&labels["__meta_eureka_app_instance_id"]),
                    text(&target["health"]),
                )
            })
            .collect();
        targets.sort();
        Some(targets)
    };
    let expected = vec![
        ("ECHO".to_string(), "echo@eureka-echo-1".to_string(), "up".to_string()),
        ("ECHO".to_string(), "echo@eureka-echo-2".to_string(), "up".to_string()),
        ("REGISTRY".to_string(), "registry@eureka-registry".to_string(), "up".to_string()),
    ];
    let seen = eventually(Duration::from_secs(60), "Prometheus discovers and scrapes the three nodes", || async {
        let targets = targets().await?;
        (targets == expected).then_some(targets)
    })
    .await;
    assert_eq!(seen.len(), 3);
    let build = eventually(Duration::from_secs(30), "emporium_build_info from the three nodes", || async {
        let result = prometheus.query("emporium_build_info{job=\"eureka\"}").await;
        (result.len() == 3).then_some(result)
    })
    .await;
    assert!(build.iter().all(|series| series["metric"]["version"].as_str().is_some_and(|v| !v.is_empty())));
}
