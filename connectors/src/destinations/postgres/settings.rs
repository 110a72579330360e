//! `[[destination]] kind = "postgres"` settings, and the write plan checked from them: every
//! identifier valid, every value source understood, exactly one `$delivery_id` column, an upsert
//! key only in upsert mode. The URL is never echoed in an error (it may hold a password).

use super::schema::{TableName, WritePlan, is_identifier};
use super::source::ValueSource;
use medway_engine::config::{ConnectorSpec, SettingsError};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;
use std::collections::BTreeMap;
use std::str::FromStr;

/// `[[destination]] kind = "postgres"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    pub url: String,
    pub table: String,
    /// Column name → value source.
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub mode: WriteMode,
    /// Upsert conflict key (columns of a unique index).
    #[serde(default)]
    pub key: Vec<String>,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    #[default]
    Insert,
    Upsert,
}

fn default_max_connections() -> u32 {
    4
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}

impl PostgresSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        settings.plan()?;
        settings.connect_options()?;
        Ok(settings)
    }

    pub(super) fn connect_options(&self) -> Result<PgConnectOptions, SettingsError> {
        // The URL is not echoed: it may hold a password.
        let mut options = PgConnectOptions::from_str(&self.url).map_err(|_| {
            SettingsError::new("url is not a PostgreSQL URL")
                .key("url")
                .hint("e.g. url = \"postgres://medway@db.hospital.local:5432/clinical\"")
        })?;
        if !self.url.contains("application_name=") {
            options = options.application_name("medway-destination");
        }
        Ok(options)
    }

    pub(super) fn plan(&self) -> Result<WritePlan, SettingsError> {
        let table = TableName::parse(&self.table).map_err(|e| {
            SettingsError::new(format!("table: {e}"))
                .key("table")
                .hint("use `name` or `schema.name` with letters, digits and `_` (case-sensitive)")
        })?;
        if self.columns.is_empty() {
            return Err(SettingsError::new("columns is empty")
                .key("columns")
                .hint("map each column to a source: columns = { delivery_id = \"$delivery_id\", mrn = \"PID-3.1\" }"));
        }
        let mut columns = Vec::new();
        for (column, text) in &self.columns {
            if !is_identifier(column) {
                return Err(SettingsError::new(format!(
                    "column {column:?} is not a plain SQL identifier"
                ))
                .key("columns"));
            }
            let source = ValueSource::parse(text).map_err(|(message, hint)| {
                SettingsError::new(format!("column {column}: {message}"))
                    .key("columns")
                    .hint(hint)
            })?;
            columns.push((column.clone(), source));
        }
        let delivery_columns: Vec<&String> = columns
            .iter()
            .filter(|(_, s)| *s == ValueSource::DeliveryId)
            .map(|(c, _)| c)
            .collect();
        let delivery_column = match delivery_columns.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(SettingsError::new("no column takes \"$delivery_id\"")
                    .key("columns")
                    .hint("add `delivery_id = \"$delivery_id\"` (a bigint column with a unique index): it makes re-sent deliveries write one row"));
            }
            _ => {
                return Err(
                    SettingsError::new("more than one column takes \"$delivery_id\"")
                        .key("columns"),
                );
            }
        };
        match self.mode {
            WriteMode::Insert if !self.key.is_empty() => {
                return Err(
                    SettingsError::new("`key` is only used with mode = \"upsert\"")
                        .key("key")
                        .hint("add mode = \"upsert\", or remove `key`"),
                );
            }
            WriteMode::Upsert if self.key.is_empty() => {
                return Err(SettingsError::new("mode = \"upsert\" needs `key`")
                    .key("key")
                    .hint("name the columns of a unique index, e.g. key = [\"mrn\"]"));
            }
            _ => {}
        }
        for key in &self.key {
            if !self.columns.contains_key(key) {
                return Err(
                    SettingsError::new(format!("key column {key:?} is not in `columns`"))
                        .key("key"),
                );
            }
            if *key == delivery_column {
                return Err(
                    SettingsError::new("the upsert key cannot be the $delivery_id column")
                        .key("key")
                        .hint("use mode = \"insert\" to write one row per delivery"),
                );
            }
        }
        if !(1..=64).contains(&self.max_connections) {
            return Err(
                SettingsError::new("max_connections must be between 1 and 64")
                    .key("max_connections"),
            );
        }
        if self.connect_timeout_ms == 0 {
            return Err(
                SettingsError::new("connect_timeout_ms must be above 0").key("connect_timeout_ms")
            );
        }
        Ok(WritePlan {
            table,
            columns,
            delivery_column,
            key: self.key.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<PostgresSettings, SettingsError> {
        let table: toml::Table = toml::from_str(text).unwrap();
        PostgresSettings::from_spec(&ConnectorSpec::inline("postgres", table))
    }

    const BASE: &str = "url = \"postgres://u:pw@127.0.0.1/db\"\ntable = \"s.t\"\n";

    #[test]
    fn a_valid_table_parses() {
        let s = settings(&format!(
            "{BASE}columns = {{ delivery_id = \"$delivery_id\", mrn = \"PID-3.1\" }}"
        ))
        .unwrap();
        assert_eq!(s.mode, WriteMode::Insert);
        assert_eq!(s.max_connections, 4);
    }

    #[test]
    fn settings_errors_name_their_key() {
        let d = "delivery_id = \"$delivery_id\"";
        let cases = [
            (format!("{BASE}columns = {{}}"), "columns"),
            (
                format!("{BASE}columns = {{ mrn = \"PID-3.1\" }}"),
                "columns",
            ),
            (
                format!("{BASE}columns = {{ {d}, mrn = \"PID-0\" }}"),
                "columns",
            ),
            (
                format!("{BASE}columns = {{ {d}, mrn = \"$nope\" }}"),
                "columns",
            ),
            (
                format!("{BASE}columns = {{ {d}, \"a b\" = \"PID-3\" }}"),
                "columns",
            ),
            (
                format!("{BASE}columns = {{ {d}, x = \"$delivery_id\" }}"),
                "columns",
            ),
            (
                format!("{BASE}mode = \"upsert\"\ncolumns = {{ {d} }}"),
                "key",
            ),
            (
                format!("{BASE}key = [\"mrn\"]\ncolumns = {{ {d}, mrn = \"PID-3\" }}"),
                "key",
            ),
            (
                format!("{BASE}mode = \"upsert\"\nkey = [\"x\"]\ncolumns = {{ {d} }}"),
                "key",
            ),
            (
                format!("{BASE}max_connections = 0\ncolumns = {{ {d} }}"),
                "max_connections",
            ),
            (
                format!("url = \"x\"\ntable = \"t\"\ncolumns = {{ {d} }}"),
                "url",
            ),
            (
                format!("url = \"postgres://h/d\"\ntable = \"a;b\"\ncolumns = {{ {d} }}"),
                "table",
            ),
            (format!("{BASE}colums = {{ {d} }}"), "colums"),
        ];
        for (text, key) in cases {
            let error = settings(&text).unwrap_err();
            assert_eq!(error.key.as_deref(), Some(key), "{text}: {}", error.message);
            assert!(!error.message.contains("pw"), "{}", error.message);
        }
    }
}
