//! Set-up shared by the notification service's integration tests: a fresh database per test on
//! the machine's MariaDB (`EMPORIUM_TEST_MYSQL_URL`) or in a SQLite file, a bus with a unique
//! namespace on the machine's RabbitMQ (`EMPORIUM_TEST_AMQP_URL`) or in process, and a few
//! readers of the tables. Neither server missing is skipped: the tests fail and say so.
//!
//! (The shared test kit, plus [`SmtpServer`]: the test SMTP server of `ops/smtp`.)
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub use emporium_testkit::*;

/// The venv python of the test SMTP server: `ops/smtp/install.sh` (once per test binary; fast
/// when the venv is up to date), whose last line of output names it.
fn smtp_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let script = ops_smtp().join("install.sh");
        let output = Command::new("bash").arg(&script).output().expect("run ops/smtp/install.sh");
        assert!(
            output.status.success(),
            "ops/smtp/install.sh failed (the SMTP tests need aiosmtpd from PyPI): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(stdout.lines().last().expect("install.sh names the python").trim())
    })
}

fn ops_smtp() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/smtp")
}

/// The test SMTP server (`ops/smtp/server.py`, aiosmtpd) on a free loopback port, writing each
/// message it accepts to a directory as JSON. Stopped (and its directory removed) when dropped;
/// it also exits by itself when this process goes away (its standard input closes).
pub struct SmtpServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where it writes messages.
    pub maildir: PathBuf,
}

impl SmtpServer {
    /// Starts a server that answers the first `temp_fail` messages with 451, then accepts.
    pub fn start(temp_fail: u32) -> SmtpServer {
        let maildir = std::env::temp_dir().join(format!("emporium-smtp-{}", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(maildir.with_extension("log")).expect("create the server log");
        let mut child = Command::new(smtp_python())
            .arg(ops_smtp().join("server.py"))
            .args(["--port", "0", "--maildir"])
            .arg(&maildir)
            .args(["--temp-fail", &temp_fail.to_string(), "--exit-on-stdin-eof"])
            .args(["--watch-pid", &std::process::id().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start ops/smtp/server.py");
        // Its first line names the port; read on a thread so a server that hangs fails the test.
        let stdout = child.stdout.take().expect("piped stdout");
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = line_tx.send(line);
        });
        let line = line_rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("smtp server listening on 127.0.0.1:")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(maildir.with_extension("log")).unwrap_or_default();
                panic!("the SMTP server did not start: {line:?}\n{log}")
            });
        SmtpServer { child, port, maildir }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages it accepted, in order: `{sequence, peer, mailFrom, rcptTos, data}`.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let Ok(entries) = std::fs::read_dir(&self.maildir) else { return Vec::new() };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| serde_json::from_slice(&std::fs::read(path).expect("read a message")).expect("JSON"))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
        let _ = std::fs::remove_file(self.maildir.with_extension("log"));
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("its address").port()
}
