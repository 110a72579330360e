//! Sandbox tests: every limit and every escape attempt ends that run with a clear
//! `ScriptError`, and the same engine runs a normal script right after.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use medway_engine::script::{
    ScriptEngine, ScriptError, ScriptErrorKind, ScriptLimits, ScriptRun, ScriptSettings,
};

const SAMPLE: &[u8] = include_bytes!("../../../channels/samples/oru-r01-vitals.hl7");

fn run_of() -> ScriptRun {
    ScriptRun::new(
        medway_hl7::Message::parse(Bytes::from_static(SAMPLE)).unwrap(),
        "sandbox",
    )
}

fn engine_with(lib_dir: &Path, limits: ScriptLimits) -> ScriptEngine {
    let mut settings = ScriptSettings::new(lib_dir);
    settings.limits = limits;
    ScriptEngine::new(settings)
}

fn engine() -> ScriptEngine {
    engine_with(
        Path::new("/nonexistent/scripts/lib"),
        ScriptLimits::default(),
    )
}

/// Compiles and runs `source`; the error, whether from compiling or running.
fn failure(engine: &ScriptEngine, source: &str) -> ScriptError {
    let result = engine
        .compile_source("evil.rhai", source)
        .and_then(|script| engine.run(&script, &mut run_of()));
    match result {
        Ok(out) => panic!("script should fail, gave {:?}", out.value),
        Err(e) => e,
    }
}

/// A normal script still runs on the same engine.
fn still_works(engine: &ScriptEngine) {
    let script = engine
        .compile_source(
            "ok.rhai",
            "msg[\"PID-3.1\"] + \"/\" + msg.segments(\"OBX\").len()",
        )
        .unwrap();
    let out = engine.run(&script, &mut run_of()).unwrap();
    assert_eq!(out.value.into_string().unwrap(), "MRN12345/8");
}

#[test]
fn infinite_loop_hits_the_operation_limit() {
    let engine = engine();
    let err = failure(&engine, "let x = 0;\nloop { x += 1; }");
    assert_eq!(err.kind, ScriptErrorKind::TooManyOperations, "{err}");
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.to_string().starts_with("evil.rhai:2:"), "{err}");
    still_works(&engine);
}

#[test]
fn wall_clock_budget_stops_a_loop_with_a_huge_operation_budget() {
    let limits = ScriptLimits {
        max_operations: u64::MAX / 2,
        wall_clock: Duration::from_millis(100),
        ..ScriptLimits::default()
    };
    let engine = engine_with(Path::new("/nonexistent"), limits);
    let started = Instant::now();
    let err = failure(&engine, "loop {}");
    assert_eq!(
        err.kind,
        ScriptErrorKind::TimeLimit(Duration::from_millis(100)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("time limit of 100 ms"), "{err}");
    still_works(&engine);
}

#[test]
fn exponential_string_growth_hits_the_size_limit() {
    let engine = engine();
    let err = failure(&engine, "let s = \"x\"; loop { s += s; }");
    assert!(
        matches!(err.kind, ScriptErrorKind::DataTooLarge(_)),
        "{err}"
    );
    let err = failure(&engine, "let s = \"ab\"; s.pad(5000000, \"c\"); s");
    assert!(
        matches!(err.kind, ScriptErrorKind::DataTooLarge(_)),
        "{err}"
    );
    still_works(&engine);
}

#[test]
fn deep_recursion_hits_the_call_depth_limit() {
    let engine = engine();
    let err = failure(&engine, "fn down(n) { down(n + 1) }\ndown(0)");
    assert_eq!(err.kind, ScriptErrorKind::StackOverflow, "{err}");
    still_works(&engine);
}

#[test]
fn huge_arrays_and_maps_hit_their_limits() {
    let engine = engine();
    let err = failure(&engine, "let a = []; a.pad(100000, 0); a.len()");
    assert!(
        matches!(err.kind, ScriptErrorKind::DataTooLarge(_)),
        "{err}"
    );
    let err = failure(&engine, "let a = [1]; loop { a += a; }");
    assert!(
        matches!(err.kind, ScriptErrorKind::DataTooLarge(_)),
        "{err}"
    );
    let err = failure(&engine, "let b = blob(100000000); b.len()");
    assert!(
        matches!(err.kind, ScriptErrorKind::DataTooLarge(_)),
        "{err}"
    );
    let err = failure(
        &engine,
        "let m = #{}; for i in 0..20000 { m[`k${i}`] = i; } m.len()",
    );
    assert!(
        matches!(err.kind, ScriptErrorKind::DataTooLarge(_)),
        "{err}"
    );
    still_works(&engine);
}

#[test]
fn limits_cannot_be_caught_by_try() {
    let engine = engine();
    let err = failure(&engine, "try { loop {} } catch { 1 }");
    assert_eq!(err.kind, ScriptErrorKind::TooManyOperations, "{err}");
    let script = engine
        .compile_source("r.rhai", "try { reject(\"bad\"); } catch { 1 }; 2")
        .unwrap();
    let out = engine.run(&script, &mut run_of()).unwrap();
    assert_eq!(out.rejected.as_deref(), Some("bad"));
}

#[test]
fn imports_outside_the_library_are_refused() {
    let lib = tempfile::tempdir().unwrap();
    let engine = engine_with(lib.path(), ScriptLimits::default());
    for (source, expected_line) in [
        ("import \"../secret\" as s;\ns::x()", 1),
        ("\nimport \"/etc/passwd\" as p;", 2),
        ("import \"a/../../b\" as p;", 1),
        ("import \"x.rhai\" as p;", 1),
    ] {
        let err = failure(&engine, source);
        assert!(
            matches!(err.kind, ScriptErrorKind::ImportDenied(_)),
            "{source}: {err}"
        );
        assert_eq!(err.line, Some(expected_line), "{err}");
    }
    // A computed name is checked when the import runs.
    let err = failure(
        &engine,
        "let name = \"../\" + \"secret\";\nimport name as s;\n1",
    );
    assert!(
        matches!(err.kind, ScriptErrorKind::ImportDenied(_)),
        "{err}"
    );
    assert_eq!(err.line, Some(2), "{err}");
    let err = failure(&engine, "import \"missing\" as m;");
    assert_eq!(
        err.kind,
        ScriptErrorKind::ModuleNotFound("missing".into()),
        "{err}"
    );
    still_works(&engine);
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_library_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.rhai"), "fn x() { 1 }").unwrap();
    let lib = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.rhai"),
        lib.path().join("leak.rhai"),
    )
    .unwrap();
    let engine = engine_with(lib.path(), ScriptLimits::default());
    let err = failure(&engine, "import \"leak\" as l;\nl::x()");
    assert!(
        matches!(err.kind, ScriptErrorKind::ImportDenied(_)),
        "{err}"
    );
}

