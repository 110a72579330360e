//! `HttpSender`: the HTTP destination. Each delivery is one request whose body is the payload
//! bytes exactly as they are (a destination transform shapes them; nothing is re-encoded).
//!
//! ```toml
//! [[destination]]
//! name = "results-api"
//! kind = "http"
//! url = "https://results.example.org/api/hl7"
//! method = "POST"                                # POST (default), PUT or PATCH
//! content_type = "x-application/hl7-v2+er7"      # the default
//! timeout_ms = 30000                             # whole request, default 30 s
//! connect_timeout_ms = 5000                      # default 5 s
//! headers = { Authorization = "Bearer …" }       # sent as given, never logged
//! ca_file = "/etc/medway/results-ca.pem"         # optional, trusted besides the system's roots
//! client_cert = "/etc/medway/medway.pem"         # optional mutual TLS (with client_key)
//! client_key = "/etc/medway/medway.key"
//! body = "message"                               # or "fhir-vitals-bundle" (below)
//! ```
//!
//! `body = "fhir-vitals-bundle"` posts, instead of the payload, the FHIR R4 transaction Bundle
//! of the ORU's vital signs (`medway_engine::scoring::fhir`): the message goes through the
//! scoring extraction (built-in LOINC/SNOMED/MDC codes, unit normalisation, OBX-11 statuses,
//! OBX-14/OBR-7/MSH-7 times — without an offset read as UTC —, the patient key PID-3.1/PID-3.4)
//! and becomes a Patient (identifier only) plus one Observation per value, sent as
//! `application/fhir+json`. `identifier_systems = { HOSP = "https://hosp.example/mrn" }` names
//! the identifier system of an assigning authority (an OID becomes `urn:oid:…` without it). A
//! message with no usable vital sign, no patient identifier or several patients is errored
//! (permanently, with the reason): it is never posted empty or for a guessed patient.
//!
//! Invariants:
//! - Every request carries `Idempotency-Key: <delivery id>` (stable across retries, restarts and
//!   reprocess of the same delivery), plus `X-Medway-Channel`, `X-Medway-Control-Id` and
//!   `X-Medway-Message-Type` when known.
//! - 2xx → sent. 408, 429 and 5xx → retry later, honouring `Retry-After` (seconds or an HTTP
//!   date, capped at one day). Other statuses (3xx: redirects are never followed; other 4xx) →
//!   errored, with the status as the reason. Connection failures and timeouts → retry later.
//! - TLS is rustls with the ring provider; aws-lc-rs is never linked. No proxy is taken from the
//!   environment.
//!
//! It must never log or record a request or response body, nor the configured headers (they
//! often hold credentials): attempt summaries carry the status line and the elapsed time only.

mod tls;

use async_trait::async_trait;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{DeliveryError, Destination, Response};
use medway_engine::message::Delivery;
use medway_engine::scoring;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use tls::TlsFiles;

/// What an HTTP destination sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Body {
    /// The payload as it is.
    #[default]
    Message,
    /// The FHIR R4 vital-signs Bundle of an ORU.
    FhirVitalsBundle,
}

/// The body options of an HTTP destination. Kept apart from [`HttpSettings`], which the
/// webhook destination builds in code, so they stay an HTTP-destination-only setting.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodySettings {
    /// `body = "message" | "fhir-vitals-bundle"`.
    #[serde(default)]
    pub body: Body,
    /// Assigning authority (PID-3.4) → FHIR identifier system URI.
    #[serde(default)]
    pub identifier_systems: BTreeMap<String, String>,
}

const BODY_KEYS: &[&str] = &["body", "identifier_systems"];

