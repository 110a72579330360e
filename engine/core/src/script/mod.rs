//! Channel scripts: Rhai validators, filters, transformers, routers and response handlers.
//!
//! One [`ScriptEngine`] serves one loaded channel set: it holds the sandboxed Rhai engine (see
//! [`sandbox`]), the code maps and the hashing salt. Scripts are compiled once per load into a
//! [`Script`] (a shared AST) and run per message with a fresh scope holding `msg` (the
//! message, see [`message_api`]), `res` (a JSON document — a webhook body, a FHIR resource — as
//! a Rhai map or array, see [`document`]; `()` for HL7 messages), `channel_map` (an object map
//! carried from step to step of one message by [`ScriptRun`]) and `response` (a destination's
//! reply in `response` steps, `()` elsewhere). A run is either on an HL7 message (`msg`) or on
//! a JSON document (`res`, while `msg` holds no message and every HL7 call on it fails). A run returns the script's value, whether `reject(reason)` was called and the
//! destinations chosen with `route_to`.
//!
//! Invariants: a run never outlives its limits (operations, call depth, sizes, wall clock) and a
//! failed run leaves the engine ready for the next one; `reject` is an outcome, not an error;
//! scripts see no file system, network or process, and `import` reads only `scripts/lib`.
//! `ScriptEngine` and `Script` are `Send + Sync` and cheap to clone. This module never logs a
//! message body.

mod document;
mod error;
mod functions;
mod maps;
mod message_api;
mod sandbox;
mod segment_edit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rhai::{AST, Dynamic, Engine, EvalAltResult, Map, Scope};

pub use document::{DocumentError, restore_order};
pub use error::{ScriptError, ScriptErrorKind};
pub use functions::Hl7Time;
pub use maps::{CodeMapError, CodeMaps};
pub use message_api::{MessageHandle, SegmentHandle};
pub use sandbox::ScriptLimits;

use sandbox::{FrameGuard, RunFrame, Signal};

/// The variable holding the message.
const MESSAGE_VAR: &str = "msg";
/// The variable holding a JSON document (`()` when the message is HL7 v2).
const DOCUMENT_VAR: &str = "res";
/// The variable holding the per-message channel map.
const CHANNEL_MAP_VAR: &str = "channel_map";
/// The variable holding a destination's response (`()` outside response steps).
const RESPONSE_VAR: &str = "response";

/// What a [`ScriptEngine`] is built from.
#[derive(Debug, Clone)]
pub struct ScriptSettings {
    /// The shared library folder (`scripts/lib`): the only place `import` reads.
    pub lib_dir: PathBuf,
    /// Code maps for `lookup`.
    pub maps: Arc<CodeMaps>,
    /// The per-install secret mixed into `hash()`.
    pub salt: Arc<str>,
    /// Resource limits of every run.
    pub limits: ScriptLimits,
}

impl ScriptSettings {
    /// Settings with no maps, an empty salt and default limits.
    pub fn new(lib_dir: impl Into<PathBuf>) -> Self {
        Self {
            lib_dir: lib_dir.into(),
            maps: Arc::new(CodeMaps::empty()),
            salt: Arc::from(""),
            limits: ScriptLimits::default(),
        }
    }
}

/// The sandboxed script engine of one loaded channel set.
#[derive(Clone)]
pub struct ScriptEngine {
    engine: Arc<Engine>,
    limits: ScriptLimits,
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A compiled script, shared by every message of its channel.
#[derive(Clone, Debug)]
pub struct Script {
    ast: Arc<AST>,
    name: Arc<str>,
}

impl Script {
    /// The file name (or the name given to `compile_source`), as used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What a run works on: an HL7 v2 message or a JSON document.
enum Subject {
    Hl7(MessageHandle),
    /// The document as Rhai values (what `res` holds between steps).
    Json(Dynamic),
}

/// Names the kind only: a document body never reaches a log through `{:?}`.
impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hl7(message) => message.fmt(f),
            Self::Json(value) => write!(f, "JsonDocument({})", value.type_name()),
        }
    }
}

/// The state of one message across its script steps.
#[derive(Debug)]
pub struct ScriptRun {
    subject: Subject,
    channel: Arc<str>,
    channel_map: Map,
    response: Option<Map>,
}

impl ScriptRun {
    /// A run for `message` received on `channel`, with an empty channel map.
    pub fn new(message: medway_hl7::Message, channel: &str) -> Self {
        Self {
            subject: Subject::Hl7(MessageHandle::new(message)),
            channel: Arc::from(channel),
            channel_map: Map::new(),
            response: None,
        }
    }

