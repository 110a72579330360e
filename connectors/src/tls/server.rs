//! `ServerTls`: the TLS side of a listening source, built from its `[source.tls]` table.
//!
//! ```toml
//! [source.tls]
//! cert_file = "/etc/medway/tls/server.pem"     # chain, leaf first
//! key_file = "/etc/medway/tls/server.key"
//! client_ca_file = "/etc/medway/tls/ca.pem"    # optional: mutual TLS, client certificate required
//! allowed_subjects = ["lab-analyser-1"]        # optional: subject CN or SAN DNS name
//! reload_interval_secs = 30                    # files polled for changes
//! ```
//!
//! Why a reloader and not a restart: certificates are renewed on a schedule (often every few
//! weeks); a listener must pick the new files up without dropping its connections. The files are
//! polled (mtime and size); on a change the config is rebuilt and handed out to *new*
//! connections, while established ones keep the session they negotiated. A rebuild that fails
//! (half-written file, key not matching the certificate) keeps the previous config and logs a
//! warning naming the file, so a botched renewal never takes the listener down.

use super::subject;
use medway_engine::config::SettingsError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore, ServerConfig};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// `[source.tls]` table of a listening source (MLLP and HTTP alike).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsSettings {
    /// PEM certificate chain, the server's own certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Set ⇒ mutual TLS: a client certificate is required and verified against this CA.
    pub client_ca_file: Option<PathBuf>,
    /// Optional allow-list of client subjects (CN or SAN DNS name), enforced in the handshake.
    #[serde(default)]
    pub allowed_subjects: Vec<String>,
    /// How often the files are checked for changes.
    #[serde(default = "default_reload_interval")]
    pub reload_interval_secs: u64,
}

fn default_reload_interval() -> u64 {
    30
}

impl ServerTlsSettings {
    /// Checks what can be checked without reading the files (`ServerTls::load` reads them).
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.reload_interval_secs == 0 {
            return Err(
                SettingsError::new("tls.reload_interval_secs must be at least 1")
                    .key("reload_interval_secs")
                    .hint("the default is 30 seconds"),
            );
        }
        if !self.allowed_subjects.is_empty() && self.client_ca_file.is_none() {
            return Err(SettingsError::new(
                "tls.allowed_subjects needs tls.client_ca_file: without mutual TLS there is no client subject to check",
            )
            .key("allowed_subjects")
            .hint("add `client_ca_file = \"/path/to/ca.pem\"` or remove `allowed_subjects`"));
        }
        if self.allowed_subjects.iter().any(|s| s.trim().is_empty()) {
            return Err(
                SettingsError::new("tls.allowed_subjects must not contain empty names")
                    .key("allowed_subjects"),
            );
        }
        Ok(())
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert_file.as_path(), self.key_file.as_path()];
        if let Some(ca) = &self.client_ca_file {
            files.push(ca.as_path());
        }
        files
    }
}

/// A TLS file that could not be used. Names the setting and the file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tls.{key}: {reason} ({})", path.display())]
pub struct TlsError {
    /// The setting naming the file: `cert_file`, `key_file` or `client_ca_file`.
    pub key: &'static str,
    pub path: PathBuf,
    pub reason: String,
}

impl TlsError {
    fn new(key: &'static str, path: &Path, reason: impl fmt::Display) -> Self {
        Self {
            key,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

impl From<TlsError> for SettingsError {
    fn from(error: TlsError) -> Self {
        let hint = match error.key {
            "key_file" => {
                "a PEM file with one PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key matching cert_file"
            }
            _ => {
                "a PEM file with `-----BEGIN CERTIFICATE-----` blocks (certs/make-dev-certs.sh makes a development set)"
            }
        };
        SettingsError::new(error.to_string())
            .key(error.key)
            .hint(hint)
    }
}

/// The loaded server TLS configuration. Cheap to clone; clones share the reloaded config.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ServerTlsSettings,
    config: watch::Sender<Arc<ServerConfig>>,
    /// File stamps the current config was built from.
    stamps: Vec<Stamp>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files and builds the config. Errors name the setting and file.
    pub fn load(settings: &ServerTlsSettings) -> Result<ServerTls, TlsError> {
        // Stamps first: a file changed while we read it shows up as a change at the next poll.
        let stamps = stamps(settings);
        let config = build(settings)?;
        let (config, _) = watch::channel(Arc::new(config));
        Ok(ServerTls {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                config,
                stamps,
            }),
        })
    }

    /// The config for a new connection (TLS 1.2+, ring provider, no ALPN set).
    pub fn current(&self) -> Arc<ServerConfig> {
        self.inner.config.borrow().clone()
    }

    /// Sees every new config after a reload.
    pub fn watch(&self) -> watch::Receiver<Arc<ServerConfig>> {
        self.inner.config.subscribe()
    }

