//! The one place that maps a channel file's `kind = "…"` to a connector.

use crate::destinations::file::{FileSettings, FileWriter};
use crate::sources::mllp::{MllpListener, MllpSourceSettings};
use medway_engine::config::{ConfigError, ConnectorSpec, SettingsError, closest_kind};
use medway_engine::connector::{ConnectorFactory, Destination, Source};
use std::sync::Arc;

pub const SOURCE_KINDS: &[&str] = &["mllp"];
pub const DESTINATION_KINDS: &[&str] = &["file"];

/// Builds every connector Medway ships.
#[derive(Debug, Default, Clone, Copy)]
pub struct Registry;

impl ConnectorFactory for Registry {
    fn source(&self, _channel: &str, spec: &ConnectorSpec) -> Result<Box<dyn Source>, ConfigError> {
        match spec.kind.as_str() {
            "mllp" => {
                let settings = MllpSourceSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Box::new(MllpListener::new(settings)))
            }
            other => Err(spec.locate(unknown_kind("source", other, SOURCE_KINDS))),
        }
    }

    fn destination(
        &self,
        _channel: &str,
        spec: &ConnectorSpec,
    ) -> Result<Arc<dyn Destination>, ConfigError> {
        match spec.kind.as_str() {
            "file" => {
                let settings = FileSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(FileWriter::new(settings)))
            }
            other => Err(spec.locate(unknown_kind("destination", other, DESTINATION_KINDS))),
        }
    }
}

fn unknown_kind(what: &str, kind: &str, known: &[&str]) -> SettingsError {
    let error = SettingsError::new(format!("unknown {what} kind {kind:?}")).key("kind");
    match closest_kind(kind, known) {
        Some(best) => error.hint(format!(
            "did you mean {best:?}? known: {}",
            known.join(", ")
        )),
        None => error.hint(format!("known {what} kinds: {}", known.join(", "))),
    }
}
