//! The calling side of frame links ([`crate::frames`]): one persistent connection per peer node
//! and per calling thread, carrying every ask of that thread to that node at once.
//!
//! A link has a writer task (every frame queued at the moment goes out in one write) and a
//! reader task (each `Reply` goes to the ask waiting for its id). A link per thread keeps an
//! ask, its write and its reply on the thread of the caller (actix workers and arbiters each
//! run their own runtime), without waking another thread per ask.
//!
//! An ask never waits past its deadline: for its thread's turn to connect, for room in a link's
//! queue (a node that stopped reading), or for its reply. A body over [`MAX_BODY_LEN`] fails
//! that ask alone, before it reaches the link. When a link's reader ends, however it ends (its
//! runtime may have gone), the link closes and every ask still out is told.
//!
//! What a failed ask tells the caller, as [`AttemptError`]: the link could not be made, was
//! refused as `node_stopping`, or the node's `GoAway` says the ask was never read:
//! `Connect` (safe to try another instance); the link broke while the ask was out: `Transport`
//! (it may have been handled); no reply by the deadline: a `timeout` error. A node that answers
//! the preface with HTTP (an older build) or refuses the protocol version gets HTTP from this
//! node for [`HTTP_ONLY_FOR`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use emporium_contracts::{ErrorKind, ServiceError};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::credential::ClusterSecret;
use crate::frames::{self, AskFrame, Frame, MAX_FRAME_LEN, PREFACE, PROTOCOL_VERSION};
use crate::transport::{AttemptError, OutgoingAsk};

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// How long the node may take to answer the `Hello`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a node that does not speak frames gets HTTP before frames are tried again.
pub const HTTP_ONLY_FOR: Duration = Duration::from_secs(60);

/// How many asks may wait for a link's writer.
const OUTGOING_QUEUE: usize = 1024;

/// What became of one ask on a link.
enum Answer {
    /// The node answered: the reply's JSON, or a `ServiceError`'s.
    Reply { ok: bool, body: Bytes },
    /// The ask was never read by the node.
    NotDelivered(String),
    /// The link broke while the ask was out.
    Lost(String),
}

type Waiting = Mutex<HashMap<u64, oneshot::Sender<Answer>>>;

/// The links of one calling thread, by node address.
type ThreadLinks = HashMap<String, Arc<Link>>;

/// Whose turn it is to connect, per calling thread and node address.
type ConnectTurns = HashMap<(ThreadId, String), Arc<tokio::sync::Mutex<()>>>;

/// An ask's place among those waiting for a reply, given up when the ask ends.
struct WaitingEntry<'a> {
    waiting: &'a Waiting,
    id: u64,
}

impl Drop for WaitingEntry<'_> {
    fn drop(&mut self) {
        self.waiting.lock().remove(&self.id);
    }
}

/// The largest body an ask may carry: what fits a frame with room for the ask's head.
pub const MAX_BODY_LEN: usize = MAX_FRAME_LEN - 1024;

/// One connection to one node.
struct Link {
    outgoing: mpsc::Sender<Frame>,
    waiting: Arc<Waiting>,
    next_id: AtomicU64,
    /// False once the link broke or the node said `GoAway`: new asks take a new link.
    open: Arc<AtomicBool>,
}

/// Why a link could not be made.
enum LinkRefused {
    /// The node does not speak frames (it answered HTTP, or another protocol version).
    SpeaksHttp,
    /// Any other reason, as the attempt's error.
    Attempt(AttemptError),
}

/// Every link of one node, by calling thread and peer address.
pub(crate) struct FrameLinks {
    secret: ClusterSecret,
    links: Mutex<HashMap<ThreadId, ThreadLinks>>,
    /// One connection attempt at a time per thread and peer; the others wait for its link.
    connecting: Mutex<ConnectTurns>,
    http_only: Mutex<HashMap<String, Instant>>,
}

