//! The server behind both HTTP listeners (the gateway's public one and every node's cluster
//! listener): actix-web's `App` served by actix-http's HTTP/1.1 dispatcher over an
//! [`EdgeStream`], so that even the answers the dispatcher writes on its own, before any route
//! runs, are the JSON error envelope.
//!
//! actix-http answers a request it cannot parse (bytes that are not HTTP, `Transfer-Encoding`
//! with `Content-Length`, a header block over its buffer, a request that does not arrive in
//! time) with an empty `400`, `431` or `408` and closes the connection; it has no hook for
//! their body. Every answer of the application is JSON with a `content-type` (the edge
//! middleware makes sure), so an answer of 400 or above with `content-length: 0` and no
//! `content-type` can only be the dispatcher's: [`EdgeStream`] replaces it, on its way to the
//! socket, with the envelope of its status and a fresh `x-request-id`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, Request, Response};
use actix_server::Server;
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::frame_server::FrameServer;

/// How one listener is served.
#[derive(Debug, Clone)]
pub struct EdgeServerOptions {
    /// Its name in actix-server's logs.
    pub name: &'static str,
    /// Worker threads.
    pub workers: usize,
    /// How long a client has to send a request's head (408 after that).
    pub client_request_timeout: Duration,
    /// How long in-flight requests may finish at a graceful stop.
    pub shutdown_timeout: Duration,
    /// Whether a client may close its sending side and still read the answer; `false` ends a
    /// connection (and drops a streaming answer) as soon as the client's end of file arrives.
    pub allow_half_closed: bool,
}

/// Serves the app `factory` makes (one per worker) on `listener`, every connection through an
/// [`EdgeStream`]; with `frames` (the cluster listener), a connection that opens with the frame
/// preface goes to the [`FrameServer`] instead. Spawn the returned server on the actix System;
/// stop it through its handle.
pub fn serve<F, I, S, B>(
    listener: std::net::TcpListener,
    options: EdgeServerOptions,
    frames: Option<FrameServer>,
    factory: F,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let local_addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let client_request_timeout = options.client_request_timeout;
    let allow_half_closed = options.allow_half_closed;
    Ok(Server::build()
        .workers(options.workers.max(1))
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout.as_secs().max(1))
        .listen(options.name, listener, move || {
            let app = factory().into_factory().map_err(|error| error.into().error_response());
            let http = HttpService::<EdgeStream<TcpStream>, _, _>::build()
                .client_request_timeout(client_request_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                .h1_allow_half_closed(allow_half_closed)
                .local_addr(local_addr)
                .h1(map_config(app, move |_| AppConfig::default()));
            let frames = frames.clone();
            fn_service(move |stream: TcpStream| {
                let frames = frames.clone();
                async move {
                    if let Some(frames) = frames
                        && FrameServer::is_frame_link(&stream, client_request_timeout).await
                    {
                        frames.serve(stream).await;
                        // Served; the error only ends the chain before HTTP (actix-server
                        // drops it). A frame link is, in effect, an upgraded connection.
                        return Err(DispatchError::Upgrade);
                    }
                    let peer = stream.peer_addr().ok();
                    let _ = stream.set_nodelay(true);
                    Ok((EdgeStream::new(stream), peer))
                }
            })
            .and_then(http)
        })?
        .run())
}

/// A connection whose outgoing bytes pass unchanged, except the dispatcher's own bodiless
/// error answers, which become the JSON envelope (see the module documentation).
pub struct EdgeStream<T> {
    inner: T,
    /// A replacement answer and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> EdgeStream<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        EdgeStream { inner, pending: None }
    }
}

