//! `[[destination]] kind = "rabbitmq"` settings: parsed, checked and resolved once at start-up.

use super::template::{PLACEHOLDERS, Template};
use lapin::uri::AMQPUri;
use medway_engine::config::{ConnectorSpec, SettingsError};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable read when neither `url`, `url_file` nor `url_env` is set.
pub const DEFAULT_URL_ENV: &str = "MEDWAY_AMQP_URL";

/// `[[destination]] kind = "rabbitmq"` settings, as written in the channel file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// `amqp://user:password@host:5672/vhost` (or `amqps://`). Prefer `url_file` or `url_env`
    /// to keep the password out of the channel file.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the URL (surrounding whitespace ignored), e.g. a mounted secret.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The name of an environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Exchange template; `""` is the default exchange (routing key = queue name).
    #[serde(default)]
    pub exchange: String,
    /// Routing key template.
    pub routing_key: String,
    /// Publish with `mandatory`: an unroutable message is returned and the send is retried.
    #[serde(default = "yes")]
    pub mandatory: bool,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Optional topology declared (durable, idempotently) on every connect.
    #[serde(default)]
    pub declare: Option<DeclareSettings>,
    /// TCP + AMQP handshake + channel + confirm mode + declarations.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Publish and wait for the broker's confirm.
    #[serde(default = "default_publish_timeout")]
    pub publish_timeout_ms: u64,
    /// First delay before reconnecting after a failure; doubles up to `reconnect_max_ms`.
    #[serde(default = "default_reconnect_initial")]
    pub reconnect_initial_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Heartbeat asked of the broker (seconds) unless the URL says `?heartbeat=`; 0 disables.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u16,
    /// Resolved from `url`, `url_file` or the environment by `from_spec`.
    #[serde(skip)]
    pub(crate) uri: Option<AMQPUri>,
    #[serde(skip)]
    pub(crate) exchange_template: Option<Template>,
    #[serde(skip)]
    pub(crate) routing_key_template: Option<Template>,
}

/// `declare = { exchange_type = "topic", queue = "medway.oru", binding_key = "ORU.#" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclareSettings {
    /// Declare `exchange` (which must then have no placeholder) as a durable exchange of this
    /// type: `direct`, `fanout`, `topic` or `headers`.
    #[serde(default)]
    pub exchange_type: Option<String>,
    /// Declare this durable queue, and bind it to `exchange` unless that is the default one.
    #[serde(default)]
    pub queue: Option<String>,
    /// The binding key; defaults to `routing_key` when it has no placeholder.
    #[serde(default)]
    pub binding_key: Option<String>,
}

/// Upper bound of every `*_ms` setting: one hour.
const MAX_MS: u64 = 3_600_000;

const EXCHANGE_TYPES: &[&str] = &["direct", "fanout", "topic", "headers"];

