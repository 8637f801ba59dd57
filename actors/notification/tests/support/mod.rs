//! Set-up shared by the notification service's integration tests: a fresh database per test on
//! the machine's MariaDB (`EMPORIUM_TEST_MYSQL_URL`) or in a SQLite file, a bus with a unique
//! namespace on the machine's RabbitMQ (`EMPORIUM_TEST_AMQP_URL`) or in process, and a few
//! readers of the tables. Neither server missing is skipped: the tests fail and say so.
//!
//! (A copy of the payment crate's test helpers, plus [`SmtpServer`]: the test SMTP server of
//! `ops/smtp`.)
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use emporium_bus::{Bus, BusConfig, Database, outbox};
use emporium_cluster::{ServiceContext, Settings};
use emporium_contracts::EventEnvelope;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use sqlx::Row;
use tokio::sync::watch;

/// Which broker a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The machine's RabbitMQ.
    Amqp,
    /// The in-process bus.
    InProcess,
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A fresh database on the machine's MariaDB.
    MariaDb,
    /// A fresh SQLite file.
    Sqlite,
}

pub fn amqp_url() -> String {
    std::env::var("EMPORIUM_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

pub fn mysql_url() -> String {
    std::env::var("EMPORIUM_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

/// A fresh database, dropped by [`TestStore::drop_now`].
pub struct TestStore {
    pub database: Database,
    mysql_name: Option<String>,
    sqlite_path: Option<PathBuf>,
}

impl TestStore {
    pub async fn create(kind: StoreKind, prefix: &str) -> TestStore {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match kind {
            StoreKind::MariaDb => {
                let name = format!("{prefix}_test_{}", &unique[..16]);
                let admin = Database::connect(&format!("{}/mysql", mysql_url())).await.unwrap_or_else(|error| {
                    panic!(
                        "MariaDB is needed at {} (EMPORIUM_TEST_MYSQL_URL; ops/test.sh starts it): {error}",
                        mysql_url()
                    )
                });
                admin.execute(&format!("CREATE DATABASE {name}")).await.expect("create the test database");
                admin.close().await;
                let database = Database::connect(&format!("{}/{name}", mysql_url())).await.expect("connect to it");
                TestStore { database, mysql_name: Some(name), sqlite_path: None }
            }
            StoreKind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{prefix}-test-{unique}.db"));
                let database = Database::open_sqlite_file(&path).await.expect("open the test SQLite file");
                TestStore { database, mysql_name: None, sqlite_path: Some(path) }
            }
        }
    }

    pub async fn drop_now(self) {
        self.database.close().await;
        if let Some(name) = self.mysql_name {
            let admin = Database::connect(&format!("{}/mysql", mysql_url())).await.unwrap();
            admin.execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
            admin.close().await;
        }
        if let Some(path) = self.sqlite_path {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

pub fn unique_namespace(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A bus on `transport` with `namespace` and quick retries.
pub async fn connect_bus(transport: Transport, namespace: &str) -> Bus {
    let config = BusConfig {
        amqp_url: (transport == Transport::Amqp).then(amqp_url),
        namespace: namespace.to_string(),
        retry_delay: Duration::from_millis(20),
        relay_poll_interval: Duration::from_millis(100),
        lag_report_interval: Duration::from_millis(200),
        reconnect_min_delay: Duration::from_millis(50),
        reconnect_max_delay: Duration::from_millis(500),
        ..BusConfig::default()
    };
    Bus::connect(config).await.unwrap_or_else(|error| {
        panic!("the bus could not start ({error}); is RabbitMQ running at {}? (ops/test.sh starts it)", amqp_url())
    })
}

/// Deletes what `namespace` declared on the broker: the queues of `consumer` on `exchanges`
/// (with their dead-letter queue and exchange) and the namespace's exchanges.
pub async fn delete_amqp_names(namespace: &str, consumer: &str, exchanges: &[&str]) {
    let Ok(connection) = Connection::connect(&amqp_url(), ConnectionProperties::default()).await else { return };
    let Ok(channel) = connection.create_channel().await else { return };
    for exchange in exchanges {
        let queue = format!("{namespace}.{consumer}.{exchange}");
        for name in [queue.clone(), format!("{queue}.dlq")] {
            let _ = channel.queue_delete(name.into(), QueueDeleteOptions::default()).await;
        }
        let _ = channel.exchange_delete(format!("{queue}.dlx").into(), ExchangeDeleteOptions::default()).await;
    }
    for exchange in emporium_contracts::events::ALL_EXCHANGES {
        let _ =
            channel.exchange_delete(format!("{namespace}.{exchange}").into(), ExchangeDeleteOptions::default()).await;
    }
    let _ = connection.close(200, "test done".into()).await;
}

/// A standalone service context (inside the current actix system) and its settings' sender.
pub fn service_context(node_id: &str) -> (ServiceContext, watch::Sender<Arc<Settings>>) {
    let (settings_tx, settings_rx) = watch::channel(Arc::new(Settings::default()));
    (ServiceContext::standalone(node_id, settings_rx), settings_tx)
}

/// Writes `envelope` into the outbox of `service` (a stand-in publisher), in its own
/// transaction.
pub async fn enqueue(database: &Database, service: &str, envelope: &EventEnvelope, traceparent: Option<String>) {
    let mut tx = database.begin().await.unwrap();
    outbox::enqueue(&mut tx, service, envelope, traceparent).await.unwrap();
    tx.commit().await.unwrap();
}

/// The first column of the first row of `sql` (test-built SQL), as an integer.
pub async fn scalar(database: &Database, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match database.pool() {
        emporium_bus::database::Pool::MySql(pool) => {
            sqlx::query(sql).fetch_one(pool).await.unwrap().try_get::<i64, _>(0).unwrap()
        }
        emporium_bus::database::Pool::Sqlite(pool) => {
            sqlx::query(sql).fetch_one(pool).await.unwrap().try_get::<i64, _>(0).unwrap()
        }
    }
}

/// The text columns of every row of `sql` (test-built SQL), as nullable strings.
pub async fn rows(database: &Database, sql: &str) -> Vec<Vec<Option<String>>> {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    macro_rules! collect {
        ($pool:expr) => {{
            let rows = sqlx::query(sql).fetch_all($pool).await.unwrap();
            rows.iter()
                .map(|row| (0..row.len()).map(|index| row.try_get::<Option<String>, _>(index).unwrap()).collect())
                .collect()
        }};
    }
    match database.pool() {
        emporium_bus::database::Pool::MySql(pool) => collect!(pool),
        emporium_bus::database::Pool::Sqlite(pool) => collect!(pool),
    }
}

/// Polls `condition` every 20 ms until it holds or `within` passes.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < within, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
