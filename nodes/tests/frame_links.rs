//! Frame links (the binary node-to-node transport) as a peer sees them: raw TCP against a real
//! `emporium` echo node, and two nodes asking each other over frames and over HTTP.

mod support;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use emporium_cluster::frames::{self, AskFrame, Frame, MAX_FRAME_LEN, PREFACE, PROTOCOL_VERSION};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn address(node: &NodeProcess) -> String {
    node.url("").trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// A connection that sent the preface and a `Hello`, and what the node answered.
async fn hello(node: &NodeProcess, credential: &str, version: u16) -> (TcpStream, BytesMut, Frame) {
    let mut stream = TcpStream::connect(address(node)).await.unwrap();
    let mut out = BytesMut::from(&PREFACE[..]);
    Frame::Hello { version, credential: Bytes::copy_from_slice(credential.as_bytes()) }.encode(&mut out);
    stream.write_all(&out).await.unwrap();
    let mut buffer = BytesMut::new();
    let answer = next_frame(&mut stream, &mut buffer).await.expect("an answer to the Hello");
    (stream, buffer, answer)
}

async fn next_frame(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<Frame> {
    tokio::time::timeout(Duration::from_secs(10), frames::read_frame(stream, buffer, MAX_FRAME_LEN))
        .await
        .expect("the node answers within 10 s")
        .expect("well-formed frames")
}

/// Whether the node closed the connection within 10 s (end of file, or a reset).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await.is_ok()
}

fn ask(id: u64, service: &str, message: &str, body: Value) -> Frame {
    Frame::Ask(AskFrame {
        id,
        deadline_millis: 5_000,
        trace: None,
        service: service.into(),
        message: message.into(),
        body: Bytes::from(body.to_string()),
    })
}

fn refused_code(frame: &Frame) -> &str {
    match frame {
        Frame::Refused { code, .. } => code,
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn asks_written_together_get_their_own_replies_and_errors_by_id() {
    let registry = start_registry("reg-frames");
    let echo = start_node("echo-frames", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;
    let (mut stream, mut buffer, welcome) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    assert_eq!(welcome, Frame::Welcome { version: PROTOCOL_VERSION });

    let asks = [
        ask(1, "echo", "Echo", json!({"text": "one"})),
        ask(2, "echo", "Echo", json!({"text": 5})),
        ask(3, "echo", "NoSuchMessage", json!({})),
        ask(4, "inventory", "ReserveStock", json!({})),
        ask(5, "echo", "Echo", json!({"text": "five"})),
    ];
    let mut out = BytesMut::new();
    for frame in &asks {
        frame.encode(&mut out);
    }
    stream.write_all(&out).await.unwrap();
    let mut replies = std::collections::BTreeMap::new();
    while replies.len() < asks.len() {
        match next_frame(&mut stream, &mut buffer).await {
            Some(Frame::Reply { id, ok, body }) => {
                replies.insert(id, (ok, serde_json::from_slice::<Value>(&body).unwrap()));
            }
            other => panic!("expected a Reply, got {other:?}"),
        }
    }
    assert_eq!(replies[&1], (true, json!({"text": "one", "nodeId": "echo-frames"})));
    assert_eq!(replies[&5].1["text"], "five");
    let code = |id: u64| (replies[&id].0, replies[&id].1["code"].as_str().unwrap_or_default().to_string());
    assert_eq!(code(2), (false, "malformed_message".to_string()));
    assert_eq!(code(3), (false, "unknown_message".to_string()));
    assert_eq!(code(4), (false, "unknown_service".to_string()));
    assert_eq!(replies[&4].1["kind"], "unavailable", "the whole ServiceError travels");

    // The caller closing its side ends the link; the node stays ready.
    stream.shutdown().await.unwrap();
    assert!(closed(&mut stream).await);
    assert_eq!(get_json(&echo.url("/health/ready")).await.0, 200);
}

#[tokio::test]
async fn a_link_without_the_credential_or_of_another_version_is_refused_and_closed() {
    let registry = start_registry("reg-frames-refused");
    let echo = start_node("echo-frames-refused", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;

    let (mut stream, _, answer) = hello(&echo, "wrong-secret-wrong-secret-wrong", PROTOCOL_VERSION).await;
    assert_eq!(refused_code(&answer), "cluster_credential_required");
    assert!(closed(&mut stream).await);

    let (mut stream, _, answer) = hello(&echo, "", PROTOCOL_VERSION).await;
    assert_eq!(refused_code(&answer), "cluster_credential_required");
    assert!(closed(&mut stream).await);

    let (mut stream, _, answer) = hello(&echo, SECRET, PROTOCOL_VERSION + 1).await;
    assert_eq!(refused_code(&answer), "unsupported_version");
    match answer {
        Frame::Refused { version, text, .. } => {
            assert_eq!(version, PROTOCOL_VERSION);
            assert!(text.contains(&format!("version {PROTOCOL_VERSION}")), "{text}");
        }
        _ => unreachable!(),
    }
    assert!(closed(&mut stream).await);

    // An ask before the Hello is not a Hello.
    let mut stream = TcpStream::connect(address(&echo)).await.unwrap();
    let mut out = BytesMut::from(&PREFACE[..]);
    ask(1, "echo", "Echo", json!({"text": "x"})).encode(&mut out);
    stream.write_all(&out).await.unwrap();
    let mut buffer = BytesMut::new();
    assert_eq!(refused_code(&next_frame(&mut stream, &mut buffer).await.unwrap()), "malformed_frame");
    assert!(closed(&mut stream).await);

    // Before the caller is known, a long frame is refused from its length alone.
    let mut stream = TcpStream::connect(address(&echo)).await.unwrap();
    let mut out = BytesMut::from(&PREFACE[..]);
    out.put_u32(1024 * 1024);
    stream.write_all(&out).await.unwrap();
    let mut buffer = BytesMut::new();
    assert_eq!(refused_code(&next_frame(&mut stream, &mut buffer).await.unwrap()), "frame_too_large");
    assert!(closed(&mut stream).await);
}

#[tokio::test]
async fn corrupt_oversized_and_cut_frames_end_only_their_own_link() {
    let registry = start_registry("reg-frames-corrupt");
    let echo = start_node("echo-frames-corrupt", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;

    // A link that stays open through the others' failures.
    let (mut steady, mut steady_buffer, welcome) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    assert_eq!(welcome, Frame::Welcome { version: PROTOCOL_VERSION });

    // A frame of an unknown kind.
    let (mut stream, mut buffer, _) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    stream.write_all(&[0, 0, 0, 3, 200, 1, 2]).await.unwrap();
    assert_eq!(refused_code(&next_frame(&mut stream, &mut buffer).await.unwrap()), "malformed_frame");
    assert!(closed(&mut stream).await);

    // An ask whose service name runs past the frame's end.
    let (mut stream, mut buffer, _) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    let mut out = BytesMut::new();
    ask(1, "echo", "Echo", json!({})).encode(&mut out);
    out[4 + 1 + 8 + 4 + 1] = 250;
    stream.write_all(&out).await.unwrap();
    assert_eq!(refused_code(&next_frame(&mut stream, &mut buffer).await.unwrap()), "malformed_frame");
    assert!(closed(&mut stream).await);

    // A length over the limit (8 MiB and a little): refused as soon as the length is in.
    let (mut stream, mut buffer, _) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    stream.write_all(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes()).await.unwrap();
    assert_eq!(refused_code(&next_frame(&mut stream, &mut buffer).await.unwrap()), "frame_too_large");
    assert!(closed(&mut stream).await);

    // A caller that closes in the middle of a frame.
    let (mut stream, _, _) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    let mut out = BytesMut::new();
    ask(1, "echo", "Echo", json!({"text": "cut"})).encode(&mut out);
    stream.write_all(&out[..out.len() / 2]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(closed(&mut stream).await);

    // A frame that only says Welcome, which callers never send.
    let (mut stream, mut buffer, _) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    let mut out = BytesMut::new();
    Frame::Welcome { version: PROTOCOL_VERSION }.encode(&mut out);
    stream.write_all(&out).await.unwrap();
    assert_eq!(refused_code(&next_frame(&mut stream, &mut buffer).await.unwrap()), "malformed_frame");
    assert!(closed(&mut stream).await);

    // The steady link and HTTP still work.
    let mut out = BytesMut::new();
    ask(9, "echo", "Echo", json!({"text": "still"})).encode(&mut out);
    steady.write_all(&out).await.unwrap();
    match next_frame(&mut steady, &mut steady_buffer).await {
        Some(Frame::Reply { id: 9, ok: true, body }) => {
            assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["text"], "still");
        }
        other => panic!("expected the reply to ask 9, got {other:?}"),
    }
    let (status, body) = support::ask(&echo, "echo", "Echo", json!({"text": "http"})).await;
    assert_eq!((status, body["text"].as_str()), (200, Some("http")));
}

#[tokio::test]
async fn a_caller_that_never_says_hello_is_closed_after_the_handshake_time() {
    let registry = start_registry("reg-frames-silent");
    let echo = start_node("echo-frames-silent", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;
    let mut stream = TcpStream::connect(address(&echo)).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    let started = Instant::now();
    let mut buffer = BytesMut::new();
    assert_eq!(refused_code(&next_frame(&mut stream, &mut buffer).await.unwrap()), "handshake_timeout");
    assert!(closed(&mut stream).await);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4) && waited < Duration::from_secs(9), "closed after {waited:?}");
}

#[tokio::test]
async fn nodes_ask_each_other_over_frames_by_default_and_over_http_when_configured() {
    let registry = start_registry("reg-frames-nodes");
    let echo = start_node("echo-frames-nodes", "echo", &registry.url);
    let over_frames = start_node("probe-frames", "probe", &registry.url);
    let over_http = NodeProcess::start(
        "probe-http",
        &["--role", "probe", "--registry", &registry.url, "--listen", "127.0.0.1:0"],
        &[("EMPORIUM__CLUSTER__TRANSPORT", "http")],
    );
    until_listed(&registry.node, "echo", 1).await;
    until_listed(&registry.node, "probe", 2).await;
    // Which way the asks arrived: the echo node counts HTTP requests on its cluster listener,
    // and every ask it answered, however it came.
    let echo_asks = || async {
        let metrics = client().get(echo.url("/metrics")).header("authorization", auth()).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        let sum = |prefix: &str, needle: &str| -> f64 {
            text.lines()
                .filter(|line| line.starts_with(prefix) && line.contains(needle))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let over_http = sum("emporium_http_requests_total", "/cluster/v1/ask/");
        let all = sum("emporium_cluster_requests_total", r#"message="Echo""#);
        (over_http, all)
    };
    for (probe, expect_http) in [(&over_frames, false), (&over_http, true)] {
        let relayed = eventually(Duration::from_secs(10), "the probe reaches echo", || async {
            let (status, body) = support::ask(probe, "probe", "RelayEcho", json!({"text": "relayed"})).await;
            (status == 200).then_some(body)
        })
        .await;
        assert_eq!(relayed, json!({"text": "relayed", "nodeId": "echo-frames-nodes"}));
        let (over_http, all) = echo_asks().await;
        assert!(all >= 1.0, "echo answered the relayed ask");
        if expect_http {
            assert!(over_http >= 1.0, "the probe told to use HTTP used it");
        } else {
            assert_eq!(over_http, 0.0, "the default probe asked over a frame link");
        }
    }
}

#[tokio::test]
async fn a_stopping_node_says_go_away_with_the_last_ask_it_read_and_closes() {
    let registry = start_registry("reg-frames-stop");
    let mut echo = start_node("echo-frames-stop", "echo", &registry.url);
    until_listed(&registry.node, "echo", 1).await;
    let (mut stream, mut buffer, welcome) = hello(&echo, SECRET, PROTOCOL_VERSION).await;
    assert_eq!(welcome, Frame::Welcome { version: PROTOCOL_VERSION });
    let mut out = BytesMut::new();
    ask(7, "echo", "Echo", json!({"text": "before"})).encode(&mut out);
    stream.write_all(&out).await.unwrap();
    assert!(matches!(next_frame(&mut stream, &mut buffer).await, Some(Frame::Reply { id: 7, ok: true, .. })));

    let pid = echo.pid();
    let stopped = tokio::task::spawn_blocking(move || {
        let status = echo.sigterm(Duration::from_secs(20));
        (status, echo)
    });
    assert_eq!(next_frame(&mut stream, &mut buffer).await, Some(Frame::GoAway { last_id: 7 }), "pid {pid}");
    assert!(closed(&mut stream).await);
    let (status, _echo) = stopped.await.unwrap();
    assert!(status.success(), "{status:?}");
}
