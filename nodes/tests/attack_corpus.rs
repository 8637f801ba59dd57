//! The attack corpus (issue 11): forged tokens, bodies of every wrong shape, injection strings,
//! bad queries and paths, sent through the gateway of one all-in-one node as an anonymous
//! client, a customer and an admin. Every answer is below 500, and every refusal is our JSON
//! envelope with a stable code and a message of our own: no Rust type, no path, no serde or
//! jsonwebtoken wording.

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::*;

/// Words that only a library or the Rust compiler would write.
const LIBRARY_WORDS: [&str; 16] = [
    "invalid type",
    "invalid value",
    "expected struct",
    "unknown variant",
    "missing field",
    "unknown field",
    "MissingRequiredClaim",
    "InvalidToken",
    "Json(Error",
    "Error(",
    "::",
    "serde",
    "jsonwebtoken",
    "sqlx",
    "panicked",
    "expected one of",
];

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Tokens an attacker might try.
fn forged_tokens() -> Vec<String> {
    let claims = json!({"sub": "u", "roles": ["admin"], "iss": "emporium", "aud": "emporium", "iat": 0, "exp": 4_000_000_000u64, "jti": "j"});
    let mut tokens = vec![
        String::new(),
        "x".to_string(),
        "a.b.c".to_string(),
        "e30.e30.".to_string(),
        ".".repeat(3),
        "é.é.é".to_string(),
        "x".repeat(9_000),
    ];
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "kid": "k"}),
        json!({"alg": "HS256", "kid": "k"}),
        json!({"alg": "RS256", "kid": "k"}),
        json!({"alg": "EdDSA"}),
        json!({"alg": "EdDSA", "kid": "../../etc/passwd"}),
        json!({"alg": "EdDSA", "kid": 5}),
        json!({"alg": ["EdDSA"]}),
        json!([]),
    ] {
        tokens.push(format!("{}.{}.", encode(&header), encode(&claims)));
        tokens.push(format!("{}.{}.{}", encode(&header), encode(&json!({})), URL_SAFE_NO_PAD.encode([0u8; 64])));
        tokens.push(format!("{}.bm90IGpzb24.sig", encode(&header)));
    }
    tokens
}

