//! TLS and mutual TLS on the MLLP listener and sender, and the MLLP rate limit, against the real
//! `medway` binary on 127.0.0.1. Certificates: the development set from `certs/make-dev-certs.sh`
//! (run into a temp dir), plus test-only ones made with rcgen (another CA, an expired client, a
//! subject not on the allow-list, a renewed server certificate).

mod support;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// The development certificates, made by the project's own script.
struct DevCerts {
    dir: PathBuf,
}

impl DevCerts {
    fn make(dir: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/make-dev-certs.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(dir)
            .output()
            .expect("run make-dev-certs.sh");
        assert!(
            out.status.success(),
            "make-dev-certs.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A test CA made with rcgen.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// Writes `<name>.pem` and `<name>.key` for a leaf certificate; returns their paths.
    fn issue(&self, dir: &Path, name: &str, leaf: Leaf) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(leaf.sans.clone()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, leaf.cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if leaf.server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if leaf.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        (cert_path, key_path)
    }

    fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).expect("write CA");
    }
}

struct Leaf {
    cn: &'static str,
    sans: Vec<String>,
    server: bool,
    expired: bool,
}

fn client_leaf(cn: &'static str) -> Leaf {
    Leaf {
        cn,
        sans: Vec::new(),
        server: false,
        expired: false,
    }
}

/// A client TLS config trusting the CA files given, with an optional client certificate.
fn client_config(cas: &[&Path], identity: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
            roots.add(cert.expect("CA cert")).expect("add CA");
        }
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .expect("versions")
            .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .expect("cert file")
                .map(|c| c.expect("cert"))
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).expect("key file");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
    })
}

/// An MLLP connection over TLS (rustls, blocking).
struct TlsMllp {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buffer: Vec<u8>,
}

impl TlsMllp {
    /// Connects and completes the handshake (from the client's side: with TLS 1.3 a refused
    /// client certificate shows up at the first read).
    fn connect(port: u16, config: Arc<ClientConfig>) -> Result<Self, String> {
        let name = ServerName::try_from("localhost").expect("name");
        let mut conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        Ok(Self {
            stream: StreamOwned::new(conn, sock),
            buffer: Vec::new(),
        })
    }

