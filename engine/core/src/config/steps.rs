//! Channel steps and destination steps as written in a channel file.
//!
//! ```toml
//! [[step]]
//! kind = "validate"                  # validate | filter | transform | route
//! script = "oru-vitals/validate.rhai"   # relative to the scripts folder
//! [[step]]
//! kind = "validate"
//! required = ["PID-3"]               # built-in: these paths must be present
//! [[destination]]
//! name = "research"
//! kind = "file"
//! filter = "research/final-only.rhai"       # per-destination steps
//! transform = "research/deidentify.rhai"
//! response = "research/response.rhai"
//! ```

use super::error::{ConfigError, closest, line_col};
use serde::Deserialize;
use std::path::Path;

/// What a channel step does with the script's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// `true` passes; `false` or a string (the reason) stores the message as `error`, AE.
    Validate,
    /// `false` stores the message as `filtered` (ACKed AA, delivered nowhere).
    Filter,
    /// Changes the message; the result is ignored.
    Transform,
    /// Returns (or passes to `route_to`) the destination names to use.
    Route,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Filter => "filter",
            Self::Transform => "transform",
            Self::Route => "route",
        }
    }
}

const STEP_KINDS: &[&str] = &["validate", "filter", "transform", "route"];

/// A script named in a channel file, with where it was named (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRef {
    /// As written, relative to the scripts folder.
    pub path: String,
    pub line: usize,
    pub col: usize,
}

/// A step of the channel pipeline, run in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum StepConfig {
    /// Built-in validator: each path must be present and non-empty, else the message is stored
    /// as `error` and the sender gets AE with `ERR` code 101 naming the field.
    Required { paths: Vec<String> },
    /// A Rhai script run as a step of this kind.
    Script { kind: StepKind, script: ScriptRef },
}

/// The optional scripts a destination runs on each delivery, in this order: `filter` (false →
/// the delivery is skipped), `transform` (changes what is sent), and after sending `response`
/// (sees the reply; may turn it into `"sent"`, `"retry"` or `"error"`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestinationSteps {
    pub filter: Option<ScriptRef>,
    pub transform: Option<ScriptRef>,
    pub response: Option<ScriptRef>,
}

impl DestinationSteps {
    pub fn is_empty(&self) -> bool {
        self.filter.is_none() && self.transform.is_none() && self.response.is_none()
    }

    pub fn scripts(&self) -> impl Iterator<Item = &ScriptRef> {
        [&self.filter, &self.transform, &self.response]
            .into_iter()
            .flatten()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepFile {
    kind: String,
    script: Option<String>,
    required: Option<Vec<String>>,
}

impl StepFile {
    /// Checks one `[[step]]` table that starts at byte `offset` of the file.
    pub(super) fn check(
        self,
        file: &Path,
        text: &str,
        offset: usize,
    ) -> Result<StepConfig, ConfigError> {
        let at = |message: String| ConfigError::at_offset(file, text, offset, message);
        let kind = match self.kind.as_str() {
            "validate" => StepKind::Validate,
            "filter" => StepKind::Filter,
            "transform" => StepKind::Transform,
            "route" => StepKind::Route,
            other => {
                let error = at(format!("unknown step kind {other:?}"));
                return Err(match closest(other, STEP_KINDS) {
                    Some(best) => error.with_hint(format!("did you mean {best:?}?")),
                    None => error.with_hint(format!("step kinds: {}", STEP_KINDS.join(", "))),
                });
            }
        };
        match (self.script, self.required) {
            (Some(_), Some(_)) => Err(at(
                "a step has either `script` or `required`, not both".into()
            )),
            (None, Some(paths)) if kind == StepKind::Validate => {
                if let Some(bad) = paths.iter().find(|p| !looks_like_path(p)) {
                    return Err(at(format!("bad HL7 path {bad:?} in `required`"))
                        .with_hint("paths look like PID-3, PID-5.1, OBX(2)-5, PID-3[2].1"));
                }
                Ok(StepConfig::Required { paths })
            }
            (None, Some(_)) => Err(at(format!(
                "`required` only applies to validate steps, not {}",
                kind.as_str()
            ))),
            (None, None) => Err(
                at(format!("{} step has no `script`", kind.as_str())).with_hint(
                    "add script = \"<channel>/<step>.rhai\" (relative to the scripts folder)",
                ),
            ),
            (Some(path), None) => Ok(StepConfig::Script {
                kind,
                script: script_ref(text, offset, "script", path),
            }),
        }
    }
}

/// Builds a [`ScriptRef`] pointing at the `key = "…"` line inside the table at `offset`.
pub(super) fn script_ref(text: &str, offset: usize, key: &str, path: String) -> ScriptRef {
    let rest = &text[offset.min(text.len())..];
    let key_at = rest
        .lines()
        .scan(0usize, |pos, line| {
            let here = *pos;
            *pos += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(0, |(here, _)| here);
    let (line, col) = line_col(text, offset + key_at);
    ScriptRef { path, line, col }
}

/// A cheap syntax check of an HL7 path (`PID-3`, `OBX(2)-5.1`, `PID-3[2].1`).
pub fn looks_like_path(path: &str) -> bool {
    path.parse::<medway_hl7::Path>().is_ok()
}
