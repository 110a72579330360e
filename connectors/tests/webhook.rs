//! `WebhookSender` against a real HTTP/1.1 receiver on 127.0.0.1, written here over tokio (and
//! tokio-rustls for HTTPS with the dev CA from `certs/make-dev-certs.sh`), so the test sees the
//! exact request and scripts every answer (status, `Retry-After`).

use bytes::Bytes;
use medway_connectors::destinations::webhook::{WebhookSender, WebhookSettings};
use medway_engine::config::ConnectorSpec;
use medway_engine::connector::{Destination, Retry};
use medway_engine::message::Delivery;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    /// Lower-cased names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// A scripted answer: status, extra headers.
type Answer = (u16, Vec<(&'static str, String)>);

/// The receiver: answers from the script in order, then 200.
struct Receiver {
    address: SocketAddr,
    https: bool,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: Vec<Answer>) -> Self {
        Self::start_with(script, None).await
    }

    async fn start_with(script: Vec<Answer>, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let recorded = seen.clone();
        let https = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (recorded, script, tls) = (recorded.clone(), script.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, script, recorded).await;
                            }
                        }
                        None => serve(stream, script, recorded).await,
                    }
                });
            }
        });
        Self {
            address,
            https,
            seen,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.address)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    script: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        seen.lock().unwrap().push(request);
        let (status, headers) = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, Vec::new()));
        let mut response = format!("HTTP/1.1 {status} Scripted\r\n");
        for (name, value) in headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("content-length: 2\r\n\r\nok");
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One request (head plus `Content-Length` body); `None` when the connection closes.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> Option<Seen> {
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
    let mut headers = HashMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
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

/// The dev CA and server certificate, made once per test run.
fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("medway-webhook-certs")
            .tempdir()
            .unwrap()
            .keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs/make-dev-certs.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("run certs/make-dev-certs.sh (needs bash and openssl)");
        assert!(status.success(), "certs/make-dev-certs.sh failed");
        dir
    })
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let dir = certs();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

const ALERT: &str = r#"{"alert_id": 12, "kind": "clinical", "rule": "news2", "severity": "emergency",
 "state": "open", "escalated_from": null,
 "title": "NEWS2 7 (high) — WARD7 12/A",
 "location": {"ward": "WARD7", "room": "12", "bed": "A", "facility": "HOSP"},
 "patient": {"key": "MRN12345^^^HOSP", "name": "TESTNAME^PATIENTGIVEN"},
 "scores": {"patient": "MRN12345^^^HOSP", "at": "2024-05-01T10:25:00Z",
            "news2": {"total": 7, "band": "high", "complete": true, "rr": 2, "spo2": 3,
                      "inputs": {"rr": [{"kind": "rr", "value": 24.0, "unit": "/min",
                                         "original_value": "24", "original_unit": "/min",
                                         "at": "2024-05-01T10:25:00Z", "status": "F",
                                         "source": "MSG0001"}]}},
            "qsofa": {"total": 1, "inputs": {}}},
 "reasons": ["NEWS2 total 7 ≥ 7", "respiratory rate 24/min scores 2"],
 "observed_at": "2024-05-01T10:25:00Z", "raised_at": "2024-05-01T10:25:02Z",
 "link": "http://medway.local:8080/alerts/12", "future_field": [1, 2]}"#;

const PHI: &[&str] = &["MRN12345", "TESTNAME", "PATIENTGIVEN"];

fn assert_no_phi(text: &str, what: &str) {
    for needle in PHI {
        assert!(!text.contains(needle), "{what} carries {needle}: {text}");
    }
}

fn alert_with(id: i64, severity: &str) -> Bytes {
    let mut doc: Value = serde_json::from_str(ALERT).unwrap();
    doc["alert_id"] = id.into();
    doc["severity"] = severity.into();
    Bytes::from(doc.to_string())
}

fn delivery(id: i64, payload: Bytes) -> Delivery {
    Delivery {
        id,
        message_id: id + 1000,
        channel: "alerts".into(),
        destination: "alert-hook".into(),
        attempts: 0,
        control_id: None,
        message_type: None,
        payload,
        received_at: 1_714_557_600_000_000,
        ordering_key: None,
    }
}

