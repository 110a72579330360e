//! The HTTP(S) source (`[source] kind = "http"`) against the running binary: HL7 v2 over HTTP
//! (same ACK as MLLP), FHIR R4 resources from the corpus, generic JSON webhooks, the limits
//! (body size, rate, API keys), TLS and mutual TLS with the dev CA, keep-alive, and the answer to
//! a request in flight at shutdown. The client here is a few lines of HTTP/1.1 over a plain or
//! rustls (ring) stream, so every byte on the wire is the test's own.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::*;

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client.

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

struct Http {
    stream: Box<dyn Stream>,
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `issue[0]` of an OperationOutcome body.
    fn issue(&self) -> Value {
        let outcome = self.json();
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
        outcome["issue"][0].clone()
    }
}

fn tcp(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

impl Http {
    fn plain(port: u16) -> Self {
        Self {
            stream: Box::new(tcp(port)),
            buffer: Vec::new(),
        }
    }

    /// TLS to 127.0.0.1 as `localhost`, trusting `ca`; with a client certificate when given.
    fn tls(port: u16, ca: &Path, client: Option<(&Path, &Path)>) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("ca file") {
            roots.add(cert.expect("ca cert")).expect("add root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
                    .expect("client cert")
                    .map(|c| c.expect("cert"))
                    .collect();
                let key = PrivateKeyDer::from_pem_file(key).expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
        };
        let name = ServerName::try_from("localhost").expect("name");
        let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        Self {
            stream: Box::new(rustls::StreamOwned::new(connection, tcp(port))),
            buffer: Vec::new(),
        }
    }

    /// One request on this connection (kept alive for the next one).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Answer> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes)?;
        self.stream.flush()?;
        self.read_answer()
    }

    fn read_answer(&mut self) -> std::io::Result<Answer> {
        let end = loop {
            if let Some(i) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..end]).to_string();
        self.buffer.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buffer.len() < length {
            self.fill()?;
        }
        let body = self.buffer.drain(..length).collect();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn post(&mut self, content_type: &str, body: &[u8]) -> Answer {
        self.request("POST", "/in", &[("Content-Type", content_type)], body)
            .expect("an answer")
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up.

const HL7: &str = "x-application/hl7-v2+er7";
const FHIR: &str = "application/fhir+json";

/// An HTTP channel on `port`, path `/in`, one file destination; `extra` goes into `[source]`.
fn http_channel(port: u16, extra: &str) -> String {
    format!(
        r#"
[source]
kind = "http"
listen = "127.0.0.1:{port}"
path = "/in"
{extra}
[[destination]]
name = "archive"
kind = "file"
directory = "out"
filename = "{{delivery_id}}.msg"
retry = {{ initial_delay_ms = 50, max_delay_ms = 500 }}
"#
    )
}

fn start(dir: &tempfile::TempDir, extra: &str) -> Engine {
    let port = free_port();
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    Engine::start(dir.path(), &http_channel(port, extra), port, &store)
}

fn corpus_fhir() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/fhir");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus/fhir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Dev CA, server and client certificates in `dir` (certs/make-dev-certs.sh).
fn dev_certs(dir: &Path) -> PathBuf {
    let out = dir.join("certs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/make-dev-certs.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run make-dev-certs.sh");
    assert!(status.success(), "make-dev-certs.sh failed");
    out
}

/// The engine's hash of a key, through the CLI (`medway api-key hash`).
fn key_hash(dir: &Path, key: &str) -> String {
    let out = medway_in(dir, &["api-key", "hash", key]);
    assert!(out.status.success(), "api-key hash failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An ACK with MSH-7 (time) and MSH-10 (Medway's own control id, `MW` + the message id)
/// blanked: the only fields two ACKs for the same message may legitimately differ in.
fn masked(ack: &[u8]) -> Vec<String> {
    segments(ack)
        .into_iter()
        .map(|segment| {
            if !segment.starts_with("MSH") {
                return segment;
            }
            let mut fields: Vec<&str> = segment.split('|').collect();
            // split index = HL7 field number - 1 for MSH (MSH-1 is the separator itself).
            for n in [7, 10] {
                if let Some(f) = fields.get_mut(n - 1) {
                    *f = "";
                }
            }
            fields.join("|")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HL7 v2 over HTTP.

#[test]
fn hl7_post_gets_the_same_ack_as_mllp_and_keep_alive_serves_several_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mllp_port = free_port();
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    std::fs::write(
        dir.path().join("channels/mllp.toml"),
        channel_toml(mllp_port, ""),
    )
    .unwrap();
    let engine = start(&dir, "");
    eventually(10, "the MLLP listener", || {
        TcpStream::connect(("127.0.0.1", mllp_port)).is_ok()
    });

    let mut http = Http::plain(engine.port);
    let mut mllp = Mllp::connect(mllp_port);
    // Original mode (AA), enhanced mode (CA), and a version the channel refuses (AR): the
    // ACKs agree byte for byte outside MSH-7 and MSH-10, on one HTTP connection.
    let cases = [
        oru("HTTP-1", "2.5", "", "", "MRN1^^^HOSP"),
        oru("HTTP-2", "2.5", "AL", "NE", "MRN2^^^HOSP"),
        oru("HTTP-3", "9.9", "", "", "MRN3^^^HOSP"),
    ];
    for message in &cases {
        let answer = http.post(HL7, message);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some(HL7));
        let from_mllp = mllp.exchange(message);
        assert_eq!(masked(&answer.body), masked(&from_mllp));
        let msh = &segments(&answer.body)[0];
        assert!(field(msh, 10).starts_with("MW"), "{msh}");
    }
    // Charset parameters are ignored; text/plain is HL7 too.
    let answer = http.post(
        "text/plain; charset=utf-8",
        &oru("HTTP-4", "2.5", "", "", "MRN4^^^HOSP"),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(field(&segments(&answer.body)[1], 1), "AA");
    assert_eq!(field(&segments(&answer.body)[1], 2), "HTTP-4");

    let over_http: Vec<Value> = engine
        .messages()
        .into_iter()
        .filter(|m| m["channel"] == "test")
        .collect();
    assert_eq!(over_http.len(), 4, "{over_http:?}");
    // The peer is recorded as for MLLP.
    let id = over_http[0]["id"].to_string();
    let out = engine.medway(&["messages", "show", &id, "--json", "--store", &engine.store]);
    let shown: Value = serde_json::from_slice(&out.stdout).expect("messages show --json");
    assert!(
        shown["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// FHIR R4.

/// Two shared-corpus files are not R4 resources (as `engine/fhir` pins them): the converter's
/// custom `ExamplePatient.json` (no `resourceType`) and `ObservationBundle.json`, whose entries
/// hold resources directly instead of in `entry.resource`. The second starts with a UTF-8 BOM:
/// its refusal names `$.entry[1]`, so the BOM itself was accepted.
const NOT_R4: &[(&str, u16, &str)] = &[
    ("msfc_patient-minimal.json", 422, "resourceType"),
    (
        "msfc_bundle-batch-response-patient-observations.json",
        422,
        "$.entry[1]",
    ),
];

#[test]
fn every_fhir_corpus_example_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "");
    let files = corpus_fhir();
    assert!(files.len() >= 17, "{files:?}");
    let mut http = Http::plain(engine.port);
    let mut accepted = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let answer = http.post(FHIR, &bytes);
        let body = String::from_utf8_lossy(&answer.body).to_string();
        assert!(
            answer
                .header("content-type")
                .unwrap_or("")
                .starts_with(FHIR)
        );
        let issue = answer.issue();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if let Some((_, status, mentions)) = NOT_R4.iter().find(|(n, _, _)| *n == name) {
            assert_eq!(answer.status, *status, "{name}: {body}");
            assert_eq!(issue["severity"], "error");
            assert!(
                issue["diagnostics"]
                    .as_str()
                    .unwrap_or("")
                    .contains(mentions),
                "{name}: {body}"
            );
            if name == "msfc_patient-minimal.json" {
                // Not FHIR at all: as plain JSON it is a webhook document, stored (202).
                let answer = http.post("application/json", &bytes);
                assert_eq!(answer.status, 202, "{name} as application/json");
            }
            continue;
        }
        let text = String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes))
            .to_string();
        let resource: Value = serde_json::from_str(&text).unwrap();
        let expected = if resource["resourceType"] == "Bundle" {
            200
        } else {
            201
        };
        assert_eq!(answer.status, expected, "{name}: {body}");
        assert_eq!(issue["severity"], "information");
        assert!(
            issue["diagnostics"]
                .as_str()
                .is_some_and(|d| d.starts_with("stored as message ")),
            "{issue}"
        );
        accepted += 1;
    }
    assert_eq!(accepted, files.len() - NOT_R4.len());
    // `application/json` with a resourceType is FHIR too.
    let patient = std::fs::read(dir_file("uscore_patient-example.json")).unwrap();
    let answer = http.post("application/json", &patient);
    assert_eq!(answer.status, 201);
    assert_eq!(answer.issue()["severity"], "information");

    let stored = engine.messages();
    let ok = stored.iter().filter(|m| m["status"] == "accepted").count();
    // + the Patient above + the non-FHIR patient file stored as a webhook document.
    assert_eq!(ok, accepted + 2, "{stored:?}");
}

fn dir_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/fhir")
        .join(name)
}

#[test]
fn broken_fhir_resources_get_an_operation_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "");
    let mut http = Http::plain(engine.port);

    // Invalid JSON: 400, `structure`, the position named.
    let answer = http.post(FHIR, b"{\"resourceType\": \"Patient\", ");
    assert_eq!(answer.status, 400);
    let issue = answer.issue();
    assert_eq!(issue["severity"], "error");
    assert_eq!(issue["code"], "structure");
    assert!(
        issue["diagnostics"].as_str().unwrap().contains("line 1"),
        "{issue}"
    );

    // No resourceType: 422 `required`.
    let answer = http.post(FHIR, br#"{"id": "x", "active": true}"#);
    assert_eq!(answer.status, 422);
    assert_eq!(answer.issue()["code"], "required");

    // An unknown element and a wrong type: 422 with the channel's validation reason.
    for (body, mentions) in [
        (
            r#"{"resourceType": "Patient", "active": true, "favouriteColour": "blue"}"#,
            "favouriteColour",
        ),
        (r#"{"resourceType": "Patient", "active": "yes"}"#, "active"),
    ] {
        let answer = http.post(FHIR, body.as_bytes());
        assert_eq!(
            answer.status,
            422,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let issue = answer.issue();
        assert_eq!(issue["severity"], "error");
        assert!(
            ["processing", "structure", "invalid"].contains(&issue["code"].as_str().unwrap_or("")),
            "{issue}"
        );
        assert!(
            issue["diagnostics"]
                .as_str()
                .unwrap_or("")
                .contains(mentions),
            "{issue}"
        );
    }
    // Nothing broken was accepted for delivery.
    assert!(
        engine.messages().iter().all(|m| m["status"] != "accepted"),
        "{:?}",
        engine.messages()
    );
}

// ---------------------------------------------------------------------------------------------
// Generic JSON webhooks, routing errors, idempotency.

#[test]
fn generic_json_is_stored_and_answered_202_with_its_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "");
    let mut http = Http::plain(engine.port);

    let answer = http.post(
        "application/json",
        br#"{"event": "workflow.done", "run": 17}"#,
    );
    assert_eq!(answer.status, 202);
    let id = answer.json()["message_id"].as_i64().expect("message_id");
    let stored = engine.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"].as_i64(), Some(id), "{stored:?}");
    assert_eq!(stored[0]["status"], "accepted");
    eventually(10, "the webhook document delivered", || {
        delivered_files(&dir.path().join("out")).len() == 1
    });

    // Invalid JSON: 400, not stored.
    let answer = http.post("application/json", b"{\"event\": ");
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"].as_str().unwrap().contains("JSON"));
    // Unknown content type: 415; wrong method: 405; wrong path: 404.
    let answer = http.post("application/xml", b"<x/>");
    assert_eq!(answer.status, 415);
    assert!(answer.json()["error"].as_str().is_some());
    let answer = http.request("GET", "/in", &[], b"").unwrap();
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("POST"));
    let answer = http
        .request(
            "POST",
            "/elsewhere",
            &[("Content-Type", "application/json")],
            b"{}",
        )
        .unwrap();
    assert_eq!(answer.status, 404);
    assert_eq!(engine.messages().len(), 1);
}

#[test]
fn idempotency_key_stores_a_retried_post_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "");
    let mut http = Http::plain(engine.port);
    let headers = [
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "order-42"),
    ];
    let first = http
        .request("POST", "/in", &headers, br#"{"n": 1}"#)
        .unwrap();
    let again = http
        .request("POST", "/in", &headers, br#"{"n": 1}"#)
        .unwrap();
    assert_eq!(first.status, 202);
    assert_eq!(again.status, 202);
    assert_eq!(first.json()["message_id"], again.json()["message_id"]);
    let other = http
        .request(
            "POST",
            "/in",
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "order-43"),
            ],
            br#"{"n": 1}"#,
        )
        .unwrap();
    assert_ne!(first.json()["message_id"], other.json()["message_id"]);
    assert_eq!(engine.messages().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[test]
fn oversize_body_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "max_body_bytes = 1024\n");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2000));
    let answer = Http::plain(engine.port).post("application/json", big.as_bytes());
    assert_eq!(answer.status, 413);
    assert!(answer.json()["error"].as_str().unwrap().contains("1024"));
    let small = format!("{{\"pad\": \"{}\"}}", "x".repeat(900));
    let answer = Http::plain(engine.port).post("application/json", small.as_bytes());
    assert_eq!(answer.status, 202);
    assert_eq!(engine.messages().len(), 1);
}

