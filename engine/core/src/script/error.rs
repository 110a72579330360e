//! Script errors: what went wrong in a channel script, and where.
//!
//! Every failure of a script — at compile time or while it runs — becomes one [`ScriptError`]
//! naming the script file, the line and column in that file when known, and a
//! [`ScriptErrorKind`] that tells a syntax error from a runtime error or a sandbox limit. The
//! pipeline maps any `ScriptError` to a stored `error` and an AE; `reject(reason)` is not an
//! error (it surfaces as `ScriptOutput::rejected`).
//!
//! Invariants: the rendered text is `script.rhai:12:5: message` (`script.rhai: message` when
//! no position is known). Messages are built from Rhai's error texts, which may quote values the
//! script computed: callers log the error of a failed message, so scripts should not throw
//! message content. This module never panics and never touches the file system.

use std::fmt;
use std::time::Duration;

use rhai::{EvalAltResult, Position};

use super::sandbox::Signal;

/// A script failed to compile or to run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{kind}", self.location())]
pub struct ScriptError {
    /// The script's file name (or the name given to `compile_source`).
    pub script: String,
    /// 1-based line in the script, when known.
    pub line: Option<usize>,
    /// 1-based column in the script, when known.
    pub column: Option<usize>,
    /// What went wrong.
    pub kind: ScriptErrorKind,
}

/// The class of a [`ScriptError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptErrorKind {
    /// The script does not parse (or uses an undefined variable: variables are strict).
    Syntax(String),
    /// A runtime error: a thrown value, a bad path, a type mismatch, a missing function…
    Runtime(String),
    /// The script used more operations than `ScriptLimits::max_operations`.
    TooManyOperations,
    /// The script ran longer than `ScriptLimits::wall_clock`.
    TimeLimit(Duration),
    /// Function calls nested deeper than `ScriptLimits::max_call_levels`.
    StackOverflow,
    /// A string, array or map grew over its limit.
    DataTooLarge(String),
    /// `import` of a name outside `scripts/lib` (absolute, `..`, bad characters).
    ImportDenied(String),
    /// `import` of a library file that does not exist.
    ModuleNotFound(String),
    /// The script file could not be read.
    Io(String),
}

impl fmt::Display for ScriptErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(m) => write!(f, "syntax error: {m}"),
            Self::Runtime(m) => write!(f, "runtime error: {m}"),
            Self::TooManyOperations => f.write_str("too many operations (operation limit reached)"),
            Self::TimeLimit(d) => write!(f, "time limit of {} ms exceeded", d.as_millis()),
            Self::StackOverflow => f.write_str("call stack too deep (call level limit reached)"),
            Self::DataTooLarge(what) => write!(f, "{what} too large (size limit reached)"),
            Self::ImportDenied(m) => write!(f, "import denied: {m}"),
            Self::ModuleNotFound(name) => {
                write!(
                    f,
                    "library {name:?} not found in the scripts library folder"
                )
            }
            Self::Io(m) => write!(f, "cannot read script: {m}"),
        }
    }
}

impl ScriptError {
    pub(crate) fn new(script: &str, kind: ScriptErrorKind, position: Position) -> Self {
        Self {
            script: script.to_owned(),
            line: position.line(),
            column: position.position(),
            kind,
        }
    }

    fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: ", self.script),
            (Some(l), None) => format!("{}:{l}: ", self.script),
            _ => format!("{}: ", self.script),
        }
    }

    /// A runtime (or self-contained compile) error from Rhai. `wall_clock` is the budget in
    /// force, reported by `TimeLimit`.
    pub(crate) fn from_eval(script: &str, err: Box<EvalAltResult>, wall_clock: Duration) -> Self {
        // The position reported is the deepest one that still lies in this script: a failure
        // inside a function defined in the script points at the failing line, not the call.
        let mut position = err.position();
        let mut inner = err;
        while let EvalAltResult::ErrorInFunctionCall(_, source, next, _) = &*inner {
            let same_script = source.is_empty() || source == script;
            if same_script && !next.position().is_none() {
                position = next.position();
            }
            let EvalAltResult::ErrorInFunctionCall(_, _, next, _) = *inner else {
                break;
            };
            inner = next;
        }
        let kind = match *inner {
            EvalAltResult::ErrorParsing(t, p) => {
                if !p.is_none() {
                    position = p;
                }
                ScriptErrorKind::Syntax(t.to_string())
            }
            EvalAltResult::ErrorTooManyOperations(_) => ScriptErrorKind::TooManyOperations,
            EvalAltResult::ErrorStackOverflow(_) => ScriptErrorKind::StackOverflow,
            EvalAltResult::ErrorDataTooLarge(what, _) => ScriptErrorKind::DataTooLarge(what),
            EvalAltResult::ErrorModuleNotFound(name, _) => ScriptErrorKind::ModuleNotFound(name),
            EvalAltResult::ErrorInModule(name, cause, _) => {
                return Self::from_module(script, &name, cause, position, wall_clock);
            }
            EvalAltResult::ErrorTerminated(value, _) => match value.try_cast::<Signal>() {
                Some(Signal::TimeLimit) => ScriptErrorKind::TimeLimit(wall_clock),
                Some(Signal::ImportDenied(m)) => ScriptErrorKind::ImportDenied(m),
                Some(Signal::Reject(reason)) => {
                    ScriptErrorKind::Runtime(format!("reject({reason:?}) outside a step run"))
                }
                None => ScriptErrorKind::Runtime("script terminated".into()),
            },
            other => {
                let mut other = other;
                other.clear_position();
                ScriptErrorKind::Runtime(other.to_string())
            }
        };
        Self::new(script, kind, position)
    }

    /// An error raised while loading or running a library module: the kind of the cause is
    /// kept (a limit stays a limit), the message names the library.
    fn from_module(
        script: &str,
        module: &str,
        cause: Box<EvalAltResult>,
        position: Position,
        wall_clock: Duration,
    ) -> Self {
        let inner = Self::from_eval(&format!("lib/{module}.rhai"), cause, wall_clock);
        let kind = match inner.kind {
            ScriptErrorKind::Syntax(_) | ScriptErrorKind::Runtime(_) => {
                ScriptErrorKind::Runtime(format!("in library {module:?}: {inner}"))
            }
            kind => kind,
        };
        Self::new(script, kind, position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column() {
        let e = ScriptError {
            script: "adt.rhai".into(),
            line: Some(12),
            column: Some(5),
            kind: ScriptErrorKind::Runtime("boom".into()),
        };
        assert_eq!(e.to_string(), "adt.rhai:12:5: runtime error: boom");
        let e = ScriptError {
            line: None,
            column: None,
            ..e
        };
        assert_eq!(e.to_string(), "adt.rhai: runtime error: boom");
    }
}
