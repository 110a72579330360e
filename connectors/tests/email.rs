//! `EmailSender` against a real SMTP server on 127.0.0.1: `aiosmtpd` (Python, installed by
//! `scripts/dev/services`), started by each test with STARTTLS or implicit TLS on certificates
//! made by `certs/make-dev-certs.sh`, optional AUTH, and scripted refusals (`nobody…@` → 550,
//! `busy…@` → 451). The server parses every message it accepts (Python's `email` package) and
//! appends it as one JSON line, which the tests read: envelope, headers, plain and HTML bodies.
//!
//! A missing `python3` or `aiosmtpd` fails the tests loudly: they never skip.

use bytes::Bytes;
use medway_connectors::destinations::email::{EmailSender, EmailSettings};
use medway_engine::config::ConnectorSpec;
use medway_engine::connector::{Destination, Retry};
use medway_engine::message::Delivery;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The SMTP server: aiosmtpd with a handler that records each message as a JSON line.
const SERVER: &str = r#"
import argparse, asyncio, email, json, logging, ssl, sys, threading, warnings
warnings.filterwarnings("ignore")
logging.getLogger("mail.log").setLevel(logging.ERROR)
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--mode", choices=["starttls", "implicit", "none"], required=True)
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--out", required=True)
p.add_argument("--auth")
a = p.parse_args()
lock = threading.Lock()

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("nobody"):
            return "550 5.1.1 <%s>: no such user" % address
        if local.startswith("busy"):
            return "451 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg["subject"]),
            "raw_subject": [line for line in raw.decode("ascii", "replace").split("\r\n") if line.lower().startswith("subject:")],
            "headers": {k.lower(): str(v) for k, v in msg.items()},
            "content_type": msg.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "tls": a.mode == "implicit" or session.ssl is not None,
            "login": session.auth_data.login.decode() if session.authenticated else None,
        }
        with lock, open(a.out, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK queued"

def authenticator(server, session, envelope, mechanism, auth_data):
    if not a.auth or not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    user, password = a.auth.split(":", 1)
    ok = auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

kwargs = dict(hostname="127.0.0.1", port=a.port)
server_kwargs = {}
if a.mode != "none":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    if a.mode == "starttls":
        server_kwargs.update(tls_context=ctx, require_starttls=True)
    else:
        kwargs["ssl_context"] = ctx
        server_kwargs["auth_require_tls"] = False
if a.auth:
    server_kwargs.update(authenticator=authenticator, auth_required=True)
controller = Controller(Handler(), server_kwargs=server_kwargs, **kwargs)
controller.start()
print("READY", flush=True)
threading.Event().wait()
"#;

/// The dev CA and server certificate, made once per test run.
fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("medway-email-certs")
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

/// Fails loudly when the server cannot run here.
fn require_aiosmtpd() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the email tests need python3 with aiosmtpd: run ./scripts/dev/services \
             (or `python3 -m pip install aiosmtpd`)"
        );
    });
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

struct SmtpServer {
    port: u16,
    out: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    async fn start(mode: &str, auth: Option<&str>) -> Self {
        Self::start_on(free_port(), mode, auth).await
    }

    async fn start_on(port: u16, mode: &str, auth: Option<&str>) -> Self {
        require_aiosmtpd();
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("smtpd.py");
        std::fs::write(&script, SERVER).unwrap();
        let out = dir.path().join("received.jsonl");
        let certs = certs();
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--mode")
            .arg(mode)
            .arg("--cert")
            .arg(certs.join("server.pem"))
            .arg("--key")
            .arg(certs.join("server.key"))
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(auth) = auth {
            command.arg("--auth").arg(auth);
        }
        let mut child = command.spawn().expect("start python3");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP server did not start within 30 s");
        assert_eq!(
            ready.unwrap().as_deref(),
            Some("READY"),
            "the SMTP server did not start"
        );
        Self {
            port,
            out,
            child,
            _dir: dir,
        }
    }

