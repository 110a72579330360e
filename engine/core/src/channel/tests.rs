//! The pipeline on JSON documents: a FHIR Observation and a generic webhook body through
//! filter, validate, transform and route steps (channel and destination), with the same
//! conventions, errors and limits as on HL7.

use super::*;
use crate::config::parse_channel;
use crate::delivery::{DestinationScripts, Prepared};
use crate::script::{ScriptEngine, ScriptLimits, ScriptSettings};
use serde_json::{Value, json};
use std::path::Path;

/// A FHIR R4 heart-rate Observation (the shape of US Core's example, trimmed).
fn observation(status: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "id": "heart-rate",
        "status": status,
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"
        }]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": "1999-07-02",
        "valueQuantity": {"value": 44, "unit": "beats/min",
            "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

/// A webhook body as an ordering system might post it.
fn webhook(event: &str, total: f64) -> Value {
    json!({
        "event": event,
        "order": {"id": 42, "total": total, "items": [{"sku": "A1", "qty": 2}]}
    })
}

/// A channel with the given steps (`kind`, script text) and destinations `a` and `b`.
struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: ChannelPipeline,
}

fn fixture(steps: &[(&str, &str)], limits: ScriptLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[source]\nkind = \"internal\"\n");
    for (i, (kind, script)) in steps.iter().enumerate() {
        if *kind == "required" {
            text.push_str(&format!(
                "[[step]]\nkind = \"validate\"\nrequired = [{script:?}]\n"
            ));
            continue;
        }
        let name = format!("s{i}.rhai");
        std::fs::write(dir.path().join(&name), script).unwrap();
        text.push_str(&format!(
            "[[step]]\nkind = \"{kind}\"\nscript = \"{name}\"\n"
        ));
    }
    for d in ["a", "b"] {
        text.push_str(&format!(
            "[[destination]]\nname = \"{d}\"\nkind = \"file\"\ndirectory = \"out\"\n"
        ));
    }
    let config = parse_channel(&dir.path().join("json.toml"), &text).unwrap();
    let settings = ScriptSettings {
        limits,
        ..ScriptSettings::new(dir.path().join("lib"))
    };
    let engine = ScriptEngine::new(settings);
    let pipeline = ChannelPipeline::build(&config, &engine, dir.path()).unwrap();
    Fixture {
        _dir: dir,
        pipeline,
    }
}

fn process(steps: &[(&str, &str)], document: &Value) -> ProcessedJson {
    fixture(steps, ScriptLimits::default())
        .pipeline
        .process_json(document)
}

fn routes(p: &ProcessedJson) -> Vec<&str> {
    p.routes.iter().map(|r| &**r).collect()
}