    /// The server certificate this connection received.
    fn server_leaf(&self) -> Vec<u8> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    fn exchange(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.stream
            .write_all(&frame(payload))
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write: {e}"))?;
        loop {
            if let Some(start) = self.buffer.iter().position(|&b| b == SB)
                && let Some(end) = self.buffer[start..].windows(2).position(|w| w == [EB, CR])
            {
                let payload = self.buffer[start + 1..start + end].to_vec();
                self.buffer.drain(..start + end + 2);
                return Ok(payload);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("closed by the server".into()),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// Connects, sends one message, returns its ACK or why there was none.
fn send_once(port: u16, config: Arc<ClientConfig>, control_id: &str) -> Result<Vec<u8>, String> {
    TlsMllp::connect(port, config)?.exchange(&oru(control_id, "2.5.1", "", "", "MRN1^^^HOSP^MR"))
}

fn msa(ack: &[u8]) -> String {
    segments(ack)
        .into_iter()
        .find(|s| s.starts_with("MSA"))
        .unwrap_or_default()
}

fn tls_table(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "[source.tls]\ncert_file = {:?}\nkey_file = {:?}\n{extra}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("medway.db").display())
}

fn stored_ids(engine: &Engine) -> Vec<String> {
    engine
        .messages()
        .iter()
        .filter_map(|m| m["control_id"].as_str().map(str::to_string))
        .collect()
}

/// `channel_toml` puts `extra` before the destination; the `[source.tls]` table must come last
/// among the source keys, so scalar keys go first in `extra`.
fn tls_channel(port: u16, scalars: &str, tls: &str) -> String {
    channel_toml(port, &format!("{scalars}\n{tls}"))
}

#[test]
fn dev_certificates_give_a_tls_and_mutual_tls_handshake_and_an_aa() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::make(&dir.path().join("certs"));
    let port = free_port();
    let tls = tls_table(
        &certs.path("server.pem"),
        &certs.path("server.key"),
        &format!(
            "client_ca_file = {:?}\nallowed_subjects = [\"medway-test-client\"]",
            certs.path("ca.pem").display().to_string()
        ),
    );
    let engine = Engine::start(
        dir.path(),
        &tls_channel(port, "", &tls),
        port,
        &sqlite(dir.path()),
    );
    let config = client_config(
        &[&certs.path("ca.pem")],
        Some((&certs.path("client.pem"), &certs.path("client.key"))),
    );
    let ack = send_once(port, config, "TLS1").expect("an ACK over mutual TLS");
    assert_eq!(msa(&ack), "MSA|AA|TLS1");
    assert_eq!(stored_ids(&engine), vec!["TLS1".to_string()]);

    // `medway send` over mutual TLS: one file, then load mode reporting the handshake time.
    let to = format!("127.0.0.1:{port}");
    let tls_args = [
        "--tls-ca",
        &certs.path("ca.pem").display().to_string(),
        "--tls-cert",
        &certs.path("client.pem").display().to_string(),
        "--tls-key",
        &certs.path("client.key").display().to_string(),
        "--tls-server-name",
        "localhost",
    ]
    .map(String::from);
    let message = dir.path().join("one.hl7");
    std::fs::write(&message, oru("CLI1", "2.5.1", "", "", "M1")).unwrap();
    let mut args = vec!["send", "--to", &to, message.to_str().unwrap()];
    args.extend(tls_args.iter().map(String::as_str));
    let out = engine.medway(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("MSA|AA|CLI1"),
        "{stdout}"
    );
    let mut args = vec!["send", "--to", &to, "--count", "20", "--connections", "4"];
    args.extend(tls_args.iter().map(String::as_str));
    let out = engine.medway(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sent 20 messages over 4 connection(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("connect + TLS handshake ms: p50"),
        "{stdout}"
    );
    assert_eq!(stored_ids(&engine).len(), 22);
    // Without a client certificate the same command is refused.
    let out = engine.medway(&[
        "send",
        "--to",
        &to,
        "--tls-ca",
        &certs.path("ca.pem").display().to_string(),
        message.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(stored_ids(&engine).len(), 22);
    assert!(!engine.log().contains("panicked"));
}

#[test]
fn a_missing_certificate_file_is_a_config_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    let tls = tls_table(
        Path::new("/nonexistent/server.pem"),
        Path::new("/nonexistent/server.key"),
        "",
    );
    std::fs::write(
        dir.path().join("channels/test.toml"),
        tls_channel(free_port(), "", &tls),
    )
    .unwrap();
    let out = medway_in(dir.path(), &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("tls.cert_file") && stdout.contains("/nonexistent/server.pem"),
        "{stdout}"
    );
}

#[test]
fn mutual_tls_refuses_missing_foreign_expired_and_unlisted_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::make(&dir.path().join("certs"));
    let keys = dir.path().join("test-certs");
    std::fs::create_dir_all(&keys).unwrap();
    let clients_ca = TestCa::new("Medway Test Clients CA");
    clients_ca.write_ca(&keys.join("clients-ca.pem"));
    let other_ca = TestCa::new("Some Other CA");
    let allowed = clients_ca.issue(&keys, "allowed", client_leaf("medway-test-client"));
    let unlisted = clients_ca.issue(&keys, "unlisted", client_leaf("intruder"));
    let foreign = other_ca.issue(&keys, "foreign", client_leaf("medway-test-client"));
    let expired = clients_ca.issue(
        &keys,
        "expired",
        Leaf {
            expired: true,
            ..client_leaf("medway-test-client")
        },
    );

    let port = free_port();
    let tls = tls_table(
        &certs.path("server.pem"),
        &certs.path("server.key"),
        &format!(
            "client_ca_file = {:?}\nallowed_subjects = [\"medway-test-client\", \"lab-analyser\"]",
            keys.join("clients-ca.pem").display().to_string()
        ),
    );
    let engine = Engine::start(
        dir.path(),
        &tls_channel(port, "", &tls),
        port,
        &sqlite(dir.path()),
    );
    let ca = certs.path("ca.pem");

    // Each refusal arrives as the TLS alert that names its reason.
    let refused = [
        (
            "no client certificate",
            None,
            "NOCERT",
            "CertificateRequired",
        ),
        ("another CA", Some(&foreign), "FOREIGN", "UnknownCA"),
        ("expired", Some(&expired), "EXPIRED", "CertificateExpired"),
        (
            "subject not allowed",
            Some(&unlisted),
            "UNLISTED",
            "AccessDenied",
        ),
    ];
    for (what, identity, control_id, alert) in refused {
        let config = client_config(&[&ca], identity.map(|(c, k)| (c.as_path(), k.as_path())));
        match send_once(port, config, control_id) {
            Ok(ack) => panic!("{what}: expected a refusal, got {:?}", msa(&ack)),
            Err(reason) => assert!(reason.contains(alert), "{what}: {reason}"),
        }
    }
    eventually(5, "handshake failures logged", || {
        engine.log().matches("TLS handshake failed").count() >= 4
    });
    assert!(engine.log().contains("subject not in tls.allowed_subjects"));

    let config = client_config(&[&ca], Some((&allowed.0, &allowed.1)));
    let ack = send_once(port, config, "ALLOWED").expect("allowed client gets an ACK");
    assert_eq!(msa(&ack), "MSA|AA|ALLOWED");
    assert_eq!(
        stored_ids(&engine),
        vec!["ALLOWED".to_string()],
        "nothing else stored"
    );
}

#[test]
fn plain_tcp_to_a_tls_port_is_closed_and_tls_clients_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::make(&dir.path().join("certs"));
    let port = free_port();
    let tls = tls_table(&certs.path("server.pem"), &certs.path("server.key"), "");
    let engine = Engine::start(
        dir.path(),
        &tls_channel(port, "", &tls),
        port,
        &sqlite(dir.path()),
    );

    let mut plain = Mllp::connect(port);
    plain.write(&frame(&oru("PLAIN", "2.5.1", "", "", "MRN1^^^HOSP^MR")));
    // At most a TLS alert comes back, never an MLLP reply, and the server closes.
    let mut received = Vec::new();
    let _ = plain.stream.read_to_end(&mut received);
    assert!(
        !received.contains(&SB),
        "no MLLP frame on a TLS port: {received:?}"
    );
    eventually(5, "the failed handshake is logged", || {
        engine.log().contains("TLS handshake failed")
    });

    let config = client_config(&[&certs.path("ca.pem")], None);
    let ack = send_once(port, config, "AFTERPLAIN").expect("TLS still served");
    assert_eq!(msa(&ack), "MSA|AA|AFTERPLAIN");
    assert_eq!(stored_ids(&engine), vec!["AFTERPLAIN".to_string()]);
    assert!(!engine.log().contains("panicked"));
}

#[test]
fn a_replaced_certificate_is_used_for_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::make(&dir.path().join("certs"));
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("server.pem"), live.join("server.key"));
    std::fs::copy(certs.path("server.pem"), &cert).unwrap();
    std::fs::copy(certs.path("server.key"), &key).unwrap();
    let renewal_ca = TestCa::new("Medway Renewal CA");
    renewal_ca.write_ca(&dir.path().join("renewal-ca.pem"));

    let port = free_port();
    let tls = tls_table(&cert, &key, "reload_interval_secs = 1");
    let engine = Engine::start(
        dir.path(),
        &tls_channel(port, "", &tls),
        port,
        &sqlite(dir.path()),
    );
    let config = client_config(
        &[&certs.path("ca.pem"), &dir.path().join("renewal-ca.pem")],
        None,
    );

    let mut old = TlsMllp::connect(port, config.clone()).expect("first connection");
    let original = old.server_leaf();
    assert_eq!(
        msa(&old.exchange(&oru("OLD1", "2.5.1", "", "", "M1")).unwrap()),
        "MSA|AA|OLD1"
    );

    // A half-written renewal (garbage key) is refused and the old certificate kept.
    std::fs::write(&key, "not a key").unwrap();
    eventually(10, "a failed reload is logged", || {
        engine.log().contains("TLS reload failed")
    });
    let still = TlsMllp::connect(port, config.clone()).expect("old certificate still served");
    assert_eq!(still.server_leaf(), original);

    // The renewed certificate and key land.
    let staged = dir.path().join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    let (new_cert, new_key) = renewal_ca.issue(
        &staged,
        "renewed",
        Leaf {
            cn: "medway-renewed",
            sans: vec!["localhost".into(), "127.0.0.1".into()],
            server: true,
            expired: false,
        },
    );
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let renewed = std::fs::read_to_string(&new_cert).unwrap();
    let renewed_der = CertificateDer::from_pem_slice(renewed.as_bytes()).unwrap();
    eventually(15, "a new connection sees the renewed certificate", || {
        TlsMllp::connect(port, config.clone())
            .map(|c| c.server_leaf() == renewed_der.as_ref())
            .unwrap_or(false)
    });
    let mut fresh = TlsMllp::connect(port, config.clone()).unwrap();
    assert_eq!(
        msa(&fresh.exchange(&oru("NEW1", "2.5.1", "", "", "M1")).unwrap()),
        "MSA|AA|NEW1"
    );

    // The connection opened before the renewal goes on with its session.
    assert_eq!(old.server_leaf(), original);
    assert_eq!(
        msa(&old.exchange(&oru("OLD2", "2.5.1", "", "", "M1")).unwrap()),
        "MSA|AA|OLD2"
    );
    assert!(engine.log().contains("TLS certificates reloaded"));
}

#[test]
fn over_the_rate_limit_gets_ar_with_the_reason_and_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let channel = channel_toml(port, "rate_limit = { per_second = 1, burst = 2 }");
    let engine = Engine::start(dir.path(), &channel, port, &sqlite(dir.path()));
    let mut conn = engine.connect();
    for id in ["RL1", "RL2"] {
        assert_eq!(
            msa(&conn.exchange(&oru(id, "2.5.1", "", "", "M1"))),
            format!("MSA|AA|{id}")
        );
    }
    let refused = conn.exchange(&oru("RL3", "2.5.1", "", "", "M1"));
    let line = msa(&refused);
    assert!(line.starts_with("MSA|AR|RL3|rate limit exceeded"), "{line}");
    assert!(line.contains("resend after"), "{line}");
    let err = segments(&refused)
        .into_iter()
        .find(|s| s.starts_with("ERR"))
        .unwrap();
    assert_eq!(field(&err, 3).split('^').next(), Some("207"), "{err}");
    // A second connection from the same address shares the budget.
    let mut other = engine.connect();
    assert!(msa(&other.exchange(&oru("RL4", "2.5.1", "", "", "M1"))).starts_with("MSA|AR|RL4"));
    assert_eq!(
        engine.log().matches("rate limit exceeded").count(),
        1,
        "one warning a second"
    );

    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        msa(&conn.exchange(&oru("RL3", "2.5.1", "", "", "M1"))),
        "MSA|AA|RL3"
    );
    let mut ids = stored_ids(&engine);
    ids.sort();
    assert_eq!(
        ids,
        vec!["RL1", "RL2", "RL3"],
        "refused messages were not stored"
    );
}

