//! The binary node-to-node protocol: what travels on a frame link (see [`crate::frame_link`]
//! for the calling side and [`crate::frame_server`] for the answering side).
//!
//! One TCP connection carries many asks at once. It opens with the 8-byte [`PREFACE`] (its
//! first byte, NUL, can never start an HTTP request, so the cluster listener tells the two
//! protocols apart by that byte) and then only frames:
//!
//! ```text
//! frame   = length:u32 kind:u8 payload        length counts kind and payload, big-endian
//! Hello   (1) version:u16 credential:rest     caller -> node, first frame
//! Welcome (2) version:u16                     node -> caller: asks may follow
//! Refused (3) version:u16 code:str16 text:str16   node -> caller, then the node closes
//! Ask     (4) id:u64 deadline_ms:u32 trace service:str8 message:str8 body:rest
//! Reply   (5) id:u64 outcome:u8 body:rest     outcome 0: the reply's JSON, 1: a ServiceError's
//! GoAway  (6) last_id:u64                     node -> caller: asks after last_id were not read
//! trace   = 0 | 1 trace_id:u128 span_id:u64 flags:u8
//! ```
//!
//! Bodies stay the JSON that `POST /cluster/v1/ask/{service}/{message}` carries (the handlers
//! read and write JSON, and curl can still reach them over HTTP); what the frames save is the
//! HTTP exchange around each ask: one connection per ask in flight, the request line and
//! headers written and parsed on both sides, one write and one read per ask where a frame link
//! writes every ask and reply queued at the moment in one go.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use emporium_runtime::TraceParent;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What a caller writes first. The NUL byte is never the first byte of an HTTP request.
pub const PREFACE: &[u8; 8] = b"\0EMPFRM\n";

/// The protocol version this build speaks; a node refuses any other (`unsupported_version`),
/// and the caller falls back to HTTP for that node.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame either side accepts: the cluster listener's HTTP body limit (8 MiB) plus
/// room for an ask's head. A longer length prefix ends the connection.
pub const MAX_FRAME_LEN: usize = 8 * 1024 * 1024 + 4 * 1024;

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const REFUSED: u8 = 3;
const ASK: u8 = 4;
const REPLY: u8 = 5;
const GO_AWAY: u8 = 6;

/// One ask: which handler, by when, in which trace, with what.
#[derive(Debug, Clone, PartialEq)]
pub struct AskFrame {
    /// The caller's number for it, echoed by the reply.
    pub id: u64,
    /// The caller's remaining budget in milliseconds; 0: none given.
    pub deadline_millis: u32,
    /// The caller's trace context.
    pub trace: Option<TraceParent>,
    /// The service.
    pub service: String,
    /// The message's name.
    pub message: String,
    /// The message, JSON.
    pub body: Bytes,
}

/// One frame of the protocol. Its `Debug` never shows a `Hello`'s credential.
#[derive(Clone, PartialEq)]
pub enum Frame {
    /// The caller's first frame.
    Hello {
        /// The protocol version the caller speaks.
        version: u16,
        /// The cluster credential, as `EMPORIUM_CLUSTER_SECRET` gives it.
        credential: Bytes,
    },
    /// The node accepted the caller: asks may follow.
    Welcome {
        /// The node's protocol version.
        version: u16,
    },
    /// The node refused the caller (or a frame of it) and closes the connection.
    Refused {
        /// The node's protocol version.
        version: u16,
        /// Why, as an error code: `unsupported_version`, `cluster_credential_required`,
        /// `node_stopping`, `handshake_timeout`, `malformed_frame`, `frame_too_large`.
        code: String,
        /// Why, in words.
        text: String,
    },
    /// An ask.
    Ask(AskFrame),
    /// The answer to an ask.
    Reply {
        /// The ask's id.
        id: u64,
        /// Whether `body` is the reply (else a `ServiceError`).
        ok: bool,
        /// JSON.
        body: Bytes,
    },
    /// The node is stopping: it answers the asks up to `last_id` and read no later one.
    GoAway {
        /// The last ask the node read.
        last_id: u64,
    },
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Hello { version, .. } => {
                formatter.debug_struct("Hello").field("version", version).field("credential", &"<redacted>").finish()
            }
            Frame::Welcome { version } => formatter.debug_struct("Welcome").field("version", version).finish(),
            Frame::Refused { version, code, text } => formatter
                .debug_struct("Refused")
                .field("version", version)
                .field("code", code)
                .field("text", text)
                .finish(),
            Frame::Ask(ask) => formatter.debug_tuple("Ask").field(ask).finish(),
            Frame::Reply { id, ok, body } => {
                formatter.debug_struct("Reply").field("id", id).field("ok", ok).field("body", body).finish()
            }
            Frame::GoAway { last_id } => formatter.debug_struct("GoAway").field("last_id", last_id).finish(),
        }
    }
}

