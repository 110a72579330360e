//! The sandbox: limits, the wall-clock budget, the per-run frame and the library resolver.
//!
//! A channel script runs inside an `Engine::new_raw()` with only Rhai's standard package and
//! Medway's own functions: no file system, network or process access, no `eval`, no `sleep`.
//! Every limit in [`ScriptLimits`] is set explicitly (Rhai's defaults differ between debug and
//! release builds). The wall-clock budget is enforced by `on_progress`, which checks the
//! deadline of the run in progress on this thread every [`DEADLINE_CHECK_EVERY`] operations.
//!
//! `import "name" as x;` only loads `<lib_dir>/<name>.rhai` where `name` matches
//! `[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*` — no `..`, no absolute path, no extension — and the file,
//! once its symbolic links are resolved, still lies inside `lib_dir`. Compiled library modules
//! are cached for the life of the engine (one engine per loaded channel set, so a reload picks
//! up edited libraries).
//!
//! Invariants: a [`RunFrame`] is installed on the running thread for exactly the duration of
//! one `ScriptEngine::run` (restored on drop, so a panic cannot leak it into the next run);
//! nothing here panics on script input; the resolver never reads outside `lib_dir`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rhai::module_resolvers::ModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Module, Position, Scope, Shared};

type SharedModule = Shared<Module>;
type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;

/// How many operations pass between two wall-clock checks.
pub(crate) const DEADLINE_CHECK_EVERY: u64 = 256;
/// Most library modules one script run may have loaded at once.
const MAX_MODULES: usize = 64;
/// Longest accepted library name.
const MAX_LIB_NAME: usize = 128;

/// Resource limits applied to every script run. Rhai reads 0 as "no limit" for operations,
/// expression depths and sizes (but as "no function calls" for `max_call_levels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Rhai operations per run (statements, expressions, calls).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_levels: usize,
    /// Expression nesting depth at the top level.
    pub max_expr_depth: usize,
    /// Expression nesting depth inside functions.
    pub max_function_expr_depth: usize,
    /// Longest string, in bytes.
    pub max_string_size: usize,
    /// Most array elements.
    pub max_array_size: usize,
    /// Most object-map entries.
    pub max_map_size: usize,
    /// Wall-clock budget of one run (one step for one message).
    pub wall_clock: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            max_operations: 1_000_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 1 << 20,
            max_array_size: 10_000,
            max_map_size: 10_000,
            wall_clock: Duration::from_secs(1),
        }
    }
}

/// Values carried by `ErrorTerminated` to say why a run stopped early. A terminated error is a
/// Rhai "system exception": it passes through function calls and cannot be caught by `try`.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// `reject(reason)` was called.
    Reject(String),
    /// The wall-clock budget ran out.
    TimeLimit,
    /// An `import` named something outside the library folder.
    ImportDenied(String),
}

impl Signal {
    pub(crate) fn into_error(self, position: Position) -> Box<EvalAltResult> {
        Box::new(EvalAltResult::ErrorTerminated(
            Dynamic::from(self),
            position,
        ))
    }
}

/// What native functions may know about the run in progress on this thread.
#[derive(Debug)]
pub(crate) struct RunFrame {
    pub channel: Arc<str>,
    pub script: Arc<str>,
    pub deadline: Instant,
    /// Set by `route_to`; the last call wins.
    pub routes: Option<Vec<String>>,
}

thread_local! {
    static CURRENT_FRAME: RefCell<Option<RunFrame>> = const { RefCell::new(None) };
}

/// Installs a [`RunFrame`] for one run; the previous frame (normally none) comes back on drop.
pub(crate) struct FrameGuard {
    previous: Option<RunFrame>,
    finished: bool,
}

impl FrameGuard {
    pub(crate) fn enter(frame: RunFrame) -> Self {
        let previous = CURRENT_FRAME.with(|slot| slot.replace(Some(frame)));
        Self {
            previous,
            finished: false,
        }
    }

    /// Ends the run: removes this run's frame and returns it.
    pub(crate) fn finish(mut self) -> Option<RunFrame> {
        self.finished = true;
        let previous = self.previous.take();
        CURRENT_FRAME.with(|slot| slot.replace(previous))
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        if !self.finished {
            let previous = self.previous.take();
            CURRENT_FRAME.with(|slot| {
                slot.replace(previous);
            });
        }
    }
}

/// Runs `f` on the current frame, if a run is in progress on this thread.
pub(crate) fn with_frame<R>(f: impl FnOnce(&mut RunFrame) -> R) -> Option<R> {
    CURRENT_FRAME.with(|slot| slot.try_borrow_mut().ok()?.as_mut().map(f))
}

/// The `on_progress` callback: stops the run once its deadline has passed.
fn check_deadline(operations: u64) -> Option<Dynamic> {
    if !operations.is_multiple_of(DEADLINE_CHECK_EVERY) {
        return None;
    }
    let late = with_frame(|frame| Instant::now() > frame.deadline).unwrap_or(false);
    late.then(|| Dynamic::from(Signal::TimeLimit))
}

