//! `medway.toml`: engine-wide settings. Every key has a default, so Medway runs with no file at
//! all; `MEDWAY_STORE_URL` overrides the store URL (handy for systemd drop-ins and tests).

use super::error::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub store: StoreConfig,
    /// Folder of channel files.
    pub channels: PathBuf,
    /// Folder of Rhai scripts (`lib/` inside it is the shared library).
    pub scripts: PathBuf,
    /// Folder of code maps for `lookup()` (CSV and TOML files).
    pub maps: PathBuf,
    /// Per-install secret for the scripts' `hash()`; created with random content if missing.
    pub salt_file: PathBuf,
    /// Grace period for in-flight sends at shutdown.
    pub shutdown_grace_ms: u64,
    /// Watch the channel, script and map folders and reload on change (SIGHUP always reloads).
    pub watch: bool,
    pub delivery: DeliverySettings,
    /// Operational alerts (the engine watching itself); off without `alert_channel`.
    pub operations: crate::alerts::operations::OperationsSettings,
}

/// How delivery workers claim and send.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// How long a claimed delivery stays reserved for its worker. A node that dies holds its
    /// deliveries this long before another node takes them over (PostgreSQL).
    pub lease_secs: u64,
    /// Deliveries claimed per round trip.
    pub batch: u32,
    /// Longest a single send may take before it counts as a failed attempt.
    pub send_timeout_secs: u64,
    /// Idle poll interval: new work from this node wakes workers at once; this catches work
    /// committed by other nodes, reprocessing and due retries.
    pub idle_poll_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            lease_secs: 60,
            batch: 64,
            send_timeout_secs: 30,
            idle_poll_ms: 1_000,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            channels: PathBuf::from("channels"),
            scripts: PathBuf::from("scripts"),
            maps: PathBuf::from("channels/maps"),
            salt_file: PathBuf::from("data/medway.salt"),
            shutdown_grace_ms: 10_000,
            watch: true,
            delivery: DeliverySettings::default(),
            operations: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` or `postgres://user@host/db`.
    pub url: String,
    /// Most messages written in one group commit.
    pub max_batch: usize,
    /// Connections for reads and delivery claims (PostgreSQL: also the write pool size).
    pub pool_size: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/medway.db".to_string(),
            max_batch: 1024,
            pool_size: 8,
        }
    }
}

impl EngineConfig {
    /// Loads `path` if given (it must exist), else the defaults; then applies env overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            None => Self::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::new(path, 0, 0, format!("cannot read: {e}")))?;
                toml::from_str(&text).map_err(|e| {
                    let message = e.message().trim().to_string();
                    let mut error = ConfigError::at_offset(
                        path,
                        &text,
                        e.span().map_or(0, |s| s.start),
                        message.clone(),
                    );
                    if let Some((_, hint)) = super::error::unknown_field_hint(&message) {
                        error.hint = hint;
                    }
                    error
                })?
            }
        };
        if let Ok(url) = std::env::var("MEDWAY_STORE_URL")
            && !url.is_empty()
        {
            config.store.url = url;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let c = EngineConfig::default();
        assert_eq!(c.store.url, "sqlite://data/medway.db");
        assert_eq!(c.channels, PathBuf::from("channels"));
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("medway.toml");
        std::fs::write(&path, "[store]\nurl = \"sqlite://x.db\"\nurll = 1\n").unwrap();
        let e = EngineConfig::load(Some(&path)).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }
}
