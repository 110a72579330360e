//! TLS client configuration: rustls with the **ring** provider only (never aws-lc-rs), TLS 1.2+.
//!
//! Two entry points: [`client_config`] for the HTTP sender (the platform's trust store plus an
//! optional extra CA file, keys `ca_file`/`client_cert`/`client_key`), and [`ClientTls`] for MLLP
//! (`tls = { ca_file, cert_file, key_file, server_name }` on the sender, `--tls-*` on
//! `medway send`): a private CA named in `ca_file` is then the *only* trust root, since an MLLP
//! peer is an internal system and a public CA vouching for it would prove nothing.
//!
//! Every file is read once, when the connector is built, so a missing or unreadable file is a
//! settings error at start-up (pointing at its key), never a surprise at the first send.

use medway_engine::config::SettingsError;
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS-related settings, as given in the destination table.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Builds the rustls client configuration. `https` says whether the URL needs TLS at all: for a
/// plain `http://` URL a platform without a trust store is not an error.
pub fn client_config(files: &TlsFiles, https: bool) -> Result<ClientConfig, SettingsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra_roots = match &files.ca_file {
        Some(path) => read_certs(path, "ca_file")?,
        None => Vec::new(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SettingsError::new(format!("TLS set-up failed: {e}")))?;
    let verifier = match rustls_platform_verifier::Verifier::new_with_extra_roots(
        extra_roots.clone(),
        provider.clone(),
    ) {
        Ok(verifier) => Arc::new(verifier) as Arc<dyn rustls::client::danger::ServerCertVerifier>,
        Err(error) if https => {
            return Err(SettingsError::new(format!(
                "cannot load the system's trusted certificates: {error}"
            ))
            .key("ca_file")
            .hint(
                "install the system CA bundle (ca-certificates) or name a CA file in `ca_file`",
            ));
        }
        // Plain HTTP: TLS is never used, so an empty trust store will do.
        Err(_) => webpki_only(extra_roots, provider)?,
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&files.client_cert, &files.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "client_cert")?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                SettingsError::new(format!(
                    "cannot read a private key from {}: {e}",
                    key.display()
                ))
                .key("client_key")
                .hint("a PEM file with one PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key")
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                SettingsError::new(format!(
                    "client certificate and key do not form a usable pair: {e}"
                ))
                .key("client_cert")
            })
        }
        (Some(_), None) => Err(SettingsError::new("`client_cert` needs `client_key`")
            .key("client_cert")
            .hint("add `client_key = \"/path/to/key.pem\"`")),
        (None, Some(_)) => Err(SettingsError::new("`client_key` needs `client_cert`")
            .key("client_key")
            .hint("add `client_cert = \"/path/to/cert.pem\"`")),
    }
}

/// A verifier over the extra roots alone (used only when the platform has no trust store and the
/// URL is plain HTTP).
fn webpki_only(
    extra_roots: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::client::danger::ServerCertVerifier>, SettingsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(extra_roots);
    if roots.is_empty() {
        // WebPKI refuses an empty store; any self-signed certificate parses as a root, and since
        // no TLS connection is ever made for an http:// URL, none will be verified against it.
        return Ok(Arc::new(RefuseAll));
    }
    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map(|v| v as Arc<dyn rustls::client::danger::ServerCertVerifier>)
        .map_err(|e| SettingsError::new(format!("TLS set-up failed: {e}")).key("ca_file"))
}

/// Refuses every server certificate: for http:// URLs on a machine with no trust store.
#[derive(Debug)]
struct RefuseAll;

impl rustls::client::danger::ServerCertVerifier for RefuseAll {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General("no trusted certificates".into()))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no trusted certificates".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no trusted certificates".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| {
            SettingsError::new(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
            .key(key)
        })?;
    if certs.is_empty() {
        return Err(
            SettingsError::new(format!("no PEM certificate in {}", path.display()))
                .key(key)
                .hint("the file must hold `-----BEGIN CERTIFICATE-----` blocks"),
        );
    }
    Ok(certs)
}

