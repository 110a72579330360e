//! `HttpSender` against a real HTTP/1.1 peer on 127.0.0.1: a small server written here over a
//! tokio `TcpListener`, so the test sees the exact bytes on the wire and scripts every answer
//! (status, `Retry-After`, a stall past the timeout, a refused connection).

use bytes::Bytes;
use medway_connectors::destinations::http::{HttpSender, HttpSettings};
use medway_engine::config::ConnectorSpec;
use medway_engine::connector::{Destination, Retry};
use medway_engine::message::Delivery;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    /// Lower-cased names; repeated headers joined with ", ".
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// What the server answers.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
    /// Wait this long before answering.
    delay: Duration,
}

impl Answer {
    fn status(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            reason,
            headers: Vec::new(),
            body: "",
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: &'static str) -> Self {
        self.body = body;
        self
    }

    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A scripted HTTP/1.1 server: answers every request with `answer` and records what it got.
struct TestServer {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, answer.clone(), recorded.clone()));
            }
        });
        Self {
            address,
            seen,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves requests on one connection (keep-alive) until the peer closes it.
async fn serve(mut stream: TcpStream, answer: Answer, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        seen.lock().unwrap().push(request);
        tokio::time::sleep(answer.delay).await;
        let mut response = format!("HTTP/1.1 {} {}\r\n", answer.status, answer.reason);
        for (name, value) in &answer.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str(&format!(
            "content-length: {}\r\n\r\n{}",
            answer.body.len(),
            answer.body
        ));
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request (head plus `Content-Length` body). `None` when the connection closes.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Seen> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let mut headers: HashMap<String, String> = HashMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers
            .entry(name.trim().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value.trim());
            })
            .or_insert_with(|| value.trim().to_string());
    }
    assert!(
        !headers.contains_key("transfer-encoding"),
        "the sender streams no chunked bodies"
    );
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

/// An ORU with a latin-1 byte, CR segment ends and an escape, to prove the body is sent as is.
const PAYLOAD: &[u8] =
    b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240501103000||ORU^R01|LAB0042|P|2.5.1||||||8859/1\r\
PID|1||00123456^^^HOSP^MR||M\xdcLLER^J\\T\\R\r\
OBX|1|NM|8867-4^Heart rate^LN||72|/min\r";

fn delivery(id: i64) -> Delivery {
    Delivery {
        id,
        message_id: id + 1000,
        channel: "lab-results".into(),
        destination: "results-api".into(),
        attempts: 0,
        control_id: Some("LAB0042".into()),
        message_type: Some("ORU^R01".into()),
        payload: Bytes::from_static(PAYLOAD),
        received_at: 1_714_557_600_000_000,
        ordering_key: None,
    }
}

fn sender(toml_text: &str) -> HttpSender {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    let settings = HttpSettings::from_spec(&ConnectorSpec::inline("http", table)).unwrap();
    HttpSender::new(settings).unwrap()
}

fn sender_for(server: &TestServer, extra: &str) -> HttpSender {
    sender(&format!(
        "url = \"{}\"\n{extra}",
        server.url("/api/hl7?feed=lab")
    ))
}

#[tokio::test]
async fn ok_200_delivers_exact_bytes_content_type_and_idempotency_key() {
    let server =
        TestServer::start(Answer::status(200, "OK").body("{\"patient\":\"secret\"}")).await;
    let http = sender_for(
        &server,
        "headers = { Authorization = \"Bearer t0k3n\", X-Site = \"north\" }",
    );
    let response = http.send(&delivery(41)).await.unwrap();
    assert!(
        response.summary.starts_with("HTTP 200 OK"),
        "{}",
        response.summary
    );
    assert!(
        !response.summary.contains("secret"),
        "the summary never carries the response body: {}",
        response.summary
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/api/hl7?feed=lab");
    assert_eq!(
        request.body, PAYLOAD,
        "the body is the payload, byte for byte"
    );
    assert_eq!(request.headers["content-type"], "x-application/hl7-v2+er7");
    assert_eq!(request.headers["content-length"], PAYLOAD.len().to_string());
    assert_eq!(request.headers["idempotency-key"], "41");
    assert_eq!(request.headers["x-medway-channel"], "lab-results");
    assert_eq!(request.headers["x-medway-control-id"], "LAB0042");
    assert_eq!(request.headers["x-medway-message-type"], "ORU^R01");
    assert_eq!(request.headers["authorization"], "Bearer t0k3n");
    assert_eq!(request.headers["x-site"], "north");
}

#[tokio::test]
async fn a_retried_delivery_carries_the_same_idempotency_key() {
    let server = TestServer::start(Answer::status(201, "Created")).await;
    let http = sender_for(&server, "");
    let mut first = delivery(77);
    http.send(&first).await.unwrap();
    first.attempts = 1;
    http.send(&first).await.unwrap();
    http.send(&delivery(78)).await.unwrap();
    let keys: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.headers["idempotency-key"].clone())
        .collect();
    assert_eq!(keys, ["77", "77", "78"]);
}

