//! `WebhookSender`: the webhook destination for alerts. Each delivery's payload is an alert
//! document (`alert.rs`); it is POSTed as a Slack-compatible message or as the JSON document.
//!
//! ```toml
//! [[destination]]
//! name = "alert-slack"
//! kind = "webhook"
//! url_file = "/run/secrets/slack-webhook-url"  # or url = "https://hooks.slack.com/services/…"
//! format = "slack"                             # slack (default) | json
//! detail = "minimal"                           # minimal (default) | full
//! time_zone = "Europe/London"                  # times in Slack messages; default UTC
//! headers = { Authorization = "Bearer …" }     # optional, sent as given, never logged
//! timeout_ms = 10000                           # whole request, default 10 s
//! connect_timeout_ms = 5000                    # default 5 s
//! ca_file = "/etc/medway/hooks-ca.pem"         # optional, trusted besides the system's roots
//! client_cert = "/etc/medway/medway.pem"       # optional mutual TLS (with client_key)
//! client_key = "/etc/medway/medway.key"
//! rate_limit = { per_minute = 6, burst = 6 }   # for this URL (the default); per_minute = 0: off
//! digest_max = 20                              # alerts listed in one digest at most
//! ```
//!
//! Bodies (`Content-Type: application/json`):
//! - `format = "slack"`: `{"text": …, "blocks": [header, section with fields (score, location,
//!   observed, status, alert number/link; with `full`, patient and name), with `full` sections
//!   "Why" and "Score inputs", a context line (rule, raised time, alert number)]}`. `text` — the
//!   line a phone shows in its notification — is `EMERGENCY: NEWS2 7 (high) — WARD7 12/A`:
//!   **never the patient's name or identifier**, whatever `detail` says.
//! - `format = "json"`: the alert document (for Teams workflows, PagerDuty-style and n8n
//!   receivers). `full` forwards it exactly as received (fields unknown to Medway included);
//!   `minimal` keeps only the known fields that say nothing about the patient (`alert_id`,
//!   `kind`, `rule`, `severity`, `state`, `escalated_from`, `title`, `location`, `scores`,
//!   `observed_at`, `raised_at`, `link`), with each score reduced to `total`, `band` and
//!   `complete` (the score set's own patient key is dropped).
//!
//! Sending follows the HTTP sender's rules, with its code (`http.rs`): `Idempotency-Key` = the
//! delivery id; 2xx → sent; 408, 429 and 5xx → retried, honouring `Retry-After`; other 4xx and
//! 3xx → errored; connection failures and timeouts → retried; rustls on ring; no proxy from
//! the environment. The URL (often a secret token) is never logged: reasons name its scheme,
//! host and port only.
//!
//! Rate limit: see `alert::limit` — the URL is the recipient. Over-limit alerts are held
//! (`Retry::Later` with `retry_after`) and POSTed as one digest when the limit allows again:
//! Slack `{"text": "14 alerts in the last 10 s (highest: EMERGENCY)", "blocks": [header, one
//! line per alert, context]}`, or JSON `{"digest": true, "count": 14, "text": …, "alerts":
//! [documents]}`, with `Idempotency-Key: digest-<first delivery id>-<unix ms>`. A held delivery
//! is reported sent (`in digest …`) only after that digest got its 2xx.

mod render;

use crate::destinations::alert::limit::{Outcome, Plan};
use crate::destinations::alert::text::time_zone;
use crate::destinations::alert::{Alert, Detail, RateLimit, RecipientLimiter};
use crate::destinations::http::{HttpSender, HttpSettings};
use async_trait::async_trait;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{DeliveryError, Destination, Response};
use medway_engine::message::Delivery;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use render::{json_alert, slack_alert};

/// `format = "slack" | "json"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Slack,
    Json,
}

/// `[[destination]] kind = "webhook"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the URL (surrounding whitespace ignored), e.g. a mounted secret.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub detail: Detail,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    #[serde(default)]
    pub rate_limit: RateLimit,
    #[serde(default = "default_digest_max")]
    pub digest_max: usize,
    /// The URL, from `url` or `url_file`, resolved by `from_spec`.
    #[serde(skip)]
    resolved_url: Option<String>,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_digest_max() -> usize {
    20
}

/// Upper bound of every `*_ms` setting: ten minutes.
const MAX_MS: u64 = 600_000;

