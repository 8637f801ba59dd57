//! Configuration from a git repository the test creates: the registry serves the label's commit
//! (the revision is the commit id), a new commit reaches every node after a refresh, a bad
//! commit is refused with file and line while the previous version stays, and a `file://` URL
//! or a `git://` URL served by `git daemon` (cloned, then fetched) serves the same.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// A scratch git repository holding a copy of `config/`, removed on drop.
struct ConfigRepo {
    path: PathBuf,
}

impl ConfigRepo {
    fn new() -> ConfigRepo {
        let config = ConfigDir::copy_of_repository_config();
        let path = std::env::temp_dir().join(format!("emporium-config-repo-{}", unique_suffix()));
        std::fs::create_dir_all(&path).unwrap();
        for entry in std::fs::read_dir(&config.path).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), path.join(entry.file_name())).unwrap();
        }
        let repo = ConfigRepo { path };
        repo.git(&["init", "--quiet", "--initial-branch", "main"]);
        repo.commit("the repository's config/");
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["-c", "user.name=test", "-c", "user.email=test@emporium.local"])
            .args(args)
            .output()
            .expect("git is installed");
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Commits every change in the work tree; answers the commit id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--message", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path.join(name), text).unwrap();
    }
}

impl Drop for ConfigRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn start_git_registry(name: &str, location: &str, data: &DataDir) -> NodeProcess {
    let listen = format!("127.0.0.1:{}", free_port());
    let data_dir = data.path.to_str().unwrap();
    let args = [
        "--role",
        "registry",
        "--listen",
        &listen,
        "--config-repo",
        location,
        "--config-label",
        "main",
        "--data-dir",
        data_dir,
    ];
    NodeProcess::start(name, &args, &[])
}

async fn state(registry: &NodeProcess) -> serde_json::Value {
    get_json(&registry.url("/registry/v1/config/acks")).await.1
}

#[tokio::test]
async fn the_registry_serves_a_git_label_and_follows_its_commits() {
    let repo = ConfigRepo::new();
    let first_commit = repo.git(&["rev-parse", "HEAD"]);
    let data = DataDir::new();
    let registry = start_git_registry("git-registry", repo.path.to_str().unwrap(), &data);
    let _echo = start_node("git-echo", "echo", &registry.url(""));
    let _probe = start_node("git-probe", "probe", &registry.url(""));

    let (status, document) = get_json(&registry.url("/registry/v1/config/echo")).await;
    assert_eq!((status, document["revision"].as_str()), (200, Some(first_commit.as_str())), "{document}");
    let first_version = document["version"].as_u64().unwrap();
    let all_current = |version: u64| {
        let registry = &registry;
        move || async move {
            let acks = state(registry).await;
            let rows = acks["instances"].as_array()?.clone();
            (acks["configVersion"] == version && rows.len() == 3 && rows.iter().all(|row| row["current"] == true))
                .then_some(())
        }
    };
    eventually(Duration::from_secs(15), "every instance on the first commit", all_current(first_version)).await;

    // A new commit, then a refresh: every node applies and acks it.
    repo.write("echo.toml", "[log]\nlevel = \"debug\"\n");
    let second_commit = repo.commit("echo logs at debug");
    let refreshed = Instant::now();
    let (status, outcome) = post_json(&registry.url("/registry/v1/config/refresh"), &serde_json::json!({})).await;
    assert_eq!((status, outcome["changed"].as_bool()), (200, Some(true)), "{outcome}");
    assert_eq!(outcome["configRevision"].as_str(), Some(second_commit.as_str()));
    let second_version = outcome["configVersion"].as_u64().unwrap();
    assert_ne!(second_version, first_version);
    eventually(Duration::from_secs(10), "every instance on the second commit", all_current(second_version)).await;
    eprintln!("a new commit applied and acked by every instance {:?} after the refresh", refreshed.elapsed());

    // A bad commit: refused with the file and line, the previous version and commit stay.
    repo.write("echo.toml", "[log]\nlevel = \"debug\"\nverbosity = 3\n");
    let bad_commit = repo.commit("an unknown key");
    let (status, body) = post_json(&registry.url("/registry/v1/config/refresh"), &serde_json::json!({})).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("@{}/echo.toml:3: key log.verbosity", &bad_commit[..12])), "{message}");
    let (_, document) = get_json(&registry.url("/registry/v1/config/echo")).await;
    assert_eq!(
        (document["version"].as_u64(), document["revision"].as_str()),
        (Some(second_version), Some(second_commit.as_str()))
    );
    assert_eq!(document["settings"]["log"]["level"], "debug");

    // The same repository through a file:// URL: cloned under the data directory, fetched.
    repo.write("echo.toml", "[log]\nlevel = \"debug\"\n");
    let fixed_commit = repo.commit("fixed");
    let clone_data = DataDir::new();
    let url = format!("file://{}", repo.path.display());
    let cloned = start_git_registry("git-clone-registry", &url, &clone_data);
    let (_, document) = get_json(&cloned.url("/registry/v1/config/echo")).await;
    assert_eq!(
        (document["version"].as_u64(), document["revision"].as_str()),
        (Some(second_version), Some(fixed_commit.as_str())),
        "the same files, the same version"
    );
    assert!(Path::new(&clone_data.path).join("registry-config.git").is_dir());
    repo.write("order.toml", "[log]\nlevel = \"warn\"\n");
    let fetched_commit = repo.commit("order logs at warn");
    let (status, outcome) = post_json(&cloned.url("/registry/v1/config/refresh"), &serde_json::json!({})).await;
    assert_eq!((status, outcome["configRevision"].as_str()), (200, Some(fetched_commit.as_str())), "{outcome}");

    // Spring clients see the commit as the version and the label.
    let (status, environment) = get_json(&cloned.url("/config/order/default")).await;
    assert_eq!(status, 200, "{environment}");
    assert_eq!(
        (environment["version"].as_str(), environment["label"].as_str()),
        (Some(fetched_commit.as_str()), Some("main"))
    );
    assert!(environment["propertySources"][0]["name"].as_str().unwrap().ends_with("/order.toml"), "{environment}");
}

