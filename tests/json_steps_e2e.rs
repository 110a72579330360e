//! JSON documents through channel steps, against the real binary. An HL7 ORU arrives over MLLP
//! on channel `test`, whose channel destination's transform builds a FHIR R4 Observation from it
//! (`res = #{…}`) and hands it to the internal channel `fhir-in`. There the document is checked
//! as FHIR R4 at submit, then `fhir-in`'s own steps run on it as `res`: a filter drops
//! preliminary results, a transform adds a note, and the file destination receives the
//! transformed document. Invalid FHIR — as received or as transformed — is stored as `error`.

mod support;

use std::path::Path;
use support::*;

/// ORU → Observation. `MSH-10` is the Observation id; OBX-11 `P` gives `preliminary`; a
/// control id starting with `BAD` adds an element FHIR R4 does not have.
const TO_FHIR: &str = r#"
let status = if msg["OBX-11"] == "P" { "preliminary" } else { "final" };
res = #{
    resourceType: "Observation",
    id: msg["MSH-10"],
    status: status,
    code: #{ coding: [#{ system: "http://loinc.org", code: msg["OBX-3.1"] }] },
    subject: #{ reference: "Patient/" + msg["PID-3.1"] },
    valueQuantity: #{ value: parse_float(msg["OBX-5"]), unit: msg["OBX-6.1"] }
};
if msg["MSH-10"].starts_with("BAD") {
    res.valueQuantity.colour = "red";
}
"#;

const FINAL_ONLY: &str = r#"res.status != "preliminary""#;

const ANNOTATE: &str = r#"
res.note = [#{ text: "checked by medway: " + res.code.coding[0].code }];
if res.id == "TBAD" {
    res.flavour = "sweet";
}
"#;

fn source_channel(port: u16) -> String {
    format!(
        r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{port}"

[[destination]]
name = "to-fhir"
kind = "channel"
target = "fhir-in"
transform = "json/to-fhir.rhai"
retry = {{ initial_delay_ms = 50, max_delay_ms = 200, max_attempts = 2 }}
"#
    )
}

const FHIR_IN: &str = r#"
[source]
kind = "internal"

[[step]]
kind = "filter"
script = "json/final-only.rhai"

[[step]]
kind = "transform"
script = "json/annotate.rhai"

[[destination]]
name = "files"
kind = "file"
directory = "out"
filename = "{control_id}-{delivery_id}.json"
retry = { initial_delay_ms = 50, max_delay_ms = 200 }
"#;

fn oru(control_id: &str, result_status: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|MON|ICU|MEDWAY|HOSP|20240501103000||ORU^R01|{control_id}|P|2.5.1\r\
         PID|1||MRN77^^^HOSP^MR\r\
         OBX|1|NM|8867-4^Heart rate^LN||112|/min^^UCUM|||||{result_status}\r"
    )
    .into_bytes()
}

fn setup(dir: &Path) {
    let scripts = dir.join("scripts/json");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("to-fhir.rhai"), TO_FHIR).unwrap();
    std::fs::write(scripts.join("final-only.rhai"), FINAL_ONLY).unwrap();
    std::fs::write(scripts.join("annotate.rhai"), ANNOTATE).unwrap();
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    std::fs::write(dir.join("channels/fhir-in.toml"), FHIR_IN).unwrap();
}

fn in_fhir_channel(engine: &Engine, control_id: &str) -> Option<serde_json::Value> {
    engine
        .messages()
        .into_iter()
        .find(|m| m["channel"] == "fhir-in" && m["control_id"] == control_id)
}