impl BodySettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let mut table = toml::Table::new();
        for key in BODY_KEYS {
            if let Some(value) = spec.settings.get(*key) {
                table.insert((*key).to_string(), value.clone());
            }
        }
        let settings: Self = BodySettings::deserialize(toml::Value::Table(table)).map_err(|e| {
            SettingsError::from_serde(&e).key("body").hint(
                "body = \"message\" (the default) or \"fhir-vitals-bundle\"; \
                 identifier_systems = { AUTHORITY = \"uri\" }",
            )
        })?;
        // The scoring destination's table runs the other way (URI = AUTHORITY): a copied
        // table would silently map nothing, so say so.
        if let Some((authority, _)) = settings
            .identifier_systems
            .iter()
            .find(|(authority, uri)| authority.contains(':') && !uri.contains(':'))
        {
            return Err(SettingsError::new(format!(
                "identifier_systems maps an assigning authority to a system URI, but {authority:?} \
                 looks like a URI"
            ))
            .key("identifier_systems")
            .hint("here: { HOSP = \"urn:oid:…\" }; the scoring destination's table is the other way round"));
        }
        if settings.body == Body::Message && !settings.identifier_systems.is_empty() {
            return Err(SettingsError::new(
                "identifier_systems only applies to body = \"fhir-vitals-bundle\"",
            )
            .key("identifier_systems"));
        }
        Ok(settings)
    }
}

/// `[[destination]] kind = "http"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

fn default_method() -> String {
    "POST".to_string()
}

fn default_content_type() -> String {
    "x-application/hl7-v2+er7".to_string()
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

const METHODS: &[&str] = &["POST", "PUT", "PATCH"];

/// Headers Medway sets itself; a channel file may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "idempotency-key",
    "x-medway-channel",
    "x-medway-control-id",
    "x-medway-message-type",
];

/// The longest `Retry-After` honoured; a peer asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How much of a response body is read (and discarded) so the connection can be reused.
const MAX_DRAIN: usize = 64 * 1024;

impl HttpSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        BodySettings::from_spec(spec)?;
        let mut table = spec.settings.clone();
        for key in BODY_KEYS {
            table.remove(*key);
        }
        let settings = Self::deserialize(toml::Value::Table(table))
            .map_err(|e| SettingsError::from_serde(&e))?;
        settings.validated()
    }

    /// The checks of `from_spec`; also used for settings built in code (the webhook).
    pub(crate) fn validated(mut self) -> Result<Self, SettingsError> {
        let url = Url::parse(&self.url).map_err(|e| {
            SettingsError::new(format!("url is not a valid URL: {e}"))
                .key("url")
                .hint("e.g. url = \"https://results.example.org/api/hl7\"")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SettingsError::new(format!(
                "url scheme {:?} is not http or https",
                url.scheme()
            ))
            .key("url"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SettingsError::new("url must not carry credentials")
                .key("url")
                .hint("put them in `headers = { Authorization = \"…\" }`"));
        }
        self.method = self.method.to_ascii_uppercase();
        if !METHODS.contains(&self.method.as_str()) {
            return Err(SettingsError::new(format!(
                "method {:?} cannot carry a message",
                self.method
            ))
            .key("method")
            .hint(format!("use one of: {}", METHODS.join(", "))));
        }
        HeaderValue::from_str(&self.content_type).map_err(|_| {
            SettingsError::new("content_type is not a valid header value").key("content_type")
        })?;
        for (name, value) in &self.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                SettingsError::new(format!("{name:?} is not a valid header name")).key("headers")
            })?;
            if RESERVED_HEADERS.contains(&parsed.as_str()) {
                return Err(
                    SettingsError::new(format!("header {name:?} is set by Medway"))
                        .key("headers")
                        .hint("use `content_type` for the content type; the others are fixed"),
                );
            }
            // The value is not echoed: headers often hold credentials.
            HeaderValue::from_str(value).map_err(|_| {
                SettingsError::new(format!(
                    "the value of header {name:?} is not a valid header value"
                ))
                .key("headers")
            })?;
        }
        if self.timeout_ms == 0 {
            return Err(SettingsError::new("timeout_ms must be above 0").key("timeout_ms"));
        }
        if self.connect_timeout_ms == 0 {
            return Err(
                SettingsError::new("connect_timeout_ms must be above 0").key("connect_timeout_ms")
            );
        }
        Ok(self)
    }

    fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

/// Sends each delivery as one HTTP request. Cheap to share: one connection pool per destination.
pub struct HttpSender {
    client: reqwest::Client,
    url: Url,
    method: Method,
    /// Configured headers plus the content type.
    headers: HeaderMap,
    timeout: Duration,
    body: BodySettings,
    /// For `body = "fhir-vitals-bundle"`: built once, not per delivery.
    vitals: Option<VitalsMapping>,
}

/// What the ORU → FHIR mapping needs besides the message.
struct VitalsMapping {
    codes: scoring::CodeMap,
    systems: HashMap<String, String>,
}

