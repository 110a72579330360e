//! The channel pipeline without I/O: header checks, then the channel's steps in file order.
//!
//! [`ChannelPipeline::process`] decides what becomes of one parsed message — accept, filter,
//! invalid (AE) or reject (AR) — which destinations it goes to, and what the message looks like
//! after the transforms. It touches no socket and no store, so `submit` and `medway
//! test-channel` share it exactly. Scripts are compiled once, when the pipeline is built.

use crate::config::{ChannelConfig, ConfigError, ScriptRef, StepConfig, StepKind};
use crate::script::{Script, ScriptEngine, ScriptError, ScriptRun};
use medway_hl7::Message;
use medway_hl7::ack::{AckError, ErrorLocation};
use rhai::Dynamic;
use std::path::Path;
use std::sync::Arc;

/// What the header checks and steps decided about a parsed message, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accept,
    /// A filter step returned false: stored as `filtered`, acknowledged as accepted.
    Filter,
    /// Invalid content (a validator failed, `reject`, a script error): stored as `error`, AE.
    Invalid(AckError),
    /// Unsupported header (MSH-9/10/11/12): stored as `error`, AR/CR.
    Reject(AckError),
}

/// The outcome of [`ChannelPipeline::process`].
pub struct Processed {
    pub verdict: Verdict,
    /// The message after the transforms (the input itself when nothing changed it).
    pub message: Message,
    /// Destinations chosen (all of them unless a route step chose), in channel order.
    pub routes: Vec<Arc<str>>,
}

enum CompiledStep {
    Required(Vec<String>),
    Script { kind: StepKind, script: Script },
}

/// The outcome of [`ChannelPipeline::process_json`].
pub struct ProcessedJson {
    pub verdict: Verdict,
    /// The document after the transforms (members in their original order, new ones after).
    pub document: serde_json::Value,
    /// Destinations chosen (all of them unless a route step chose), in channel order.
    pub routes: Vec<Arc<str>>,
}

/// One channel's compiled rules and steps.
pub struct ChannelPipeline {
    channel: Arc<str>,
    accept_versions: Vec<String>,
    processing_ids: Vec<String>,
    steps: Vec<CompiledStep>,
    destinations: Vec<Arc<str>>,
    scripts: ScriptEngine,
}

/// Compiles the script a channel file names, turning failures into located config errors.
pub fn compile_script(
    scripts: &ScriptEngine,
    scripts_dir: &Path,
    channel_file: &Path,
    reference: &ScriptRef,
) -> Result<Script, ConfigError> {
    let path = scripts_dir.join(&reference.path);
    if !path.is_file() {
        return Err(ConfigError::new(
            channel_file,
            reference.line,
            reference.col,
            format!(
                "script {:?} not found (looked for {})",
                reference.path,
                path.display()
            ),
        )
        .with_hint(format!(
            "script paths are relative to the scripts folder ({})",
            scripts_dir.display()
        )));
    }
    scripts
        .compile_file(&path)
        .map_err(|e| script_config_error(e, channel_file, reference))
}

fn script_config_error(
    error: ScriptError,
    channel_file: &Path,
    reference: &ScriptRef,
) -> ConfigError {
    ConfigError::new(
        Path::new(&error.script),
        error.line.unwrap_or(0),
        error.column.unwrap_or(0),
        error.kind.to_string(),
    )
    .with_hint(format!(
        "used by {}:{}",
        channel_file.display(),
        reference.line
    ))
}

impl ChannelPipeline {
    /// Compiles every script of the channel's own steps.
    pub fn build(
        config: &ChannelConfig,
        scripts: &ScriptEngine,
        scripts_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let mut steps = Vec::with_capacity(config.steps.len());
        for step in &config.steps {
            steps.push(match step {
                StepConfig::Required { paths } => CompiledStep::Required(paths.clone()),
                StepConfig::Script { kind, script } => CompiledStep::Script {
                    kind: *kind,
                    script: compile_script(scripts, scripts_dir, &config.file, script)?,
                },
            });
        }
        Ok(Self {
            channel: Arc::from(config.name.as_str()),
            accept_versions: config.accept_versions.clone(),
            processing_ids: config.processing_ids.clone(),
            steps,
            destinations: config
                .destinations
                .iter()
                .map(|d| Arc::from(d.name.as_str()))
                .collect(),
            scripts: scripts.clone(),
        })
    }