/// `(method, path, body)` of the corpus; a body of `Value::Null` sends none, a string sends
/// those bytes as `application/json`.
fn requests() -> Vec<(&'static str, String, Value)> {
    let injections = [
        "' OR '1'='1",
        "\"; DROP TABLE orders; --",
        "<script>alert(1)</script>",
        "{\"$gt\": \"\"}",
        "../../../../etc/passwd",
        "%00",
        "\u{0000}\u{0007}",
        "${jndi:ldap://x}",
    ];
    let shapes = [
        json!("{not json"),
        json!("[]"),
        json!("\"x\""),
        json!("null"),
        json!("1"),
        json!(""),
        json!("{\"a\": 1,}"),
        json!("[".repeat(5_000)),
        json!({}),
        json!({"items": "x"}),
        json!({"items": [{"sku": 5, "quantity": "2"}]}),
        json!({"items": [{"sku": "SKU-1", "quantity": -1}], "currency": "USD", "payment": {"method": "card", "token": "tok_visa"}}),
        json!({"items": [{"sku": "SKU-1", "quantity": 1e30}], "currency": "USD", "payment": {"method": "card", "token": "tok_visa"}}),
        json!({"items": [{"sku": "SKU-1", "quantity": 1}], "currency": "XXX", "payment": {"method": "none", "token": "tok_visa"}}),
        json!({"available": "123", "reorderLevel": -5, "reorderQuantity": 1.5}),
        json!({"delta": 99999999999999999999u128.to_string(), "reason": 7}),
        json!({"sku": ["a"], "name": {}, "price": 19.99, "currency": 1}),
        json!({"username": null, "email": 5, "password": []}),
        json!({"refreshToken": 5}),
        json!({"email": "a@b.c", "password": "p", "extra": true}),
    ];
    let mut requests = Vec::new();
    let body_routes = [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/orders"),
        ("POST", "/api/v1/products"),
        ("PUT", "/api/v1/inventory/SKU-1"),
        ("POST", "/api/v1/inventory/SKU-1/adjust"),
    ];
    for (method, path) in body_routes {
        for shape in &shapes {
            requests.push((method, path.to_string(), shape.clone()));
        }
        for injection in injections {
            let body = json!({"username": injection, "email": injection, "password": injection, "sku": injection,
                "name": injection, "items": [{"sku": injection, "quantity": 1}], "refreshToken": injection,
                "reason": injection, "currency": injection, "payment": {"method": "card", "token": injection}});
            requests.push((method, path.to_string(), body));
        }
    }
    for injection in injections {
        let escaped: String = url_escape(injection);
        for path in [
            format!("/api/v1/orders/{escaped}"),
            format!("/api/v1/products/{escaped}"),
            format!("/api/v1/inventory/{escaped}"),
            format!("/api/v1/payments/{escaped}"),
            format!("/api/v1/products?q={escaped}&category={escaped}"),
            format!("/api/v1/orders?status={escaped}"),
            format!("/api/v1/inventory/availability?sku={escaped}"),
        ] {
            requests.push(("GET", path, Value::Null));
        }
    }
    for query in [
        "page=-1",
        "page=abc",
        "size=0",
        "size=100000",
        "page=99999999999999999999999",
        "sort=price,sideways",
        "minPrice=cheap",
        "from=yesterday",
        "page=1&page=2",
    ] {
        for path in
            ["/api/v1/products", "/api/v1/orders", "/api/v1/notifications", "/api/v1/payments", "/api/v1/inventory"]
        {
            requests.push(("GET", format!("{path}?{query}"), Value::Null));
        }
    }
    for path in [
        "/api/v1/orders/x/cancel",
        &format!("/api/v1/orders/{}", "a".repeat(5_000)),
        "/api/v1/nothing",
        "/api/v2/orders",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        requests.push(("GET", path.to_string(), Value::Null));
        requests.push(("POST", path.to_string(), json!({})));
    }
    requests.push(("DELETE", "/api/v1/auth/users/not-a-user".to_string(), Value::Null));
    requests.push(("PATCH", "/api/v1/orders".to_string(), Value::Null));
    requests
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Sends one request and checks the answer; returns a description of what is wrong, if anything.
async fn check_one(
    client: &reqwest::Client,
    base: &str,
    (method, path, body): &(&str, String, Value),
    token: Option<&str>,
    idempotency_key: Option<&str>,
) -> Option<String> {
    let mut request = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    match body {
        Value::Null => {}
        Value::String(raw) => request = request.header("content-type", "application/json").body(raw.clone()),
        other => request = request.json(other),
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Some(format!("{method} {path}: no answer: {error}")),
    };
    let status = response.status().as_u16();
    let has_request_id = response.headers().contains_key("x-request-id");
    let text = response.text().await.unwrap_or_default();
    let what = format!("{method} {path} (token {:?}) -> {status} {text:.300}", token.map(|token| token.len()));
    if status >= 500 {
        return Some(format!("a 5xx: {what}"));
    }
    if !has_request_id {
        return Some(format!("no x-request-id: {what}"));
    }
    if let Some(word) = LIBRARY_WORDS.iter().find(|word| text.contains(*word)) {
        return Some(format!("library wording {word:?}: {what}"));
    }
    if status >= 400 {
        let Ok(answer) = serde_json::from_str::<Value>(&text) else { return Some(format!("not JSON: {what}")) };
        let (code, message) = (answer["error"]["code"].as_str(), answer["error"]["message"].as_str());
        if code.is_none_or(str::is_empty) || message.is_none_or(str::is_empty) {
            return Some(format!("not the error envelope: {what}"));
        }
    }
    None
}

#[tokio::test]
async fn the_attack_corpus_gets_only_our_json_errors_and_no_5xx() {
    let data = DataDir::new();
    let (node, _config) = start_single_node("attack-corpus", "all", &data, &[]);
    let api = Api::new(node.http(""));
    let customer = api.sign_up("mallory").await;
    let admin = api.admin_token().await;
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap();

    let mut problems = Vec::new();
    let mut num_sent = 0;
    let corpus = requests();
    for request in &corpus {
        for token in [None, Some(customer.as_str()), Some(admin.as_str())] {
            num_sent += 1;
            problems.extend(check_one(&client, &api.base, request, token, None).await);
        }
    }
    let order = ("POST", "/api/v1/orders".to_string(), json!({}));
    for key in ["", " ", "a\tb", &"k".repeat(300), "ключ", "' OR 1=1 --"] {
        num_sent += 1;
        problems.extend(check_one(&client, &api.base, &order, Some(&customer), Some(key)).await);
    }
    for token in forged_tokens() {
        for path in ["/api/v1/auth/me", "/api/v1/orders", "/api/v1/cluster/nodes"] {
            num_sent += 1;
            let request = ("GET", path.to_string(), Value::Null);
            let problem = check_one(&client, &api.base, &request, Some(&token), None).await;
            problems.extend(problem);
        }
    }
    assert!(num_sent > 1_000, "the corpus is {num_sent} requests");
    assert!(problems.is_empty(), "{} of {num_sent} answers are wrong:\n{}", problems.len(), problems.join("\n"));
    assert_eq!(api.get("/api/v1/auth/me", Some(&customer)).await.0, 200, "the node still serves");
}

/// A body over the limit sent without a Content-Length (chunked) is refused by actix-web while
/// it is read; the answer is still our envelope, with the request id.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_in_the_envelope() {
    use std::io::{Read, Write};
    let data = DataDir::new();
    let (node, _config) = start_single_node("attack-chunked", "registry,gateway,auth", &data, &[]);
    let address = node.http("").trim_start_matches("http://").to_string();
    let customer = Api::new(node.http("")).sign_up("chunky").await;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /api/v1/auth/logout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {customer}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..40 {
            if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
                || stream.write_all(&chunk).is_err()
                || stream.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let lower = answer.to_lowercase();
    assert!(lower.contains("content-type: application/json") && lower.contains("x-request-id:"), "{answer}");
    assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
}

/// What actix-http refuses before any route runs (too large a header block, bytes that are not
/// HTTP, bad framing, control bytes) is answered with our envelope on both listeners, not an
/// empty body.
#[tokio::test]
async fn requests_the_http_parser_refuses_get_the_envelope_on_both_listeners() {
    let data = DataDir::new();
    let (node, _config) = start_single_node("attack-parser", "registry,gateway,auth", &data, &[]);
    let gateway = node.http("").trim_start_matches("http://").to_string();
    let listener = node.listen.clone();
    let big_header = format!("GET /api/v1/products HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200 * 1024));
    let long_query = format!("GET /api/v1/products?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100 * 1024));
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("a 200 KB header", big_header.into_bytes(), &["431"]),
        ("a 100 KB query string", long_query.into_bytes(), &["400", "414", "431"]),
        ("not HTTP", b"HELLO THERE\r\n\r\n".to_vec(), &["400"]),
        ("a control byte in the path", b"GET /api/v1/pro\x01ducts HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &["400"]),
        (
            "Transfer-Encoding with Content-Length",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            &["400"],
        ),
        ("a bad header line", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), &["400"]),
    ];
    for address in [gateway.as_str(), listener.as_str()] {
        for (what, request, statuses) in &cases {
            let address = address.to_string();
            let request = request.clone();
            let answer = tokio::task::spawn_blocking(move || raw_exchange(&address, &request)).await.unwrap();
            let status = answer.get(9..12).unwrap_or("");
            assert!(statuses.contains(&status), "{what} on {}: {answer}", node.listen);
            let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{what}: {answer}"));
            let head = head.to_lowercase();
            assert!(head.contains("content-type: application/json"), "{what}: {answer}");
            assert!(head.contains("x-request-id: "), "{what}: {answer}");
            let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: not JSON: {answer}"));
            let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("{what}: {body}"));
            assert!(!code.is_empty() && body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    }
    // Both listeners still serve.
    assert_eq!(Api::new(node.http("")).get("/openapi.json", None).await.0, 200);
    assert_eq!(get_json(&node.url("/health/live")).await.0, 200);
}