impl HttpSender {
    /// Builds the client (TLS configuration, connection pool). Fails on unreadable certificate
    /// files, pointing at their key.
    pub fn new(settings: HttpSettings) -> Result<Self, SettingsError> {
        let settings = settings.validated()?;
        let url = Url::parse(&settings.url)
            .map_err(|e| SettingsError::new(format!("url is not a valid URL: {e}")).key("url"))?;
        let method = Method::from_bytes(settings.method.as_bytes())
            .map_err(|_| SettingsError::new("invalid method").key("method"))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SettingsError::new("invalid header name").key("headers"))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| SettingsError::new("invalid header value").key("headers"))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let content_type = HeaderValue::from_str(&settings.content_type)
            .map_err(|_| SettingsError::new("invalid content type").key("content_type"))?;
        headers.insert(CONTENT_TYPE, content_type);
        let tls = tls::client_config(&settings.tls_files(), url.scheme() == "https")?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("medway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SettingsError::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url,
            method,
            headers,
            timeout,
            body: BodySettings::default(),
            vitals: None,
        })
    }

    /// Sends `body` instead of the payload (a FHIR Bundle sets its own content type).
    pub fn with_body(mut self, body: BodySettings) -> Self {
        if body.body == Body::FhirVitalsBundle {
            self.headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/fhir+json"),
            );
        }
        self.vitals = (body.body == Body::FhirVitalsBundle).then(|| VitalsMapping {
            codes: scoring::CodeMap::builtin(),
            systems: body
                .identifier_systems
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
        self.body = body;
        self
    }

    /// The request body for `delivery`.
    fn body_for(&self, delivery: &Delivery) -> Result<bytes::Bytes, DeliveryError> {
        match self.body.body {
            Body::Message => Ok(delivery.payload.clone()),
            Body::FhirVitalsBundle => {
                let message =
                    // The kind's label and offset only: the error's text may quote bytes of
                    // a segment, and this reaches last_error and the logs.
                    medway_hl7::Message::parse(delivery.payload.clone()).map_err(|e| {
                        DeliveryError::never(format!(
                            "fhir-vitals-bundle: not an HL7 v2 message: {} at byte {}",
                            e.kind.label(),
                            e.offset
                        ))
                    })?;
                let Some(vitals) = &self.vitals else {
                    return Err(DeliveryError::never("fhir-vitals-bundle: not configured"));
                };
                let extracted = scoring::extract(
                    &message,
                    &vitals.codes,
                    &scoring::ScoringSettings::default(),
                );
                let bundle = scoring::fhir::vital_signs_bundle(
                    &extracted,
                    &delivery.message_id.to_string(),
                    &vitals.systems,
                )
                .map_err(|e| DeliveryError::never(format!("fhir-vitals-bundle: {e}")))?;
                Ok(bytes::Bytes::from(bundle))
            }
        }
    }

    /// The per-delivery headers, on top of the configured ones.
    fn request_headers(&self, delivery: &Delivery, idempotency_key: HeaderValue) -> HeaderMap {
        let mut headers = self.headers.clone();
        headers.insert(HeaderName::from_static("idempotency-key"), idempotency_key);
        let mut put = |name: &'static str, value: &str| {
            // A value that is not a valid header (control characters) is left out, not sent raw.
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put("x-medway-channel", &delivery.channel);
        if let Some(control_id) = &delivery.control_id {
            put("x-medway-control-id", control_id);
        }
        if let Some(message_type) = &delivery.message_type {
            put("x-medway-message-type", message_type);
        }
        headers
    }

    fn transport_error(&self, error: reqwest::Error) -> DeliveryError {
        let what = if error.is_timeout() {
            format!("timed out after {} ms", self.timeout.as_millis())
        } else if error.is_connect() {
            "cannot connect".to_string()
        } else {
            "request failed".to_string()
        };
        DeliveryError::later(format!(
            "{what}: {} ({})",
            error_chain(&error.without_url()),
            self.url_for_people()
        ))
    }

    /// Scheme, host and port only: paths and queries may carry tokens.
    fn url_for_people(&self) -> String {
        match self.url.port() {
            Some(port) => format!(
                "{}://{}:{port}",
                self.url.scheme(),
                self.url.host_str().unwrap_or("")
            ),
            None => format!(
                "{}://{}",
                self.url.scheme(),
                self.url.host_str().unwrap_or("")
            ),
        }
    }
}