impl FrameLinks {
    pub(crate) fn new(secret: ClusterSecret) -> Self {
        FrameLinks {
            secret,
            links: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
            http_only: Mutex::new(HashMap::new()),
        }
    }

    /// Sends one ask over this thread's link to its node; `None` when that node speaks only
    /// HTTP (the caller sends it over HTTP).
    pub(crate) async fn send(&self, ask: &OutgoingAsk<'_>) -> Option<Result<Bytes, AttemptError>> {
        let address = ask.address;
        if self.speaks_only_http(address) {
            return None;
        }
        let link = match self.link(address, ask.deadline).await {
            Ok(link) => link,
            Err(LinkRefused::SpeaksHttp) => {
                tracing::info!(address, "node does not speak the frame protocol of this build; asking it over HTTP");
                let now = Instant::now();
                let mut http_only = self.http_only.lock();
                http_only.retain(|_, until| *until > now);
                http_only.insert(address.to_string(), now + HTTP_ONLY_FOR);
                return None;
            }
            Err(LinkRefused::Attempt(error)) => return Some(Err(error)),
        };
        Some(link.ask(ask).await)
    }

    fn speaks_only_http(&self, address: &str) -> bool {
        let mut http_only = self.http_only.lock();
        match http_only.get(address) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                http_only.remove(address);
                false
            }
            None => false,
        }
    }

    fn open_link(&self, thread: ThreadId, address: &str) -> Option<Arc<Link>> {
        let links = self.links.lock();
        links.get(&thread)?.get(address).filter(|link| link.open.load(Ordering::Acquire)).cloned()
    }

    /// This thread's open link to `address`, made if there is none. One attempt at a time per
    /// thread and node; waiting for one's turn is bounded by the ask's deadline.
    async fn link(&self, address: &str, deadline: Instant) -> Result<Arc<Link>, LinkRefused> {
        let thread = std::thread::current().id();
        if let Some(link) = self.open_link(thread, address) {
            return Ok(link);
        }
        let key = (thread, address.to_string());
        let turn = self.connecting.lock().entry(key.clone()).or_default().clone();
        let Ok(_turn) = tokio::time::timeout_at(deadline.into(), turn.lock()).await else {
            return Err(LinkRefused::Attempt(AttemptError::Reply(ServiceError::timeout(format!(
                "no link to {address} before the deadline"
            )))));
        };
        if let Some(link) = self.open_link(thread, address) {
            return Ok(link);
        }
        let attempt = Link::connect(address, &self.secret, deadline).await;
        // Whoever waits already holds the turn; a later ask finds the link or makes a new turn.
        self.connecting.lock().remove(&key);
        let link = Arc::new(attempt?);
        let mut links = self.links.lock();
        // Closed links of every thread go (a thread that ended leaves only closed ones).
        links.retain(|_, thread_links| {
            thread_links.retain(|_, link| link.open.load(Ordering::Acquire));
            !thread_links.is_empty()
        });
        links.entry(thread).or_default().insert(address.to_string(), link.clone());
        Ok(link)
    }
}

impl Link {
    async fn connect(address: &str, secret: &ClusterSecret, deadline: Instant) -> Result<Link, LinkRefused> {
        let connect_by = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        let mut stream = match tokio::time::timeout_at(connect_by.into(), TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(connect_error(format!("{address}: {error}"))),
            Err(_) => return Err(connect_error(format!("{address}: no connection within {CONNECT_TIMEOUT:?}"))),
        };
        let _ = stream.set_nodelay(true);
        let handshake_by = deadline.min(Instant::now() + HANDSHAKE_TIMEOUT);
        let mut buffer = BytesMut::with_capacity(4 * 1024);
        match tokio::time::timeout_at(handshake_by.into(), handshake(&mut stream, secret, &mut buffer)).await {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => return Err(refused),
            Err(_) => return Err(connect_error(format!("{address}: no answer to the frame handshake in time"))),
        }
        let (reader, writer) = stream.into_split();
        let (outgoing, queued) = mpsc::channel(OUTGOING_QUEUE);
        let waiting = Arc::new(Waiting::default());
        let open = Arc::new(AtomicBool::new(true));
        tokio::spawn(frames::write_frames(writer, queued));
        tokio::spawn(read_replies(reader, buffer, waiting.clone(), open.clone(), address.to_string()));
        Ok(Link { outgoing, waiting, next_id: AtomicU64::new(1), open })
    }

