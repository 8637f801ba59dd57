//! The HTTP client every node uses to talk to the registry (API.md section 3): register,
//! renew, deregister, acknowledge configuration, fetch configuration and follow the watch
//! stream. With several registry URLs it sticks to the one that answered last and moves on
//! when that one is unreachable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use emporium_contracts::ServiceError;
use emporium_contracts::registry::{
    ConfigAck, ConfigDocument, Heartbeat, InstanceInfo, InstanceStatus, JournalEntry, JournalRecord, Lease,
    RegisterInstance, RegistryState, StatusOverride, WatchEvent,
};
use futures::{Stream, StreamExt};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::credential::ClusterSecret;

/// The header by which a node's watch connection names the node.
pub const WATCHER_NODE_HEADER: &str = "x-emporium-node";

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No registry URL answered.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// The registry does not know the instance (its lease is gone): register again.
    #[error("instance unknown to the registry")]
    UnknownInstance,
    /// The registry refused the cluster credential.
    #[error(
        "the registry refused this node's cluster credential: every node of a cluster needs the same EMPORIUM_CLUSTER_SECRET"
    )]
    CredentialRefused,
    /// The registry answered with an error.
    #[error("registry answered {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
}

/// A client of one registry cluster.
#[derive(Clone)]
pub struct RegistryClient {
    urls: std::sync::Arc<Vec<String>>,
    current: std::sync::Arc<AtomicUsize>,
    /// 1 + the index of the registry that served the last watch stream (0: none yet). Watch
    /// versions are a registry's own: resuming `since` a version works with that one only.
    last_watched: std::sync::Arc<AtomicUsize>,
    http: reqwest::Client,
    watch_http: reqwest::Client,
    secret: ClusterSecret,
}

impl RegistryClient {
    /// A client of the registries at `urls` (tried in turn), sending `secret`.
    pub fn new(urls: Vec<String>, secret: ClusterSecret) -> Self {
        let urls = urls.into_iter().map(|url| url.trim_end_matches('/').to_string()).collect();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .build()
            .expect("a plain HTTP client builds");
        let watch_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .build()
            .expect("a plain HTTP client builds");
        RegistryClient {
            urls: std::sync::Arc::new(urls),
            current: std::sync::Arc::default(),
            last_watched: std::sync::Arc::default(),
            http,
            watch_http,
            secret,
        }
    }