#[test]
fn the_mllp_sender_delivers_over_mutual_tls_to_a_tls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::make(&dir.path().join("certs"));
    let (front, back) = (free_port(), free_port());
    let s = |name: &str| certs.path(name).display().to_string();
    // The receiving channel: mutual TLS, file destination into out/.
    let receiver = tls_channel(
        back,
        "",
        &tls_table(
            &certs.path("server.pem"),
            &certs.path("server.key"),
            &format!(
                "client_ca_file = {:?}\nallowed_subjects = [\"medway-test-client\"]",
                s("ca.pem")
            ),
        ),
    );
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    std::fs::write(dir.path().join("channels/receiver.toml"), receiver).unwrap();
    // The sending channel: plain MLLP in, MLLP over mutual TLS out.
    let sender = format!(
        r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{front}"

[[destination]]
name = "over-tls"
kind = "mllp"
address = "127.0.0.1:{back}"
retry = {{ initial_delay_ms = 50, max_delay_ms = 500 }}
tls = {{ ca_file = {ca:?}, cert_file = {cert:?}, key_file = {key:?}, server_name = "localhost" }}
"#,
        ca = s("ca.pem"),
        cert = s("client.pem"),
        key = s("client.key"),
    );
    let engine = Engine::start(dir.path(), &sender, front, &sqlite(dir.path()));
    let ack = engine
        .connect()
        .exchange(&oru("HOP1", "2.5.1", "", "", "M1"));
    assert_eq!(msa(&ack), "MSA|AA|HOP1");
    eventually(15, "the message crossed the TLS hop into out/", || {
        std::fs::read_dir(dir.path().join("out"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with("HOP1-"))
            })
            .unwrap_or(false)
    });
    let stored = engine.messages();
    assert_eq!(
        stored.iter().filter(|m| m["control_id"] == "HOP1").count(),
        2,
        "{stored:?}"
    );
}