#[test]
fn fhir_documents_go_through_filter_transform_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let port = free_port();
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    let engine = Engine::start(dir.path(), &source_channel(port), port, &store);
    let mut mllp = engine.connect();
    for (control_id, status) in [("OBS1", "F"), ("OBS2", "P"), ("BAD1", "F"), ("TBAD", "F")] {
        let ack = mllp.exchange(&frame(&oru(control_id, status)));
        let msa = segments(&ack)
            .into_iter()
            .find(|s| s.starts_with("MSA"))
            .unwrap();
        assert_eq!(field(&msa, 1), "AA", "{control_id}: {msa}");
    }

    // The final result: stored as a FHIR Observation, transformed, delivered with the note.
    let out = dir.path().join("out");
    let mut delivered = None;
    eventually(20, "OBS1 delivered as a file", || {
        delivered = std::fs::read_dir(&out).ok().and_then(|entries| {
            entries
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with("OBS1-"))
                .map(|e| std::fs::read(e.path()).unwrap())
        });
        delivered.is_some()
    });
    let bytes = delivered.unwrap();
    let document: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(document["resourceType"], "Observation");
    assert_eq!(document["status"], "final");
    assert_eq!(document["valueQuantity"]["value"], 112.0);
    assert_eq!(document["note"][0]["text"], "checked by medway: 8867-4");
    // Members keep the order the document came with; the added one comes last.
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with(r#"{"resourceType":"Observation""#),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with(r#""note":[{"text":"checked by medway: 8867-4"}]}"#)
    );

    let obs1 = in_fhir_channel(&engine, "OBS1").expect("OBS1 stored in fhir-in");
    assert_eq!(obs1["status"], "accepted");
    assert_eq!(obs1["message_type"], "Observation");
    let show = engine.medway(&[
        "messages",
        "show",
        &obs1["id"].to_string(),
        "--json",
        "--store",
        &store,
    ]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let raw: serde_json::Value = serde_json::from_str(shown["raw"].as_str().unwrap()).unwrap();
    assert!(raw.get("note").is_none(), "raw is what arrived: {raw}");
    let transformed: serde_json::Value =
        serde_json::from_str(shown["transformed"].as_str().expect("transformed stored")).unwrap();
    assert_eq!(transformed, document);

    // The preliminary result: filtered by `res.status`, never delivered.
    let mut obs2 = None;
    eventually(20, "OBS2 stored in fhir-in", || {
        obs2 = in_fhir_channel(&engine, "OBS2");
        obs2.is_some()
    });
    let obs2 = obs2.unwrap();
    assert_eq!(obs2["status"], "filtered");
    assert_eq!(obs2["deliveries"], serde_json::json!([]));

    // The invalid resource: stored as error, the reason names the element and its place.
    let mut bad = None;
    eventually(20, "BAD1 stored in fhir-in", || {
        bad = in_fhir_channel(&engine, "BAD1");
        bad.is_some()
    });
    let bad = bad.unwrap();
    assert_eq!(bad["status"], "error");
    assert_eq!(bad["message_type"], "Observation");
    let reason = bad["error"].as_str().unwrap();
    assert!(reason.contains("not a valid FHIR R4 resource"), "{reason}");
    assert!(reason.contains("valueQuantity"), "{reason}");
    assert!(reason.contains("colour"), "{reason}");
    assert_eq!(bad["deliveries"], serde_json::json!([]));
    // The sending channel's delivery is errored (the target refused it), not retried forever.
    eventually(20, "BAD1's hand-over errored", || {
        engine.messages().iter().any(|m| {
            m["channel"] == "test"
                && m["control_id"] == "BAD1"
                && m["deliveries"][0]["status"] == "errored"
        })
    });
    // A transform that breaks the resource: checked again after the steps, stored as error.
    let mut broken = None;
    eventually(20, "TBAD stored in fhir-in", || {
        broken = in_fhir_channel(&engine, "TBAD");
        broken.is_some()
    });
    let broken = broken.unwrap();
    assert_eq!(broken["status"], "error");
    let reason = broken["error"].as_str().unwrap();
    assert!(
        reason.contains("transformed resource is not valid FHIR R4"),
        "{reason}"
    );
    assert!(reason.contains("flavour"), "{reason}");
    let files: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "only OBS1 is delivered");
}
