//! The answering side of frame links ([`crate::frames`]): a connection to the cluster listener
//! whose first byte is NUL is handed here instead of to the HTTP server.
//!
//! A connection is checked first (the preface, then a `Hello` with this build's version and
//! the cluster credential, in at most [`HANDSHAKE_TIMEOUT`]; before that, no frame over
//! [`HELLO_MAX_LEN`] is read), then every `Ask` runs as a task of its own and its `Reply`
//! goes out whenever it is ready, so a slow ask does not hold up the others. At most
//! [`MAX_ASKS_IN_FLIGHT`] run at once per connection; beyond that the server stops reading and
//! TCP pushes back on the caller. A frame that is not a well-formed `Ask` gets `Refused` and
//! the connection ends. When the node stops, each connection sends `GoAway` with the last ask
//! it read, answers those and closes: the caller knows that later asks were never delivered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use emporium_contracts::ServiceError;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::credential::ClusterSecret;
use crate::frame_link::MAX_BODY_LEN;
use crate::frames::{self, AskFrame, Frame, MAX_FRAME_LEN, PREFACE, PROTOCOL_VERSION, ReadError};
use crate::service_ref::Cluster;
use crate::transport::answer_ask;

/// How long a caller has to send the preface and its `Hello`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest frame read before the caller is known: a `Hello` is a version and a credential.
pub const HELLO_MAX_LEN: usize = 4 * 1024;

/// Asks one connection may have running at once.
pub const MAX_ASKS_IN_FLIGHT: usize = 1024;

/// How many frames may wait for the connection's writer.
const OUTGOING_QUEUE: usize = 1024;

/// Serves frame links for one node: its services and its credential.
#[derive(Clone)]
pub struct FrameServer {
    cluster: Cluster,
    secret: ClusterSecret,
    stopping: watch::Receiver<bool>,
}

/// Tells a node's frame links that it stops (see the module documentation).
pub struct FrameServerStop(watch::Sender<bool>);

impl FrameServerStop {
    /// Every connection sends `GoAway`, finishes the asks it read and closes; new connections
    /// are refused with `node_stopping`.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl FrameServer {
    /// The frame server of the node with these services and this credential.
    pub fn new(cluster: Cluster, secret: ClusterSecret) -> (FrameServer, FrameServerStop) {
        let (stop, stopping) = watch::channel(false);
        (FrameServer { cluster, secret, stopping }, FrameServerStop(stop))
    }

    /// Whether the connection's first byte (waited for at most `wait`) is the preface's NUL.
    /// Nothing is consumed: an HTTP request is read whole by the HTTP server afterwards.
    pub async fn is_frame_link(stream: &TcpStream, wait: Duration) -> bool {
        let mut first = [0u8; 1];
        matches!(tokio::time::timeout(wait, stream.peek(&mut first)).await, Ok(Ok(1)) if first[0] == PREFACE[0])
    }