#[tokio::test]
async fn method_and_content_type_are_configurable() {
    let server = TestServer::start(Answer::status(204, "No Content")).await;
    let destination = sender(&format!(
        "url = \"{}\"\nmethod = \"put\"\ncontent_type = \"application/json\"\ntimeout_ms = 5000",
        server.url("/fhir/Bundle")
    ));
    let mut json = delivery(5);
    json.payload = Bytes::from_static(b"{\"resourceType\":\"Bundle\"}");
    let response = destination.send(&json).await.unwrap();
    assert!(
        response.summary.starts_with("HTTP 204"),
        "{}",
        response.summary
    );
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].body, b"{\"resourceType\":\"Bundle\"}");
}

#[tokio::test]
async fn too_many_requests_retries_later_after_retry_after_seconds() {
    let server = TestServer::start(
        Answer::status(429, "Too Many Requests")
            .header("Retry-After", "30")
            .body("slow down, patient MÜLLER"),
    )
    .await;
    let error = sender_for(&server, "")
        .send(&delivery(1))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert_eq!(error.retry_after, Some(Duration::from_secs(30)));
    assert!(error.reason.contains("429"), "{}", error.reason);
    assert!(!error.reason.contains("MÜLLER"), "{}", error.reason);
}

#[tokio::test]
async fn service_unavailable_honours_an_http_date_retry_after() {
    let in_two_minutes = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&in_two_minutes)
        .unwrap();
    let server =
        TestServer::start(Answer::status(503, "Service Unavailable").header("Retry-After", date))
            .await;
    let error = sender_for(&server, "")
        .send(&delivery(2))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    let wait = error.retry_after.expect("Retry-After honoured");
    assert!(
        wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
}

#[tokio::test]
async fn server_error_retries_later() {
    let server = TestServer::start(Answer::status(500, "Internal Server Error")).await;
    let error = sender_for(&server, "")
        .send(&delivery(3))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert_eq!(error.retry_after, None);
    assert!(error.reason.contains("HTTP 500"), "{}", error.reason);
}

#[tokio::test]
async fn request_timeout_status_retries_later() {
    let server = TestServer::start(Answer::status(408, "Request Timeout")).await;
    let error = sender_for(&server, "")
        .send(&delivery(4))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later);
}

#[tokio::test]
async fn bad_request_is_never_retried() {
    let server =
        TestServer::start(Answer::status(400, "Bad Request").body("PID-3 missing for DOE^JANE"))
            .await;
    let error = sender_for(&server, "")
        .send(&delivery(5))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never);
    assert!(error.reason.contains("HTTP 400"), "{}", error.reason);
    assert!(!error.reason.contains("DOE"), "{}", error.reason);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::start(
        Answer::status(302, "Found").header("Location", "http://127.0.0.1:9/elsewhere"),
    )
    .await;
    let error = sender_for(&server, "")
        .send(&delivery(6))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never);
    assert!(error.reason.contains("302"), "{}", error.reason);
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_peer_slower_than_the_timeout_retries_later() {
    let server = TestServer::start(Answer::status(200, "OK").delay(Duration::from_secs(5))).await;
    let http = sender_for(&server, "timeout_ms = 300");
    let started = Instant::now();
    let error = http.send(&delivery(7)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.retry, Retry::Later);
    assert!(error.reason.contains("timed out"), "{}", error.reason);
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(server.seen().len(), 1, "the request reached the peer");
}

#[tokio::test]
async fn connection_refused_retries_later() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let http = sender(&format!(
        "url = \"http://{address}/api/hl7?token=s3cr3t\"\nconnect_timeout_ms = 1000"
    ));
    let error = http.send(&delivery(8)).await.unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert!(error.reason.contains("connect"), "{}", error.reason);
    assert!(
        !error.reason.contains("s3cr3t"),
        "no query string in reasons: {}",
        error.reason
    );
}

#[tokio::test]
async fn concurrent_sends_share_the_client() {
    let server = TestServer::start(Answer::status(200, "OK")).await;
    let http = Arc::new(sender_for(&server, ""));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let http = http.clone();
            tokio::spawn(async move { http.send(&delivery(100 + i)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut keys: Vec<i64> = server
        .seen()
        .iter()
        .map(|s| s.headers["idempotency-key"].parse().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, (100..132).collect::<Vec<i64>>());
}
