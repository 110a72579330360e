//! The script API's edges: errors with positions, failed edits leaving the message intact,
//! replacing the message, code-map loading, salts, compile_file — and an `#[ignore]`d timing
//! loop for a typical transform (run it with `--release -- --ignored --nocapture`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use medway_engine::script::{
    CodeMaps, ScriptEngine, ScriptError, ScriptErrorKind, ScriptOutput, ScriptRun, ScriptSettings,
};

const SAMPLE: &[u8] = include_bytes!("../../../channels/samples/oru-r01-vitals.hl7");

fn sample() -> medway_hl7::Message {
    medway_hl7::Message::parse(Bytes::from_static(SAMPLE)).unwrap()
}

fn engine() -> ScriptEngine {
    ScriptEngine::new(ScriptSettings::new("/nonexistent/lib"))
}

fn run(engine: &ScriptEngine, source: &str) -> (Result<ScriptOutput, ScriptError>, ScriptRun) {
    let mut script_run = ScriptRun::new(sample(), "api");
    let result = engine
        .compile_source("api.rhai", source)
        .and_then(|script| engine.run(&script, &mut script_run));
    (result, script_run)
}

fn runtime_error(source: &str) -> ScriptError {
    let (result, script_run) = run(&engine(), source);
    let err = result.expect_err(source);
    assert!(
        matches!(err.kind, ScriptErrorKind::Runtime(_)),
        "{source}: {err}"
    );
    // A failed step leaves the message as it was before the failing call.
    assert_eq!(
        script_run.message().unwrap().encode(),
        Bytes::from_static(SAMPLE),
        "{source}"
    );
    err
}

#[test]
fn bad_paths_and_edits_are_runtime_errors_with_positions() {
    let err = runtime_error("let a = 1;\nlet b = msg[\"PID5\"];");
    assert_eq!((err.line, err.column), (Some(2), Some(12)), "{err}");
    assert!(err.to_string().contains("PID5"), "{err}");
    let err = runtime_error("msg[\"NTE-3\"] = \"x\";");
    assert!(err.to_string().contains("NTE"), "{err}");
    runtime_error("msg.set(\"MSH-2\", \"x\");");
    runtime_error("msg[\"PID-5\"] = [1, 2];");
    runtime_error("hl7_parse(\"not hl7\")");
    runtime_error("msg.add_segment(\"NTE|1\\rZZZ|2\")");
    runtime_error("msg.add_segment(\"nte|1\")");
    runtime_error("msg.add_segment(\"MSH|^~\\\\&|x\")");
    runtime_error("msg.insert_segment(0, \"ZXY|1\")");
    runtime_error("msg.insert_segment(99, \"ZXY|1\")");
    runtime_error("msg.remove_segment(\"MSH\", 1)");
    runtime_error("msg.remove_segment(\"OBX\", 0)");
    runtime_error("msg.segments(\"obx\")");
    runtime_error("new_message(\"ADT\", \"A08|x\", \"2.5.1\")");
    runtime_error("new_message(\"ADT\", \"A08\", \"9\")");
    runtime_error("hl7_time_parse(\"20240231\")");
    runtime_error("hl7_time_format(hl7_time_parse(\"2024\"), \"%Q%\")");
    runtime_error("shift_date(\"yesterday\", 1)");
    runtime_error("lookup(\"nope\", \"x\")");
    let err = runtime_error("assert(1 > 2, \"one is not greater\")");
    assert!(
        err.to_string()
            .contains("assertion failed: one is not greater"),
        "{err}"
    );
    let err = runtime_error("assert_eq(msg.type, \"ADT\")");
    assert!(err.to_string().contains("ORU"), "{err}");
    let err = runtime_error("throw \"custom\";");
    assert!(err.to_string().contains("custom"), "{err}");
}