/// Why bytes are not a frame. Every one ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A length prefix over [`MAX_FRAME_LEN`].
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME_LEN}")]
    TooLarge(usize),
    /// A frame of an unknown kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A frame whose payload does not fit its kind.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
}

impl FrameError {
    /// The `code` a node's `Refused` frame gives for it.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge(_) => "frame_too_large",
            FrameError::UnknownKind(_) | FrameError::Malformed(_) => "malformed_frame",
        }
    }
}

impl Frame {
    /// Appends the frame, length first, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        match self {
            Frame::Hello { version, credential } => {
                out.put_u8(HELLO);
                out.put_u16(*version);
                out.put_slice(credential);
            }
            Frame::Welcome { version } => {
                out.put_u8(WELCOME);
                out.put_u16(*version);
            }
            Frame::Refused { version, code, text } => {
                out.put_u8(REFUSED);
                out.put_u16(*version);
                put_str16(out, code);
                put_str16(out, text);
            }
            Frame::Ask(ask) => {
                out.put_u8(ASK);
                out.put_u64(ask.id);
                out.put_u32(ask.deadline_millis);
                match ask.trace {
                    None => out.put_u8(0),
                    Some(trace) => {
                        out.put_u8(1);
                        out.put_u128(trace.trace_id);
                        out.put_u64(trace.span_id);
                        out.put_u8(trace.flags);
                    }
                }
                put_str8(out, &ask.service);
                put_str8(out, &ask.message);
                out.put_slice(&ask.body);
            }
            Frame::Reply { id, ok, body } => {
                out.put_u8(REPLY);
                out.put_u64(*id);
                out.put_u8(if *ok { 0 } else { 1 });
                out.put_slice(body);
            }
            Frame::GoAway { last_id } => {
                out.put_u8(GO_AWAY);
                out.put_u64(*last_id);
            }
        }
        let length = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    }

    /// The first whole frame at the front of `buffer`, taken out of it; `None` while it has not
    /// all arrived. A length over `max_len` is an error as soon as the prefix is in.
    pub fn decode(buffer: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, FrameError> {
        if buffer.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
        if length > max_len {
            return Err(FrameError::TooLarge(length));
        }
        if length == 0 {
            return Err(FrameError::Malformed("empty"));
        }
        if buffer.len() < 4 + length {
            buffer.reserve(4 + length - buffer.len());
            return Ok(None);
        }
        buffer.advance(4);
        let mut payload = buffer.split_to(length).freeze();
        let kind = payload.get_u8();
        let frame = match kind {
            HELLO => {
                let version = get_u16(&mut payload, "Hello")?;
                Frame::Hello { version, credential: payload }
            }
            WELCOME => Frame::Welcome { version: get_u16(&mut payload, "Welcome")? },
            REFUSED => {
                let version = get_u16(&mut payload, "Refused")?;
                let code = get_str16(&mut payload, "Refused")?;
                let text = get_str16(&mut payload, "Refused")?;
                Frame::Refused { version, code, text }
            }
            ASK => Frame::Ask(decode_ask(payload)?),
            REPLY => {
                let id = get_u64(&mut payload, "Reply")?;
                let ok = match get_u8(&mut payload, "Reply")? {
                    0 => true,
                    1 => false,
                    _ => return Err(FrameError::Malformed("Reply")),
                };
                Frame::Reply { id, ok, body: payload }
            }
            GO_AWAY => {
                let last_id = get_u64(&mut payload, "GoAway")?;
                if payload.has_remaining() {
                    return Err(FrameError::Malformed("GoAway"));
                }
                Frame::GoAway { last_id }
            }
            other => return Err(FrameError::UnknownKind(other)),
        };
        Ok(Some(frame))
    }
}

/// Why a connection's frames stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes were not a frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection in the middle of a frame.
    #[error("the connection closed in the middle of a frame")]
    ClosedMidFrame,
}

/// The next frame from `reader`, with `buffer` keeping what arrived beyond it; `None` when the
/// peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    max_len: usize,
) -> Result<Option<Frame>, ReadError> {
    loop {
        if let Some(frame) = Frame::decode(buffer, max_len)? {
            return Ok(Some(frame));
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
            buffer.reserve(READ_CHUNK);
        }
        if reader.read_buf(buffer).await? == 0 {
            return if buffer.is_empty() { Ok(None) } else { Err(ReadError::ClosedMidFrame) };
        }
    }
}

