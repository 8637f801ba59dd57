//! Restarts and first runs, with real processes: a registry restart keeps the acks page
//! complete and nodes ready meanwhile; `emporium` runs from an empty directory; a taken
//! `--http` port fails before any store is touched; `emporium admin reset-password` works.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test]
async fn a_registry_restart_keeps_nodes_ready_and_the_acks_complete() {
    let mut registry = start_registry("reg-restart");
    let echo = start_node("echo-restart", "echo", &registry.url);
    let probe = start_node("probe-restart", "probe", &registry.url);
    let acks_url = registry.node.url("/registry/v1/config/acks");
    let all_current = || async {
        let (_, acks) = get_json(&acks_url).await;
        let rows = acks["instances"].as_array()?;
        (rows.len() == 3 && rows.iter().all(|row| row["current"] == true)).then(|| acks["configVersion"].as_u64())?
    };
    let before = eventually(Duration::from_secs(10), "every instance acks", all_current).await;

    registry.node.kill9();
    for node in [&echo, &probe] {
        eventually(Duration::from_secs(10), "ready, serving from the cached directory", || async {
            let (status, body) = get_json(&node.url("/health/ready")).await;
            (status == 200 && body["registry"] == "unreachable").then_some(())
        })
        .await;
    }
    // The nodes still reach each other from their cached directories.
    let (status, body) = ask(&probe, "probe", "RelayEcho", json!({"text": "still here"})).await;
    assert_eq!(status, 200, "{body}");

    registry.node.restart();
    // The same files are the same version: the nodes apply nothing again, and their heartbeats
    // tell the restarted registry which version they run.
    let after = eventually(Duration::from_secs(15), "every instance acks the restarted registry", all_current).await;
    assert_eq!(after, before, "a restarted registry serves the same files under the same version");
    for node in [&echo, &probe] {
        let (status, body) = get_json(&node.url("/health/ready")).await;
        assert_eq!((status, body["registry"].as_str()), (200, Some("reachable")), "{body}");
    }
}

/// `emporium` with `args` in `dir`, its own environment only.
fn emporium_in(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emporium"));
    command
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    command
}

#[tokio::test]
async fn emporium_runs_from_an_empty_directory_and_the_admin_password_can_be_reset() {
    let dir = DataDir::new();
    let (listen, http) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));

    // A taken --http port: exit with the reason before any store exists.
    let taken = std::net::TcpListener::bind(&http).unwrap();
    let output = emporium_in(&dir.path, &["--listen", &listen, "--http", &http]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--http"), "{stderr}");
    assert!(!dir.path.join("data").join("auth.db").exists(), "no store was touched, so no admin was created");
    drop(taken);

    // No config/ here: the built-in configuration; the admin password on stderr once ready.
    let child = emporium_in(&dir.path, &["--listen", &listen, "--http", &http])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut node = ChildNode::new(child);
    eventually(Duration::from_secs(30), "the node in an empty directory is ready", || is_ready(&listen)).await;
    let password = eventually(Duration::from_secs(10), "the admin password block on stderr", || async {
        password_in(&node.stderr())
    })
    .await;
    assert!(!node.stdout().contains(&password), "the password never reaches the JSON logs");
    let api = Api::new(format!("http://{http}"));
    api.sign_in("admin@emporium.local", &password).await;
    node.stop();

    // A new password, printed once; the old one no longer works.
    let output = emporium_in(&dir.path, &["admin", "reset-password"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let new_password = password_in(&String::from_utf8_lossy(&output.stderr)).expect("the new password is printed");
    assert_ne!(new_password, password);

    let child = emporium_in(&dir.path, &["--listen", &listen, "--http", &http])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut node = ChildNode::new(child);
    eventually(Duration::from_secs(30), "the node is ready again", || is_ready(&listen)).await;
    assert!(password_in(&node.stderr()).is_none(), "an existing admin is not announced again");
    api.sign_in("admin@emporium.local", &new_password).await;
    let (status, _) =
        api.post("/api/v1/auth/login", None, json!({"email": "admin@emporium.local", "password": password})).await;
    assert_eq!(status, 401);
    node.stop();
}

/// `Some` once the node listening on `listen` answers ready (refused connections included).
async fn is_ready(listen: &str) -> Option<()> {
    let response = client().get(format!("http://{listen}/health/ready")).send().await.ok()?;
    (response.status().as_u16() == 200).then_some(())
}

/// The password of an admin notice in `text`.
fn password_in(text: &str) -> Option<String> {
    text.lines().find_map(|line| line.trim().strip_prefix("password  ").map(|password| password.trim().to_string()))
}

/// A node started with its own command: its output collected, stopped with SIGTERM, killed on
/// drop.
struct ChildNode {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ChildNode {
    fn new(mut child: std::process::Child) -> ChildNode {
        let collect = |stream: Box<dyn std::io::Read + Send>| {
            let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let sink = text.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut sink = sink.lock().unwrap();
                    sink.push_str(&line);
                    sink.push('\n');
                }
            });
            text
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        ChildNode { child, stdout, stderr }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "the node did not stop:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