    /// The cluster credential this client sends (also what the nodes' operator endpoints take).
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// The registry URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, RegistryError> {
        let mut last_error = String::new();
        let start = self.current.load(Ordering::Relaxed);
        for offset in 0..self.urls.len() {
            let index = (start + offset) % self.urls.len();
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.urls[index]))
                .header(reqwest::header::AUTHORIZATION, self.secret.header_value());
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    last_error = format!("{}: {error}", self.urls[index]);
                    continue;
                }
            };
            self.current.store(index, Ordering::Relaxed);
            return decode(response).await;
        }
        Err(RegistryError::Unreachable(last_error))
    }

    /// Registers (or re-registers) an instance.
    pub async fn register(&self, instance: &RegisterInstance) -> Result<Lease, RegistryError> {
        let body = serde_json::to_value(instance).expect("instances serialize");
        self.call::<Lease>(Method::POST, "/registry/v1/instances", Some(body)).await?.ok_or_else(empty_reply)
    }

    /// Renews a lease, carrying a status change when there is one.
    pub async fn heartbeat(&self, instance_id: &str, heartbeat: &Heartbeat) -> Result<Lease, RegistryError> {
        let body = serde_json::to_value(heartbeat).expect("heartbeats serialize");
        let path = format!("/registry/v1/instances/{instance_id}/heartbeat");
        self.call::<Lease>(Method::PUT, &path, Some(body)).await?.ok_or_else(empty_reply)
    }

    /// Deregisters an instance.
    pub async fn deregister(&self, instance_id: &str) -> Result<(), RegistryError> {
        let path = format!("/registry/v1/instances/{instance_id}");
        self.call::<serde_json::Value>(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// Tells the registry which configuration version an instance runs.
    pub async fn ack_config(&self, instance_id: &str, ack: &ConfigAck) -> Result<(), RegistryError> {
        let body = serde_json::to_value(ack).expect("acks serialize");
        let path = format!("/registry/v1/instances/{instance_id}/config-ack");
        self.call::<serde_json::Value>(Method::PUT, &path, Some(body)).await.map(|_| ())
    }

    /// Every registered instance as the registry sees it now (with fresh heartbeat times, which
    /// the watch stream does not carry).
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, RegistryError> {
        self.call::<Vec<InstanceInfo>>(Method::GET, "/registry/v1/instances", None).await?.ok_or_else(empty_reply)
    }

    /// The registry's own state (version, configuration version, self-preservation).
    pub async fn state(&self) -> Result<RegistryState, RegistryError> {
        self.call::<RegistryState>(Method::GET, "/registry/v1/state", None).await?.ok_or_else(empty_reply)
    }

    /// An operator takes an instance out of service (`OUT_OF_SERVICE`) or puts it back (`UP`).
    pub async fn override_status(
        &self,
        instance_id: &str,
        status: InstanceStatus,
    ) -> Result<InstanceInfo, RegistryError> {
        let body = serde_json::to_value(StatusOverride { status }).expect("overrides serialize");
        let path = format!("/registry/v1/instances/{instance_id}/status");
        self.call::<InstanceInfo>(Method::PUT, &path, Some(body)).await?.ok_or_else(empty_reply)
    }

    /// The newest `limit` entries of the registry's event journal, newest first.
    pub async fn journal(&self, limit: usize) -> Result<Vec<JournalEntry>, RegistryError> {
        let path = format!("/registry/v1/journal?limit={limit}");
        self.call::<Vec<JournalEntry>>(Method::GET, &path, None).await?.ok_or_else(empty_reply)
    }

    /// Records an operator's action in the registry's event journal.
    pub async fn record_in_journal(&self, record: &JournalRecord) -> Result<JournalEntry, RegistryError> {
        let body = serde_json::to_value(record).expect("journal records serialize");
        self.call::<JournalEntry>(Method::POST, "/registry/v1/journal", Some(body)).await?.ok_or_else(empty_reply)
    }

    /// The merged configuration of `service` for `profile`.
    pub async fn fetch_config(&self, service: &str, profile: &str) -> Result<ConfigDocument, RegistryError> {
        let path = format!("/registry/v1/config/{service}?profile={profile}");
        self.call::<ConfigDocument>(Method::GET, &path, None).await?.ok_or_else(empty_reply)
    }

    /// Opens the watch stream on the first registry that answers. The stream ends when the
    /// connection breaks or goes silent for `silence_limit`.
    pub async fn watch(
        &self,
        since: Option<u64>,
        silence_limit: Duration,
        node_id: Option<&str>,
    ) -> Result<impl Stream<Item = Result<WatchEvent, String>> + Send + 'static, RegistryError> {
        let mut last_error = String::new();
        let start = self.current.load(Ordering::Relaxed);
        for offset in 0..self.urls.len() {
            let index = (start + offset) % self.urls.len();
            let mut url = format!("{}/registry/v1/watch", self.urls[index]);
            // Another registry (a peer) numbers its events its own way: start from its snapshot.
            if let Some(since) = since.filter(|_| self.last_watched.load(Ordering::Relaxed) == index + 1) {
                url.push_str(&format!("?since={since}"));
            }
            let mut request = self
                .watch_http
                .get(url)
                .header(reqwest::header::AUTHORIZATION, self.secret.header_value())
                .header(reqwest::header::ACCEPT, "text/event-stream");
            if let Some(node_id) = node_id {
                // The registry ties this connection to the node: when it closes and the node's
                // listener refuses connections, the node's instances leave at once.
                request = request.header(WATCHER_NODE_HEADER, node_id);
            }
            let response = request.send().await;
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    last_error = format!("{}: {error}", self.urls[index]);
                    continue;
                }
            };
            if !response.status().is_success() {
                return Err(decode::<serde_json::Value>(response).await.err().unwrap_or_else(empty_reply));
            }
            self.current.store(index, Ordering::Relaxed);
            self.last_watched.store(index + 1, Ordering::Relaxed);
            return Ok(sse_events(response.bytes_stream(), silence_limit));
        }
        Err(RegistryError::Unreachable(last_error))
    }
}

