//! `[[destination]] kind = "email"` settings: parsed and checked once at start-up (addresses,
//! recipient tables, time zone, TLS and credentials), so a send never meets a bad setting.

use crate::destinations::alert::text::time_zone;
use crate::destinations::alert::{Alert, Detail, RateLimit};
use lettre::message::Mailbox;
use medway_engine::config::{ConnectorSpec, SettingsError, closest_kind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `tls = "starttls" | "implicit" | "none"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connect, then `STARTTLS` (required: a server without it is not sent to).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No encryption (a relay on the same host or network segment); no authentication then.
    None,
}

/// `[[destination]] kind = "email"` settings, as written in the channel file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub host: String,
    /// Default: 587 (`starttls`), 465 (`implicit`), 25 (`none`).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file of CA certificates trusted besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (surrounding whitespace ignored); never inline.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `"Medway Alerts <medway@hospital.example>"` or a bare address.
    pub from: String,
    /// Recipients of every alert.
    #[serde(default)]
    pub to: Vec<String>,
    /// Extra recipients by severity: `emergency`, `urgent`, `sepsis`, `info`.
    #[serde(default)]
    pub recipients: BTreeMap<String, Vec<String>>,
    /// Extra recipients by rule (`news2`, `qsofa`, `sirs`, …).
    #[serde(default)]
    pub rule_recipients: BTreeMap<String, Vec<String>>,
    /// Extra recipients by ward (`location.ward`, compared without regard to case).
    #[serde(default)]
    pub ward_recipients: BTreeMap<String, Vec<String>>,
    /// `minimal` (default) or `full`.
    #[serde(default)]
    pub body: Detail,
    /// IANA time zone for the times in the body; default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// The name given in EHLO; default: this host's name.
    #[serde(default)]
    pub hello_name: Option<String>,
    /// TCP connect.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// One whole SMTP exchange (connect, TLS, auth, MAIL/RCPT/DATA).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Per recipient; see `alert::limit`.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// The most alerts one digest lists.
    #[serde(default = "default_digest_max")]
    pub digest_max: usize,
}

fn default_subject_prefix() -> String {
    "[Medway]".to_string()
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_timeout_ms() -> u64 {
    20_000
}
fn default_digest_max() -> usize {
    100
}

/// Upper bound of every `*_ms` setting: ten minutes.
const MAX_MS: u64 = 600_000;

pub const SEVERITIES: &[&str] = &["emergency", "urgent", "sepsis", "info"];

/// The settings checked and turned into typed values.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub by_severity: BTreeMap<String, Vec<Mailbox>>,
    pub by_rule: BTreeMap<String, Vec<Mailbox>>,
    /// Keys lower-cased.
    pub by_ward: BTreeMap<String, Vec<Mailbox>>,
    pub time_zone: jiff::tz::TimeZone,
    pub port: u16,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl EmailSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        settings.resolve()?;
        Ok(settings)
    }

    /// Checks everything and returns the typed values.
    pub fn resolve(&self) -> Result<Resolved, SettingsError> {
        if self.host.trim().is_empty() {
            return Err(SettingsError::new("host must not be empty")
                .key("host")
                .hint("e.g. host = \"smtp.hospital.example\""));
        }
        let from = mailbox(&self.from, "from")?;
        let to = mailboxes(&self.to, "to")?;
        let mut by_severity = BTreeMap::new();
        for (severity, list) in &self.recipients {
            let key = severity.to_ascii_lowercase();
            if !SEVERITIES.contains(&key.as_str()) {
                let error =
                    SettingsError::new(format!("unknown severity {severity:?}")).key("recipients");
                return Err(match closest_kind(&key, SEVERITIES) {
                    Some(best) => error.hint(format!("did you mean {best:?}?")),
                    None => error.hint(format!("severities: {}", SEVERITIES.join(", "))),
                });
            }
            by_severity.insert(key, mailboxes(list, "recipients")?);
        }
        let mut by_rule = BTreeMap::new();
        for (rule, list) in &self.rule_recipients {
            by_rule.insert(
                rule.to_ascii_lowercase(),
                mailboxes(list, "rule_recipients")?,
            );
        }
        let mut by_ward = BTreeMap::new();
        for (ward, list) in &self.ward_recipients {
            by_ward.insert(ward.to_lowercase(), mailboxes(list, "ward_recipients")?);
        }
        let anyone = !to.is_empty()
            || by_severity.values().any(|l: &Vec<Mailbox>| !l.is_empty())
            || by_rule.values().any(|l: &Vec<Mailbox>| !l.is_empty())
            || by_ward.values().any(|l: &Vec<Mailbox>| !l.is_empty());
        if !anyone {
            return Err(SettingsError::new("no recipient configured")
                .key("to")
                .hint("set `to = [\"team@hospital.example\"]` (every alert) and/or `recipients`, `rule_recipients`, `ward_recipients`"));
        }
        match (&self.username, &self.password_file) {
            (Some(user), Some(_)) if user.is_empty() => {
                return Err(SettingsError::new("username must not be empty").key("username"));
            }
            (Some(_), None) => {
                return Err(SettingsError::new("`username` needs `password_file`")
                    .key("username")
                    .hint("put the password in a file readable by medway only"));
            }
            (None, Some(_)) => {
                return Err(
                    SettingsError::new("`password_file` needs `username`").key("password_file")
                );
            }
            _ => {}
        }
        if self.username.is_some() && self.tls == TlsMode::None {
            return Err(SettingsError::new(
                "authentication over an unencrypted connection is refused",
            )
            .key("tls")
            .hint("use tls = \"starttls\" or \"implicit\""));
        }
        if self.ca_file.is_some() && self.tls == TlsMode::None {
            return Err(SettingsError::new("`ca_file` is set but tls = \"none\"").key("ca_file"));
        }
        if let Some(name) = &self.hello_name
            && (name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(
                SettingsError::new("hello_name must be a host name without spaces")
                    .key("hello_name"),
            );
        }
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("timeout_ms", self.timeout_ms),
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
        let port = self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        });
        if port == 0 {
            return Err(SettingsError::new("port must not be 0").key("port"));
        }
        Ok(Resolved {
            from,
            to,
            by_severity,
            by_rule,
            by_ward,
            time_zone: time_zone(self.time_zone.as_deref())?,
            port,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

fn mailbox(text: &str, key: &str) -> Result<Mailbox, SettingsError> {
    text.trim().parse::<Mailbox>().map_err(|e| {
        SettingsError::new(format!("{text:?} is not an email address: {e}"))
            .key(key)
            .hint("e.g. \"ward7@hospital.example\" or \"Ward 7 <ward7@hospital.example>\"")
    })
}

fn mailboxes(list: &[String], key: &str) -> Result<Vec<Mailbox>, SettingsError> {
    list.iter().map(|text| mailbox(text, key)).collect()
}

impl Resolved {
    /// Everyone an alert goes to: `to`, plus its severity's, rule's and ward's lists; each
    /// address once (compared without regard to case), in that order.
    pub fn recipients(&self, alert: &Alert) -> Vec<Mailbox> {
        let mut out: Vec<Mailbox> = Vec::new();
        let mut add = |list: Option<&Vec<Mailbox>>| {
            for mailbox in list.into_iter().flatten() {
                let key = recipient_key(mailbox);
                if !out.iter().any(|m| recipient_key(m) == key) {
                    out.push(mailbox.clone());
                }
            }
        };
        add(Some(&self.to));
        add(self
            .by_severity
            .get(&alert.doc.severity.to_ascii_lowercase()));
        add(self.by_rule.get(&alert.doc.rule.to_ascii_lowercase()));
        if let Some(ward) = alert.ward() {
            add(self.by_ward.get(&ward.to_lowercase()));
        }
        out
    }
}

/// The rate-limit and bookkeeping key of a recipient: the address, lower-cased.
pub fn recipient_key(mailbox: &Mailbox) -> String {
    mailbox.email.to_string().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::alert::parse;

    fn settings(text: &str) -> Result<EmailSettings, SettingsError> {
        let table: toml::Table = toml::from_str(text).unwrap();
        EmailSettings::from_spec(&ConnectorSpec::inline("email", table))
    }

    const BASE: &str = "host = \"smtp.example\"\nfrom = \"Medway <medway@example.org>\"\n";

    #[test]
    fn defaults() {
        let s = settings(&format!("{BASE}to = [\"a@example.org\"]")).unwrap();
        let r = s.resolve().unwrap();
        assert_eq!(s.tls, TlsMode::Starttls);
        assert_eq!(r.port, 587);
        assert_eq!(s.body, Detail::Minimal);
        assert_eq!(s.rate_limit, RateLimit::default());
        assert_eq!(r.timeout, Duration::from_secs(20));
        let implicit = settings(&format!(
            "{BASE}to = [\"a@example.org\"]\ntls = \"implicit\""
        ));
        assert_eq!(implicit.unwrap().resolve().unwrap().port, 465);
    }

    #[test]
    fn settings_errors_name_their_key() {
        let cases = [
            ("to = [\"not an address\"]", "to"),
            ("", "to"),
            (
                "to = [\"a@x.org\"]\nrecipients = { emergncy = [\"b@x.org\"] }",
                "recipients",
            ),
            (
                "to = [\"a@x.org\"]\nward_recipients = { W7 = [\"@@\"] }",
                "ward_recipients",
            ),
            ("to = [\"a@x.org\"]\nusername = \"u\"", "username"),
            (
                "to = [\"a@x.org\"]\npassword_file = \"/p\"",
                "password_file",
            ),
            (
                "to = [\"a@x.org\"]\nusername = \"u\"\npassword_file = \"/p\"\ntls = \"none\"",
                "tls",
            ),
            ("to = [\"a@x.org\"]\ntimeout_ms = 0", "timeout_ms"),
            (
                "to = [\"a@x.org\"]\ntime_zone = \"Nowhere/Land\"",
                "time_zone",
            ),
            (
                "to = [\"a@x.org\"]\nrate_limit = { per_minute = 6, burst = 0 }",
                "rate_limit",
            ),
            ("to = [\"a@x.org\"]\nhello_name = \"a b\"", "hello_name"),
            ("to = [\"a@x.org\"]\npassword = \"secret\"", "password"),
            ("to = [\"a@x.org\"]\nbody = \"everything\"", "body"),
        ];
        for (text, key) in cases {
            let error = settings(&format!("{BASE}{text}")).unwrap_err();
            // Serde's own errors (a bad enum value) name the key in the message.
            assert!(
                error.key.as_deref() == Some(key) || error.message.contains(&format!("`{key}`")),
                "{text}: {:?} {}",
                error.key,
                error.message
            );
        }
        let error = settings(&format!(
            "{BASE}to = [\"a@x.org\"]\nrecipients = {{ emergncy = [] }}"
        ))
        .unwrap_err();
        assert!(error.hint.unwrap_or_default().contains("emergency"));
    }

    #[test]
    fn recipients_by_severity_rule_and_ward() {
        let s = settings(&format!(
            "{BASE}to = [\"all@x.org\"]
recipients = {{ emergency = [\"crash@x.org\", \"ALL@x.org\"] }}
rule_recipients = {{ qsofa = [\"sepsis@x.org\"] }}
ward_recipients = {{ ward7 = [\"w7@x.org\"] }}"
        ))
        .unwrap();
        let r = s.resolve().unwrap();
        let alert = |json: &str| Alert::new(parse(json.as_bytes()).unwrap());
        let emails = |list: Vec<Mailbox>| -> Vec<String> {
            list.iter().map(|m| m.email.to_string()).collect()
        };
        let a = alert(
            r#"{"alert_id":1,"severity":"emergency","rule":"news2","location":{"ward":"WARD7"}}"#,
        );
        assert_eq!(
            emails(r.recipients(&a)),
            ["all@x.org", "crash@x.org", "w7@x.org"]
        );
        let b = alert(r#"{"alert_id":2,"severity":"sepsis","rule":"qsofa"}"#);
        assert_eq!(emails(r.recipients(&b)), ["all@x.org", "sepsis@x.org"]);
    }
}