#[test]
fn bodies_in_flight_share_one_budget_and_past_it_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(
        &dir,
        "max_body_bytes = 1000\nmax_inflight_body_bytes = 1500\nrequest_timeout_secs = 20\n",
    );
    // A slow client holds 900 bytes of an unfinished 1000-byte body.
    let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(1000 - 11));
    assert_eq!(body.len(), 1000);
    let mut slow = Http::plain(engine.port);
    slow.stream
        .write_all(
            format!(
                "POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{}",
                &body[..900]
            )
            .as_bytes(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Another full body does not fit beside it: 503, retry shortly, and the connection closes
    // (its body was not read).
    let mut other = Http::plain(engine.port);
    let answer = other.post("application/json", body.as_bytes());
    assert_eq!(answer.status, 503, "{:?}", answer.json());
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("in flight")
    );
    // The slow client finishes: stored; its share is returned and the retry succeeds.
    slow.stream.write_all(&body.as_bytes()[900..]).unwrap();
    assert_eq!(slow.read_answer().expect("answer").status, 202);
    let answer = Http::plain(engine.port).post("application/json", body.as_bytes());
    assert_eq!(answer.status, 202);
    assert_eq!(engine.messages().len(), 2);
}

#[test]
fn over_the_rate_limit_gets_429_with_retry_after_then_succeeds_after_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "rate_limit = { per_second = 1, burst = 2 }\n");
    let mut http = Http::plain(engine.port);
    assert_eq!(http.post("application/json", b"{\"n\": 1}").status, 202);
    assert_eq!(http.post("application/json", b"{\"n\": 2}").status, 202);
    let refused = http.post("application/json", b"{\"n\": 3}");
    assert_eq!(refused.status, 429);
    let wait: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(refused.json()["error"].as_str().is_some());
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(http.post("application/json", b"{\"n\": 3}").status, 202);
    assert_eq!(engine.messages().len(), 3);
}