/// `tls = { ca_file, cert_file, key_file, server_name }` on an MLLP sender.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsSettings {
    /// PEM CA certificates to trust (only these); none ⇒ the platform's trust store.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain for mutual TLS (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against; default: the host part of the address.
    pub server_name: Option<String>,
}

/// A ready client TLS configuration and the name the server must prove. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads the files and builds the config; errors name the offending key.
    pub fn from_settings(settings: &ClientTlsSettings) -> Result<Self, SettingsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .map_err(|e| SettingsError::new(format!("TLS set-up failed: {e}")))?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &settings.ca_file
        {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(path, "ca_file")? {
                    roots.add(cert).map_err(|e| {
                        SettingsError::new(format!("unusable CA in {}: {e}", path.display()))
                            .key("ca_file")
                    })?;
                }
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| SettingsError::new(format!("TLS set-up failed: {e}")).key("ca_file"))?
            }
            None => Arc::new(rustls_platform_verifier::Verifier::new(provider).map_err(
                |error| {
                    SettingsError::new(format!(
                        "cannot load the system's trusted certificates: {error}"
                    ))
                    .key("ca_file")
                    .hint("name the peer's CA in `ca_file`")
                },
            )?),
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&settings.cert_file, &settings.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "cert_file")?;
                let key_der = read_key(key, "key_file")?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    SettingsError::new(format!(
                        "client certificate and key do not form a usable pair: {e}"
                    ))
                    .key("cert_file")
                })?
            }
            (Some(_), None) => {
                return Err(SettingsError::new("`tls.cert_file` needs `tls.key_file`")
                    .key("cert_file")
                    .hint("add `key_file = \"/path/to/key.pem\"`"));
            }
            (None, Some(_)) => {
                return Err(SettingsError::new("`tls.key_file` needs `tls.cert_file`")
                    .key("key_file")
                    .hint("add `cert_file = \"/path/to/cert.pem\"`"));
            }
        };
        let server_name = match &settings.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| {
                SettingsError::new(format!(
                    "`tls.server_name` {name:?} is not a DNS name or IP: {e}"
                ))
                .key("server_name")
            })?),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name the server's certificate must carry: the override, else the host of `address`
    /// (`host:port`, `[v6]:port`).
    pub fn server_name_for(&self, address: &str) -> std::io::Result<ServerName<'static>> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = match address.rsplit_once(':') {
            Some((host, _port)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => address,
        };
        ServerName::try_from(host.to_string()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{host:?} is not a valid TLS server name: {e}"),
            )
        })
    }

    /// Runs the TLS handshake over a connected stream.
    pub async fn connect<S>(
        &self,
        stream: S,
        address: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = self.server_name_for(address)?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, stream)
            .await
    }
}

fn read_key(path: &Path, key: &str) -> Result<PrivateKeyDer<'static>, SettingsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        SettingsError::new(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
        .key(key)
        .hint("a PEM file with one PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_config_builds_with_ring() {
        let config = client_config(&TlsFiles::default(), false).unwrap();
        assert!(!config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn missing_ca_file_names_its_key() {
        let files = TlsFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let error = client_config(&files, true).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("ca_file"));
    }

    #[test]
    fn mllp_settings_name_their_keys() {
        let settings = ClientTlsSettings {
            cert_file: Some("/nonexistent/cert.pem".into()),
            ..ClientTlsSettings::default()
        };
        let error = ClientTls::from_settings(&settings).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("cert_file"));
        let settings = ClientTlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..ClientTlsSettings::default()
        };
        let error = ClientTls::from_settings(&settings).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("ca_file"));
    }

    #[test]
    fn client_cert_without_key_is_refused() {
        let files = TlsFiles {
            client_cert: Some("/nonexistent/cert.pem".into()),
            ..TlsFiles::default()
        };
        let error = client_config(&files, false).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("client_cert"));
    }
}