#[test]
fn library_modules_load_and_are_cached() {
    let lib = tempfile::tempdir().unwrap();
    std::fs::create_dir(lib.path().join("site")).unwrap();
    std::fs::write(
        lib.path().join("greet.rhai"),
        "fn hello(who) { `hello ${who}` }",
    )
    .unwrap();
    std::fs::write(
        lib.path().join("site/fix.rhai"),
        "fn upper(m) { m[\"PID-5.1\"] = m[\"PID-5.1\"].to_lower(); }",
    )
    .unwrap();
    let engine = engine_with(lib.path(), ScriptLimits::default());
    let script = engine
        .compile_source(
            "uses-lib.rhai",
            "import \"greet\" as g;\nimport \"site/fix\" as fix;\nfix::upper(msg);\ng::hello(msg[\"PID-5.1\"])",
        )
        .unwrap();
    for _ in 0..3 {
        let mut run = run_of();
        let out = engine.run(&script, &mut run).unwrap();
        assert_eq!(out.value.into_string().unwrap(), "hello test");
        assert_eq!(
            run.message().unwrap().get("PID-5.1").as_deref(),
            Some("test")
        );
    }
    let err = failure(&engine, "import \"greet\" as g;\ng::nope()");
    assert!(matches!(err.kind, ScriptErrorKind::Runtime(_)), "{err}");
    // A syntax error inside a library names the library.
    std::fs::write(lib.path().join("broken.rhai"), "fn x( {").unwrap();
    let err = failure(&engine, "import \"broken\" as b;");
    assert!(err.to_string().contains("broken"), "{err}");
}

#[test]
fn no_file_network_process_or_eval() {
    let engine = engine();
    for source in [
        "open(\"/etc/passwd\")",
        "read_file(\"/etc/passwd\")",
        "File::open(\"/etc/passwd\")",
        "std::fs::read(\"/etc/passwd\")",
        "system(\"ls\")",
        "exec(\"ls\")",
        "http_get(\"http://127.0.0.1/\")",
        "sleep(30)",
        "eval(\"1 + 1\")",
        "let f = Fn(\"eval\"); f.call(\"1\")",
    ] {
        let started = Instant::now();
        let err = failure(&engine, source);
        assert!(
            matches!(
                err.kind,
                ScriptErrorKind::Runtime(_)
                    | ScriptErrorKind::Syntax(_)
                    | ScriptErrorKind::ModuleNotFound(_)
            ),
            "{source}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{source}");
    }
    still_works(&engine);
}

#[test]
fn print_and_debug_do_not_fail_and_do_not_reach_stdout() {
    // Output capture is the test harness's; what matters here is that both calls exist and
    // return (they are routed to `tracing`, which has no subscriber in this test).
    let engine = engine();
    let script = engine
        .compile_source("p.rhai", "print(\"hello\"); debug(42); 1")
        .unwrap();
    assert_eq!(
        engine
            .run(&script, &mut run_of())
            .unwrap()
            .value
            .as_int()
            .unwrap(),
        1
    );
}

#[test]
fn engine_and_scripts_are_shared_across_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<ScriptEngine>();
    send_sync::<medway_engine::script::Script>();
    let engine = engine();
    let script = engine
        .compile_source("t.rhai", "msg[\"OBX(2)-5\"] = \"95\"; msg[\"OBX(2)-5\"]")
        .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let engine = engine.clone();
            let script = script.clone();
            std::thread::spawn(move || {
                for round in 0..20 {
                    let out = if i == 0 && round < 2 {
                        let bad = engine.compile_source("loop.rhai", "loop {}").unwrap();
                        assert!(engine.run(&bad, &mut run_of()).is_err());
                        continue;
                    } else {
                        engine.run(&script, &mut run_of()).unwrap()
                    };
                    assert_eq!(out.value.into_string().unwrap(), "95");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
