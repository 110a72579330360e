//! Channel files: `channels/NAME.toml`, one channel each.
//!
//! ```toml
//! description = "ORU vitals from the ICU monitors"
//! [source]
//! kind = "mllp"
//! listen = "127.0.0.1:2575"
//! [[step]]
//! kind = "validate"
//! required = ["PID-3"]
//! [[destination]]
//! name = "archive"
//! kind = "file"
//! directory = "data/out/vitals"
//! ```
//! The engine reads the channel-level keys; `[source]` and each `[[destination]]` keep their
//! connector settings as raw TOML for the connector to check. Positions are kept so that every
//! error can name `file:line:col`.

use super::error::{ConfigError, SettingsError, closest, line_col};
use super::steps::{DestinationSteps, StepConfig, StepFile, script_ref};
use super::tests_file::{ChannelTest, TestFile};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// A validated channel definition.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub file: PathBuf,
    pub source: ConnectorSpec,
    pub accept_versions: Vec<String>,
    pub processing_ids: Vec<String>,
    pub steps: Vec<StepConfig>,
    pub destinations: Vec<DestinationConfig>,
    pub tests: Vec<ChannelTest>,
    /// The file's text, kept so that a reload can tell whether the channel changed.
    pub text: Arc<str>,
}

/// A connector's kind and its own settings, with where they stand in the file.
#[derive(Debug, Clone)]
pub struct ConnectorSpec {
    pub kind: String,
    pub settings: toml::Table,
    pub file: PathBuf,
    span: Range<usize>,
    text: Arc<str>,
}

impl ConnectorSpec {
    /// Deserializes the settings into a connector's own `deny_unknown_fields` struct.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, SettingsError> {
        T::deserialize(toml::Value::Table(self.settings.clone()))
            .map_err(|e| SettingsError::from_serde(&e))
    }

    /// Locates a connector's complaint in the file: at its key when known, else at the table.
    pub fn locate(&self, error: SettingsError) -> ConfigError {
        // A table's span may cover only its `[header]`: search on to the next header.
        let rest = self.text.get(self.span.start..).unwrap_or("");
        let end = rest
            .match_indices("\n[")
            .map(|(i, _)| i)
            .find(|&i| i >= self.span.end - self.span.start)
            .unwrap_or(rest.len());
        let table_text = &rest[..end];
        let offset = error
            .key
            .as_deref()
            .and_then(|key| find_key(table_text, key))
            .map_or(self.span.start, |p| self.span.start + p);
        let (line, col) = line_col(&self.text, offset);
        let mut out = ConfigError::new(&self.file, line, col, error.message);
        out.hint = error.hint;
        out
    }

    /// A spec built in code (tests, `medway send`), with no file behind it.
    pub fn inline(kind: &str, settings: toml::Table) -> Self {
        Self {
            kind: kind.to_string(),
            settings,
            file: PathBuf::from("<inline>"),
            span: 0..0,
            text: Arc::from(""),
        }
    }
}

/// The byte offset of `key = ` at the start of a line in `table_text`.
fn find_key(table_text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in table_text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    None
}

/// One destination of a channel.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    pub name: String,
    pub spec: ConnectorSpec,
    pub retry: RetryPolicy,
    pub steps: DestinationSteps,
    /// An HL7 path (e.g. `PID-3.1`): deliveries with the same value are sent in order, and a
    /// waiting one holds back only its own key. Without it the destination is strictly FIFO.
    pub ordering_key: Option<String>,
    /// How many keys (or, with `ordered = false`, deliveries) are sent at the same time.
    pub max_in_flight: u32,
    /// `false` drops ordering altogether (only with no `ordering_key`).
    pub ordered: bool,
}

/// How a destination retries: exponential backoff with jitter, up to an attempt limit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    pub initial_delay_ms: u64,
    pub multiplier: f64,
    pub max_delay_ms: u64,
    /// Fraction of the delay added or removed at random (0.2 = ±20 %).
    pub jitter: f64,
    /// After this many failed attempts the delivery is `errored`.
    pub max_attempts: u32,
    /// A delivery whose message is older than this is `errored` at its next failure.
    pub max_age_secs: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_delay_ms: 500,
            multiplier: 2.0,
            max_delay_ms: 300_000,
            jitter: 0.2,
            max_attempts: 20,
            max_age_secs: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelFile {
    name: Option<String>,
    description: Option<String>,
    #[serde(default = "default_true")]
    enabled: bool,
    source: Spanned<toml::Table>,
    #[serde(default = "default_versions")]
    accept_versions: Vec<String>,
    #[serde(default = "default_processing_ids")]
    processing_ids: Vec<String>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<StepFile>>,
    #[serde(default, rename = "destination")]
    destinations: Vec<Spanned<toml::Table>>,
    /// `[[test]]` cases, run by `medway test-channel`.
    #[serde(default, rename = "test")]
    tests: Vec<Spanned<TestFile>>,
}

