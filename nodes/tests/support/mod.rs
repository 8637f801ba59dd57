//! Test harness: `emporium` node processes on loopback, a private copy of `config/` per test,
//! and an HTTP client that carries the cluster credential.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The cluster secret every test node shares.
pub const SECRET: &str = "test-cluster-secret-0123456789";

/// A name part no other call in this test run gives: the process id and a counter. (A free
/// port is not one: two tests may be handed the same port one after the other.)
pub fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A free loopback port (bound then released; the node binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A private copy of the repository's `config/` that a test may edit.
pub struct ConfigDir {
    pub path: PathBuf,
}

impl ConfigDir {
    pub fn copy_of_repository_config() -> ConfigDir {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let unique = format!("emporium-test-config-{}", unique_suffix());
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).unwrap();
        for entry in std::fs::read_dir(source).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), path.join(entry.file_name())).unwrap();
        }
        ConfigDir { path }
    }

    pub fn write(&self, name: &str, text: &str) {
        let temporary = self.path.join(format!(".{name}.tmp"));
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(temporary, self.path.join(name)).unwrap();
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One `emporium` process.
pub struct NodeProcess {
    child: Option<Child>,
    pub node_id: String,
    pub listen: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    lines: Arc<Mutex<Vec<String>>>,
    /// The listen address from the "node started" line, until [`NodeProcess::wait_started`] took it.
    started_rx: Option<std::sync::mpsc::Receiver<String>>,
}

impl NodeProcess {
    /// Starts `emporium` with `args` (plus `--node-id`) and waits for "node started".
    pub fn start(node_id: &str, args: &[&str], env: &[(&str, &str)]) -> NodeProcess {
        let mut node = NodeProcess::launch(node_id, args, env);
        node.wait_started_or_panic();
        node
    }

    /// Starts `emporium` like [`NodeProcess::start`] but returns at once, without waiting for
    /// "node started": several nodes launched in a row start at the same moment. Then call
    /// [`NodeProcess::wait_started`].
    pub fn launch(node_id: &str, args: &[&str], env: &[(&str, &str)]) -> NodeProcess {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut node = NodeProcess {
            child: None,
            node_id: node_id.to_string(),
            listen: String::new(),
            args,
            env,
            lines: Arc::new(Mutex::new(Vec::new())),
            started_rx: None,
        };
        node.spawn_child();
        node
    }

    /// Waits at most `within` for the "node started" line of a launched node and records its
    /// listen address; the reason when the process ended first or the time ran out.
    pub fn wait_started(&mut self, within: Duration) -> Result<(), String> {
        let Some(started_rx) = self.started_rx.take() else {
            return if self.listen.is_empty() { Err("not launched".to_string()) } else { Ok(()) };
        };
        match started_rx.recv_timeout(within) {
            Ok(listen) => {
                self.listen = listen;
                Ok(())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!("no \"node started\" within {within:?}")),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The output closes a moment before the process can be reaped.
                let deadline = Instant::now() + Duration::from_secs(2);
                while self.exit_status_opt().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let status = self.exit_status_opt().map_or("still running".to_string(), |status| status.to_string());
                Err(format!("the process closed its output before \"node started\" ({status})"))
            }
        }
    }

    /// The exit status when the process has ended, `None` while it runs.
    pub fn exit_status_opt(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    fn spawn(&mut self) {
        self.spawn_child();
        self.wait_started_or_panic();
    }

    fn wait_started_or_panic(&mut self) {
        if let Err(reason) = self.wait_started(Duration::from_secs(30)) {
            panic!("node {} did not start ({reason}); output:\n{}", self.node_id, self.output());
        }
    }

    fn spawn_child(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_emporium"));
        command
            .args(&self.args)
            .args(["--node-id", &self.node_id])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EMPORIUM_CLUSTER_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("emporium starts");
        let (started_tx, started_rx) = std::sync::mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = self.lines.clone();
            let started_tx = started_tx.clone();
            let node_id = self.node_id.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if std::env::var("EMPORIUM_TEST_ECHO_LOGS").is_ok() {
                        eprintln!("[{node_id}] {line}");
                    }
                    if let Ok(json) = serde_json::from_str::<Value>(&line)
                        && json["message"] == "node started"
                    {
                        let _ = started_tx.send(json["listen"].as_str().unwrap_or_default().to_string());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        self.child = Some(child);
        self.started_rx = Some(started_rx);
    }

    /// Starts the same process again with the same arguments.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// The gateway's public address, from its "gateway listening" log line.
    pub fn http(&self, path: &str) -> String {
        let lines = self.lines.lock().unwrap();
        let address = lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|json| json["message"] == "gateway listening")
            .and_then(|json| json["http"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("node {} has no gateway", self.node_id));
        format!("http://{address}{path}")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (at most `within`) for the exit status.
    pub fn sigterm(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("node {} did not exit within {within:?} after SIGTERM:\n{}", self.node_id, self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTP client carrying the cluster credential.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

pub fn auth() -> String {
    format!("Cluster {SECRET}")
}

pub async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).header("authorization", auth()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = client().post(url).header("authorization", auth()).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asks `service`/`message` on the node at `node` through the cluster transport.
pub async fn ask(node: &NodeProcess, service: &str, message: &str, body: Value) -> (u16, Value) {
    post_json(&node.url(&format!("/cluster/v1/ask/{service}/{message}")), &body).await
}

/// Polls `check` every 20 ms until it answers `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The registry's instances of `service`, as `(id, status)`.
pub async fn instances(registry: &NodeProcess, service: &str) -> Vec<(String, String)> {
    let (status, body) = get_json(&registry.url(&format!("/registry/v1/instances?service={service}"))).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|instance| {
            (instance["id"].as_str().unwrap().to_string(), instance["status"].as_str().unwrap().to_string())
        })
        .collect()
}

/// A registry node on a fixed free port with a private config copy.
pub struct RegistryNode {
    pub node: NodeProcess,
    pub config: ConfigDir,
    pub url: String,
}

pub fn start_registry(name: &str) -> RegistryNode {
    let config = ConfigDir::copy_of_repository_config();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let config_dir = config.path.to_str().unwrap().to_string();
    let node = NodeProcess::start(name, &["--role", "registry", "--listen", &listen, "--config-dir", &config_dir], &[]);
    RegistryNode { node, config, url: format!("http://{listen}") }
}

/// A node with `roles` that uses the registry at `registry_url`.
pub fn start_node(name: &str, roles: &str, registry_url: &str) -> NodeProcess {
    NodeProcess::start(name, &["--role", roles, "--registry", registry_url, "--listen", "127.0.0.1:0"], &[])
}

/// A temporary data directory for a node's embedded stores, removed on drop.
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    pub fn new() -> DataDir {
        let path = std::env::temp_dir().join(format!("emporium-test-data-{}", unique_suffix()));
        std::fs::create_dir_all(&path).unwrap();
        DataDir { path }
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A node with `roles` and its own data directory.
pub fn start_node_with_data(name: &str, roles: &str, registry_url: &str, data: &DataDir) -> NodeProcess {
    let data_dir = data.path.to_str().unwrap().to_string();
    NodeProcess::start(
        name,
        &["--role", roles, "--registry", registry_url, "--listen", "127.0.0.1:0", "--data-dir", &data_dir],
        &[],
    )
}

/// A node with `roles` of a cluster on real stores: the registry at `registry_url`, its own data
/// directory, the gateway (if it runs one) on `http`, and `env` (store URLs, ...) besides the
/// bootstrap admin's password.
pub fn start_cluster_node(
    name: &str,
    roles: &str,
    registry_url: &str,
    data: &DataDir,
    http: &str,
    env: &[(&str, &str)],
) -> NodeProcess {
    let data_dir = data.path.to_str().unwrap().to_string();
    let mut all_env = vec![("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)];
    all_env.extend_from_slice(env);
    NodeProcess::start(
        name,
        &[
            "--role",
            roles,
            "--registry",
            registry_url,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--http",
            http,
        ],
        &all_env,
    )
}

/// Waits until the registry lists `count` instances of `service`.
pub async fn until_listed(registry: &NodeProcess, service: &str, count: usize) {
    eventually(Duration::from_secs(10), &format!("{count} {service} instance(s) listed"), || async {
        (instances(registry, service).await.len() == count).then_some(())
    })
    .await;
}

/// Sends `request` as raw bytes to `address` (`host:port`) and reads the answer until the server
/// closes (blocking: call it from `spawn_blocking`).
pub fn raw_exchange(address: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it read everything: a failed write is fine.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The bootstrap admin's password in tests.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// One node with every role in `roles` (e.g. "registry,gateway,auth,inventory"), its own
/// registry, data directory and a free gateway port; `env` adds variables.
pub fn start_single_node(name: &str, roles: &str, data: &DataDir, env: &[(&str, &str)]) -> (NodeProcess, ConfigDir) {
    let config = ConfigDir::copy_of_repository_config();
    let listen = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let data_dir = data.path.to_str().unwrap().to_string();
    let config_dir = config.path.to_str().unwrap().to_string();
    let mut all_env = vec![("EMPORIUM_ADMIN_PASSWORD", ADMIN_PASSWORD)];
    all_env.extend_from_slice(env);
    let node = NodeProcess::start(
        name,
        &["--role", roles, "--listen", &listen, "--http", &http, "--data-dir", &data_dir, "--config-dir", &config_dir],
        &all_env,
    );
    (node, config)
}

/// A public API client (no cluster credential).
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Api {
        Api { base, client: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap() }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self.client.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, body, headers)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let (status, body, _) = self.send("POST", path, token, Some(body)).await;
        (status, body)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (status, body, _) = self.send("GET", path, token, None).await;
        (status, body)
    }

    /// Registers `username` and signs in; answers the access token.
    pub async fn sign_up(&self, username: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                None,
                serde_json::json!({"username": username, "email": format!("{username}@example.com"), "fullName": "Test User", "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        self.sign_in(&format!("{username}@example.com"), "correct horse battery").await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let (status, body) =
            self.post("/api/v1/auth/login", None, serde_json::json!({"email": email, "password": password})).await;
        assert_eq!(status, 200, "{body}");
        body["accessToken"].as_str().unwrap().to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.sign_in("admin@emporium.local", ADMIN_PASSWORD).await
    }
}

/// A fresh MariaDB database, dropped on drop (through the `mariadb` client).
pub struct MariaDb {
    pub name: String,
    pub url: String,
}

impl MariaDb {
    pub fn create(prefix: &str) -> MariaDb {
        let name = format!("{prefix}_{}_{}", std::process::id(), free_port());
        let status = Command::new("mariadb")
            .args(["--protocol=tcp", "-h127.0.0.1", "-uroot", "-e", &format!("CREATE DATABASE {name}")])
            .status()
            .expect("the mariadb client is installed");
        assert!(status.success(), "MariaDB is needed on 127.0.0.1:3306 (root, no password)");
        let base = std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        MariaDb { url: format!("{base}/{name}"), name }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["--protocol=tcp", "-h127.0.0.1", "-uroot", "-e", &format!("DROP DATABASE IF EXISTS {}", self.name)])
            .status();
    }
}

/// A fresh RabbitMQ virtual host, deleted on drop (through `rabbitmqctl`).
pub struct RabbitVhost {
    pub name: String,
    pub url: String,
}

impl RabbitVhost {
    pub fn create(prefix: &str) -> RabbitVhost {
        let name = format!("{prefix}-{}-{}", std::process::id(), free_port());
        let run = |args: &[&str]| {
            let output = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl is installed");
            assert!(output.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        run(&["add_vhost", &name]);
        run(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        RabbitVhost { url: format!("amqp://guest:guest@127.0.0.1:5672/{name}"), name }
    }
}

impl Drop for RabbitVhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["delete_vhost", &self.name]).output();
    }
}