/// How much a connection reads at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A write of many queued frames is cut at about this size.
const WRITE_BATCH: usize = 256 * 1024;

/// Writes the frames that arrive on `outgoing` to `writer`, every frame queued at the moment in
/// one write, until every sender is gone or the connection fails; then closes the writing side.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut outgoing: mpsc::Receiver<Frame>,
) -> std::io::Result<()> {
    let mut batch = BytesMut::with_capacity(READ_CHUNK);
    while let Some(first) = outgoing.recv().await {
        first.encode(&mut batch);
        while batch.len() < WRITE_BATCH {
            match outgoing.try_recv() {
                Ok(next) => next.encode(&mut batch),
                Err(_) => break,
            }
        }
        writer.write_all(&batch).await?;
        batch.clear();
        if batch.capacity() > 4 * WRITE_BATCH {
            batch = BytesMut::with_capacity(READ_CHUNK);
        }
    }
    writer.shutdown().await
}

fn decode_ask(mut payload: Bytes) -> Result<AskFrame, FrameError> {
    const KIND: &str = "Ask";
    let id = get_u64(&mut payload, KIND)?;
    let deadline_millis = get_u32(&mut payload, KIND)?;
    let trace = match get_u8(&mut payload, KIND)? {
        0 => None,
        1 => {
            if payload.remaining() < 25 {
                return Err(FrameError::Malformed(KIND));
            }
            let trace_id = payload.get_u128();
            let span_id = payload.get_u64();
            let flags = payload.get_u8();
            // W3C: all-zero ids are invalid; such a context is dropped, as a bad header is.
            (trace_id != 0 && span_id != 0).then_some(TraceParent { trace_id, span_id, flags })
        }
        _ => return Err(FrameError::Malformed(KIND)),
    };
    let service = get_str8(&mut payload, KIND)?;
    let message = get_str8(&mut payload, KIND)?;
    Ok(AskFrame { id, deadline_millis, trace, service, message, body: payload })
}

fn put_str8(out: &mut BytesMut, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(u8::MAX as usize)];
    out.put_u8(bytes.len() as u8);
    out.put_slice(bytes);
}