/// An error and its causes on one line ("error sending request: … : Connection refused").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3); `None` if absent or unusable.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = when.duration_since(now);
    if wait.is_negative() {
        return Some(Duration::ZERO);
    }
    Some(Duration::try_from(wait).ok()?.min(MAX_RETRY_AFTER))
}

/// How a status is classified. `None` = sent.
fn classify(status: StatusCode, retry_after: Option<Duration>) -> Option<DeliveryError> {
    let line = status_line(status);
    if status.is_success() {
        None
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        let error = DeliveryError::later(match retry_after {
            Some(wait) => format!("{line}; the peer asked to retry after {}s", wait.as_secs()),
            None => line,
        });
        Some(match retry_after {
            Some(wait) => error.after(wait),
            None => error,
        })
    } else if status.is_redirection() {
        Some(DeliveryError::never(format!(
            "{line}: redirects are not followed; point `url` at the final address"
        )))
    } else {
        Some(DeliveryError::never(format!(
            "{line}: the peer refused the message"
        )))
    }
}

fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

impl HttpSender {
    /// Sends `body` (instead of the payload) for `delivery`, with every rule above: the
    /// configured headers, the per-delivery ones, the status classification and `Retry-After`.
    /// `idempotency_key` is the delivery id unless the caller sends something else in the
    /// delivery's name (a digest of several deliveries). Shared with the webhook destination.
    pub(crate) async fn send_body(
        &self,
        delivery: &Delivery,
        body: bytes::Bytes,
        idempotency_key: &str,
    ) -> Result<Response, DeliveryError> {
        let key = HeaderValue::from_str(idempotency_key)
            .map_err(|_| DeliveryError::never("invalid idempotency key"))?;
        self.request(delivery, body, key).await
    }

    async fn request(
        &self,
        delivery: &Delivery,
        body: bytes::Bytes,
        idempotency_key: HeaderValue,
    ) -> Result<Response, DeliveryError> {
        let started = Instant::now();
        let mut response = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.request_headers(delivery, idempotency_key))
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        // Read (and drop) a bounded amount of the body so the connection goes back to the pool;
        // past the bound the connection is simply closed. The body is never kept or logged.
        let mut drained = 0usize;
        while drained <= MAX_DRAIN {
            match response.chunk().await {
                Ok(Some(chunk)) => drained += chunk.len(),
                Ok(None) => break,
                Err(error) if status.is_success() => {
                    // The peer answered 2xx and then broke the body: it has the message.
                    tracing::debug!(error = %error.without_url(), "response body cut short after 2xx");
                    break;
                }
                Err(error) => return Err(self.transport_error(error)),
            }
        }
        match classify(status, retry_after) {
            None => Ok(Response {
                summary: format!(
                    "{} in {} ms",
                    status_line(status),
                    started.elapsed().as_millis()
                ),
            }),
            Some(error) => Err(error),
        }
    }
}

#[async_trait]
impl Destination for HttpSender {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let body = self.body_for(delivery)?;
        self.request(delivery, body, HeaderValue::from(delivery.id))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medway_engine::connector::Retry;

    fn settings(table: &str) -> Result<HttpSettings, SettingsError> {
        let table: toml::Table = toml::from_str(table).unwrap();
        HttpSettings::from_spec(&ConnectorSpec::inline("http", table))
    }

    #[test]
    fn defaults() {
        let s = settings("url = \"http://127.0.0.1:9/x\"").unwrap();
        assert_eq!(s.method, "POST");
        assert_eq!(s.content_type, "x-application/hl7-v2+er7");
        assert_eq!(s.timeout_ms, 30_000);
    }