fn yes() -> bool {
    true
}
fn default_content_type() -> String {
    "x-application/hl7-v2+er7".into()
}
fn default_connect_timeout() -> u64 {
    5_000
}
fn default_publish_timeout() -> u64 {
    10_000
}
fn default_reconnect_initial() -> u64 {
    100
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_heartbeat() -> u16 {
    15
}

impl RabbitMqSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        settings.resolve(|name| std::env::var(name).ok())
    }

    /// Checks the settings and resolves the URL; `env` reads an environment variable.
    pub fn resolve(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let url = self.read_url(env)?;
        let url = url.trim();
        let mut uri: AMQPUri = url.parse().map_err(|e: String| {
            // The parser's message may quote the URL, password included.
            SettingsError::new(format!("not an AMQP URL: {}", e.replace(url, "<url>")))
                .key(self.url_key())
                .hint("e.g. amqp://user:password@127.0.0.1:5672/%2f")
        })?;
        // amq-protocol-uri reads only domain names and silently turns an IP address into
        // "localhost": put the address back.
        if let Some(ip) = ip_host(url) {
            uri.authority.host = ip;
        }
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(self.heartbeat_secs);
        }
        self.uri = Some(uri);

        let exchange = parse_template(&self.exchange, "exchange")?;
        let routing_key = parse_template(&self.routing_key, "routing_key")?;
        for (template, key) in [(&exchange, "exchange"), (&routing_key, "routing_key")] {
            if template.literal().is_some_and(|l| l.len() > 255) {
                return Err(SettingsError::new(format!("{key} is longer than 255 bytes")).key(key));
            }
        }
        for (value, key) in [
            (self.connect_timeout_ms, "connect_timeout_ms"),
            (self.publish_timeout_ms, "publish_timeout_ms"),
            (self.reconnect_initial_ms, "reconnect_initial_ms"),
            (self.reconnect_max_ms, "reconnect_max_ms"),
        ] {
            if value == 0 || value > MAX_MS {
                return Err(SettingsError::new(format!(
                    "{key} must be between 1 and {MAX_MS} (one hour)"
                ))
                .key(key));
            }
        }
        if self.reconnect_max_ms < self.reconnect_initial_ms {
            return Err(SettingsError::new(
                "reconnect_max_ms must be at least reconnect_initial_ms",
            )
            .key("reconnect_max_ms"));
        }
        if let Some(declare) = &mut self.declare {
            check_declare(declare, &exchange, &routing_key)?;
        }
        self.exchange_template = Some(exchange);
        self.routing_key_template = Some(routing_key);
        Ok(self)
    }

    fn url_key(&self) -> &'static str {
        if self.url.is_some() {
            "url"
        } else if self.url_file.is_some() {
            "url_file"
        } else {
            "url_env"
        }
    }

    fn read_url(&self, env: impl Fn(&str) -> Option<String>) -> Result<String, SettingsError> {
        let given = [
            self.url.is_some(),
            self.url_file.is_some(),
            self.url_env.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(
                SettingsError::new("set only one of url, url_file and url_env").key(self.url_key()),
            );
        }
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        if let Some(path) = &self.url_file {
            return std::fs::read_to_string(path).map_err(|e| {
                SettingsError::new(format!("cannot read url_file {}: {e}", path.display()))
                    .key("url_file")
            });
        }
        let name = self.url_env.as_deref().unwrap_or(DEFAULT_URL_ENV);
        env(name).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            SettingsError::new(format!("no broker URL: environment variable {name} is not set"))
                .key(if self.url_env.is_some() { "url_env" } else { "kind" })
                .hint("set url = \"amqp://…\", url_file = \"/run/secrets/amqp-url\", url_env = \"VAR\", or the MEDWAY_AMQP_URL environment variable")
        })
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub(crate) fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    /// `host:port/vhost`, for logs and reasons: never the credentials.
    pub fn endpoint(&self) -> String {
        match &self.uri {
            Some(uri) => format!(
                "{}:{}/{}",
                uri.authority.host, uri.authority.port, uri.vhost
            ),
            None => "(unresolved)".into(),
        }
    }
}

/// The host of `url` when it is an IP address (IPv6 without its brackets).
fn ip_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        let (ip, _) = v6.split_once(']')?;
        return ip
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|_| ip.to_string());
    }
    let host = host_port.split(':').next()?;
    host.parse::<std::net::Ipv4Addr>()
        .ok()
        .map(|_| host.to_string())
}

