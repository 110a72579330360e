//! Channel scripts: Rhai validators, filters, transformers, routers and response handlers.
//!
//! One [`ScriptEngine`] serves one loaded channel set: it holds the sandboxed Rhai engine (see
//! [`sandbox`]), the code maps and the hashing salt. Scripts are compiled once per load into a
//! [`Script`] (a shared AST) and run per message with a fresh scope holding `msg` (the
//! message, see [`message_api`]), `channel_map` (an object map carried from step to step of one
//! message by [`ScriptRun`]) and `response` (a destination's reply in `response` steps, `()`
//! elsewhere). A run returns the script's value, whether `reject(reason)` was called and the
//! destinations chosen with `route_to`.
//!
//! Invariants: a run never outlives its limits (operations, call depth, sizes, wall clock) and a
//! failed run leaves the engine ready for the next one; `reject` is an outcome, not an error;
//! scripts see no file system, network or process, and `import` reads only `scripts/lib`.
//! `ScriptEngine` and `Script` are `Send + Sync` and cheap to clone. This module never logs a
//! message body.

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

pub use error::{ScriptError, ScriptErrorKind};
pub use functions::Hl7Time;
pub use maps::{CodeMapError, CodeMaps};
pub use message_api::{MessageHandle, SegmentHandle};
pub use sandbox::ScriptLimits;

use sandbox::{FrameGuard, RunFrame, Signal};

/// The variable holding the message.
const MESSAGE_VAR: &str = "msg";
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

/// The state of one message across its script steps.
#[derive(Debug)]
pub struct ScriptRun {
    message: MessageHandle,
    channel: Arc<str>,
    channel_map: Map,
    response: Option<Map>,
}

impl ScriptRun {
    /// A run for `message` received on `channel`, with an empty channel map.
    pub fn new(message: medway_hl7::Message, channel: &str) -> Self {
        Self {
            message: MessageHandle::new(message),
            channel: Arc::from(channel),
            channel_map: Map::new(),
            response: None,
        }
    }

    /// Makes `response` visible to the script (destination `response` steps).
    pub fn with_response(mut self, response: Map) -> Self {
        self.response = Some(response);
        self
    }

    /// The current (possibly modified) message.
    pub fn message(&self) -> medway_hl7::Message {
        self.message.snapshot()
    }

    /// Replaces the message the next step sees.
    pub fn set_message(&mut self, message: medway_hl7::Message) {
        self.message = MessageHandle::new(message);
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

    /// Runs `script` on `run`: the message edits and the channel map stay in `run` for the
    /// next step, whatever the outcome.
    pub fn run(&self, script: &Script, run: &mut ScriptRun) -> Result<ScriptOutput, ScriptError> {
        let mut scope = Scope::with_capacity(8);
        scope.push(MESSAGE_VAR, run.message.clone());
        scope.push(CHANNEL_MAP_VAR, std::mem::take(&mut run.channel_map));
        scope.push_dynamic(
            RESPONSE_VAR,
            run.response
                .clone()
                .map_or(Dynamic::UNIT, Dynamic::from_map),
        );
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

        if let Some(map) = scope.get_value::<Map>(CHANNEL_MAP_VAR) {
            run.channel_map = map;
        }
        if let Some(message) = scope.get_value::<MessageHandle>(MESSAGE_VAR) {
            run.message = message;
        }
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
                None => Err(self.error(&script.name, err)),
            },
        }
    }

    fn error(&self, script: &str, err: Box<EvalAltResult>) -> ScriptError {
        ScriptError::from_eval(script, err, self.limits.wall_clock)
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