fn put_str16(out: &mut BytesMut, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

fn get_u8(payload: &mut Bytes, kind: &'static str) -> Result<u8, FrameError> {
    payload.try_get_u8().map_err(|_| FrameError::Malformed(kind))
}

fn get_u16(payload: &mut Bytes, kind: &'static str) -> Result<u16, FrameError> {
    payload.try_get_u16().map_err(|_| FrameError::Malformed(kind))
}

fn get_u32(payload: &mut Bytes, kind: &'static str) -> Result<u32, FrameError> {
    payload.try_get_u32().map_err(|_| FrameError::Malformed(kind))
}

fn get_u64(payload: &mut Bytes, kind: &'static str) -> Result<u64, FrameError> {
    payload.try_get_u64().map_err(|_| FrameError::Malformed(kind))
}

fn get_text(payload: &mut Bytes, length: usize, kind: &'static str) -> Result<String, FrameError> {
    if payload.remaining() < length {
        return Err(FrameError::Malformed(kind));
    }
    String::from_utf8(payload.split_to(length).to_vec()).map_err(|_| FrameError::Malformed(kind))
}

fn get_str8(payload: &mut Bytes, kind: &'static str) -> Result<String, FrameError> {
    let length = get_u8(payload, kind)? as usize;
    get_text(payload, length, kind)
}

fn get_str16(payload: &mut Bytes, kind: &'static str) -> Result<String, FrameError> {
    let length = get_u16(payload, kind)? as usize;
    get_text(payload, length, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Frame> {
        vec![
            Frame::Hello { version: PROTOCOL_VERSION, credential: Bytes::from_static(b"0123456789abcdef") },
            Frame::Welcome { version: PROTOCOL_VERSION },
            Frame::Refused { version: 1, code: "unsupported_version".into(), text: "this node speaks 1".into() },
            Frame::Ask(AskFrame {
                id: 7,
                deadline_millis: 1_500,
                trace: Some(TraceParent { trace_id: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c, span_id: 42, flags: 1 }),
                service: "inventory".into(),
                message: "Reserve".into(),
                body: Bytes::from_static(br#"{"orderId":"o-1","lines":[]}"#),
            }),
            Frame::Ask(AskFrame {
                id: u64::MAX,
                deadline_millis: 0,
                trace: None,
                service: "echo".into(),
                message: "Echo".into(),
                body: Bytes::new(),
            }),
            Frame::Reply { id: 7, ok: true, body: Bytes::from_static(br#"{"reserved":true}"#) },
            Frame::Reply { id: 8, ok: false, body: Bytes::from_static(br#"{"kind":"conflict"}"#) },
            Frame::GoAway { last_id: 99 },
        ]
    }

    #[test]
    fn every_kind_reads_back_whole_even_when_it_arrives_byte_by_byte() {
        let mut stream = BytesMut::new();
        for frame in every_kind() {
            frame.encode(&mut stream);
        }
        let mut arrived = BytesMut::new();
        let mut read = Vec::new();
        for byte in stream.iter() {
            arrived.put_u8(*byte);
            while let Some(frame) = Frame::decode(&mut arrived, MAX_FRAME_LEN).unwrap() {
                read.push(frame);
            }
        }
        assert_eq!(read, every_kind());
        assert!(arrived.is_empty());
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_the_frame_arrives() {
        let mut buffer = BytesMut::new();
        buffer.put_u32(MAX_FRAME_LEN as u32 + 1);
        assert_eq!(Frame::decode(&mut buffer, MAX_FRAME_LEN), Err(FrameError::TooLarge(MAX_FRAME_LEN + 1)));
        assert_eq!(FrameError::TooLarge(1).code(), "frame_too_large");
    }

    #[test]
    fn corrupt_frames_are_errors_not_panics() {
        let malformed: Vec<Vec<u8>> = vec![
            vec![0, 0, 0, 0],                                      // empty frame
            vec![0, 0, 0, 1, 99],                                  // unknown kind
            vec![0, 0, 0, 2, HELLO, 0],                            // version cut short
            vec![0, 0, 0, 5, ASK, 0, 0, 0, 1],                     // id cut short
            vec![0, 0, 0, 10, REPLY, 0, 0, 0, 0, 0, 0, 0, 1, 7],   // outcome 7
            vec![0, 0, 0, 10, GO_AWAY, 0, 0, 0, 0, 0, 0, 0, 1, 0], // a byte too many
        ];
        for bytes in malformed {
            let mut buffer = BytesMut::from(&bytes[..]);
            let result = Frame::decode(&mut buffer, MAX_FRAME_LEN);
            assert!(result.is_err(), "{bytes:?} read as {result:?}");
        }
        // An ask whose service name claims more bytes than the frame has, or is not UTF-8.
        let mut ask = BytesMut::new();
        Frame::Ask(AskFrame {
            id: 1,
            deadline_millis: 0,
            trace: None,
            service: "echo".into(),
            message: "Echo".into(),
            body: Bytes::new(),
        })
        .encode(&mut ask);
        let mut too_long = ask.clone();
        too_long[4 + 1 + 8 + 4 + 1] = 200;
        assert_eq!(Frame::decode(&mut too_long, MAX_FRAME_LEN), Err(FrameError::Malformed("Ask")));
        let mut not_utf8 = ask.clone();
        not_utf8[4 + 1 + 8 + 4 + 1 + 1] = 0xff;
        assert_eq!(Frame::decode(&mut not_utf8, MAX_FRAME_LEN), Err(FrameError::Malformed("Ask")));
    }

    #[test]
    fn random_bytes_and_mutated_frames_never_panic_the_decoder() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut valid = BytesMut::new();
        for frame in every_kind() {
            frame.encode(&mut valid);
        }
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                let length = rng.random_range(0..64);
                (0..length).map(|_| rng.random::<u8>()).collect::<Vec<u8>>()
            } else {
                let mut bytes = valid.to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] = rng.random();
                }
                bytes.truncate(rng.random_range(0..=bytes.len()));
                bytes
            };
            if round % 3 == 0 && bytes.len() >= 4 {
                // Small lengths, so that most frames are complete and their payloads are read.
                let length = bytes.len() as u32 - 4;
                bytes[..4].copy_from_slice(&length.to_be_bytes());
            }
            let mut buffer = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = Frame::decode(&mut buffer, MAX_FRAME_LEN) {}
        }
    }

    #[test]
    fn a_hello_never_shows_its_credential() {
        let hello = Frame::Hello { version: 1, credential: Bytes::from_static(b"0123456789abcdef-secret") };
        assert!(!format!("{hello:?}").contains("0123456789abcdef"), "{hello:?}");
    }

    #[test]
    fn the_preface_cannot_start_an_http_request() {
        assert_eq!(PREFACE[0], 0);
        assert_eq!(PREFACE.len(), 8);
    }
}