    /// A run for a JSON `document` received on `channel`: scripts see it as `res`. Refused when
    /// the document is over the script size limits (Rhai would stop the script on first use).
    pub fn json(
        document: &serde_json::Value,
        channel: &str,
        limits: &ScriptLimits,
    ) -> Result<Self, DocumentError> {
        Ok(Self {
            subject: Subject::Json(document::to_script(document, limits)?),
            channel: Arc::from(channel),
            channel_map: Map::new(),
            response: None,
        })
    }

    /// Whether this run is on a JSON document (else on an HL7 v2 message). An HL7 run becomes a
    /// JSON run when a step sets `res` (to build JSON from the message's fields).
    pub fn is_json(&self) -> bool {
        matches!(self.subject, Subject::Json(_))
    }

    /// Makes `response` visible to the script (destination `response` steps).
    pub fn with_response(mut self, response: Map) -> Self {
        self.response = Some(response);
        self
    }

    /// The current (possibly modified) HL7 message; `None` for a JSON run.
    pub fn message(&self) -> Option<medway_hl7::Message> {
        match &self.subject {
            Subject::Hl7(message) => Some(message.snapshot()),
            Subject::Json(_) => None,
        }
    }

    /// The current (possibly modified) JSON document; `None` for an HL7 run, an error when a
    /// step left `res` holding something JSON cannot express.
    pub fn document(&self) -> Option<Result<serde_json::Value, DocumentError>> {
        match &self.subject {
            Subject::Hl7(_) => None,
            Subject::Json(value) => Some(document::from_script(value)),
        }
    }

    /// Replaces the message the next step sees (the run becomes an HL7 run).
    pub fn set_message(&mut self, message: medway_hl7::Message) {
        self.subject = Subject::Hl7(MessageHandle::new(message));
    }

    /// The channel map as the last step left it.
    pub fn channel_map(&self) -> Map {
        self.channel_map.clone()
    }

    /// Replaces the channel map (e.g. to seed values before the first step).
    pub fn set_channel_map(&mut self, map: Map) {
        self.channel_map = map;
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    /// The value of the script's last expression (or of `return`/`exit`).
    pub value: Dynamic,
    /// Set when the script called `reject(reason)`; the script stopped there.
    pub rejected: Option<String>,
    /// Set when the script called `route_to([...])` (the last call wins).
    pub routes: Option<Vec<String>>,
}

impl ScriptEngine {
    /// Builds the sandboxed engine with Medway's script API.
    pub fn new(settings: ScriptSettings) -> Self {
        let mut engine = sandbox::sandboxed_engine(&settings.limits, &settings.lib_dir);
        message_api::register(&mut engine);
        document::register(&mut engine);
        functions::register(&mut engine, settings.maps, settings.salt);
        Self {
            engine: Arc::new(engine),
            limits: settings.limits,
        }
    }

    /// The limits every run is held to.
    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    /// Reads and compiles a script file; errors are named by the file name.
    pub fn compile_file(&self, path: &Path) -> Result<Script, ScriptError> {
        let name = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| ScriptError {
            script: name.clone(),
            line: None,
            column: None,
            kind: ScriptErrorKind::Io(e.to_string()),
        })?;
        self.compile_source(&name, &source)
    }

    /// Compiles script text. Static `import`s are resolved now, so a missing or refused library
    /// is a compile error; undefined variables are compile errors too.
    pub fn compile_source(&self, name: &str, source: &str) -> Result<Script, ScriptError> {
        let mut scope = Scope::new();
        scope.push_dynamic(MESSAGE_VAR, Dynamic::UNIT);
        scope.push_dynamic(DOCUMENT_VAR, Dynamic::UNIT);
        scope.push_dynamic(CHANNEL_MAP_VAR, Dynamic::UNIT);
        scope.push_dynamic(RESPONSE_VAR, Dynamic::UNIT);
        // Library modules run their top level during compilation: give them a deadline too.
        let guard = FrameGuard::enter(RunFrame {
            channel: Arc::from(""),
            script: Arc::from(name),
            deadline: Instant::now() + self.limits.wall_clock,
            routes: None,
        });
        let compiled = self.engine.compile_into_self_contained(&scope, source);
        drop(guard);
        let mut ast = compiled.map_err(|e| {
            let mut error = self.error(name, e);
            // Imports resolved at compile time carry no position: point at the import line.
            if error.line.is_none()
                && let Some((line, column)) = locate_import(source, &error.kind.to_string())
            {
                (error.line, error.column) = (Some(line), Some(column));
            }
            error
        })?;
        ast.set_source(name);
        Ok(Script {
            ast: Arc::new(ast),
            name: Arc::from(name),
        })
    }