#[test]
fn the_message_can_be_replaced_and_set_between_steps() {
    let engine = engine();
    let (result, script_run) = run(
        &engine,
        "let old = msg.control_id; msg = new_message(\"ADT\", \"A08\", \"2.5.1\"); msg.add_segment(`ZID|${old}`);",
    );
    result.unwrap();
    let message = script_run.message().unwrap();
    assert_eq!(message.message_type().as_deref(), Some("ADT"));
    assert_eq!(message.get("ZID-1").as_deref(), Some("VS000123"));
    assert_eq!(message.get("MSH-10").map(|c| c.len()), Some(18));

    let mut script_run = ScriptRun::new(sample(), "api");
    let replacement = medway_hl7::Message::parse(Bytes::from_static(
        b"MSH|^~\\&|A||||2024||ADT^A01|X1|P|2.4\r",
    ))
    .unwrap();
    script_run.set_message(replacement);
    let script = engine.compile_source("t.rhai", "msg.control_id").unwrap();
    let out = engine.run(&script, &mut script_run).unwrap();
    assert_eq!(out.value.into_string().unwrap(), "X1");
}

#[test]
fn exit_value_response_and_unit_defaults() {
    let engine = engine();
    let (result, _) = run(&engine, "if true { exit(7); } 1");
    assert_eq!(result.unwrap().value.as_int().unwrap(), 7);
    let (result, _) = run(&engine, "response == ()");
    assert!(result.unwrap().value.as_bool().unwrap());
    let mut response = rhai::Map::new();
    response.insert("ack_code".into(), "AE".into());
    let mut script_run = ScriptRun::new(sample(), "api").with_response(response);
    let script = engine
        .compile_source(
            "r.rhai",
            "if response.ack_code != \"AA\" { \"retry\" } else { \"sent\" }",
        )
        .unwrap();
    let out = engine.run(&script, &mut script_run).unwrap();
    assert_eq!(out.value.into_string().unwrap(), "retry");
}

#[test]
fn segment_edits_on_lf_terminated_messages() {
    let engine = engine();
    let lf = String::from_utf8(SAMPLE.to_vec())
        .unwrap()
        .replace('\r', "\n");
    let mut script_run =
        ScriptRun::new(medway_hl7::Message::parse(Bytes::from(lf)).unwrap(), "api");
    let script = engine
        .compile_source(
            "lf.rhai",
            "msg.remove_segments(\"OBX\"); msg.add_segment(\"NTE|1||n\"); msg.segment_names()",
        )
        .unwrap();
    let out = engine.run(&script, &mut script_run).unwrap();
    assert_eq!(
        out.value.to_string(),
        "[\"MSH\", \"PID\", \"PV1\", \"OBR\", \"OBR\", \"NTE\"]"
    );
    let encoded = script_run.message().unwrap().encode();
    assert!(!encoded.contains(&b'\n'), "re-encoded with CR terminators");
}

#[test]
fn hash_depends_on_the_installation_salt() {
    let hash_with = |salt: &str| {
        let mut settings = ScriptSettings::new("/nonexistent");
        settings.salt = Arc::from(salt);
        let engine = ScriptEngine::new(settings);
        let (result, _) = run(&engine, "hash(msg[\"PID-3.1\"])");
        result.unwrap().value.into_string().unwrap()
    };
    assert_eq!(hash_with("a"), hash_with("a"));
    assert_ne!(hash_with("a"), hash_with("b"));
    assert_eq!(hash_with("a").len(), 32);
}