fn sender(toml_text: &str) -> WebhookSender {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    let settings = WebhookSettings::from_spec(&ConnectorSpec::inline("webhook", table)).unwrap();
    WebhookSender::new(settings).unwrap()
}

fn sender_for(receiver: &Receiver, extra: &str) -> WebhookSender {
    sender(&format!(
        "url = {:?}\n{extra}",
        receiver.url("/services/T000/B000/secret-token")
    ))
}

/// The `*Label*\nvalue` texts of the first section's fields.
fn fields(body: &Value) -> Vec<String> {
    body["blocks"][1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn slack_minimal_payload_has_text_blocks_and_no_patient() {
    let receiver = Receiver::start(Vec::new()).await;
    let sender = sender_for(&receiver, "");
    let response = sender
        .send(&delivery(41, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    assert!(
        response.summary.starts_with("HTTP 200"),
        "{}",
        response.summary
    );

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/services/T000/B000/secret-token");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["idempotency-key"], "41");
    assert_no_phi(&request.text(), "a minimal Slack body");

    let body = request.json();
    assert_eq!(body["text"], "EMERGENCY: NEWS2 7 (high) — WARD7 12/A");
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("EMERGENCY: NEWS2 7 (high) — WARD7 12/A")
    );
    assert_eq!(blocks[1]["type"], "section");
    let fields = fields(&body);
    for expected in [
        "*Score*\nNEWS2 7 (high), qSOFA 1",
        "*Location*\nWARD7 12/A (HOSP)",
        "*Observed*\n2024-05-01 10:25:00 UTC",
        "*Status*\nEMERGENCY",
        "*Alert*\n<http://medway.local:8080/alerts/12|#12>",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected:?} in {fields:?}"
        );
    }
    for field in body["blocks"][1]["fields"].as_array().unwrap() {
        assert_eq!(field["type"], "mrkdwn");
    }
    let context = blocks.last().unwrap();
    assert_eq!(context["type"], "context");
    let context_text = context["elements"][0]["text"].as_str().unwrap();
    assert!(
        context_text.contains("rule news2") && context_text.contains("alert #12"),
        "{context_text}"
    );
    assert_eq!(blocks.len(), 3, "no reasons in minimal: {blocks:?}");
}

#[tokio::test]
async fn slack_full_adds_the_patient_and_reasons_but_not_to_the_notification_text() {
    let receiver = Receiver::start(Vec::new()).await;
    let sender = sender_for(
        &receiver,
        "detail = \"full\"\ntime_zone = \"Europe/London\"",
    );
    sender
        .send(&delivery(42, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    let body = receiver.seen()[0].json();
    assert_no_phi(body["text"].as_str().unwrap(), "the notification text");
    assert_no_phi(&body["blocks"][0].to_string(), "the header");
    let fields = fields(&body);
    assert!(
        fields.contains(&"*Patient*\nMRN12345 (HOSP)".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"*Name*\nTESTNAME, PATIENTGIVEN".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"*Observed*\n2024-05-01 11:25:00 BST".to_string()),
        "{fields:?}"
    );
    let all = body.to_string();
    assert!(all.contains("respiratory rate 24/min scores 2"), "{all}");
    assert!(all.contains("NEWS2 points: rr 2, spo2 3"), "{all}");
    assert!(
        all.contains("NEWS2 inputs: rr 24 /min (2024-05-01 11:25:00 BST)"),
        "{all}"
    );
}

#[tokio::test]
async fn json_format_full_forwards_the_document_and_minimal_strips_the_patient() {
    let receiver = Receiver::start(Vec::new()).await;
    let full = sender_for(&receiver, "format = \"json\"\ndetail = \"full\"");
    full.send(&delivery(43, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    let minimal = sender_for(&receiver, "format = \"json\"");
    minimal
        .send(&delivery(44, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    let seen = receiver.seen();
    assert_eq!(seen[0].body, ALERT.as_bytes(), "full: exactly as received");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    let body = seen[1].json();
    assert_no_phi(&seen[1].text(), "a minimal JSON body");
    assert!(
        body.get("patient").is_none() && body.get("reasons").is_none(),
        "{body}"
    );
    assert_eq!(body["alert_id"], 12);
    assert_eq!(
        body["scores"]["news2"],
        serde_json::json!({"total": 7, "band": "high", "complete": true})
    );
    assert!(
        body.get("future_field").is_none(),
        "minimal forwards known fields only"
    );
    assert!(body["scores"].get("patient").is_none(), "{body}");
    assert_eq!(body["location"]["ward"], "WARD7");
}

#[tokio::test]
async fn too_many_requests_and_server_errors_are_retried_honouring_retry_after() {
    let receiver = Receiver::start(vec![
        (429, vec![("Retry-After", "7".to_string())]),
        (500, Vec::new()),
        (503, vec![("Retry-After", "2".to_string())]),
    ])
    .await;
    let sender = sender_for(&receiver, "");
    let mut d = delivery(45, Bytes::from_static(ALERT.as_bytes()));
    let error = sender.send(&d).await.unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
    assert!(error.reason.contains("429"), "{}", error.reason);
    assert!(!error.reason.contains("secret-token"), "{}", error.reason);
    d.attempts = 1;
    let error = sender.send(&d).await.unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert_eq!(error.retry_after, None);
    assert!(error.reason.contains("500"), "{}", error.reason);
    d.attempts = 2;
    let error = sender.send(&d).await.unwrap_err();
    assert_eq!(error.retry_after, Some(Duration::from_secs(2)));
    d.attempts = 3;
    sender.send(&d).await.unwrap();
    let seen = receiver.seen();
    assert_eq!(seen.len(), 4);
    for request in &seen {
        assert_eq!(request.headers["idempotency-key"], "45");
        assert_eq!(request.body, seen[0].body, "the same body on every attempt");
    }
}

#[tokio::test]
async fn client_errors_are_not_retried_and_bad_payloads_never_leave() {
    let receiver = Receiver::start(vec![(400, Vec::new())]).await;
    let sender = sender_for(&receiver, "");
    let error = sender
        .send(&delivery(46, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never, "{}", error.reason);
    assert!(error.reason.contains("400"), "{}", error.reason);

    let error = sender
        .send(&delivery(
            47,
            Bytes::from_static(b"MSH|^~\\&|X|Y|||||ORU^R01|1|P|2.5\rPID|1||MRN12345"),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never);
    assert!(!error.reason.contains("MRN12345"), "{}", error.reason);
    assert_eq!(receiver.seen().len(), 1, "nothing posted for a bad payload");
}

#[tokio::test]
async fn https_with_the_dev_ca() {
    let receiver = Receiver::start_with(Vec::new(), Some(tls_acceptor())).await;
    let ca = certs().join("ca.pem");
    let trusting = sender_for(
        &receiver,
        &format!("ca_file = {:?}", ca.display().to_string()),
    );
    trusting
        .send(&delivery(48, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    assert_eq!(receiver.seen().len(), 1);

    // Without the CA the certificate is not trusted: retried, never sent in clear.
    let untrusting = sender_for(&receiver, "");
    let error = untrusting
        .send(&delivery(49, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
    assert_eq!(receiver.seen().len(), 1);
}

/// Sends every delivery until it is sent, retrying each no sooner than its `retry_after` (as
/// the delivery worker does); returns the summaries by delivery id.
async fn drive(
    sender: &dyn Destination,
    deliveries: Vec<Delivery>,
    limit: Duration,
) -> BTreeMap<i64, String> {
    let started = Instant::now();
    let mut due: Vec<(Instant, Delivery)> = deliveries
        .into_iter()
        .map(|d| (Instant::now(), d))
        .collect();
    let mut done = BTreeMap::new();
    while !due.is_empty() {
        assert!(started.elapsed() < limit, "not all sent within {limit:?}");
        due.sort_by_key(|(at, _)| *at);
        let (at, mut d) = due.remove(0);
        tokio::time::sleep_until(at.into()).await;
        match sender.send(&d).await {
            Ok(response) => {
                done.insert(d.id, response.summary);
            }
            Err(error) => {
                assert_eq!(error.retry, Retry::Later, "{}", error.reason);
                d.attempts += 1;
                let wait = error
                    .retry_after
                    .unwrap_or(Duration::from_millis(200))
                    .max(Duration::from_millis(20));
                due.push((Instant::now() + wait, d));
            }
        }
    }
    done
}

#[tokio::test]
async fn a_burst_of_twenty_alerts_is_summarised_not_flooded() {
    let receiver = Receiver::start(Vec::new()).await;
    // 3 at once, then one every 500 ms.
    let sender = sender_for(&receiver, "rate_limit = { per_minute = 120, burst = 3 }");
    let deliveries: Vec<Delivery> = (1..=20)
        .map(|n| {
            let severity = if n == 9 { "emergency" } else { "urgent" };
            delivery(300 + n, alert_with(200 + n, severity))
        })
        .collect();
    let done = drive(&sender, deliveries, Duration::from_secs(60)).await;
    assert_eq!(done.len(), 20);

    let seen = receiver.seen();
    let (digests, singles): (Vec<&Seen>, Vec<&Seen>) = seen
        .iter()
        .partition(|s| s.headers["idempotency-key"].starts_with("digest-"));
    assert!(singles.len() <= 3, "{} single posts", singles.len());
    assert!(
        !digests.is_empty() && digests.len() <= 2,
        "{} digests",
        digests.len()
    );
    // Every alert arrived exactly once, alone or in a digest.
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for single in &singles {
        let text = single.json()["text"].as_str().unwrap().to_string();
        let id = fields(&single.json())
            .iter()
            .find_map(|f| f.strip_prefix("*Alert*\n").map(str::to_string))
            .unwrap();
        let id: i64 = id
            .rsplit('#')
            .next()
            .unwrap()
            .trim_end_matches('>')
            .parse()
            .unwrap();
        assert_no_phi(&text, "a notification");
        *counts.entry(id).or_default() += 1;
    }
    for digest in &digests {
        let body = digest.json();
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("alerts in the last"), "{text}");
        assert!(text.contains("(highest: EMERGENCY)"), "{text}");
        assert_no_phi(&digest.text(), "a minimal digest");
        assert_eq!(body["blocks"][0]["type"], "header");
        let all = body.to_string();
        for id in 201..=220 {
            if all.contains(&format!("• #{id} ")) {
                *counts.entry(id).or_default() += 1;
            }
        }
    }
    let expected: BTreeMap<i64, usize> = (201..=220).map(|id| (id, 1)).collect();
    assert_eq!(counts, expected);
    let in_digest = done.values().filter(|s| s.contains("digest")).count();
    assert_eq!(in_digest, 20 - singles.len(), "{done:?}");
}

#[tokio::test]
async fn json_digests_carry_every_held_document() {
    let receiver = Receiver::start(Vec::new()).await;
    let sender = sender_for(
        &receiver,
        "format = \"json\"\nrate_limit = { per_minute = 600, burst = 1 }",
    );
    let deliveries: Vec<Delivery> = (1..=4)
        .map(|n| delivery(400 + n, alert_with(500 + n, "urgent")))
        .collect();
    let done = drive(&sender, deliveries, Duration::from_secs(30)).await;
    assert_eq!(done.len(), 4);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "one alone, then one digest of three");
    assert_eq!(seen[0].json()["alert_id"], 501);
    let digest = seen[1].json();
    assert_eq!(digest["digest"], true);
    assert_eq!(digest["count"], 3);
    let mut ids: Vec<i64> = digest["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [502, 503, 504]);
    assert_no_phi(&seen[1].text(), "a minimal JSON digest");
}

#[tokio::test]
async fn the_registry_builds_both_alert_kinds() {
    use medway_engine::connector::{ConnectorContext, ConnectorFactory};
    let registry = medway_connectors::Registry;
    let receiver = Receiver::start(Vec::new()).await;
    let spec = |kind: &str, text: &str| {
        ConnectorSpec::inline(kind, toml::from_str::<toml::Table>(text).unwrap())
    };
    let cx = ConnectorContext::default();
    let webhook = registry
        .destination(
            "alerts",
            &spec("webhook", &format!("url = {:?}", receiver.url("/hook"))),
            &cx,
        )
        .unwrap();
    webhook
        .send(&delivery(50, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    assert_eq!(receiver.seen().len(), 1);
    registry
        .destination(
            "alerts",
            &spec(
                "email",
                "host = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"m@h.example\"\nto = [\"a@h.example\"]",
            ),
            &cx,
        )
        .unwrap();
    let error = registry
        .destination(
            "alerts",
            &spec("email", "host = \"127.0.0.1\"\nfrom = \"m@h.example\""),
            &cx,
        )
        .err()
        .unwrap();
    assert!(error.to_string().contains("no recipient"), "{error}");
}