impl<T: AsyncWrite + Unpin> EdgeStream<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.pending.as_mut() {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let count = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if count == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += count;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EdgeStream<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EdgeStream<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        match find_bare_error(buf) {
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
            // Everything before it first, as it is.
            Some(bare) if bare.start > 0 => Pin::new(&mut self.inner).poll_write(cx, &buf[..bare.start]),
            Some(bare) => {
                self.pending = Some((envelope_answer(&buf[..bare.head_len], bare.status), 0));
                // The original answer counts as written; the replacement goes out now or at the
                // next write or flush.
                let _ = self.poll_pending(cx)?;
                Poll::Ready(Ok(bare.head_len))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A bodiless error answer found in outgoing bytes.
#[derive(Debug, PartialEq, Eq)]
struct BareError {
    /// Where its status line starts.
    start: usize,
    /// The length of its head (and of the answer: it has no body).
    head_len: usize,
    status: StatusCode,
}

/// The first answer in `bytes` with a status of 400 or above, `content-length: 0` and no
/// `content-type`, whose head is complete in `bytes`.
fn find_bare_error(bytes: &[u8]) -> Option<BareError> {
    let mut from = 0;
    while let Some(offset) = find(&bytes[from..], b"HTTP/1.") {
        let start = from + offset;
        from = start + 1;
        let rest = &bytes[start..];
        // `HTTP/1.1 431 ` at least, then the head up to the blank line.
        if rest.len() < 13 || !matches!(rest[7], b'0' | b'1') || rest[8] != b' ' || rest[12] != b' ' {
            continue;
        }
        let Some(status) = std::str::from_utf8(&rest[9..12])
            .ok()
            .and_then(|digits| digits.parse::<u16>().ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
        else {
            continue;
        };
        if status.as_u16() < 400 {
            continue;
        }
        let Some(end) = find(rest, b"\r\n\r\n") else { continue };
        let head = rest[..end].to_ascii_lowercase();
        let bodiless = find(&head, b"\r\ncontent-length: 0\r\n").is_some() || head.ends_with(b"\r\ncontent-length: 0");
        if bodiless && find(&head, b"\r\ncontent-type:").is_none() {
            return Some(BareError { start, head_len: end + 4, status });
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The envelope answer that replaces the bare `head`: its status line and headers but the
/// length, then `content-type`, `content-length`, a fresh `x-request-id`, and the body.
fn envelope_answer(head: &[u8], status: StatusCode) -> Vec<u8> {
    let (code, message) = crate::edge::bare_error_words(status);
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let head = String::from_utf8_lossy(&head[..head.len().saturating_sub(4)]).into_owned();
    let mut answer = String::with_capacity(head.len() + body.len() + 160);
    for line in head.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("content-length:") {
            answer.push_str(line);
            answer.push_str("\r\n");
        }
    }
    answer.push_str("content-type: application/json\r\n");
    answer.push_str(&format!("content-length: {}\r\n", body.len()));
    answer.push_str(&format!("x-request-id: {}\r\n\r\n", uuid::Uuid::new_v4()));
    answer.push_str(&body);
    answer.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const BARE_431: &[u8] =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\ndate: Sun, 06 Dec 2026 05:00:00 GMT\r\n\r\n";
    const JSON_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";

    #[test]
    fn only_bodiless_untyped_errors_are_bare() {
        assert_eq!(
            find_bare_error(BARE_431),
            Some(BareError { start: 0, head_len: BARE_431.len(), status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE })
        );
        assert_eq!(find_bare_error(JSON_400), None);
        assert_eq!(find_bare_error(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(find_bare_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"), None, "incomplete head");
        let mut pipelined = JSON_400.to_vec();
        pipelined.extend_from_slice(BARE_431);
        assert_eq!(find_bare_error(&pipelined).map(|bare| bare.start), Some(JSON_400.len()));
    }

    #[tokio::test]
    async fn a_bare_answer_leaves_as_the_envelope_and_the_rest_unchanged() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut stream = EdgeStream::new(client);
        let writer = async move {
            let mut all = JSON_400.to_vec();
            all.extend_from_slice(BARE_431);
            stream.write_all(&all).await.unwrap();
            stream.shutdown().await.unwrap();
        };
        let reader = async move {
            let mut received = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received).await.unwrap();
            received
        };
        let ((), received) = tokio::join!(writer, reader);
        let text = String::from_utf8(received).unwrap();
        let (first, second) = text.split_at(JSON_400.len());
        assert_eq!(first.as_bytes(), JSON_400);
        let (head, body) = second.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n") && head.contains("\r\ncontent-type: application/json\r\n"));
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{head}");
        assert!(head.contains("\r\nx-request-id: "), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "headers_too_large");
    }
}