    /// Every message received so far.
    fn received(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.out) {
            Ok(text) => text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
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

fn alert_with(id: i64, severity: &str, ward: &str) -> Bytes {
    let mut doc: Value = serde_json::from_str(ALERT).unwrap();
    doc["alert_id"] = id.into();
    doc["severity"] = severity.into();
    doc["location"]["ward"] = ward.into();
    doc["link"] = format!("http://medway.local:8080/alerts/{id}").into();
    Bytes::from(doc.to_string())
}

fn delivery(id: i64, payload: Bytes) -> Delivery {
    Delivery {
        id,
        message_id: id + 1000,
        channel: "alerts".into(),
        destination: "alert-mail".into(),
        attempts: 0,
        control_id: None,
        message_type: None,
        payload,
        received_at: 1_714_557_600_000_000,
        ordering_key: None,
    }
}

fn sender(toml_text: &str) -> EmailSender {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    let settings = EmailSettings::from_spec(&ConnectorSpec::inline("email", table)).unwrap();
    EmailSender::new(settings).unwrap()
}

/// Settings for a server on `port` with `mode`, plus `extra` lines.
fn config(port: u16, mode: &str, extra: &str) -> String {
    let ca = certs().join("ca.pem");
    let ca_line = if mode == "none" {
        String::new()
    } else {
        format!("ca_file = {:?}\n", ca.display().to_string())
    };
    format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = \"{mode}\"\n{ca_line}\
         from = \"Medway Alerts <medway@hospital.example>\"\n\
         timeout_ms = 10000\n{extra}\n"
    )
}

fn assert_no_phi(text: &str, what: &str) {
    for needle in PHI {
        assert!(!text.contains(needle), "{what} carries {needle}: {text}");
    }
}

#[tokio::test]
async fn starttls_minimal_mail_reaches_the_selected_recipients_without_phi() {
    let server = SmtpServer::start("starttls", None).await;
    let sender = sender(&config(
        server.port,
        "starttls",
        "to = [\"outreach@hospital.example\"]
[recipients]
emergency = [\"Crash Team <crash@hospital.example>\"]
urgent = [\"registrar@hospital.example\"]
[ward_recipients]
ward7 = [\"ward7@hospital.example\", \"OUTREACH@hospital.example\"]
[rule_recipients]
qsofa = [\"sepsis@hospital.example\"]",
    ));
    let response = sender
        .send(&delivery(501, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    assert!(
        response.summary.contains("mailed to 3 of 3"),
        "{}",
        response.summary
    );

    let received = server.received();
    assert_eq!(received.len(), 1, "one message for all recipients");
    let mail = &received[0];
    assert_eq!(mail["tls"], true, "sent over STARTTLS");
    assert_eq!(mail["mail_from"], "medway@hospital.example");
    let mut rcpt: Vec<&str> = mail["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "crash@hospital.example",
            "outreach@hospital.example",
            "ward7@hospital.example"
        ]
    );
    let subject = mail["subject"].as_str().unwrap();
    assert_eq!(subject, "[Medway] EMERGENCY: NEWS2 7 (high) — WARD7 12/A");
    assert_no_phi(subject, "the subject");
    assert_no_phi(&mail["raw_subject"].to_string(), "the raw subject header");
    assert_eq!(mail["content_type"], "multipart/alternative");
    assert_eq!(
        mail["headers"]["message-id"],
        "<medway.alert.501@hospital.example>"
    );
    assert_eq!(mail["headers"]["x-medway-alert-id"], "12");
    assert_eq!(mail["headers"]["importance"], "high");

    let text = mail["text"].as_str().unwrap();
    let html = mail["html"].as_str().unwrap();
    for body in [text, html] {
        assert_no_phi(body, "a minimal body");
        assert!(body.contains("WARD7 12/A (HOSP)"), "{body}");
        assert!(body.contains("NEWS2 7 (high), qSOFA 1"), "{body}");
        assert!(body.contains("2024-05-01 10:25:00 UTC"), "{body}");
        assert!(body.contains("#12"), "{body}");
        assert!(
            body.contains("http://medway.local:8080/alerts/12"),
            "{body}"
        );
        assert!(
            !body.contains("respiratory rate"),
            "no reasons in minimal: {body}"
        );
    }
    assert!(html.contains("<table"), "{html}");
    assert!(
        html.contains("<a href=\"http://medway.local:8080/alerts/12\">"),
        "{html}"
    );
}

#[tokio::test]
async fn full_body_adds_the_patient_and_reasons_but_never_in_the_subject() {
    let server = SmtpServer::start("starttls", None).await;
    let sender = sender(&config(
        server.port,
        "starttls",
        "to = [\"outreach@hospital.example\"]\nbody = \"full\"\ntime_zone = \"Europe/London\"",
    ));
    sender
        .send(&delivery(502, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    let received = server.received();
    let mail = &received[0];
    let subject = mail["subject"].as_str().unwrap();
    assert_no_phi(subject, "the subject");
    let text = mail["text"].as_str().unwrap();
    let html = mail["html"].as_str().unwrap();
    for body in [text, html] {
        assert!(body.contains("MRN12345 (HOSP)"), "{body}");
        assert!(body.contains("TESTNAME, PATIENTGIVEN"), "{body}");
        assert!(body.contains("respiratory rate 24/min scores 2"), "{body}");
        assert!(body.contains("NEWS2 points: rr 2, spo2 3"), "{body}");
        assert!(
            body.contains("NEWS2 inputs: rr 24 /min (2024-05-01 11:25:00 BST)"),
            "{body}"
        );
        assert!(body.contains("2024-05-01 11:25:00 BST"), "{body}");
    }
}

#[tokio::test]
async fn implicit_tls_with_authentication() {
    let server = SmtpServer::start("implicit", Some("medway:s3cret-pass")).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret-pass\n").unwrap();
    let auth = format!(
        "to = [\"outreach@hospital.example\"]\nusername = \"medway\"\npassword_file = {:?}",
        password.display().to_string()
    );
    let sender = sender(&config(server.port, "implicit", &auth));
    sender
        .send(&delivery(503, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["tls"], true);
    assert_eq!(received[0]["login"], "medway");

    // A wrong password: retried (the alert is not at fault), nothing sent, password not shown.
    std::fs::write(&password, "wrong-pass").unwrap();
    let sender = self::sender(&config(server.port, "implicit", &auth));
    let error = sender
        .send(&delivery(504, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
    assert!(
        error.reason.contains("authentication failed"),
        "{}",
        error.reason
    );
    assert!(!error.reason.contains("wrong-pass"), "{}", error.reason);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn smtp_down_retries_later_then_delivers_when_back() {
    let port = free_port();
    let sender = sender(&config(
        port,
        "starttls",
        "to = [\"outreach@hospital.example\"]\nconnect_timeout_ms = 2000",
    ));
    let error = sender.check().await.unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
    let d = delivery(505, Bytes::from_static(ALERT.as_bytes()));
    let error = sender.send(&d).await.unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
    assert!(error.reason.contains("cannot connect"), "{}", error.reason);
    assert!(
        error.reason.contains(&format!("127.0.0.1:{port}")),
        "{}",
        error.reason
    );

    let server = SmtpServer::start_on(port, "starttls", None).await;
    sender.check().await.unwrap();
    let mut retried = d.clone();
    retried.attempts = 1;
    sender.send(&retried).await.unwrap();
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0]["headers"]["message-id"],
        "<medway.alert.505@hospital.example>"
    );

    // The server goes away again: the cached connection is noticed dead, and the send retried.
    server.stop().await;
    let error = sender
        .send(&delivery(506, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
}

#[tokio::test]
async fn recipients_refused_for_good_or_for_now() {
    let server = SmtpServer::start("none", None).await;
    // One refused for good, one accepted: sent, and the summary says who refused.
    let mixed = sender(&config(
        server.port,
        "none",
        "to = [\"nobody@hospital.example\", \"outreach@hospital.example\"]",
    ));
    let response = mixed
        .send(&delivery(601, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap();
    assert!(
        response.summary.contains("mailed to 1 of 2")
            && response
                .summary
                .contains("refused by nobody@hospital.example")
            && response.summary.contains("550"),
        "{}",
        response.summary
    );
    assert_eq!(server.received().len(), 1);
    assert_eq!(
        server.received()[0]["rcpt_tos"][0],
        "outreach@hospital.example"
    );

    // Every recipient refused for good: errored.
    let nobody = sender(&config(
        server.port,
        "none",
        "to = [\"nobody@hospital.example\", \"nobody2@hospital.example\"]",
    ));
    let error = nobody
        .send(&delivery(602, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never, "{}", error.reason);
    assert!(
        error.reason.contains("refused by every recipient"),
        "{}",
        error.reason
    );

    // One busy (451): retried; the retry mails only the one still waiting.
    let busy = sender(&config(
        server.port,
        "none",
        "to = [\"busy@hospital.example\", \"ward7@hospital.example\"]",
    ));
    let d = delivery(603, Bytes::from_static(ALERT.as_bytes()));
    for _ in 0..2 {
        let error = busy.send(&d).await.unwrap_err();
        assert_eq!(error.retry, Retry::Later, "{}", error.reason);
        assert!(error.reason.contains("451"), "{}", error.reason);
    }
    let to_ward7 = server
        .received()
        .iter()
        .filter(|m| m["rcpt_tos"][0] == "ward7@hospital.example")
        .count();
    assert_eq!(to_ward7, 1, "the accepted recipient is not mailed twice");
}

#[tokio::test]
async fn tls_is_never_skipped() {
    // A server without STARTTLS: nothing is sent in clear.
    let plain = SmtpServer::start("none", None).await;
    let sender = sender(&config(
        plain.port,
        "starttls",
        "to = [\"outreach@hospital.example\"]",
    ));
    let error = sender
        .send(&delivery(701, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert!(error.reason.contains("STARTTLS"), "{}", error.reason);
    assert!(plain.received().is_empty());

    // A certificate from a CA the sender does not trust: refused, retried.
    let tls = SmtpServer::start("starttls", None).await;
    let untrusting = self::sender(&format!(
        "host = \"127.0.0.1\"\nport = {}\nfrom = \"medway@hospital.example\"\n\
         to = [\"outreach@hospital.example\"]",
        tls.port
    ));
    let error = untrusting
        .send(&delivery(702, Bytes::from_static(ALERT.as_bytes())))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert!(error.reason.contains("STARTTLS failed"), "{}", error.reason);
    assert!(tls.received().is_empty());
}

#[tokio::test]
async fn not_an_alert_is_errored_without_quoting_it() {
    let sender = sender(&config(1, "none", "to = [\"outreach@hospital.example\"]"));
    let error = sender
        .send(&delivery(
            801,
            Bytes::from_static(b"MSH|^~\\&|X|Y|||||ORU^R01|1|P|2.5\rPID|1||MRN12345"),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never);
    assert!(!error.reason.contains("MRN12345"), "{}", error.reason);
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
    let server = SmtpServer::start("starttls", None).await;
    // 3 at once, then one every 500 ms.
    let sender = sender(&config(
        server.port,
        "starttls",
        "to = [\"outreach@hospital.example\"]\nrate_limit = { per_minute = 120, burst = 3 }",
    ));
    let deliveries: Vec<Delivery> = (1..=20)
        .map(|n| {
            let severity = if n == 17 { "emergency" } else { "urgent" };
            delivery(900 + n, alert_with(100 + n, severity, "WARD7"))
        })
        .collect();
    let done = drive(&sender, deliveries, Duration::from_secs(60)).await;
    assert_eq!(done.len(), 20);

    let received = server.received();
    let singles: Vec<&Value> = received
        .iter()
        .filter(|m| {
            !m["subject"]
                .as_str()
                .unwrap()
                .contains("alerts in the last")
        })
        .collect();
    let digests: Vec<&Value> = received
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("alerts in the last")
        })
        .collect();
    assert!(singles.len() <= 3, "{} single messages", singles.len());
    assert!(
        !digests.is_empty() && digests.len() <= 2,
        "{} digests",
        digests.len()
    );
    // Every alert arrived exactly once, alone or in a digest.
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for mail in &received {
        for id in mail["headers"]["x-medway-alert-id"]
            .as_str()
            .unwrap()
            .split(", ")
        {
            *seen.entry(id.parse().unwrap()).or_default() += 1;
        }
    }
    let expected: BTreeMap<i64, usize> = (101..=120).map(|id| (id, 1)).collect();
    assert_eq!(seen, expected);
    for digest in &digests {
        let subject = digest["subject"].as_str().unwrap();
        assert_no_phi(subject, "a digest subject");
        assert!(subject.contains("(highest: EMERGENCY)"), "{subject}");
        let text = digest["text"].as_str().unwrap();
        assert_no_phi(text, "a minimal digest");
        for id in digest["headers"]["x-medway-alert-id"]
            .as_str()
            .unwrap()
            .split(", ")
        {
            assert!(
                text.contains(&format!("#{id} ")),
                "#{id} missing from {text}"
            );
        }
    }
    // Held deliveries are reported sent only as part of a digest that was accepted.
    let in_digest = done
        .values()
        .filter(|s| s.contains("in digest <medway.digest."))
        .count();
    assert_eq!(in_digest, 20 - singles.len(), "{done:?}");
}