fn default_true() -> bool {
    true
}

/// HL7 versions a channel accepts unless told otherwise (MSH-12); others get AR with ERR 203.
pub fn default_versions() -> Vec<String> {
    [
        "2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1",
        "2.8.2", "2.9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn default_processing_ids() -> Vec<String> {
    ["P", "T", "D"].iter().map(|s| s.to_string()).collect()
}

const CHANNEL_KEYS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "source",
    "accept_versions",
    "processing_ids",
    "step",
    "destination",
    "test",
];

/// Parses one channel file's text.
pub fn parse_channel(file: &Path, text: &str) -> Result<ChannelConfig, ConfigError> {
    let shared: Arc<str> = Arc::from(text);
    let parsed: ChannelFile = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
    let name = match parsed.name {
        Some(name) => name,
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("channel")
            .to_string(),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(
            ConfigError::new(file, 1, 1, format!("bad channel name {name:?}"))
                .with_hint("use letters, digits, '-' and '_'"),
        );
    }
    let source = connector_spec(file, &shared, parsed.source, "source")?;

    let mut steps = Vec::new();
    for step in parsed.steps {
        let offset = step.span().start;
        steps.push(step.into_inner().check(file, text, offset)?);
    }

    let mut destinations = Vec::new();
    for table in parsed.destinations {
        let span = table.span();
        let mut spec = connector_spec(file, &shared, table, "destination")?;
        let name = match spec.settings.remove("name") {
            Some(toml::Value::String(name)) => name,
            _ => {
                return Err(ConfigError::at_offset(
                    file,
                    text,
                    span.start,
                    "destination has no `name`",
                )
                .with_hint("add name = \"archive\" (names are unique within a channel)"));
            }
        };
        if destinations
            .iter()
            .any(|d: &DestinationConfig| d.name == name)
        {
            return Err(ConfigError::at_offset(
                file,
                text,
                span.start,
                format!("two destinations are named {name:?}"),
            ));
        }
        let mut steps = DestinationSteps::default();
        for key in ["filter", "transform", "response"] {
            match spec.settings.remove(key) {
                None => {}
                Some(toml::Value::String(path)) => {
                    let script = Some(script_ref(text, span.start, key, path));
                    match key {
                        "filter" => steps.filter = script,
                        "transform" => steps.transform = script,
                        _ => steps.response = script,
                    }
                }
                Some(_) => {
                    return Err(spec.locate(
                        SettingsError::new(format!("`{key}` must be a script path (a string)"))
                            .key(key),
                    ));
                }
            }
        }
        let retry = match spec.settings.remove("retry") {
            None => RetryPolicy::default(),
            Some(value) => RetryPolicy::deserialize(value)
                .map_err(|e| spec.locate(SettingsError::from_serde(&e)))?,
        };
        let ordering_key = match spec.settings.remove("ordering_key") {
            None => None,
            Some(toml::Value::String(path)) if super::looks_like_path(&path) => Some(path),
            Some(_) => {
                return Err(spec.locate(
                    SettingsError::new("`ordering_key` must be an HL7 path such as \"PID-3.1\"")
                        .key("ordering_key"),
                ));
            }
        };
        let max_in_flight = match spec.settings.remove("max_in_flight") {
            None => 1,
            Some(toml::Value::Integer(n)) if (1..=1024).contains(&n) => n as u32,
            Some(_) => {
                return Err(spec.locate(
                    SettingsError::new("`max_in_flight` must be a number from 1 to 1024")
                        .key("max_in_flight"),
                ));
            }
        };
        let ordered = match spec.settings.remove("ordered") {
            None => true,
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => {
                return Err(spec
                    .locate(SettingsError::new("`ordered` must be true or false").key("ordered")));
            }
        };
        if !ordered && ordering_key.is_some() {
            return Err(spec.locate(
                SettingsError::new("`ordered = false` contradicts `ordering_key`").key("ordered"),
            ));
        }
        destinations.push(DestinationConfig {
            name,
            spec,
            retry,
            steps,
            ordering_key,
            max_in_flight,
            ordered,
        });
    }

    let mut tests = Vec::new();
    for test in parsed.tests {
        let offset = test.span().start;
        let test = test.into_inner().check(file, text, offset)?;
        if let Some(unknown) = test
            .destinations
            .iter()
            .flatten()
            .chain(test.outputs.iter().map(|(d, _)| d))
            .find(|d| {
                !destinations
                    .iter()
                    .any(|c: &DestinationConfig| &c.name == *d)
            })
        {
            return Err(ConfigError::at_offset(
                file,
                text,
                offset,
                format!("test {:?} names unknown destination {unknown:?}", test.name),
            ));
        }
        tests.push(test);
    }

    Ok(ChannelConfig {
        name,
        description: parsed.description,
        enabled: parsed.enabled,
        file: file.to_path_buf(),
        source,
        accept_versions: parsed.accept_versions,
        processing_ids: parsed.processing_ids,
        steps,
        destinations,
        tests,
        text: shared,
    })
}