    /// Whether any step runs a script (and may therefore take up to its time budget).
    pub fn has_scripts(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, CompiledStep::Script { .. }))
    }

    /// Whether the channel has steps of its own (beyond the header checks).
    pub fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }

    pub fn destinations(&self) -> &[Arc<str>] {
        &self.destinations
    }

    /// Runs the header checks and the steps. Never panics; a script failure is an `Invalid`
    /// verdict naming the script, never a crash.
    pub fn process(&self, message: Message) -> Processed {
        if let Some(reject) = check_header(self, &message) {
            return Processed {
                verdict: Verdict::Reject(reject),
                message,
                routes: Vec::new(),
            };
        }
        let mut run = None;
        let end = self.run_steps(Start::Hl7(&message), &mut run);
        let message = run.and_then(|run| run.message()).unwrap_or(message);
        let (verdict, routes) = end.into_parts();
        Processed {
            verdict,
            message,
            routes,
        }
    }

    /// Runs the steps on a JSON document (a webhook body, a FHIR resource): the scripts see it
    /// as `res`, with the same return conventions, errors and limits as for HL7. There are no
    /// header checks, and `required` (HL7 paths) fails the document. Never panics.
    pub fn process_json(&self, document: &serde_json::Value) -> ProcessedJson {
        let mut run = None;
        let end = self.run_steps(Start::Json(document), &mut run);
        let (mut verdict, routes) = end.into_parts();
        let document = match run.and_then(|run| run.document()) {
            None => document.clone(),
            Some(Ok(changed)) => crate::script::restore_order(document, changed),
            Some(Err(error)) => {
                if verdict == Verdict::Accept {
                    verdict = Verdict::Invalid(AckError {
                        code: 207,
                        text: format!("after the steps: {error}"),
                        location: None,
                    });
                }
                document.clone()
            }
        };
        let routes = if verdict == Verdict::Accept {
            routes
        } else {
            Vec::new()
        };
        ProcessedJson {
            verdict,
            document,
            routes,
        }
    }

    /// The steps in file order. `run` is created at the first script step (so a channel with
    /// `required` steps only never builds one) and left holding the message as the steps left it.
    fn run_steps(&self, start: Start<'_>, run: &mut Option<ScriptRun>) -> StepsEnd {
        let mut routes = self.destinations.clone();
        for step in &self.steps {
            match step {
                CompiledStep::Required(paths) => {
                    let message = match (run.as_ref(), start) {
                        (Some(run), _) => run.message(),
                        (None, Start::Hl7(message)) => Some(message.clone()),
                        (None, Start::Json(_)) => None,
                    };
                    let Some(message) = message else {
                        return StepsEnd::Invalid(AckError {
                            code: 101,
                            text: "`required` names HL7 v2 paths and this message is a JSON \
                                   document: check its fields in a validate script (res.…)"
                                .into(),
                            location: None,
                        });
                    };
                    if let Some(missing) = paths
                        .iter()
                        .find(|p| message.get(p).is_none_or(|v| v.trim().is_empty()))
                    {
                        return StepsEnd::invalid(
                            101,
                            format!("{missing} missing"),
                            location_of(missing),
                        );
                    }
                }
                CompiledStep::Script { kind, script } => {
                    let state = match run {
                        Some(state) => state,
                        None => match start.script_run(&self.channel, self.scripts.limits()) {
                            Ok(state) => run.insert(state),
                            Err(error) => {
                                return StepsEnd::invalid(
                                    207,
                                    format!("{} cannot run: {error}", script.name()),
                                    None,
                                );
                            }
                        },
                    };
                    let output = match self.scripts.run(script, state) {
                        Ok(output) => output,
                        Err(error) => {
                            tracing::warn!(channel = %self.channel, script = script.name(), %error, "script failed; message stored as error");
                            return StepsEnd::invalid(207, format!("script error: {error}"), None);
                        }
                    };
                    if let Some(reason) = output.rejected {
                        return StepsEnd::invalid(207, reason, None);
                    }
                    if matches!(start, Start::Hl7(_)) && state.is_json() {
                        return StepsEnd::invalid(
                            207,
                            format!(
                                "{} set `res` on an HL7 v2 message: a channel keeps the message it \
                                 received; build JSON in a destination transform",
                                script.name()
                            ),
                            None,
                        );
                    }
                    match kind {
                        StepKind::Transform => {}
                        StepKind::Validate => match validation(&output.value) {
                            Ok(()) => {}
                            Err(reason) => return StepsEnd::invalid(102, reason, None),
                        },
                        StepKind::Filter => match output.value.as_bool() {
                            Ok(true) => {}
                            Ok(false) => return StepsEnd::Filter,
                            Err(kind) => {
                                return StepsEnd::invalid(
                                    207,
                                    format!(
                                        "filter {} returned {kind}, not true/false",
                                        script.name()
                                    ),
                                    None,
                                );
                            }
                        },
                        StepKind::Route => {
                            let chosen = output.routes.or_else(|| names(&output.value));
                            let Some(chosen) = chosen else {
                                return StepsEnd::invalid(
                                    207,
                                    format!(
                                        "route {} chose no destinations (return an array or call route_to)",
                                        script.name()
                                    ),
                                    None,
                                );
                            };
                            if let Some(unknown) = chosen
                                .iter()
                                .find(|c| !self.destinations.iter().any(|d| **d == ***c))
                            {
                                return StepsEnd::invalid(
                                    207,
                                    format!(
                                        "route {} chose unknown destination {unknown:?}",
                                        script.name()
                                    ),
                                    None,
                                );
                            }
                            routes = self
                                .destinations
                                .iter()
                                .filter(|d| chosen.iter().any(|c| **c == ***d))
                                .cloned()
                                .collect();
                        }
                    }
                }
            }
        }
        StepsEnd::Accept(routes)
    }
}