#[test]
fn api_keys_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    // `medway api-key new` prints a key and its hash; the hash matches `api-key hash`.
    let out = medway_in(dir.path(), &["api-key", "new"]);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let key = printed
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .map(str::trim)
        .expect("a key line")
        .to_string();
    let hash = key_hash(dir.path(), &key);
    assert!(printed.contains(&hash), "{printed}");
    assert_eq!(key.len(), 64);

    let engine = start(&dir, &format!("api_keys = [\"{hash}\"]\n"));
    let mut http = Http::plain(engine.port);
    let json = ("Content-Type", "application/json");
    let missing = http.request("POST", "/in", &[json], b"{}").unwrap();
    assert_eq!(missing.status, 401);
    assert!(missing.json()["error"].as_str().is_some());
    let wrong = format!("Bearer {key}x");
    let answer = http
        .request("POST", "/in", &[json, ("Authorization", &wrong)], b"{}")
        .unwrap();
    assert_eq!(answer.status, 401);
    let answer = http
        .request("POST", "/in", &[json, ("X-API-Key", "guess")], b"{}")
        .unwrap();
    assert_eq!(answer.status, 401);
    let bearer = format!("Bearer {key}");
    let answer = http
        .request("POST", "/in", &[json, ("Authorization", &bearer)], b"{}")
        .unwrap();
    assert_eq!(answer.status, 202);
    let answer = http
        .request("POST", "/in", &[json, ("X-API-Key", &key)], b"{}")
        .unwrap();
    assert_eq!(answer.status, 202);
    assert_eq!(engine.messages().len(), 2);
    assert!(!engine.log().contains(&key), "the key must never be logged");
}