fn parse_template(text: &str, key: &str) -> Result<Template, SettingsError> {
    Template::parse(text).map_err(|e| {
        SettingsError::new(format!("bad {key} template: {e}"))
            .key(key)
            .hint(format!(
                "placeholders: {}, or an HL7 path such as {{PID-3.4}}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
    })
}

fn check_declare(
    declare: &mut DeclareSettings,
    exchange: &Template,
    routing_key: &Template,
) -> Result<(), SettingsError> {
    let literal_exchange = exchange.literal();
    if let Some(kind) = &declare.exchange_type {
        if !EXCHANGE_TYPES.contains(&kind.as_str()) {
            return Err(
                SettingsError::new(format!("unknown exchange type {kind:?}"))
                    .key("declare")
                    .hint(format!("one of: {}", EXCHANGE_TYPES.join(", "))),
            );
        }
        match literal_exchange {
            None => {
                return Err(SettingsError::new(
                    "cannot declare an exchange whose name has placeholders",
                )
                .key("declare")
                .hint("declare it once by hand, or use a fixed exchange name"));
            }
            Some("") => {
                return Err(SettingsError::new(
                    "the default exchange (exchange = \"\") cannot be declared",
                )
                .key("declare")
                .hint("remove exchange_type, or name an exchange"));
            }
            Some(_) => {}
        }
    }
    if let Some(queue) = &declare.queue {
        if queue.is_empty() || queue.len() > 255 {
            return Err(SettingsError::new("declare.queue must be 1 to 255 bytes").key("declare"));
        }
        let binds = literal_exchange.is_some_and(|e| !e.is_empty());
        if literal_exchange.is_none() {
            return Err(SettingsError::new(
                "cannot bind a queue to an exchange whose name has placeholders",
            )
            .key("declare"));
        }
        if binds && declare.binding_key.is_none() {
            if declare.exchange_type.as_deref() == Some("fanout") {
                declare.binding_key = Some(String::new());
            } else if let Some(key) = routing_key.literal() {
                declare.binding_key = Some(key.to_string());
            } else {
                return Err(SettingsError::new(
                    "declare.binding_key is needed when routing_key has placeholders",
                )
                .key("declare")
                .hint("e.g. binding_key = \"#\" on a topic exchange"));
            }
        }
    } else if declare.binding_key.is_some() {
        return Err(SettingsError::new("declare.binding_key needs declare.queue").key("declare"));
    }
    Ok(())
}

impl fmt::Debug for RabbitMqSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitMqSettings")
            .field("endpoint", &self.endpoint())
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("mandatory", &self.mandatory)
            .field("content_type", &self.content_type)
            .field("declare", &self.declare)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("publish_timeout_ms", &self.publish_timeout_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_text: &str) -> Result<RabbitMqSettings, SettingsError> {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        let spec = ConnectorSpec::inline("rabbitmq", table);
        let parsed: RabbitMqSettings = spec.parse()?;
        parsed.resolve(|name| (name == "AMQP_TEST").then(|| "amqp://u:secret@h:5673/v".into()))
    }

    #[test]
    fn defaults_and_redaction() {
        let s = settings(
            "url = \"amqp://guest:hunter2@127.0.0.1:5672/%2f\"\nrouting_key = \"hl7.{type}\"",
        )
        .unwrap();
        assert!(s.mandatory);
        assert_eq!(s.content_type, "x-application/hl7-v2+er7");
        assert_eq!(s.endpoint(), "127.0.0.1:5672//");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.uri.as_ref().unwrap().query.heartbeat, Some(15));
    }

    #[test]
    fn ip_hosts_are_kept() {
        assert_eq!(
            ip_host("amqp://u:p@10.1.2.3:5672/%2f").as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(ip_host("amqps://[::1]:5671").as_deref(), Some("::1"));
        assert_eq!(ip_host("amqp://broker.example:5672"), None);
        let s = settings("url = \"amqp://u:p@10.1.2.3/v\"\nrouting_key = \"k\"").unwrap();
        assert_eq!(s.endpoint(), "10.1.2.3:5672/v");
    }

    #[test]
    fn url_sources() {
        let s = settings("url_env = \"AMQP_TEST\"\nrouting_key = \"k\"").unwrap();
        assert_eq!(s.endpoint(), "h:5673/v");
        let e = settings("routing_key = \"k\"").unwrap_err();
        assert!(e.message.contains("MEDWAY_AMQP_URL"), "{}", e.message);
        let e = settings("url = \"amqp://h\"\nurl_env = \"AMQP_TEST\"\nrouting_key = \"k\"")
            .unwrap_err();
        assert!(e.message.contains("only one"));
        let e = settings("url = \"http://h\"\nrouting_key = \"k\"").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("url"));
    }

    #[test]
    fn semantic_checks() {
        let base = "url = \"amqp://h\"\n";
        let e = settings(&format!("{base}routing_key = \"{{nope}}\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("routing_key"));
        let e = settings(&format!("{base}routing_key = \"k\"\nexchange = \"x.{{channel}}\"\ndeclare = {{ exchange_type = \"topic\" }}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("declare"));
        let e = settings(&format!("{base}routing_key = \"k.{{type}}\"\nexchange = \"x\"\ndeclare = {{ exchange_type = \"topic\", queue = \"q\" }}")).unwrap_err();
        assert!(e.message.contains("binding_key"));
        let s = settings(&format!("{base}routing_key = \"k\"\nexchange = \"x\"\ndeclare = {{ exchange_type = \"direct\", queue = \"q\" }}")).unwrap();
        assert_eq!(s.declare.unwrap().binding_key.as_deref(), Some("k"));
        let e = settings(&format!("{base}routing_key = \"k\"\nexchnage = \"x\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("exchnage"));
        let e = settings(&format!(
            "{base}routing_key = \"k\"\npublish_timeout_ms = 0"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("publish_timeout_ms"));
        let e = settings(&format!(
            "{base}routing_key = \"k\"\nreconnect_max_ms = 3600001"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("reconnect_max_ms"));
    }
}
