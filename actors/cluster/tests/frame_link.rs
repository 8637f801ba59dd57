//! The calling side of frame links against peers that misbehave: a node of an older build that
//! speaks only HTTP, one that refuses the version or the credential, one that never answers,
//! one that closes in the middle of an ask, one that stops with `GoAway`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use emporium_cluster::credential::ClusterSecret;
use emporium_cluster::frame_link::MAX_BODY_LEN;
use emporium_cluster::frames::{self, Frame, MAX_FRAME_LEN, PREFACE, PROTOCOL_VERSION};
use emporium_cluster::transport::{AttemptError, OutgoingAsk, RemoteTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "frame-link-test-secret-0123456789";

fn transport() -> RemoteTransport {
    RemoteTransport::new(ClusterSecret::new(SECRET.into()).unwrap())
}

/// A peer on a free port that runs `behaviour` on every connection.
async fn peer<F, Fut>(behaviour: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let behaviour = Arc::new(behaviour);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behaviour(stream));
        }
    });
    address
}

/// Reads the preface and the Hello; `None` when the connection is HTTP.
async fn read_hello(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<Frame> {
    let mut preface = [0u8; 8];
    stream.read_exact(&mut preface).await.ok()?;
    if &preface != PREFACE {
        return None;
    }
    frames::read_frame(stream, buffer, MAX_FRAME_LEN).await.ok().flatten()
}

async fn write(stream: &mut TcpStream, frames: &[Frame]) {
    let mut out = BytesMut::new();
    for frame in frames {
        frame.encode(&mut out);
    }
    let _ = stream.write_all(&out).await;
}

/// The next ask's id.
async fn read_ask(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<u64> {
    match frames::read_frame(stream, buffer, MAX_FRAME_LEN).await {
        Ok(Some(Frame::Ask(ask))) => Some(ask.id),
        _ => None,
    }
}

async fn send(transport: &RemoteTransport, address: SocketAddr, within: Duration) -> Result<Bytes, AttemptError> {
    let body = Bytes::from_static(br#"{"text":"hi"}"#);
    let address = address.to_string();
    let ask = OutgoingAsk {
        address: &address,
        service: "echo",
        message: "Echo",
        body,
        deadline: Instant::now() + within,
        trace: None,
    };
    transport.send(ask).await
}

/// Answers one HTTP request with `{"via":"http"}` and closes (enough of HTTP/1.1 for reqwest).
async fn answer_http(stream: &mut TcpStream, head: &[u8]) {
    let mut request = head.to_vec();
    let mut chunk = [0u8; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(count) => request.extend_from_slice(&chunk[..count]),
        }
    }
    let text = String::from_utf8_lossy(&request).to_lowercase();
    assert!(text.starts_with("post /cluster/v1/ask/echo/echo "), "{text}");
    assert!(text.contains(&format!("authorization: cluster {SECRET}")), "{text}");
    let body = br#"{"via":"http"}"#;
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

#[tokio::test]
async fn a_node_that_speaks_only_http_is_asked_over_http() {
    let frame_attempts = Arc::new(AtomicUsize::new(0));
    let counted = frame_attempts.clone();
    let address = peer(move |mut stream| {
        let counted = counted.clone();
        async move {
            let mut first = [0u8; 1];
            if stream.read_exact(&mut first).await.is_err() {
                return;
            }
            if first[0] == 0 {
                // What an older node's HTTP server answers to the preface.
                counted.fetch_add(1, Ordering::SeqCst);
                let answer =
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                let _ = stream.write_all(answer.as_bytes()).await;
                return;
            }
            answer_http(&mut stream, &first).await;
        }
    })
    .await;
    let transport = transport();
    for _ in 0..3 {
        let reply = send(&transport, address, Duration::from_secs(5)).await.unwrap();
        assert_eq!(&reply[..], br#"{"via":"http"}"#);
    }
    assert_eq!(frame_attempts.load(Ordering::SeqCst), 1, "frames are not tried again for a while");
}

#[tokio::test]
async fn a_node_of_another_protocol_version_is_asked_over_http() {
    let address = peer(|mut stream| async move {
        let mut buffer = BytesMut::new();
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await.is_err() {
            return;
        }
        if first[0] != 0 {
            return answer_http(&mut stream, &[]).await;
        }
        if let Some(Frame::Hello { version, .. }) = read_hello(&mut stream, &mut buffer).await {
            assert_eq!(version, PROTOCOL_VERSION);
            let refused = Frame::Refused {
                version: PROTOCOL_VERSION + 1,
                code: "unsupported_version".into(),
                text: "this node speaks version 2".into(),
            };
            write(&mut stream, &[refused]).await;
        }
    })
    .await;
    let reply = send(&transport(), address, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&reply[..], br#"{"via":"http"}"#);
}

#[tokio::test]
async fn a_refused_credential_is_an_unauthenticated_answer() {
    let address = peer(|mut stream| async move {
        let mut buffer = BytesMut::new();
        if let Some(Frame::Hello { credential, .. }) = read_hello(&mut stream, &mut buffer).await {
            assert_eq!(&credential[..], SECRET.as_bytes());
            let refused = Frame::Refused {
                version: PROTOCOL_VERSION,
                code: "cluster_credential_required".into(),
                text: "cluster endpoints need the cluster credential".into(),
            };
            write(&mut stream, &[refused]).await;
        }
    })
    .await;
    match send(&transport(), address, Duration::from_secs(5)).await {
        Err(AttemptError::Reply(error)) => assert_eq!(error.code, "cluster_credential_required"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_the_hello_fails_the_attempt_as_a_connect_error_in_time() {
    let address = peer(|mut stream| async move {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    })
    .await;
    let started = Instant::now();
    match send(&transport(), address, Duration::from_secs(10)).await {
        Err(AttemptError::Connect(reason)) => assert!(reason.contains("handshake"), "{reason}"),
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_peer_that_never_replies_times_the_ask_out_at_its_deadline() {
    let address = peer(|mut stream| async move {
        let mut buffer = BytesMut::new();
        if read_hello(&mut stream, &mut buffer).await.is_some() {
            write(&mut stream, &[Frame::Welcome { version: PROTOCOL_VERSION }]).await;
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    })
    .await;
    let started = Instant::now();
    match send(&transport(), address, Duration::from_millis(400)).await {
        Err(AttemptError::Reply(error)) => assert_eq!(error.code, "deadline_exceeded"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(2), "waited {waited:?}");
}

#[tokio::test]
async fn a_peer_that_closes_mid_frame_loses_the_ask_and_the_next_ask_takes_a_new_link() {
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let address = peer(move |mut stream| {
        let connection = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut buffer = BytesMut::new();
            if read_hello(&mut stream, &mut buffer).await.is_none() {
                return;
            }
            write(&mut stream, &[Frame::Welcome { version: PROTOCOL_VERSION }]).await;
            let Some(id) = read_ask(&mut stream, &mut buffer).await else { return };
            let mut reply = BytesMut::new();
            Frame::Reply { id, ok: true, body: Bytes::from_static(br#"{"text":"hi"}"#) }.encode(&mut reply);
            if connection == 0 {
                // Half a reply, then the connection closes.
                let _ = stream.write_all(&reply[..reply.len() / 2]).await;
                return;
            }
            let _ = stream.write_all(&reply).await;
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    })
    .await;
    let transport = transport();
    match send(&transport, address, Duration::from_secs(5)).await {
        Err(AttemptError::Transport(reason)) => assert!(reason.contains("middle of a frame"), "{reason}"),
        other => panic!("expected the ask lost, got {other:?}"),
    }
    let reply = send(&transport, address, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&reply[..], br#"{"text":"hi"}"#);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn after_go_away_the_asks_it_did_not_read_fail_as_never_delivered() {
    let address = peer(|mut stream| async move {
        let mut buffer = BytesMut::new();
        if read_hello(&mut stream, &mut buffer).await.is_none() {
            return;
        }
        write(&mut stream, &[Frame::Welcome { version: PROTOCOL_VERSION }]).await;
        let (Some(first), Some(second)) =
            (read_ask(&mut stream, &mut buffer).await, read_ask(&mut stream, &mut buffer).await)
        else {
            return;
        };
        let read = first.min(second);
        let reply = Frame::Reply { id: read, ok: true, body: Bytes::from_static(br#"{"text":"read"}"#) };
        write(&mut stream, &[Frame::GoAway { last_id: read }, reply]).await;
    })
    .await;
    let transport = transport();
    let (first, second) = tokio::join!(
        send(&transport, address, Duration::from_secs(5)),
        send(&transport, address, Duration::from_secs(5))
    );
    let mut results = [first, second];
    results.sort_by_key(|result| result.is_err());
    assert_eq!(&results[0].as_ref().unwrap()[..], br#"{"text":"read"}"#);
    match &results[1] {
        Err(AttemptError::Connect(reason)) => assert!(reason.contains("stopping"), "{reason}"),
        other => panic!("expected never delivered, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_reply_is_the_whole_service_error_or_a_clear_remote_error() {
    let address = peer(|mut stream| async move {
        let mut buffer = BytesMut::new();
        if read_hello(&mut stream, &mut buffer).await.is_none() {
            return;
        }
        write(&mut stream, &[Frame::Welcome { version: PROTOCOL_VERSION }]).await;
        let mut answers = 0;
        while let Some(id) = read_ask(&mut stream, &mut buffer).await {
            let body: &'static [u8] = if answers == 0 {
                br#"{"kind":"conflict","code":"out_of_stock","message":"none left"}"#
            } else {
                b"not json"
            };
            answers += 1;
            write(&mut stream, &[Frame::Reply { id, ok: false, body: Bytes::from_static(body) }]).await;
        }
    })
    .await;
    let transport = transport();
    match send(&transport, address, Duration::from_secs(5)).await {
        Err(AttemptError::Reply(error)) => {
            assert_eq!((error.code.as_str(), error.message.as_str()), ("out_of_stock", "none left"))
        }
        other => panic!("expected the service error, got {other:?}"),
    }
    match send(&transport, address, Duration::from_secs(5)).await {
        Err(AttemptError::Reply(error)) => assert_eq!(error.code, "remote_error"),
        other => panic!("expected remote_error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_body_over_the_limit_fails_only_its_own_ask() {
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let address = peer(move |mut stream| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut buffer = BytesMut::new();
            if read_hello(&mut stream, &mut buffer).await.is_none() {
                return;
            }
            write(&mut stream, &[Frame::Welcome { version: PROTOCOL_VERSION }]).await;
            while let Some(id) = read_ask(&mut stream, &mut buffer).await {
                write(&mut stream, &[Frame::Reply { id, ok: true, body: Bytes::from_static(b"{}") }]).await;
            }
        }
    })
    .await;
    let transport = transport();
    assert!(send(&transport, address, Duration::from_secs(5)).await.is_ok());
    let address_text = address.to_string();
    let huge = OutgoingAsk {
        address: &address_text,
        service: "echo",
        message: "Echo",
        body: Bytes::from(vec![b' '; MAX_BODY_LEN + 1]),
        deadline: Instant::now() + Duration::from_secs(5),
        trace: None,
    };
    match transport.send(huge).await {
        Err(AttemptError::Reply(error)) => assert_eq!(error.code, "payload_too_large"),
        other => panic!("expected payload_too_large, got {other:?}"),
    }
    assert!(send(&transport, address, Duration::from_secs(5)).await.is_ok());
    assert_eq!(connections.load(Ordering::SeqCst), 1, "the link survived the refused ask");
}

#[tokio::test]
async fn asks_to_a_node_that_stopped_reading_end_at_their_deadline() {
    let address = peer(|mut stream| async move {
        let mut buffer = BytesMut::new();
        if read_hello(&mut stream, &mut buffer).await.is_some() {
            write(&mut stream, &[Frame::Welcome { version: PROTOCOL_VERSION }]).await;
            // Reads nothing more: the socket's buffers fill, then the link's queue.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    })
    .await;
    let transport = transport();
    let address_text = address.to_string();
    let body = Bytes::from(vec![b' '; 64 * 1024]);
    let started = Instant::now();
    let asks = (0..1_200).map(|_| {
        let ask = OutgoingAsk {
            address: &address_text,
            service: "echo",
            message: "Echo",
            body: body.clone(),
            deadline: started + Duration::from_millis(700),
            trace: None,
        };
        transport.send(ask)
    });
    let results = futures::future::join_all(asks).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "every ask ended by its deadline, not {waited:?}");
    for result in results {
        match result {
            Err(AttemptError::Reply(error)) => assert_eq!(error.code, "deadline_exceeded"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}