#[test]
fn a_plaintext_key_in_the_channel_file_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    std::fs::write(
        dir.path().join("channels/web.toml"),
        http_channel(free_port(), "api_keys = [\"my-secret-key\"]\n"),
    )
    .unwrap();
    let out = medway_in(dir.path(), &["check", "channels"]);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("web.toml:"), "{text}");
    assert!(text.contains("api_keys"), "{text}");
    assert!(!text.contains("my-secret-key"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// TLS.

#[test]
fn https_with_the_dev_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(dir.path());
    let tls = format!(
        "[source.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display()
    );
    let engine = start(&dir, &tls);
    let mut https = Http::tls(engine.port, &certs.join("ca.pem"), None);
    // Keep-alive over TLS: HL7 then FHIR then JSON on one connection.
    let answer = https.post(HL7, &oru("TLS-1", "2.5", "", "", "MRN1^^^HOSP"));
    assert_eq!(answer.status, 200);
    assert_eq!(field(&segments(&answer.body)[1], 1), "AA");
    let answer = https.post(
        FHIR,
        &std::fs::read(dir_file("uscore_patient-example.json")).unwrap(),
    );
    assert_eq!(answer.status, 201);
    assert_eq!(https.post("application/json", b"{}").status, 202);
    assert_eq!(engine.messages().len(), 3);
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(
        Http::plain(engine.port)
            .request(
                "POST",
                "/in",
                &[("Content-Type", "application/json")],
                b"{}"
            )
            .is_err()
    );
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(dir.path());
    let tls = format!(
        "[source.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display(),
        certs.join("ca.pem").display()
    );
    let engine = start(&dir, &tls);
    let ca = certs.join("ca.pem");
    let refused = Http::tls(engine.port, &ca, None).request(
        "POST",
        "/in",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert!(refused.is_err(), "{refused:?}");
    let client = (certs.join("client.pem"), certs.join("client.key"));
    let mut https = Http::tls(engine.port, &ca, Some((&client.0, &client.1)));
    assert_eq!(https.post("application/json", b"{}").status, 202);
    assert_eq!(engine.messages().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Shutdown.

#[test]
fn a_request_in_flight_at_shutdown_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = start(&dir, "");
    let mut http = Http::plain(engine.port);
    let body = br#"{"event": "late"}"#;
    // Headers and half the body, then SIGTERM, then the rest.
    let head = format!(
        "POST /in HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    http.stream.write_all(head.as_bytes()).unwrap();
    http.stream.write_all(&body[..5]).unwrap();
    http.stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    engine.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    http.stream.write_all(&body[5..]).unwrap();
    http.stream.flush().unwrap();
    let answer = http.read_answer().expect("an answer after SIGTERM");
    assert_eq!(answer.status, 202);
    assert_eq!(engine.stop(), Some(0));
    // The new listener is closed after shutdown, and the message was stored.
    assert!(TcpStream::connect(("127.0.0.1", engine.port)).is_err());
    let id = answer.json()["message_id"].as_i64().unwrap();
    let out = medway_in(
        dir.path(),
        &["messages", "list", "--json", "--store", &engine.store],
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&format!("\"id\":{id}")), "{listed}");
}

// ---------------------------------------------------------------------------------------------
// Store unavailable, connection and time limits, certificate reload.

#[test]
fn store_unavailable_gets_503_with_retry_after_and_the_ar() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = start(&dir, "");
    assert_eq!(engine.stop(), Some(0));
    // A read-only SQLite file: every commit fails.
    let read_only = format!("{}?mode=ro", engine.store);
    let engine = Engine::restart_in(dir.path(), engine.port, &read_only);
    let mut http = Http::plain(engine.port);

    let answer = http.post(HL7, &oru("RO-1", "2.5", "", "", "MRN1^^^HOSP"));
    assert_eq!(answer.status, 503);
    assert!(
        answer
            .header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok())
    );
    let segs = segments(&answer.body);
    assert!(segs[1].starts_with("MSA|AR|RO-1|"), "{segs:?}");
    assert!(segs[2].contains("207"), "{segs:?}");

    let answer = http.post(
        FHIR,
        &std::fs::read(dir_file("uscore_patient-example.json")).unwrap(),
    );
    assert_eq!(answer.status, 503);
    assert_eq!(answer.issue()["code"], "transient");
    let answer = http.post("application/json", b"{}");
    assert_eq!(answer.status, 503);
    assert!(answer.header("retry-after").is_some());
}

#[test]
fn connections_beyond_max_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "max_connections = 1\n");
    // The readiness probe's connection may hold the slot for a moment after it closed.
    let mut first = None;
    eventually(5, "a first connection", || {
        let mut http = Http::plain(engine.port);
        let ok = http
            .request(
                "POST",
                "/in",
                &[("Content-Type", "application/json")],
                b"{}",
            )
            .is_ok_and(|a| a.status == 202);
        if ok {
            first = Some(http);
        }
        ok
    });
    let mut first = first.expect("connected");
    // The first connection is kept alive and holds the only slot.
    let mut second = Http::plain(engine.port);
    assert!(
        second
            .request(
                "POST",
                "/in",
                &[("Content-Type", "application/json")],
                b"{}"
            )
            .is_err()
    );
    assert_eq!(first.post("application/json", b"{}").status, 202);
    drop(first);
    eventually(5, "the slot is free again", || {
        Http::plain(engine.port)
            .request(
                "POST",
                "/in",
                &[("Content-Type", "application/json")],
                b"{}",
            )
            .is_ok_and(|a| a.status == 202)
    });
}