    async fn ask(&self, ask: &OutgoingAsk<'_>) -> Result<Bytes, AttemptError> {
        let OutgoingAsk { address, service, message, deadline, trace, .. } = *ask;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(AttemptError::Reply(ServiceError::timeout("deadline passed before sending")));
        }
        if ask.body.len() > MAX_BODY_LEN {
            // Over the node's limit: refused here, so that the link and its other asks live on.
            return Err(AttemptError::Reply(ServiceError::invalid(
                "payload_too_large",
                format!("a {message} of {} bytes is over the cluster limit of {MAX_BODY_LEN}", ask.body.len()),
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer_rx) = oneshot::channel();
        self.waiting.lock().insert(id, answer_tx);
        // However this ask ends (answered, timed out, or its caller gone), it stops waiting.
        let _waiting = WaitingEntry { waiting: &self.waiting, id };
        let frame = AskFrame {
            id,
            deadline_millis: remaining.as_millis().clamp(1, u32::MAX as u128) as u32,
            trace,
            service: service.to_string(),
            message: message.to_string(),
            body: ask.body.clone(),
        };
        // A link that closed after it was handed out, or whose writer is gone, never sent it;
        // a queue that stays full (the node stopped reading) holds it at most until the deadline.
        if !self.open.load(Ordering::Acquire) {
            return Err(AttemptError::Connect(format!("{address}: the link closed before the ask was sent")));
        }
        match tokio::time::timeout_at(deadline.into(), self.outgoing.send(Frame::Ask(frame))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                self.open.store(false, Ordering::Release);
                return Err(AttemptError::Connect(format!("{address}: the link closed before the ask was sent")));
            }
            Err(_) => {
                return Err(AttemptError::Reply(ServiceError::timeout(format!(
                    "{service} at {address}: the link stayed busy until the deadline"
                ))));
            }
        }
        let answer = match tokio::time::timeout_at(deadline.into(), answer_rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Answer::Lost(format!("{address}: the link closed while the ask was out")),
            Err(_) => {
                return Err(AttemptError::Reply(ServiceError::timeout(format!(
                    "{service} at {address} did not answer in time"
                ))));
            }
        };
        match answer {
            Answer::Reply { ok: true, body } => Ok(body),
            Answer::Reply { ok: false, body } => Err(AttemptError::Reply(read_error(&body, service, address))),
            Answer::NotDelivered(reason) => Err(AttemptError::Connect(reason)),
            Answer::Lost(reason) => Err(AttemptError::Transport(reason)),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The writer ends (and closes the connection) when the last sender goes; the reader
        // then sees the node close its side.
        self.open.store(false, Ordering::Release);
    }
}

fn connect_error(reason: String) -> LinkRefused {
    LinkRefused::Attempt(AttemptError::Connect(reason))
}

async fn handshake(stream: &mut TcpStream, secret: &ClusterSecret, buffer: &mut BytesMut) -> Result<(), LinkRefused> {
    let mut hello = BytesMut::with_capacity(64);
    hello.extend_from_slice(PREFACE);
    Frame::Hello { version: PROTOCOL_VERSION, credential: Bytes::copy_from_slice(secret.credential()) }
        .encode(&mut hello);
    let address = stream.peer_addr().map(|address| address.to_string()).unwrap_or_default();
    if let Err(error) = stream.write_all(&hello).await {
        return Err(connect_error(format!("{address}: {error}")));
    }
    // An older node answers the preface as a bad HTTP request.
    while buffer.len() < 5 {
        match stream.read_buf(buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if buffer.starts_with(b"HTTP/") {
        return Err(LinkRefused::SpeaksHttp);
    }
    let answer = frames::read_frame(stream, buffer, MAX_FRAME_LEN).await;
    match answer {
        Ok(Some(Frame::Welcome { .. })) => Ok(()),
        Ok(Some(Frame::Refused { code, text, .. })) => Err(refused(&address, &code, &text)),
        Ok(Some(_)) => Err(connect_error(format!("{address}: the node answered the Hello with another frame"))),
        Ok(None) => Err(connect_error(format!("{address}: the node closed the connection at the handshake"))),
        Err(error) => Err(connect_error(format!("{address}: {error}"))),
    }
}

/// What a `Refused` at the handshake means for the ask.
fn refused(address: &str, code: &str, text: &str) -> LinkRefused {
    match code {
        "unsupported_version" => LinkRefused::SpeaksHttp,
        "cluster_credential_required" => {
            tracing::error!(
                address,
                "a node refused this node's cluster credential: every node of a cluster needs the same EMPORIUM_CLUSTER_SECRET"
            );
            LinkRefused::Attempt(AttemptError::Reply(ServiceError::new(ErrorKind::Unauthenticated, code, text)))
        }
        _ => connect_error(format!("{address}: refused ({code}): {text}")),
    }
}

/// Hands each reply to the ask waiting for it until the link ends; then every ask still out
/// learns why. Should the task be dropped instead (its runtime ended), the link still closes.
async fn read_replies(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut buffer: BytesMut,
    waiting: Arc<Waiting>,
    open: Arc<AtomicBool>,
    address: String,
) {
    let mut closing = LinkClosing { waiting: waiting.clone(), open, reason: format!("{address}: the link ended") };
    closing.reason = loop {
        match frames::read_frame(&mut reader, &mut buffer, MAX_FRAME_LEN).await {
            Ok(Some(Frame::Reply { id, ok, body })) => {
                // No one waits for a reply that came after its deadline.
                if let Some(waiter) = waiting.lock().remove(&id) {
                    let _ = waiter.send(Answer::Reply { ok, body });
                }
            }
            Ok(Some(Frame::GoAway { last_id })) => {
                closing.open.store(false, Ordering::Release);
                let unread: Vec<_> = {
                    let mut waiting = waiting.lock();
                    let ids: Vec<u64> = waiting.keys().copied().filter(|id| *id > last_id).collect();
                    ids.into_iter().filter_map(|id| waiting.remove(&id)).collect()
                };
                for waiter in unread {
                    let _ = waiter.send(Answer::NotDelivered(format!("{address}: the node is stopping")));
                }
            }
            Ok(Some(Frame::Refused { code, text, .. })) => {
                tracing::warn!(address = %address, code = %code, text = %text, "a node refused a frame of this node");
                break format!("{address}: refused ({code}): {text}");
            }
            Ok(Some(_)) => break format!("{address}: unexpected frame from the node"),
            Ok(None) => break format!("{address}: the node closed the link"),
            Err(error) => break format!("{address}: {error}"),
        }
    };
}

/// Closes a link when its reader ends, however it ends: no new asks take it, and every ask
/// still out is told why.
struct LinkClosing {
    waiting: Arc<Waiting>,
    open: Arc<AtomicBool>,
    reason: String,
}

impl Drop for LinkClosing {
    fn drop(&mut self) {
        self.open.store(false, Ordering::Release);
        let lost: Vec<_> = self.waiting.lock().drain().map(|(_, waiter)| waiter).collect();
        for waiter in lost {
            let _ = waiter.send(Answer::Lost(self.reason.clone()));
        }
    }
}

/// The `ServiceError` of a refused ask's body.
fn read_error(body: &[u8], service: &str, address: &str) -> ServiceError {
    serde_json::from_slice(body).unwrap_or_else(|_| {
        ServiceError::new(
            ErrorKind::Internal,
            "remote_error",
            format!("{service} at {address} answered an unreadable error"),
        )
    })
}