fn empty_reply() -> RegistryError {
    RegistryError::Rejected { status: 0, message: "empty reply".to_string() }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<Option<T>, RegistryError> {
    let status = response.status();
    if status == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    if status.is_success() {
        return response.json::<T>().await.map(Some).map_err(|error| RegistryError::Rejected {
            status: status.as_u16(),
            message: format!("unreadable reply: {error}"),
        });
    }
    match status {
        StatusCode::UNAUTHORIZED => Err(RegistryError::CredentialRefused),
        StatusCode::NOT_FOUND => Err(RegistryError::UnknownInstance),
        _ => {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|body| body["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            Err(RegistryError::Rejected { status: status.as_u16(), message })
        }
    }
}

/// Turns a Server-Sent Events byte stream into watch events.
fn sse_events(
    bytes: impl Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
    silence_limit: Duration,
) -> impl Stream<Item = Result<WatchEvent, String>> + Send + 'static {
    let state = (Box::pin(bytes), BytesMut::new(), std::collections::VecDeque::<Result<WatchEvent, String>>::new());
    futures::stream::unfold(Some(state), move |state| async move {
        let (mut bytes, mut buffer, mut ready) = state?;
        loop {
            if let Some(item) = ready.pop_front() {
                let failed = item.is_err();
                return Some((item, if failed { None } else { Some((bytes, buffer, ready)) }));
            }
            let chunk = match tokio::time::timeout(silence_limit, bytes.next()).await {
                Err(_) => return Some((Err("watch stream went silent".to_string()), None)),
                Ok(None) => return None,
                Ok(Some(Err(error))) => return Some((Err(format!("watch stream broke: {error}")), None)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = find_event_end(&buffer) {
                let block = buffer.split_to(end.0);
                buffer.advance(end.1);
                if let Some(event) = parse_event_block(&block) {
                    ready.push_back(event);
                }
            }
        }
    })
}

/// Where the first event block ends: (length of the block, length of the separator).
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|window| window == b"\n\n").map(|at| (at, 2));
    let crlf = buffer.windows(4).position(|window| window == b"\r\n\r\n").map(|at| (at, 4));
    match (lf, crlf) {
        (Some(lf), Some(crlf)) => Some(if lf.0 <= crlf.0 { lf } else { crlf }),
        (lf, crlf) => lf.or(crlf),
    }
}

/// Reads the `data:` lines of one event block; comments (pings) give nothing.
fn parse_event_block(block: &[u8]) -> Option<Result<WatchEvent, String>> {
    let text = String::from_utf8_lossy(block);
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| data.strip_prefix(' ').unwrap_or(data))
        .collect();
    if data.is_empty() {
        return None;
    }
    Some(
        serde_json::from_str::<WatchEvent>(&data.join("\n"))
            .map_err(|error| format!("unreadable watch event: {error}")),
    )
}

impl From<RegistryError> for ServiceError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Unreachable(_) => ServiceError::unavailable("registry_unavailable", error.to_string()),
            other => ServiceError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_events_split_across_chunks_and_skips_pings() {
        let event = r#"{"version":4,"type":"config_changed","configVersion":2}"#;
        let text = format!(": ping\n\nid: 4\nevent: config_changed\ndata: {event}\n\n: ping\n\n");
        let (first, second) = text.split_at(20);
        let chunks = vec![Ok(bytes::Bytes::from(first.to_string())), Ok(bytes::Bytes::from(second.to_string()))];
        let events: Vec<_> = sse_events(futures::stream::iter(chunks), Duration::from_secs(1)).collect().await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].as_ref().unwrap().version, 4);
    }

    #[tokio::test]
    async fn a_silent_stream_ends_with_an_error() {
        let silent = futures::stream::pending::<reqwest::Result<bytes::Bytes>>();
        let events: Vec<_> = sse_events(silent, Duration::from_millis(20)).collect().await;
        assert_eq!(events.len(), 1);
        assert!(events[0].is_err());
    }
}