fn invalid_text(p: &ProcessedJson) -> &str {
    match &p.verdict {
        Verdict::Invalid(e) => &e.text,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn filter_on_observation_status() {
    let filter = [("filter", r#"res.status == "final""#)];
    let kept = process(&filter, &observation("final"));
    assert_eq!(kept.verdict, Verdict::Accept);
    assert_eq!(routes(&kept), ["a", "b"]);
    assert_eq!(kept.document, observation("final"));
    let dropped = process(&filter, &observation("preliminary"));
    assert_eq!(dropped.verdict, Verdict::Filter);
    assert!(dropped.routes.is_empty());
}

#[test]
fn transform_changes_observation_and_keeps_member_order() {
    let transform = [(
        "transform",
        r#"
        res.valueQuantity.value = res.valueQuantity.value + 1;
        res.code.coding[0].display = "Heart rate";
        res.note = [#{ text: "checked by medway" }];
        "#,
    )];
    let p = process(&transform, &observation("final"));
    assert_eq!(p.verdict, Verdict::Accept);
    assert_eq!(p.document["valueQuantity"]["value"], 45);
    assert_eq!(p.document["code"]["coding"][0]["display"], "Heart rate");
    assert_eq!(p.document["note"][0]["text"], "checked by medway");
    // Untouched members are unchanged; `resourceType` still comes first, the new `note` last.
    assert_eq!(p.document["subject"], observation("final")["subject"]);
    let keys: Vec<&String> = p.document.as_object().unwrap().keys().collect();
    assert_eq!(keys.first().map(|k| k.as_str()), Some("resourceType"));
    assert_eq!(keys.last().map(|k| k.as_str()), Some("note"));
}

#[test]
fn route_on_observation_code() {
    let route = [(
        "route",
        r#"if res.code.coding[0].code == "8867-4" { ["b"] } else { route_to(["a"]); () }"#,
    )];
    let p = process(&route, &observation("final"));
    assert_eq!(p.verdict, Verdict::Accept);
    assert_eq!(routes(&p), ["b"]);
    let mut other = observation("final");
    other["code"]["coding"][0]["code"] = json!("9279-1");
    assert_eq!(routes(&process(&route, &other)), ["a"]);
    let unknown = process(&[("route", r#"["nowhere"]"#)], &other);
    assert!(invalid_text(&unknown).contains("unknown destination"));
}

#[test]
fn validate_reason_and_reject_on_json() {
    let validate = [(
        "validate",
        r#"if res.valueQuantity.value > 300 { "implausible heart rate" } else { true }"#,
    )];
    assert_eq!(
        process(&validate, &observation("final")).verdict,
        Verdict::Accept
    );
    let mut high = observation("final");
    high["valueQuantity"]["value"] = json!(400);
    let p = process(&validate, &high);
    match &p.verdict {
        Verdict::Invalid(e) => {
            assert_eq!((e.code, e.text.as_str()), (102, "implausible heart rate"))
        }
        other => panic!("{other:?}"),
    }
    let rejected = process(&[("validate", r#"reject("no subject"); true"#)], &high);
    assert_eq!(invalid_text(&rejected), "no subject");
}

#[test]
fn webhook_filter_transform_route() {
    let steps = [
        ("filter", r#"res.event == "order.created""#),
        (
            "transform",
            r#"
            res.order.items.push(#{ sku: "FEE", qty: 1 });
            res.big = res.order.total > 100.0;
            channel_map.total = res.order.total;
            "#,
        ),
        (
            "route",
            r#"if channel_map.total > 100.0 { ["a", "b"] } else { ["a"] }"#,
        ),
    ];
    let p = process(&steps, &webhook("order.created", 250.5));
    assert_eq!(p.verdict, Verdict::Accept);
    assert_eq!(routes(&p), ["a", "b"]);
    assert_eq!(p.document["big"], true);
    assert_eq!(p.document["order"]["id"], 42);
    assert_eq!(p.document["order"]["total"], 250.5);
    assert_eq!(p.document["order"]["items"][1]["sku"], "FEE");
    let small = process(&steps, &webhook("order.created", 10.0));
    assert_eq!(routes(&small), ["a"]);
    assert_eq!(
        process(&steps, &webhook("order.cancelled", 10.0)).verdict,
        Verdict::Filter
    );
    // A top-level array is a document too.
    let array = process(&[("filter", "res.len() == 2")], &json!([1, 2]));
    assert_eq!(array.verdict, Verdict::Accept);
}

#[test]
fn hl7_calls_on_json_are_clear_script_errors() {
    for script in [
        r#"msg["PID-3.1"]"#,
        r#"msg.get("PID-3")"#,
        "msg.control_id",
        r#"msg.segments("OBX")"#,
    ] {
        let p = process(&[("transform", script)], &observation("final"));
        let text = invalid_text(&p);
        assert!(
            text.contains("JSON document") && text.contains("use `res`"),
            "{script}: {text}"
        );
    }
}

#[test]
fn script_errors_and_limits_apply_to_json() {
    let p = process(&[("filter", "res.status")], &observation("final"));
    assert!(
        invalid_text(&p).contains("returned string, not true/false"),
        "{}",
        invalid_text(&p)
    );
    let p = process(&[("transform", "loop {}")], &webhook("x", 1.0));
    assert!(
        invalid_text(&p).contains("script error"),
        "{}",
        invalid_text(&p)
    );
    // A document over the map limit never reaches the script.
    let limits = ScriptLimits {
        max_map_size: 5,
        ..ScriptLimits::default()
    };
    let p = fixture(&[("filter", "true")], limits)
        .pipeline
        .process_json(&observation("final"));
    assert!(
        invalid_text(&p).contains("too large"),
        "{}",
        invalid_text(&p)
    );
    // A value JSON cannot hold.
    let p = process(&[("transform", "res.f = || 1;")], &webhook("x", 1.0));
    assert!(
        invalid_text(&p).contains("JSON cannot express"),
        "{}",
        invalid_text(&p)
    );
    // `required` names HL7 paths.
    let p = process(&[("required", "PID-3")], &webhook("x", 1.0));
    assert!(
        invalid_text(&p).contains("JSON document"),
        "{}",
        invalid_text(&p)
    );
}

#[test]
fn hl7_runs_see_no_document() {
    // A script's own `let res` is a local variable: it does not turn the message into JSON.
    let fixture = fixture(
        &[
            ("validate", r#"res == () && msg["MSH-10"] == "C1""#),
            ("transform", "let res = 5; let channel_map = 1; res + 1"),
            ("filter", "res == () && type_of(channel_map) == \"map\""),
        ],
        ScriptLimits::default(),
    );
    let message = medway_hl7::Message::parse(bytes::Bytes::from_static(
        b"MSH|^~\\&|A|B|C|D|20240101000000||ADT^A01|C1|P|2.5\rPID|1||123\r",
    ))
    .unwrap();
    assert_eq!(fixture.pipeline.process(message).verdict, Verdict::Accept);
}

#[test]
fn destination_scripts_on_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.rhai"), r#"res.status != "cancelled""#).unwrap();
    std::fs::write(dir.path().join("t.rhai"), r#"res.delivered_by = "medway";"#).unwrap();
    let text = "[source]\nkind = \"internal\"\n[[destination]]\nname = \"a\"\nkind = \"file\"\n\
                directory = \"out\"\nfilter = \"f.rhai\"\ntransform = \"t.rhai\"\n";
    let config = parse_channel(Path::new("d.toml"), text).unwrap();
    let engine = ScriptEngine::new(ScriptSettings::new(dir.path().join("lib")));
    let scripts =
        DestinationScripts::build(&config, &config.destinations[0], &engine, dir.path()).unwrap();
    let payload = bytes::Bytes::from(
        serde_json::to_vec(&json!({"resourceType": "Observation", "status": "final"})).unwrap(),
    );
    let Ok(Prepared::Send(sent)) = scripts.prepare(&payload) else {
        panic!("not sent");
    };
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(
        sent,
        json!({"resourceType": "Observation", "status": "final", "delivered_by": "medway"})
    );
    let cancelled = bytes::Bytes::from_static(br#"{"status": "cancelled"}"#);
    assert!(matches!(scripts.prepare(&cancelled), Ok(Prepared::Skip(_))));
}

#[test]
fn destination_transform_builds_json_from_hl7() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("to-fhir.rhai"),
        r#"res = #{ resourceType: "Observation", id: msg["MSH-10"], status: "final",
                   valueQuantity: #{ value: parse_float(msg["OBX-5"]) } };"#,
    )
    .unwrap();
    let text = "[source]\nkind = \"internal\"\n[[destination]]\nname = \"a\"\nkind = \"file\"\n\
                directory = \"out\"\ntransform = \"to-fhir.rhai\"\n";
    let config = parse_channel(Path::new("d.toml"), text).unwrap();
    let engine = ScriptEngine::new(ScriptSettings::new(dir.path().join("lib")));
    let scripts =
        DestinationScripts::build(&config, &config.destinations[0], &engine, dir.path()).unwrap();
    let hl7 = bytes::Bytes::from_static(
        b"MSH|^~\\&|A|B|C|D|20240101000000||ORU^R01|C7|P|2.5\rOBX|1|NM|8867-4^HR^LN||72.5\r",
    );
    let prepared = scripts.prepare(&hl7);
    let Ok(Prepared::Send(sent)) = prepared else {
        panic!("not sent: {prepared:?}");
    };
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["resourceType"], "Observation");
    assert_eq!(sent["id"], "C7");
    assert_eq!(sent["valueQuantity"]["value"], 72.5);
}

#[test]
fn channel_step_setting_res_on_hl7_is_an_error() {
    let fixture = fixture(
        &[("transform", "res = #{ a: 1 };")],
        ScriptLimits::default(),
    );
    let message = medway_hl7::Message::parse(bytes::Bytes::from_static(
        b"MSH|^~\\&|A|B|C|D|20240101000000||ADT^A01|C1|P|2.5\rPID|1||123\r",
    ))
    .unwrap();
    let p = fixture.pipeline.process(message);
    match p.verdict {
        Verdict::Invalid(e) => assert!(e.text.contains("destination transform"), "{}", e.text),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.message.control_id().as_deref(), Some("C1"));
}
