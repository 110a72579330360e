//! The HTTP sender's TLS client configuration: rustls with the **ring** provider only (never
//! aws-lc-rs), the platform's trust store (plus an optional extra CA file), and an optional
//! client certificate for mutual TLS.
//!
//! Every file is read once, when the destination is built, so a missing or unreadable file is a
//! settings error at start-up (pointing at its key), never a surprise at the first send.

use medway_engine::config::SettingsError;
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    fn client_cert_without_key_is_refused() {
        let files = TlsFiles {
            client_cert: Some("/nonexistent/cert.pem".into()),
            ..TlsFiles::default()
        };
        let error = client_config(&files, false).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("client_cert"));
    }
}