#[test]
fn slow_headers_are_cut_off_and_a_slow_body_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "header_timeout_secs = 1\nrequest_timeout_secs = 1\n");
    // Headers never finished: the connection is closed after header_timeout_secs.
    let mut slow = Http::plain(engine.port);
    slow.stream
        .write_all(b"POST /in HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let cut = slow.read_answer();
    assert!(cut.is_err() || cut.is_ok_and(|a| a.status == 408));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(started.elapsed() < Duration::from_secs(10));

    // An idle keep-alive connection is closed after the same time (it would hold a slot).
    let mut idle = Http::plain(engine.port);
    assert_eq!(idle.post("application/json", b"{}").status, 202);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        idle.request(
            "POST",
            "/in",
            &[("Content-Type", "application/json")],
            b"{}"
        )
        .is_err()
    );

    // Headers in time, half the body, then silence: 408 and the connection closes.
    let mut http = Http::plain(engine.port);
    http.stream
        .write_all(
            b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"a\"",
        )
        .unwrap();
    let answer = http.read_answer().expect("an answer");
    assert_eq!(answer.status, 408);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(
        engine.messages().len(),
        1,
        "only the idle connection's message"
    );
}

#[test]
fn a_replaced_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = dev_certs(&dir.path().join("old"));
    let new = dev_certs(&dir.path().join("new"));
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    for file in ["server.pem", "server.key"] {
        std::fs::copy(old.join(file), live.join(file)).unwrap();
    }
    let tls = format!(
        "[source.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_interval_secs = 1\n",
        live.join("server.pem").display(),
        live.join("server.key").display()
    );
    let engine = start(&dir, &tls);
    let post = |ca: &Path| {
        Http::tls(engine.port, ca, None)
            .request(
                "POST",
                "/in",
                &[("Content-Type", "application/json")],
                b"{}",
            )
            .map(|a| a.status)
    };
    assert_eq!(post(&old.join("ca.pem")).ok(), Some(202));
    assert!(post(&new.join("ca.pem")).is_err(), "new CA not trusted yet");
    // Key first, then certificate (a mismatched pair in between is kept out by the reloader).
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::copy(new.join("server.key"), live.join("server.key")).unwrap();
    std::fs::copy(new.join("server.pem"), live.join("server.pem")).unwrap();
    eventually(10, "the new certificate is served", || {
        post(&new.join("ca.pem")).ok() == Some(202)
    });
    assert!(
        post(&old.join("ca.pem")).is_err(),
        "old certificate retired"
    );
}