    /// Serves one connection until the caller closes it, a frame is refused or the node stops.
    pub async fn serve(self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().map(|address| address.to_string()).unwrap_or_default();
        let mut buffer = BytesMut::with_capacity(HELLO_MAX_LEN);
        let welcome = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(&mut stream, &mut buffer)).await {
            Ok(welcome) => welcome,
            Err(_) => Err(refusal("handshake_timeout", "no Hello within the handshake time")),
        };
        let (mut reader, writer) = stream.into_split();
        let (outgoing, queued) = mpsc::channel(OUTGOING_QUEUE);
        let writing = tokio::spawn(frames::write_frames(writer, queued));
        match welcome {
            Ok(()) => {
                let _ = outgoing.send(Frame::Welcome { version: PROTOCOL_VERSION }).await;
                self.serve_asks(&mut reader, buffer, &outgoing, &peer).await;
            }
            Err(refused) => {
                tracing::debug!(peer = %peer, refused = ?refused, "frame link refused");
                let _ = outgoing.send(refused).await;
            }
        }
        drop(outgoing);
        let _ = writing.await;
    }

    /// Reads the preface and the `Hello`; `Err` is the `Refused` frame to send.
    async fn handshake(&self, stream: &mut TcpStream, buffer: &mut BytesMut) -> Result<(), Frame> {
        let mut preface = [0u8; PREFACE.len()];
        if stream.read_exact(&mut preface).await.is_err() || &preface != PREFACE {
            return Err(refusal("malformed_frame", "the connection did not open with the frame preface"));
        }
        let hello = frames::read_frame(stream, buffer, HELLO_MAX_LEN).await;
        let (version, credential) = match hello {
            Ok(Some(Frame::Hello { version, credential })) => (version, credential),
            Ok(_) => return Err(refusal("malformed_frame", "the first frame must be Hello")),
            Err(ReadError::Frame(error)) => return Err(refusal(error.code(), &error.to_string())),
            Err(error) => return Err(refusal("malformed_frame", &error.to_string())),
        };
        if version != PROTOCOL_VERSION {
            let text = format!("this node speaks version {PROTOCOL_VERSION} of the frame protocol, not {version}");
            return Err(refusal("unsupported_version", &text));
        }
        if !self.secret.matches_credential(&credential) {
            return Err(refusal("cluster_credential_required", "cluster endpoints need the cluster credential"));
        }
        if *self.stopping.borrow() {
            return Err(refusal("node_stopping", "this node is stopping"));
        }
        Ok(())
    }

    async fn serve_asks(
        &self,
        reader: &mut tokio::net::tcp::OwnedReadHalf,
        mut buffer: BytesMut,
        outgoing: &mpsc::Sender<Frame>,
        peer: &str,
    ) {
        let in_flight = Arc::new(Semaphore::new(MAX_ASKS_IN_FLIGHT));
        let mut stopping = self.stopping.clone();
        let mut last_id = 0;
        loop {
            let frame = tokio::select! {
                frame = frames::read_frame(reader, &mut buffer, MAX_FRAME_LEN) => frame,
                _ = stopping.wait_for(|stopping| *stopping) => {
                    let _ = outgoing.send(Frame::GoAway { last_id }).await;
                    break;
                }
            };
            let ask = match frame {
                Ok(Some(Frame::Ask(ask))) => ask,
                Ok(None) => break,
                Ok(Some(other)) => {
                    let text = format!("only Ask frames may follow Welcome, not {}", frame_name(&other));
                    let _ = outgoing.send(refusal("malformed_frame", &text)).await;
                    break;
                }
                Err(ReadError::Frame(error)) => {
                    tracing::warn!(peer = %peer, error = %error, "refusing a frame link's frame");
                    let _ = outgoing.send(refusal(error.code(), &error.to_string())).await;
                    break;
                }
                Err(error) => {
                    tracing::debug!(peer = %peer, error = %error, "frame link ended");
                    break;
                }
            };
            // Ids may arrive out of order (asks of several tasks share a link): GoAway names the
            // highest read, so that every id above it was surely not read.
            last_id = last_id.max(ask.id);
            let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
            let cluster = self.cluster.clone();
            let outgoing = outgoing.clone();
            tokio::spawn(async move {
                let reply = answer_frame(&cluster, ask).await;
                let _ = outgoing.send(reply).await;
                drop(permit);
            });
        }
        // The asks already read are answered before the connection closes.
        let _ = in_flight.acquire_many(MAX_ASKS_IN_FLIGHT as u32).await;
    }
}

async fn answer_frame(cluster: &Cluster, ask: AskFrame) -> Frame {
    let started = Instant::now();
    let deadline = (ask.deadline_millis > 0).then(|| started + Duration::from_millis(ask.deadline_millis.into()));
    let result = answer_ask(cluster, ask.service, ask.message, ask.body.to_vec(), deadline, ask.trace, started).await;
    match result {
        Ok(reply) if reply.len() <= MAX_BODY_LEN => Frame::Reply { id: ask.id, ok: true, body: Bytes::from(reply) },
        Ok(reply) => {
            // Too long for a frame: this ask fails, the link and its other asks go on.
            let text = format!("a reply of {} bytes is over the cluster limit of {MAX_BODY_LEN}", reply.len());
            Frame::Reply { id: ask.id, ok: false, body: Bytes::from(error_body(&ServiceError::internal(text))) }
        }
        Err(error) => Frame::Reply { id: ask.id, ok: false, body: Bytes::from(error_body(&error)) },
    }
}

fn error_body(error: &ServiceError) -> Vec<u8> {
    serde_json::to_vec(error).unwrap_or_default()
}

fn refusal(code: &str, text: &str) -> Frame {
    Frame::Refused { version: PROTOCOL_VERSION, code: code.to_string(), text: text.to_string() }
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello { .. } => "Hello",
        Frame::Welcome { .. } => "Welcome",
        Frame::Refused { .. } => "Refused",
        Frame::Ask(_) => "Ask",
        Frame::Reply { .. } => "Reply",
        Frame::GoAway { .. } => "GoAway",
    }
}