    #[test]
    fn settings_errors_name_their_key() {
        let cases = [
            ("url = \"ftp://host/x\"", "url"),
            ("url = \"not a url\"", "url"),
            ("url = \"http://u:p@host/x\"", "url"),
            ("url = \"http://h/\"\nmethod = \"GET\"", "method"),
            ("url = \"http://h/\"\ntimeout_ms = 0", "timeout_ms"),
            (
                "url = \"http://h/\"\nheaders = { \"Idempotency-Key\" = \"x\" }",
                "headers",
            ),
            (
                "url = \"http://h/\"\nheaders = { \"bad name\" = \"x\" }",
                "headers",
            ),
            (
                "url = \"http://h/\"\nheaders = { X-A = \"line\\nbreak\" }",
                "headers",
            ),
            ("url = \"http://h/\"\nbody = \"x\"", "body"),
            (
                "url = \"http://h/\"\nidentifier_systems = { HOSP = \"urn:x\" }",
                "identifier_systems",
            ),
            ("url = \"http://h/\"\nbdoy = \"message\"", "bdoy"),
            (
                "url = \"http://h/\"\nbody = \"fhir-vitals-bundle\"\n\
                 identifier_systems = { \"urn:oid:1.2.3\" = \"HOSP\" }",
                "identifier_systems",
            ),
        ];
        for (text, key) in cases {
            let error = settings(text).unwrap_err();
            assert_eq!(error.key.as_deref(), Some(key), "{text}: {}", error.message);
        }
    }

    #[test]
    fn body_option() {
        let spec = |text: &str| {
            ConnectorSpec::inline("http", toml::from_str::<toml::Table>(text).unwrap())
        };
        let plain = spec("url = \"http://127.0.0.1:9/x\"");
        assert_eq!(BodySettings::from_spec(&plain).unwrap().body, Body::Message);
        let fhir = spec(
            "url = \"http://127.0.0.1:9/x\"\nbody = \"fhir-vitals-bundle\"\n\
             identifier_systems = { HOSP = \"https://hosp.example/mrn\" }",
        );
        HttpSettings::from_spec(&fhir).expect("the body keys are not HTTP settings errors");
        let body = BodySettings::from_spec(&fhir).unwrap();
        assert_eq!(body.body, Body::FhirVitalsBundle);
        assert_eq!(body.identifier_systems["HOSP"], "https://hosp.example/mrn");
    }

    #[test]
    fn a_bad_oru_for_the_fhir_body_errors_without_message_bytes() {
        let spec = ConnectorSpec::inline(
            "http",
            toml::from_str::<toml::Table>(
                "url = \"http://127.0.0.1:9/x\"\nbody = \"fhir-vitals-bundle\"",
            )
            .unwrap(),
        );
        let sender = HttpSender::new(HttpSettings::from_spec(&spec).unwrap())
            .unwrap()
            .with_body(BodySettings::from_spec(&spec).unwrap());
        let delivery = Delivery {
            id: 1,
            message_id: 1,
            channel: "c".into(),
            destination: "d".into(),
            attempts: 0,
            control_id: None,
            message_type: None,
            // The second segment's "name" is patient data: it must not reach last_error.
            payload: bytes::Bytes::from_static(
                b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rSMITHJOHN|x\r",
            ),
            received_at: 0,
            ordering_key: None,
        };
        let error = sender.body_for(&delivery).unwrap_err();
        assert_eq!(error.retry, Retry::Never);
        assert!(
            error.reason.starts_with(
                "fhir-vitals-bundle: not an HL7 v2 message: bad segment name at byte "
            ),
            "{}",
            error.reason
        );
        assert!(!error.reason.contains("SMI"), "{}", error.reason);
    }

    #[test]
    fn header_values_are_not_echoed_in_errors() {
        let error =
            settings("url = \"http://h/\"\nheaders = { Authorization = \"secret\\u0001\" }")
                .unwrap_err();
        assert!(!error.message.contains("secret"), "{}", error.message);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 10:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn statuses_are_classified() {
        assert!(classify(StatusCode::OK, None).is_none());
        assert!(classify(StatusCode::NO_CONTENT, None).is_none());
        for code in [408u16, 429, 500, 502, 503, 504] {
            let e = classify(StatusCode::from_u16(code).unwrap(), None).unwrap();
            assert_eq!(e.retry, Retry::Later, "{code}");
        }
        for code in [301u16, 400, 401, 403, 404, 409, 413, 422] {
            let e = classify(StatusCode::from_u16(code).unwrap(), None).unwrap();
            assert_eq!(e.retry, Retry::Never, "{code}");
            assert!(e.reason.contains(&code.to_string()), "{}", e.reason);
        }
        let e = classify(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(7)),
        )
        .unwrap();
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    }
}