/// `git daemon` serving `repo`'s parent directory on a free port, killed on drop.
struct GitDaemon {
    child: std::process::Child,
    url: String,
}

impl GitDaemon {
    fn serve(repo: &ConfigRepo) -> GitDaemon {
        let port = free_port();
        let parent = repo.path.parent().unwrap();
        let child = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--base-path={}", parent.display()))
            .arg(parent)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon");
        let name = repo.path.file_name().unwrap().to_str().unwrap();
        GitDaemon { child, url: format!("git://127.0.0.1:{port}/{name}") }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_repository_behind_a_git_url_is_cloned_and_fetched() {
    let repo = ConfigRepo::new();
    let daemon = GitDaemon::serve(&repo);
    let address = daemon.url.trim_start_matches("git://").split('/').next().unwrap().to_string();
    eventually(Duration::from_secs(10), "git daemon listening", || async {
        std::net::TcpStream::connect(&address).ok().map(|_| ())
    })
    .await;
    let data = DataDir::new();
    let registry = start_git_registry("git-daemon-registry", &daemon.url, &data);
    let (_, document) = get_json(&registry.url("/registry/v1/config/echo")).await;
    assert_eq!(document["revision"].as_str(), Some(repo.git(&["rev-parse", "HEAD"]).as_str()), "{document}");

    repo.write("echo.toml", "[log]\nlevel = \"warn\"\n");
    let commit = repo.commit("echo logs at warn");
    let (status, outcome) = post_json(&registry.url("/registry/v1/config/refresh"), &serde_json::json!({})).await;
    assert_eq!(
        (status, outcome["configRevision"].as_str(), outcome["changed"].as_bool()),
        (200, Some(commit.as_str()), Some(true)),
        "{outcome}"
    );
    let (_, document) = get_json(&registry.url("/registry/v1/config/echo")).await;
    assert_eq!(document["settings"]["log"]["level"], "warn");
}

#[tokio::test]
async fn a_missing_repository_or_label_stops_the_registry_with_the_reason() {
    let data = DataDir::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let data_dir = data.path.to_str().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(["--role", "registry", "--listen", &listen, "--data-dir", data_dir, "--config-repo", "/nonexistent/repo"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--config-repo /nonexistent/repo: not a git repository"), "{stderr}");

    let repo = ConfigRepo::new();
    let output = Command::new(env!("CARGO_BIN_EXE_emporium"))
        .args(["--role", "registry", "--listen", &listen, "--data-dir", data_dir])
        .args(["--config-repo", repo.path.to_str().unwrap(), "--config-label", "no-such-branch"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no branch, tag or commit no-such-branch"), "{stderr}");
}