/// The rate-limit key: one URL per destination.
const RECIPIENT: &str = "webhook";

impl WebhookSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        settings.resolve()
    }

    /// Reads `url_file` and checks everything the HTTP sender does not.
    pub fn resolve(mut self) -> Result<Self, SettingsError> {
        let url = match (&self.url, &self.url_file) {
            (Some(url), None) => url.trim().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    SettingsError::new(format!("cannot read {}: {e}", path.display()))
                        .key("url_file")
                })?
                .trim()
                .to_string(),
            (Some(_), Some(_)) => {
                return Err(SettingsError::new("set `url` or `url_file`, not both").key("url_file"));
            }
            (None, None) => {
                return Err(SettingsError::new("the webhook needs a URL")
                    .key("url")
                    .hint("url_file = \"/run/secrets/webhook-url\" (keeps the token out of the channel file) or url = \"https://…\""));
            }
        };
        if url.is_empty() {
            return Err(SettingsError::new("the webhook URL is empty").key(self.url_key()));
        }
        for (key, value) in [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
        ] {
            if value == 0 || value > MAX_MS {
                return Err(
                    SettingsError::new(format!("{key} must be between 1 and {MAX_MS}")).key(key),
                );
            }
        }
        if self.digest_max < 2 {
            return Err(SettingsError::new("digest_max must be at least 2").key("digest_max"));
        }
        self.rate_limit.validate()?;
        time_zone(self.time_zone.as_deref())?;
        self.resolved_url = Some(url);
        // The HTTP sender's own checks (scheme, credentials in the URL, headers).
        self.http_settings()?;
        Ok(self)
    }

    fn url_key(&self) -> &'static str {
        if self.url_file.is_some() {
            "url_file"
        } else {
            "url"
        }
    }

    /// The HTTP sender's settings for this webhook.
    fn http_settings(&self) -> Result<HttpSettings, SettingsError> {
        let Some(url) = self.resolved_url.clone() else {
            return Err(SettingsError::new("the webhook URL was not resolved").key("url"));
        };
        let settings = HttpSettings {
            url,
            method: "POST".to_string(),
            headers: self.headers.clone(),
            content_type: "application/json".to_string(),
            timeout_ms: self.timeout_ms,
            connect_timeout_ms: self.connect_timeout_ms,
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        // The HTTP sender's errors never echo the URL; point those about it at its key.
        let key = self.url_key();
        settings.validated().map_err(|mut e| {
            if e.key.as_deref() == Some("url") {
                e.key = Some(key.to_string());
            }
            e
        })
    }
}

/// POSTs each alert delivery to one webhook URL.
pub struct WebhookSender {
    format: Format,
    detail: Detail,
    zone: jiff::tz::TimeZone,
    http: HttpSender,
    limiter: RecipientLimiter,
}

impl WebhookSender {
    /// Builds the HTTP client (TLS configuration, connection pool).
    pub fn new(settings: WebhookSettings) -> Result<Self, SettingsError> {
        let settings = if settings.resolved_url.is_some() {
            settings
        } else {
            settings.resolve()?
        };
        let http = HttpSender::new(settings.http_settings()?)?;
        Ok(Self {
            format: settings.format,
            detail: settings.detail,
            zone: time_zone(settings.time_zone.as_deref())?,
            http,
            limiter: RecipientLimiter::new(settings.rate_limit, settings.digest_max),
        })
    }

    fn body(&self, alert: &Alert) -> bytes::Bytes {
        let value = match self.format {
            Format::Slack => render::slack_alert(alert, self.detail, &self.zone),
            Format::Json => {
                if self.detail == Detail::Full
                    && let Some(payload) = &alert.payload
                {
                    // Exactly as received.
                    return payload.clone();
                }
                render::json_alert(alert, self.detail)
            }
        };
        bytes::Bytes::from(value.to_string())
    }

    fn digest_body(&self, alerts: &[(i64, Alert)], over: Duration) -> bytes::Bytes {
        let value = match self.format {
            Format::Slack => render::slack_digest(alerts, over, self.detail, &self.zone),
            Format::Json => render::json_digest(alerts, over, self.detail),
        };
        bytes::Bytes::from(value.to_string())
    }
}

