//! `[source] kind = "http"` settings and their checks (every problem names its key).

use super::auth::{ApiKeys, HASH_PREFIX, parse_key_hash};
use crate::rate_limit::RateLimitSettings;
use medway_engine::config::{ConnectorSpec, SettingsError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// `[source] kind = "http"`: HL7 v2, FHIR R4 JSON and generic JSON webhooks over HTTP(S).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceSettings {
    /// `host:port` to listen on.
    pub listen: String,
    /// The one path accepting POSTs; anything else is 404.
    #[serde(default = "default_path")]
    pub path: String,
    /// `[source.tls]`: serve HTTPS (and with `client_ca_file`, require client certificates).
    #[serde(default)]
    pub tls: Option<crate::tls::ServerTlsSettings>,
    /// `sha256:<hex>` hashes of the accepted keys (`medway api-key new`). Empty: no key needed.
    #[serde(default)]
    pub api_keys: Vec<String>,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Bytes of request bodies held at once by the whole listener (all connections and
    /// HTTP/2 streams); past it a request gets 503 + Retry-After instead of more memory.
    /// Default: 256 MiB, or `max_body_bytes` if that is larger.
    #[serde(default)]
    pub max_inflight_body_bytes: Option<usize>,
    /// Per client (API key when authenticated, else peer IP).
    #[serde(default)]
    pub rate_limit: Option<RateLimitSettings>,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time allowed for a request's headers (and a TLS handshake); also closes idle
    /// keep-alive connections.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Time allowed to receive a request body (408 after it).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

/// Largest `max_inflight_body_bytes` (16 GiB; well inside a semaphore's permit range).
const MAX_INFLIGHT_BODY: usize = 16 << 30;

fn default_path() -> String {
    "/".to_string()
}
fn default_max_body() -> usize {
    16 * 1024 * 1024
}
const DEFAULT_INFLIGHT_BODY: usize = 256 * 1024 * 1024;
fn default_max_connections() -> usize {
    256
}
fn default_header_timeout() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    30
}

impl HttpSourceSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(SettingsError::new(format!(
                "`listen` must be host:port with a numeric address, got {:?}",
                self.listen
            ))
            .key("listen")
            .hint("e.g. listen = \"127.0.0.1:8080\" or \"0.0.0.0:8443\""));
        }
        if !self.path.starts_with('/') || self.path.contains(['?', '#']) {
            return Err(SettingsError::new(format!(
                "`path` must start with '/', got {:?}",
                self.path
            ))
            .key("path")
            .hint("e.g. path = \"/hl7\" (no query string)"));
        }
        self.api_keys()?;
        if self.max_body_bytes == 0 {
            return Err(SettingsError::new("max_body_bytes must be positive").key("max_body_bytes"));
        }
        if self.inflight_body_bytes() < self.max_body_bytes {
            return Err(SettingsError::new(format!(
                "max_inflight_body_bytes ({}) must be at least max_body_bytes ({})",
                self.inflight_body_bytes(),
                self.max_body_bytes
            ))
            .key("max_inflight_body_bytes")
            .hint("one full-size body must fit; the default is 256 MiB"));
        }
        if self.inflight_body_bytes() > MAX_INFLIGHT_BODY {
            return Err(SettingsError::new(format!(
                "max_inflight_body_bytes must be at most {MAX_INFLIGHT_BODY}"
            ))
            .key("max_inflight_body_bytes"));
        }
        if self.max_connections == 0 {
            return Err(
                SettingsError::new("max_connections must be positive").key("max_connections")
            );
        }
        if self.header_timeout_secs == 0 {
            return Err(SettingsError::new("header_timeout_secs must be positive")
                .key("header_timeout_secs"));
        }
        if self.request_timeout_secs == 0 {
            return Err(SettingsError::new("request_timeout_secs must be positive")
                .key("request_timeout_secs"));
        }
        if let Some(limit) = &self.rate_limit {
            limit.validate()?;
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        Ok(())
    }

    /// The configured key hashes. A value that is not a hash is refused, so a key pasted in
    /// plain text is never accepted (nor echoed back in the error).
    pub fn api_keys(&self) -> Result<ApiKeys, SettingsError> {
        let mut hashes = Vec::with_capacity(self.api_keys.len());
        for (i, text) in self.api_keys.iter().enumerate() {
            match parse_key_hash(text) {
                Some(hash) => hashes.push(hash),
                None => {
                    return Err(SettingsError::new(format!(
                        "api_keys[{i}] is not a key hash ({HASH_PREFIX}<64 hex digits>)"
                    ))
                    .key("api_keys")
                    .hint(
                        "store hashes only: `medway api-key new` makes a key and prints its \
                         hash; `medway api-key hash KEY` hashes an existing one",
                    ));
                }
            }
        }
        Ok(ApiKeys::new(hashes))
    }

    /// Bytes of request bodies the listener holds at once.
    pub fn inflight_body_bytes(&self) -> usize {
        self.max_inflight_body_bytes
            .unwrap_or(DEFAULT_INFLIGHT_BODY.max(self.max_body_bytes))
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}