/// The message the steps start from.
#[derive(Clone, Copy)]
enum Start<'a> {
    Hl7(&'a Message),
    Json(&'a serde_json::Value),
}

impl Start<'_> {
    fn script_run(
        self,
        channel: &str,
        limits: &crate::script::ScriptLimits,
    ) -> Result<ScriptRun, crate::script::DocumentError> {
        match self {
            Self::Hl7(message) => Ok(ScriptRun::new(message.clone(), channel)),
            Self::Json(document) => ScriptRun::json(document, channel, limits),
        }
    }
}

/// How the steps ended.
enum StepsEnd {
    /// Every step passed; the message goes to these destinations.
    Accept(Vec<Arc<str>>),
    Filter,
    Invalid(AckError),
}

impl StepsEnd {
    fn invalid(code: u16, text: String, location: Option<ErrorLocation>) -> Self {
        Self::Invalid(AckError {
            code,
            text,
            location,
        })
    }

    fn into_parts(self) -> (Verdict, Vec<Arc<str>>) {
        match self {
            Self::Accept(routes) => (Verdict::Accept, routes),
            Self::Filter => (Verdict::Filter, Vec::new()),
            Self::Invalid(error) => (Verdict::Invalid(error), Vec::new()),
        }
    }
}

/// A validator's result: `true` passes; `false` or a string (the reason) fails.
fn validation(value: &Dynamic) -> Result<(), String> {
    if let Ok(ok) = value.as_bool() {
        return if ok {
            Ok(())
        } else {
            Err("validation failed".into())
        };
    }
    if value.is_string() {
        let reason = value.to_string();
        return Err(if reason.is_empty() {
            "validation failed".into()
        } else {
            reason
        });
    }
    Err(format!(
        "validator returned {}, not true/false/reason",
        value.type_name()
    ))
}

/// An array of destination names from a route step's value.
fn names(value: &Dynamic) -> Option<Vec<String>> {
    if value.is_string() {
        return Some(vec![value.to_string()]);
    }
    let array = value.clone().try_cast::<rhai::Array>()?;
    Some(array.iter().map(|v| v.to_string()).collect())
}

/// Header checks (MSH-9, MSH-10, MSH-11, MSH-12): `Some` is the reason to reject.
fn check_header(pipeline: &ChannelPipeline, message: &Message) -> Option<AckError> {
    let msh = |field: u32| {
        Some(ErrorLocation {
            segment: "MSH".into(),
            sequence: 1,
            field,
        })
    };
    if message.message_type().is_none_or(|t| t.is_empty()) {
        return Some(AckError {
            code: 101,
            text: "MSH-9 message type missing".into(),
            location: msh(9),
        });
    }
    if message.control_id().is_none_or(|c| c.is_empty()) {
        return Some(AckError {
            code: 101,
            text: "MSH-10 control id missing".into(),
            location: msh(10),
        });
    }
    let version = message.version().unwrap_or_default();
    if !pipeline.accept_versions.iter().any(|v| *v == version) {
        return Some(AckError {
            code: 203,
            text: format!("unsupported HL7 version {:?}", version.as_ref()),
            location: msh(12),
        });
    }
    let processing = message.processing_id().unwrap_or_default();
    if !pipeline.processing_ids.iter().any(|p| *p == processing) {
        return Some(AckError {
            code: 202,
            text: format!("unsupported processing id {:?}", processing.as_ref()),
            location: msh(11),
        });
    }
    None
}

/// `PID-3.1` → PID, occurrence 1, field 3 (for ERR-2).
fn location_of(path: &str) -> Option<ErrorLocation> {
    let parsed: medway_hl7::Path = path.parse().ok()?;
    Some(ErrorLocation {
        segment: parsed.segment_name().to_string(),
        sequence: parsed.occurrence,
        field: parsed.field,
    })
}