#[async_trait]
impl Destination for WebhookSender {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let alert = Alert::from_payload(&delivery.payload).map_err(DeliveryError::never)?;
        match self.limiter.plan(delivery.id, RECIPIENT, &alert) {
            Plan::Done(outcome) => {
                self.limiter.finished(delivery.id);
                match outcome {
                    Outcome::Sent(how) => Ok(Response {
                        summary: format!("{how} (alert #{})", alert.id()),
                    }),
                    Outcome::Refused(why) => Err(DeliveryError::never(why)),
                }
            }
            Plan::Single => {
                self.http
                    .send_body(delivery, self.body(&alert), &delivery.id.to_string())
                    .await
            }
            Plan::Digest(claim) => {
                let first = claim.alerts.first().map_or(delivery.id, |(id, _)| *id);
                let last = claim.alerts.last().map_or(delivery.id, |(id, _)| *id);
                let count = claim.alerts.len();
                // From the alerts it carries, not the clock: the same digest sent again after a
                // lost answer has the same key, so the receiver can drop the repeat.
                let key = format!("digest-{first}-{last}-{count}");
                let body = self.digest_body(&claim.alerts, claim.since.elapsed());
                match self.http.send_body(delivery, body, &key).await {
                    Ok(response) => {
                        tracing::info!(alerts = count, "alert digest posted to the webhook");
                        self.limiter.digest_sent(claim, &key);
                        self.limiter.finished(delivery.id);
                        Ok(Response {
                            summary: format!(
                                "{}; a digest of {count} alerts ({key})",
                                response.summary
                            ),
                        })
                    }
                    Err(error) => {
                        self.limiter.digest_failed(claim);
                        Err(error)
                    }
                }
            }
            Plan::Held { wait, waiting } => Err(DeliveryError::later(format!(
                "rate limit: held for a digest to the webhook ({waiting} waiting, next in {} ms)",
                wait.as_millis()
            ))
            .after(wait)),
            Plan::InFlight => Err(
                DeliveryError::later("in a digest being sent to the webhook")
                    .after(Duration::from_secs(1)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<WebhookSettings, SettingsError> {
        let table: toml::Table = toml::from_str(text).unwrap();
        WebhookSettings::from_spec(&ConnectorSpec::inline("webhook", table))
    }

    #[test]
    fn defaults() {
        let s = settings("url = \"https://hooks.example/services/T/B/secret\"").unwrap();
        assert_eq!(s.format, Format::Slack);
        assert_eq!(s.detail, Detail::Minimal);
        assert_eq!(s.timeout_ms, 10_000);
        assert_eq!(s.rate_limit, RateLimit::default());
        assert!(WebhookSender::new(s).is_ok());
    }

    #[test]
    fn settings_errors_name_their_key_and_never_echo_the_url() {
        let cases = [
            ("", "url"),
            ("url = \"ftp://h/x\"", "url"),
            ("url = \"not a url secret-token\"", "url"),
            ("url = \"https://u:p@h/x\"", "url"),
            ("url = \"https://h/x\"\nurl_file = \"/x\"", "url_file"),
            ("url_file = \"/nonexistent/url\"", "url_file"),
            ("url = \"https://h/x\"\nformat = \"teams\"", "format"),
            ("url = \"https://h/x\"\ndetail = \"all\"", "detail"),
            ("url = \"https://h/x\"\ntimeout_ms = 0", "timeout_ms"),
            ("url = \"https://h/x\"\ndigest_max = 1", "digest_max"),
            (
                "url = \"https://h/x\"\nheaders = { \"Idempotency-Key\" = \"x\" }",
                "headers",
            ),
            ("url = \"https://h/x\"\nmethod = \"PUT\"", "method"),
        ];
        for (text, key) in cases {
            let error = settings(text).unwrap_err();
            // Serde's own errors (a bad enum value) name the key in the message.
            assert!(
                error.key.as_deref() == Some(key) || error.message.contains(&format!("`{key}`")),
                "{text}: {:?} {}",
                error.key,
                error.message
            );
            assert!(!error.message.contains("secret-token"), "{}", error.message);
        }
    }

    #[test]
    fn url_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "  https://hooks.example/T/B/x \n").unwrap();
        let s = settings(&format!("url_file = {:?}", path.display().to_string())).unwrap();
        assert_eq!(
            s.resolved_url.as_deref(),
            Some("https://hooks.example/T/B/x")
        );
    }
}