#[test]
fn tls_offers_h2_and_http_1_1_by_alpn() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(dir.path());
    let tls = format!(
        "[source.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display()
    );
    let engine = start(&dir, &tls);
    let negotiated = |offer: &[&[u8]]| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = offer.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tcp = tcp(engine.port);
        conn.complete_io(&mut tcp).expect("handshake");
        conn.alpn_protocol().map(<[u8]>::to_vec)
    };
    assert_eq!(negotiated(&[b"h2", b"http/1.1"]), Some(b"h2".to_vec()));
    assert_eq!(negotiated(&[b"http/1.1"]), Some(b"http/1.1".to_vec()));
}

// ---------------------------------------------------------------------------------------------
// Review fixes: idle and silent connections, HTTP/2 streams, idempotency scope, long ids.

/// Reads until the server closes the connection; how long that took (`None`: still open
/// after 8 s, or only a read timeout).
fn closed_within(stream: &mut TcpStream) -> Option<Duration> {
    stream
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn a_silent_connection_is_closed_after_header_timeout_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "max_connections = 2\nheader_timeout_secs = 1\n");
    // The readiness probe's connection lets go of its slot first.
    std::thread::sleep(Duration::from_millis(1500));
    // Two sockets that never send a byte take both slots...
    let mut silent = [tcp(engine.port), tcp(engine.port)];
    // ...and are closed after header_timeout_secs, not held forever.
    for stream in &mut silent {
        let after = closed_within(stream).expect("a silent connection must be closed");
        assert!(after < Duration::from_secs(4), "{after:?}");
    }
    // The slots are free again.
    let answer = Http::plain(engine.port).post("application/json", b"{}");
    assert_eq!(answer.status, 202);
}