fn connector_spec(
    file: &Path,
    text: &Arc<str>,
    table: Spanned<toml::Table>,
    what: &str,
) -> Result<ConnectorSpec, ConfigError> {
    let span = table.span();
    let mut settings = table.into_inner();
    let kind = match settings.remove("kind") {
        Some(toml::Value::String(kind)) => kind,
        _ => {
            return Err(ConfigError::at_offset(
                file,
                text,
                span.start,
                format!("{what} has no `kind`"),
            )
            .with_hint("e.g. kind = \"mllp\" or kind = \"file\""));
        }
    };
    Ok(ConnectorSpec {
        kind,
        settings,
        file: file.to_path_buf(),
        span,
        text: text.clone(),
    })
}

fn toml_error(file: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let offset = error.span().map_or(0, |s| s.start);
    let message = error.message().trim().to_string();
    let mut out = ConfigError::at_offset(file, text, offset, message.clone());
    if let Some((key, hint)) = super::error::unknown_field_hint(&message) {
        // Serde lists the expected keys of nested tables; the top level falls back to ours.
        out.hint =
            hint.or_else(|| closest(&key, CHANNEL_KEYS).map(|b| format!("did you mean `{b}`?")));
    }
    out
}

/// Loads one channel file from disk.
pub fn load_channel_file(file: &Path) -> Result<ChannelConfig, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new(file, 0, 0, format!("cannot read: {e}")))?;
    parse_channel(file, &text)
}

/// Loads every `*.toml` in `dir` (sorted by name), collecting all problems rather than stopping
/// at the first. Duplicate channel names are an error.
pub fn load_channel_dir(dir: &Path) -> (Vec<ChannelConfig>, Vec<ConfigError>) {
    let mut channels: Vec<ChannelConfig> = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(ConfigError::new(
                dir,
                0,
                0,
                format!("cannot read channel folder: {e}"),
            ));
            return (channels, errors);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        match load_channel_file(&file) {
            Ok(channel) => {
                if let Some(other) = channels.iter().find(|c| c.name == channel.name) {
                    errors.push(
                        ConfigError::new(
                            &file,
                            1,
                            1,
                            format!("channel name {:?} is already used", channel.name),
                        )
                        .with_hint(format!("also defined in {}", other.file.display())),
                    );
                } else {
                    channels.push(channel);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (channels, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "vitals"
[source]
kind = "mllp"
listen = "127.0.0.1:2575"

[[step]]
kind = "validate"
required = ["PID-3"]

[[destination]]
name = "archive"
kind = "file"
directory = "out"
retry = { max_attempts = 3 }
"#;

    #[test]
    fn parses_a_channel() {
        let c = parse_channel(Path::new("channels/vitals.toml"), GOOD).unwrap();
        assert_eq!(c.name, "vitals");
        assert_eq!(c.source.kind, "mllp");
        assert_eq!(c.source.settings["listen"].as_str(), Some("127.0.0.1:2575"));
        assert_eq!(
            c.steps,
            vec![StepConfig::Required {
                paths: vec!["PID-3".into()]
            }]
        );
        assert_eq!(c.destinations[0].name, "archive");
        assert_eq!(c.destinations[0].retry.max_attempts, 3);
        assert!(!c.destinations[0].spec.settings.contains_key("name"));
    }

    #[test]
    fn unknown_channel_key_names_line_and_hint() {
        let text = "descripton = \"x\"\n[source]\nkind = \"mllp\"\n";
        let e = parse_channel(Path::new("c.toml"), text).unwrap_err();
        assert_eq!((e.line, e.col), (1, 1), "{e}");
        assert!(e.message.contains("unknown field `descripton`"), "{e}");
        assert_eq!(e.hint.as_deref(), Some("did you mean `description`?"));
    }

    #[test]
    fn connector_error_is_located_at_its_key() {
        let c = parse_channel(Path::new("c.toml"), GOOD).unwrap();
        let err = c
            .source
            .locate(SettingsError::new("bad address").key("listen"));
        assert_eq!((err.line, err.col), (5, 1), "{err}");
    }

    #[test]
    fn missing_destination_name_is_reported() {
        let text = "[source]\nkind = \"mllp\"\n[[destination]]\nkind = \"file\"\n";
        let e = parse_channel(Path::new("c.toml"), text).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("no `name`"));
    }

    #[test]
    fn bad_required_path_is_reported() {
        let text =
            "[source]\nkind = \"mllp\"\n[[step]]\nkind = \"validate\"\nrequired = [\"pid\"]\n";
        let e = parse_channel(Path::new("c.toml"), text).unwrap_err();
        assert!(e.message.contains("bad HL7 path"), "{e}");
    }
}