/// Truncates text for a log line (at a character boundary).
pub(crate) fn truncate_for_log(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// Builds the sandboxed engine: standard package, limits, progress, print/debug to the log,
/// the library resolver. Medway's functions are registered by the caller.
pub(crate) fn sandboxed_engine(limits: &ScriptLimits, lib_dir: &Path) -> Engine {
    let mut engine = Engine::new_raw();
    let std_package = rhai::packages::StandardPackage::new();
    engine.register_global_module(rhai::packages::Package::as_shared_module(&std_package));
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_modules(MAX_MODULES)
        .set_strict_variables(true);
    engine.disable_symbol("eval");
    engine.on_progress(check_deadline);
    engine.on_print(|text| {
        let (channel, script) = frame_names();
        tracing::info!(target: "medway::script", %channel, %script, "print: {}", truncate_for_log(text, 200));
    });
    engine.on_debug(|text, _source, position| {
        let (channel, script) = frame_names();
        tracing::debug!(target: "medway::script", %channel, %script, %position, "debug: {}", truncate_for_log(text, 200));
    });
    engine.set_module_resolver(LibResolver::new(lib_dir.to_path_buf()));
    engine
}

/// Channel and script names of the run in progress (empty outside a run).
pub(crate) fn frame_names() -> (Arc<str>, Arc<str>) {
    with_frame(|f| (f.channel.clone(), f.script.clone()))
        .unwrap_or_else(|| (Arc::from(""), Arc::from("")))
}

/// Loads `import`ed modules from the library folder only.
pub(crate) struct LibResolver {
    lib_dir: PathBuf,
    cache: RwLock<HashMap<String, SharedModule>>,
}

impl LibResolver {
    pub(crate) fn new(lib_dir: PathBuf) -> Self {
        Self {
            lib_dir,
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn load(&self, engine: &Engine, name: &str, pos: Position) -> RhaiResultOf<SharedModule> {
        let in_module = |err: Box<EvalAltResult>| {
            Box::new(EvalAltResult::ErrorInModule(name.to_owned(), err, pos))
        };
        let file = self.lib_dir.join(format!("{name}.rhai"));
        let source = match std::fs::read_to_string(&file) {
            Ok(source) => source,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Box::new(EvalAltResult::ErrorModuleNotFound(
                    name.to_owned(),
                    pos,
                )));
            }
            Err(e) => return Err(in_module(format!("cannot read library: {e}").into())),
        };
        let inside = match (file.canonicalize(), self.lib_dir.canonicalize()) {
            (Ok(f), Ok(d)) => f.starts_with(d),
            _ => false,
        };
        if !inside {
            let reason = format!("{name:?} resolves outside the library folder");
            return Err(Signal::ImportDenied(reason).into_error(pos));
        }
        let mut ast = engine
            .compile(&source)
            .map_err(|e| in_module(Box::new(EvalAltResult::ErrorParsing(*e.0, e.1))))?;
        ast.set_source(format!("lib/{name}.rhai"));
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        Ok(module.into())
    }
}

/// Checks a library name; the reason when it is refused.
pub(crate) fn check_lib_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_LIB_NAME {
        return Err("library names are 1 to 128 characters");
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("absolute paths are not allowed; name a file in scripts/lib");
    }
    if name.contains("..") {
        return Err("'..' is not allowed; name a file in scripts/lib");
    }
    if name.ends_with(".rhai") {
        return Err("name the library without its .rhai extension");
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/'));
    if !ok_chars {
        return Err("library names use only A-Z, a-z, 0-9, '_', '-' and '/'");
    }
    if name.split('/').any(str::is_empty) {
        return Err("empty path segment in library name");
    }
    Ok(())
}

impl ModuleResolver for LibResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> RhaiResultOf<SharedModule> {
        if let Err(reason) = check_lib_name(path) {
            let shown = truncate_for_log(path, 64);
            return Err(Signal::ImportDenied(format!("{shown:?}: {reason}")).into_error(pos));
        }
        let cached = match self.cache.read() {
            Ok(cache) => cache.get(path).cloned(),
            Err(poisoned) => poisoned.into_inner().get(path).cloned(),
        };
        if let Some(module) = cached {
            return Ok(module);
        }
        let module = self.load(engine, path, pos)?;
        match self.cache.write() {
            Ok(mut cache) => cache.insert(path.to_owned(), module.clone()),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(path.to_owned(), module.clone()),
        };
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        for ok in ["hl7", "text_utils", "site/adt-fixes", "A9"] {
            assert_eq!(check_lib_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../secret",
            "/etc/passwd",
            "a/../b",
            "x.rhai",
            "a//b",
            "a/",
            "C:\\x",
            "a b",
            "ünï",
        ] {
            assert!(check_lib_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_for_log("héllo", 2), "hé");
        assert_eq!(truncate_for_log("abc", 10), "abc");
    }

    #[test]
    fn frame_is_restored() {
        let guard = FrameGuard::enter(RunFrame {
            channel: "c".into(),
            script: "s".into(),
            deadline: Instant::now(),
            routes: None,
        });
        assert!(with_frame(|_| ()).is_some());
        drop(guard);
        assert!(with_frame(|_| ()).is_none());
    }
}
