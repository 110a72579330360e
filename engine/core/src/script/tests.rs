//! Unit tests of the script engine on the sample ORU message.

use super::*;

const SAMPLE: &str = "MSH|^~\\&|VITALS|ICU|MEDWAY|HOSP|20240501103000||ORU^R01^ORU_R01|VS000123|P|2.5.1\r\
PID|1||MRN12345^^^HOSP^MR||TEST^PATIENT||19600101|F\r\
OBX|1|NM|9279-1^Respiratory rate^LN||24|/min^^UCUM\r\
OBX|2|NM|8867-4^Heart rate^LN||112|/min^^UCUM\r";

fn engine() -> ScriptEngine {
    ScriptEngine::new(ScriptSettings::new("/nonexistent-lib"))
}

fn run_source(source: &str) -> (Result<ScriptOutput, ScriptError>, ScriptRun) {
    let engine = engine();
    let script = engine.compile_source("t.rhai", source).unwrap();
    let message = medway_hl7::Message::parse(bytes::Bytes::from_static(SAMPLE.as_bytes())).unwrap();
    let mut run = ScriptRun::new(message, "test");
    let out = engine.run(&script, &mut run);
    (out, run)
}

#[test]
fn reads_and_writes_paths() {
    let (out, run) = run_source(
        r#"
        let family = msg["PID-5.1"];
        msg["PID-5.1"] = family + "X";
        msg.set("OBX(2)-5", 113);
        msg["PID-99"]
        "#,
    );
    assert_eq!(out.unwrap().value.into_string().unwrap(), "");
    let message = run.message().unwrap();
    assert_eq!(message.get("PID-5.1").as_deref(), Some("TESTX"));
    assert_eq!(message.get("OBX(2)-5").as_deref(), Some("113"));
}

#[test]
fn reject_is_an_outcome() {
    let (out, _) = run_source("fn f() { reject(\"no PID\"); } f(); 42");
    let out = out.unwrap();
    assert_eq!(out.rejected.as_deref(), Some("no PID"));
}

#[test]
fn routes_last_call_wins() {
    let (out, _) = run_source("route_to([\"a\"]); route_to([\"b\", \"c\"]); true");
    assert_eq!(out.unwrap().routes, Some(vec!["b".into(), "c".into()]));
}

#[test]
fn channel_map_survives_between_steps() {
    let engine = engine();
    let first = engine
        .compile_source("one.rhai", "channel_map.mrn = msg[\"PID-3.1\"];")
        .unwrap();
    let second = engine
        .compile_source("two.rhai", "channel_map.mrn + \"!\"")
        .unwrap();
    let message = medway_hl7::Message::parse(bytes::Bytes::from_static(SAMPLE.as_bytes())).unwrap();
    let mut run = ScriptRun::new(message, "test");
    engine.run(&first, &mut run).unwrap();
    let out = engine.run(&second, &mut run).unwrap();
    assert_eq!(out.value.into_string().unwrap(), "MRN12345!");
    assert!(run.channel_map().contains_key("mrn"));
}

#[test]
fn segment_handles_write_through() {
    let (out, run) = run_source(
        r#"
        let n = 0;
        for obx in msg.segments("OBX") { obx["5"] = obx["5"] + "0"; n += 1; }
        msg.remove_segment("OBX", 1);
        msg.add_segment("NTE|1||note");
        msg.insert_segment(1, "ZXY|1");
        [n, msg.segment_count(), msg.segment_names()]
        "#,
    );
    let value = out.unwrap().value;
    assert_eq!(
        value.to_string(),
        "[2, 5, [\"MSH\", \"ZXY\", \"PID\", \"OBX\", \"NTE\"]]"
    );
    assert_eq!(run.message().unwrap().get("OBX-5").as_deref(), Some("1120"));
}

#[test]
fn compile_errors_have_positions() {
    let err = engine()
        .compile_source("bad.rhai", "let a = 1;\nlet b = ;\n")
        .unwrap_err();
    assert_eq!((err.line, err.column), (Some(2), Some(9)), "{err}");
    assert!(matches!(err.kind, ScriptErrorKind::Syntax(_)));
    assert!(
        err.to_string().starts_with("bad.rhai:2:9: syntax error"),
        "{err}"
    );
    let err = engine()
        .compile_source("undef.rhai", "\n  nope + 1")
        .unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
}

#[test]
fn runtime_errors_point_into_functions() {
    let (out, _) = run_source("fn f(x) {\n  x.nothing_here()\n}\n\nf(1)");
    let err = out.unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
    assert!(matches!(err.kind, ScriptErrorKind::Runtime(_)), "{err}");
}

#[test]
fn header_properties() {
    let (out, _) =
        run_source("[msg.type, msg.trigger, msg.control_id, msg.version, msg.processing_id]");
    assert_eq!(
        out.unwrap().value.to_string(),
        "[\"ORU\", \"R01\", \"VS000123\", \"2.5.1\", \"P\"]"
    );
}

#[test]
fn debug_output_never_shows_the_body() {
    let message = medway_hl7::Message::parse(bytes::Bytes::from_static(SAMPLE.as_bytes())).unwrap();
    let run = ScriptRun::new(message, "test");
    let shown = format!("{run:?}");
    assert!(!shown.contains("MRN12345"), "{shown}");
    assert!(shown.contains("ORU^R01 VS000123"), "{shown}");
}