#[test]
fn an_idle_http2_connection_is_closed_and_allows_few_streams() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir, "header_timeout_secs = 1\n");
    let mut stream = tcp(engine.port);
    // Prior-knowledge HTTP/2: the preface and an empty SETTINGS frame, then nothing.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    // The server's first frame is its SETTINGS: MAX_CONCURRENT_STREAMS (0x3) is small, as
    // each stream may hold a body of max_body_bytes.
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[3], 0x4, "SETTINGS first");
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).unwrap();
    let streams = payload
        .chunks(6)
        .find(|s| u16::from_be_bytes([s[0], s[1]]) == 0x3)
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(streams, Some(8));
    // No stream is ever opened: the connection is closed after header_timeout_secs.
    let after = closed_within(&mut stream).expect("an idle HTTP/2 connection must be closed");
    assert!(after < Duration::from_secs(4), "{after:?}");
}

#[test]
fn an_idempotency_key_is_scoped_by_client_and_tied_to_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (
        key_hash(dir.path(), "key-one"),
        key_hash(dir.path(), "key-two"),
    );
    let engine = start(&dir, &format!("api_keys = [\"{one}\", \"{two}\"]\n"));
    let mut http = Http::plain(engine.port);
    let post = |http: &mut Http, api_key: &str, idempotency: &str, body: &[u8]| {
        http.request(
            "POST",
            "/in",
            &[
                ("Content-Type", "application/json"),
                ("X-API-Key", api_key),
                ("Idempotency-Key", idempotency),
            ],
            body,
        )
        .unwrap()
    };
    let first = post(&mut http, "key-one", "1", br#"{"n": 1}"#);
    assert_eq!(first.status, 202);
    // The same key from another client is that client's own: stored too.
    let other_client = post(&mut http, "key-two", "1", br#"{"n": 1}"#);
    assert_eq!(other_client.status, 202);
    assert_ne!(
        first.json()["message_id"],
        other_client.json()["message_id"]
    );
    // A retry (same client, key and body) is the same message.
    let retry = post(&mut http, "key-one", "1", br#"{"n": 1}"#);
    assert_eq!(retry.status, 202);
    assert_eq!(retry.json()["message_id"], first.json()["message_id"]);
    // The same key with another body is refused, not answered with the old id.
    let reused = post(&mut http, "key-one", "1", br#"{"n": 2}"#);
    assert_eq!(reused.status, 409);
    assert!(
        reused.json()["error"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
    // An over-long key is refused (it would be indexed).
    let long = "k".repeat(256);
    assert_eq!(post(&mut http, "key-one", &long, b"{}").status, 400);
    assert_eq!(engine.messages().len(), 2);

    // After a restart the listener has forgotten the key: the new body is stored as a new
    // message (never dropped).
    drop(http);
    let mut engine = engine;
    engine.stop();
    let engine = Engine::restart_in(dir.path(), engine.port, &engine.store);
    let mut http = Http::plain(engine.port);
    let new_body = post(&mut http, "key-one", "1", br#"{"n": 2}"#);
    assert_eq!(new_body.status, 202);
    assert_ne!(new_body.json()["message_id"], first.json()["message_id"]);
    assert_eq!(engine.messages().len(), 3);
}

#[test]
fn a_3_kb_id_on_postgres_is_cut_and_stores_every_message() {
    let schema = format!("medway_http_ids_{}", std::process::id());
    psql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ));
    let store = pg_store_in(&schema);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let engine = Engine::start(dir.path(), &http_channel(port, ""), port, &store);

    // Senders in parallel, so the long ids share group commits with ordinary messages.
    // 3 KB that do not compress (PostgreSQL compresses an index entry before judging its size).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let long_id: String = (0..3000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [(seed % 62) as usize],
            )
        })
        .collect();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let mut threads = Vec::new();
        for i in 0..8 {
            let long_id = &long_id;
            threads.push(scope.spawn(move || {
                let mut http = Http::plain(port);
                let (kind, body) = match i % 4 {
                    0 => (
                        "application/json",
                        format!(r#"{{"id": "{long_id}", "n": {i}}}"#).into_bytes(),
                    ),
                    1 => (
                        FHIR,
                        format!(r#"{{"resourceType": "Patient", "id": "{long_id}{i}"}}"#)
                            .into_bytes(),
                    ),
                    2 => (
                        HL7,
                        oru(&format!("{long_id}{i}"), "2.5", "", "", "MRN1^^^H"),
                    ),
                    _ => (
                        "application/json",
                        format!(r#"{{"id": "ok-{i}"}}"#).into_bytes(),
                    ),
                };
                let answer = http.post(kind, &body);
                (
                    answer.status,
                    String::from_utf8_lossy(&answer.body).to_string(),
                )
            }));
        }
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (status, body) in &answers {
        assert!([200, 201, 202].contains(status), "{status}: {body}");
    }
    let stored = engine.messages();
    assert_eq!(stored.len(), 8, "{stored:?}");
    for message in &stored {
        let id = message["control_id"].as_str().expect("a control id");
        assert!(id.len() <= 200, "{}", id.len());
    }
    drop(engine);
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}