    /// Runs `script` on `run`: the message (or document) edits and the channel map stay in
    /// `run` for the next step, whatever the outcome.
    pub fn run(&self, script: &Script, run: &mut ScriptRun) -> Result<ScriptOutput, ScriptError> {
        let mut scope = Scope::with_capacity(8);
        match &mut run.subject {
            Subject::Hl7(message) => {
                scope.push(MESSAGE_VAR, message.clone());
                scope.push_dynamic(DOCUMENT_VAR, Dynamic::UNIT);
            }
            Subject::Json(document) => {
                scope.push(MESSAGE_VAR, document::NotHl7);
                // Moved, not copied: it comes back from the scope after the run.
                scope.push_dynamic(DOCUMENT_VAR, std::mem::take(document));
            }
        }
        scope.push(CHANNEL_MAP_VAR, std::mem::take(&mut run.channel_map));
        scope.push_dynamic(
            RESPONSE_VAR,
            run.response
                .clone()
                .map_or(Dynamic::UNIT, Dynamic::from_map),
        );
        let ours = scope.len();
        let guard = FrameGuard::enter(RunFrame {
            channel: run.channel.clone(),
            script: script.name.clone(),
            deadline: Instant::now() + self.limits.wall_clock,
            routes: None,
        });
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast);
        let routes = guard.finish().and_then(|frame| frame.routes);
        // Drop the script's own top-level variables: a `let res = …` (or `let channel_map`)
        // in a script is a new variable that shadows ours, not a change to it.
        scope.rewind(ours);

        if let Some(map) = scope.get_value::<Map>(CHANNEL_MAP_VAR) {
            run.channel_map = map;
        }
        match &mut run.subject {
            Subject::Hl7(message) => {
                if let Some(current) = scope.get_value::<MessageHandle>(MESSAGE_VAR) {
                    *message = current;
                }
                // Setting `res` on an HL7 message turns the run into a JSON run: this is how a
                // destination transform sends JSON (a FHIR resource) built from HL7 fields.
                if let Some(document) = scope.remove::<Dynamic>(DOCUMENT_VAR)
                    && !document.is_unit()
                {
                    run.subject = Subject::Json(document);
                }
            }
            Subject::Json(document) => {
                if let Some(current) = scope.remove::<Dynamic>(DOCUMENT_VAR) {
                    *document = current;
                }
            }
        }
        let json = run.is_json();
        match result {
            Ok(value) => Ok(ScriptOutput {
                value,
                rejected: None,
                routes,
            }),
            Err(err) => match rejection(&err) {
                Some(reason) => Ok(ScriptOutput {
                    value: Dynamic::UNIT,
                    rejected: Some(reason),
                    routes,
                }),
                None => {
                    let mut error = self.error(&script.name, err);
                    if json {
                        error.kind = hl7_call_on_json(error.kind);
                    }
                    Err(error)
                }
            },
        }
    }

    fn error(&self, script: &str, err: Box<EvalAltResult>) -> ScriptError {
        ScriptError::from_eval(script, err, self.limits.wall_clock)
    }
}

/// An HL7 message call on a JSON document's `msg` says so, instead of "function not found".
fn hl7_call_on_json(kind: ScriptErrorKind) -> ScriptErrorKind {
    match kind {
        ScriptErrorKind::Runtime(text) if text.contains(document::NOT_HL7_TYPE) => {
            ScriptErrorKind::Runtime(format!(
                "this message is a JSON document, not HL7 v2: `msg` has no message here, use `res` \
                 (res.resourceType, res.status, …) [{text}]"
            ))
        }
        kind => kind,
    }
}

/// The line and column of the first `import "name"` whose quoted name appears in `message`.
fn locate_import(source: &str, message: &str) -> Option<(usize, usize)> {
    source.lines().enumerate().find_map(|(index, line)| {
        let at = line.find("import")?;
        let rest = line[at + "import".len()..].trim_start();
        let quoted = rest.strip_prefix('"')?;
        let name = &quoted[..quoted.find('"')?];
        message
            .contains(&format!("{name:?}"))
            .then_some((index + 1, at + 1))
    })
}

/// The reason given to `reject`, if this error is a rejection.
fn rejection(err: &EvalAltResult) -> Option<String> {
    match err {
        EvalAltResult::ErrorTerminated(value, _) => match value.clone().try_cast::<Signal>() {
            Some(Signal::Reject(reason)) => Some(reason),
            _ => None,
        },
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => rejection(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