#[test]
fn code_maps_load_and_report_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        CodeMaps::load_dir(&dir.path().join("missing"))
            .unwrap()
            .names()
            .is_empty()
    );
    std::fs::write(
        dir.path().join("units.csv"),
        "\u{feff}from,to\r\n[degF],Fahrenheit\r\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("wards.toml"), "W7 = \"Ward 7\"\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let maps = CodeMaps::load_dir(dir.path()).unwrap();
    assert_eq!(maps.names(), ["units", "wards"]);
    assert_eq!(maps.get("units", "[degF]"), Some("Fahrenheit"));
    assert_eq!(maps.get("wards", "W7"), Some("Ward 7"));
    assert_eq!(maps.get("wards", "W8"), None);

    std::fs::write(dir.path().join("units.toml"), "a = \"b\"\n").unwrap();
    let err = CodeMaps::load_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("already defined"), "{err}");
    std::fs::remove_file(dir.path().join("units.toml")).unwrap();

    std::fs::write(dir.path().join("bad.csv"), "k,v\na,1\nb\n").unwrap();
    let err = CodeMaps::load_dir(dir.path()).unwrap_err();
    assert_eq!(err.line, Some(3));
    assert!(
        err.to_string()
            .ends_with("bad.csv:3: expected two columns: key,value"),
        "{err}"
    );
}

#[test]
fn compile_file_names_the_file_and_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adt-fix.rhai");
    std::fs::write(
        &file,
        "// fix names\nlet x = msg[\"PID-5.1\"];\nlet y = x +;\n",
    )
    .unwrap();
    let err = engine().compile_file(&file).unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
    assert!(err.script.ends_with("adt-fix.rhai"));
    assert!(err.to_string().contains("adt-fix.rhai:3:"), "{err}");
    let err = engine()
        .compile_file(Path::new("/nonexistent/x.rhai"))
        .unwrap_err();
    assert!(matches!(err.kind, ScriptErrorKind::Io(_)), "{err}");
    std::fs::write(&file, "msg.type").unwrap();
    let script = engine().compile_file(&file).unwrap();
    assert!(script.name().ends_with("adt-fix.rhai"));
}

/// The typical transform of the issue: 5 path reads, 3 writes, a lookup, a loop over OBX.
const TYPICAL_TRANSFORM: &str = r#"
let mrn = msg["PID-3.1"];
let family = msg["PID-5.1"];
let ward = msg["PV1-3.1"];
let sender = msg["MSH-3"];
let observed = msg["OBR-7"];
msg["PID-5.1"] = family.to_upper();
msg["PV1-3.4"] = "HOSP";
msg["MSH-5"] = "MEDWAY";
channel_map.local_code = lookup("loinc_local", msg["OBX-3.1"]);
for obx in msg.segments("OBX") { if obx["8"] == "H" { channel_map.abnormal = true; } }
"#;

#[test]
#[ignore = "timing loop: cargo test --release -p medway-engine --test script_api -- --ignored --nocapture"]
fn typical_transform_cost() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("loinc_local.csv"),
        "loinc,local\n9279-1,RESP\n",
    )
    .unwrap();
    let mut settings = ScriptSettings::new("/nonexistent");
    settings.maps = Arc::new(CodeMaps::load_dir(dir.path()).unwrap());
    let engine = ScriptEngine::new(settings);
    let script = engine
        .compile_source("typical.rhai", TYPICAL_TRANSFORM)
        .unwrap();
    let parsed = sample();
    let iterations = 20_000u32;
    for _ in 0..1_000 {
        let mut script_run = ScriptRun::new(parsed.clone(), "bench");
        engine.run(&script, &mut script_run).unwrap();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        let mut script_run = ScriptRun::new(parsed.clone(), "bench");
        engine.run(&script, &mut script_run).unwrap();
        std::hint::black_box(script_run.message());
    }
    let per_run = started.elapsed() / iterations;
    let started = Instant::now();
    for _ in 0..iterations {
        let message = medway_hl7::Message::parse(Bytes::from_static(SAMPLE)).unwrap();
        let mut script_run = ScriptRun::new(message, "bench");
        engine.run(&script, &mut script_run).unwrap();
        std::hint::black_box(script_run.message());
    }
    let with_parse = started.elapsed() / iterations;
    println!(
        "typical 10-line transform: {:.1} µs per message (fresh ScriptRun, message clone); {:.1} µs including Message::parse",
        per_run.as_secs_f64() * 1e6,
        with_parse.as_secs_f64() * 1e6
    );
}