    pub fn settings(&self) -> &ServerTlsSettings {
        &self.inner.settings
    }

    /// Polls the files every `reload_interval_secs` until `shutdown` fires; rebuilds on a change
    /// and keeps the old config (with a warning naming the file) when the rebuild fails.
    pub fn spawn_reloader(&self, shutdown: CancellationToken) {
        let this = self.clone();
        let every = Duration::from_secs(self.inner.settings.reload_interval_secs.max(1));
        tokio::spawn(async move {
            let mut seen = this.inner.stamps.clone();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                let now = stamps(&this.inner.settings);
                if now == seen {
                    continue;
                }
                // Remember what was seen even when the rebuild fails: the next write (the key
                // after the certificate, say) is a new change and triggers another attempt.
                seen = now;
                this.reload();
            }
        });
    }

    /// Rebuilds from the files now; `true` when the new config is in use.
    pub fn reload(&self) -> bool {
        match build(&self.inner.settings) {
            Ok(config) => {
                self.inner.config.send_replace(Arc::new(config));
                tracing::info!(cert_file = %self.inner.settings.cert_file.display(),
                    "TLS certificates reloaded; new connections use them");
                true
            }
            Err(error) => {
                tracing::warn!(file = %error.path.display(), setting = error.key, reason = %error.reason,
                    "TLS reload failed; keeping the previous certificates");
                false
            }
        }
    }
}

/// Modification time and size of one file (`None` if it cannot be read).
type Stamp = Option<(SystemTime, u64)>;

fn stamps(settings: &ServerTlsSettings) -> Vec<Stamp> {
    settings
        .files()
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn build(settings: &ServerTlsSettings) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&settings.cert_file, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| {
        TlsError::new(
            "key_file",
            &settings.key_file,
            format!("cannot read a private key: {e}"),
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| TlsError::new("cert_file", &settings.cert_file, e))?;
    let builder = match &settings.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let verifier = client_verifier(ca_file, &settings.allowed_subjects, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::new(
            "key_file",
            &settings.key_file,
            format!("the key does not fit the certificate: {e}"),
        )
    })
}

fn client_verifier(
    ca_file: &Path,
    allowed: &[String],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca_file, "client_ca_file")? {
        roots
            .add(cert)
            .map_err(|e| TlsError::new("client_ca_file", ca_file, format!("unusable CA: {e}")))?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| TlsError::new("client_ca_file", ca_file, e))?;
    if allowed.is_empty() {
        return Ok(inner);
    }
    Ok(Arc::new(AllowedSubjects {
        inner,
        allowed: allowed.to_vec(),
    }))
}

/// Mutual TLS with an allow-list: the WebPKI verifier decides whether the chain is valid
/// (CA, dates, usage); then the end-entity certificate must carry an allowed name. Refusing in
/// the handshake (not after) means a client that is not allowed never gets to send a byte of
/// HL7.
#[derive(Debug)]
struct AllowedSubjects {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSubjects {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if subject::is_allowed(end_entity, &self.allowed) {
            Ok(verified)
        } else {
            tracing::warn!(
                subject = %subject::display_name(end_entity),
                "client certificate refused: subject not in tls.allowed_subjects"
            );
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Every certificate in a PEM file; at least one.
pub(crate) fn read_certs(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| TlsError::new(key, path, format!("cannot read certificates: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(key, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServerTlsSettings {
        ServerTlsSettings {
            cert_file: "/nonexistent/server.pem".into(),
            key_file: "/nonexistent/server.key".into(),
            client_ca_file: None,
            allowed_subjects: Vec::new(),
            reload_interval_secs: 30,
        }
    }

    #[test]
    fn missing_cert_file_names_the_setting_and_file() {
        let error = ServerTls::load(&settings()).unwrap_err();
        assert_eq!(error.key, "cert_file");
        assert!(
            error.to_string().contains("/nonexistent/server.pem"),
            "{error}"
        );
        let settings_error = SettingsError::from(error);
        assert_eq!(settings_error.key.as_deref(), Some("cert_file"));
    }

    #[test]
    fn allow_list_without_client_ca_is_refused() {
        let mut s = settings();
        s.allowed_subjects = vec!["lab".into()];
        assert_eq!(
            s.validate().unwrap_err().key.as_deref(),
            Some("allowed_subjects")
        );
        s.client_ca_file = Some("/ca.pem".into());
        assert!(s.validate().is_ok());
        s.reload_interval_secs = 0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<ServerTlsSettings, _> =
            toml::from_str("cert_file = \"a\"\nkey_file = \"b\"\ncert = \"c\"\n");
        assert!(parsed.is_err());
        let parsed: ServerTlsSettings =
            toml::from_str("cert_file = \"a\"\nkey_file = \"b\"\n").expect("minimal table");
        assert_eq!(parsed.reload_interval_secs, 30);
    }
}
