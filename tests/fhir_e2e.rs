//! FHIR end to end, through the real binary: a FHIR Bundle of vital signs submitted to a
//! channel is stored and scored exactly like the same vitals sent as an HL7 ORU (same score
//! JSON, only the patient differs); a FHIR Observation whose subject resolves to no patient
//! identifier is never scored (its delivery errors with the reason); and an HTTP destination
//! with `body = "fhir-vitals-bundle"` POSTs a valid FHIR R4 transaction Bundle of an ORU's
//! vitals to a real local HTTP receiver, as `application/fhir+json`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use medway_engine::scoring::testing::{OruOptions, oru_from_vector};
use serde_json::{Value, json};
use support::*;

/// One HTTP request as received: the header block (lower-cased) and the body.
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal HTTP/1.1 receiver on 127.0.0.1: records each request, answers 200.
fn http_receiver() -> (u16, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line.to_ascii_lowercase());
                    }
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    seen.lock().unwrap().push((head, body));
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if writer.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, requests)
}

fn channels(dir: &std::path::Path, port: u16, http_port: u16, receiver: u16) {
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    std::fs::write(
        dir.join("channels/vitals.toml"),
        format!(
            r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{port}"

[[destination]]
name = "scoring"
kind = "scoring"
alert_channel = "alerts"
identifier_systems = {{ "urn:oid:1.2.826.0.1.99" = "HOSP" }}
retry = {{ initial_delay_ms = 100, max_delay_ms = 500 }}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("channels/to-fhir.toml"),
        format!(
            r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{http_port}"

[[destination]]
name = "fhir-server"
kind = "http"
url = "http://127.0.0.1:{receiver}/fhir"
body = "fhir-vitals-bundle"
identifier_systems = {{ HOSP = "urn:oid:1.2.826.0.1.99" }}
retry = {{ initial_delay_ms = 100, max_delay_ms = 500 }}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("channels/alerts.toml"),
        "[source]\nkind = \"internal\"\n\n[[destination]]\nname = \"log\"\nkind = \"file\"\ndirectory = \"alerts\"\nfilename = \"{control_id}.json\"\n",
    )
    .unwrap();
}

fn score_of(engine: &Engine, patient: &str) -> Option<Value> {
    let out = engine.medway(&[
        "patients",
        "score",
        patient,
        "--json",
        "--store",
        &engine.store,
    ]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("score JSON"))
}

/// Test vector TV03 ("SIRS 'just over' every criterion") as an ORU's `in` object.
fn tv03() -> Value {
    json!({"rr": 21, "spo2": 96, "o2": false, "sbp": 120, "hr": 91, "acvpu": "A",
           "temp_c": 38.1, "wbc": 12.1})
}

/// The same vitals as TV03, written as a FHIR client would (US Core style: a blood-pressure
/// panel with components, UCUM units, ACVPU as a SNOMED CT coded value), for `mrn`.
fn tv03_bundle(mrn: &str) -> Value {
    let at = "2024-05-01T10:25:00Z";
    let observation = |code: Value, value: (&str, Value)| {
        let mut o = json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs"}]}],
            "code": {"coding": [code]},
            "subject": {"reference": "urn:uuid:7f1d7c34-2b1e-4c8e-9a57-0c1a2f3b4d5e"},
            "effectiveDateTime": at,
        });
        o[value.0] = value.1;
        json!({ "resource": o })
    };
    let loinc = |code: &str| json!({"system": "http://loinc.org", "code": code});
    let quantity = |value: f64, unit: &str| {
        (
            "valueQuantity",
            json!({"value": value, "unit": unit,
                                  "system": "http://unitsofmeasure.org", "code": unit}),
        )
    };
    let mut bp = observation(loinc("85354-9"), ("note", json!([{"text": "sitting"}])));
    bp["resource"]["component"] = json!([
        {"code": {"coding": [loinc("8480-6")]},
         "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [loinc("8462-4")]},
         "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    ]);
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:7f1d7c34-2b1e-4c8e-9a57-0c1a2f3b4d5e",
             "resource": {"resourceType": "Patient",
                          "identifier": [{"system": "urn:oid:1.2.826.0.1.99", "value": mrn}]}},
            observation(loinc("9279-1"), quantity(21.0, "/min")),
            observation(loinc("59408-5"), quantity(96.0, "%")),
            observation(loinc("3151-8"), quantity(0.0, "L/min")),
            bp,
            observation(loinc("8867-4"), quantity(91.0, "/min")),
            observation(json!({"system": "http://snomed.info/sct", "code": "1104441000000107"}),
                        ("valueCodeableConcept", json!({"coding": [
                            {"system": "http://snomed.info/sct", "code": "248234008", "display": "Alert"}]}))),
            observation(loinc("8310-5"), quantity(38.1, "Cel")),
            observation(loinc("6690-2"), quantity(12.1, "10*3/uL")),
        ]
    })
}

/// Removes `keys` from every object in `value`.
fn strip(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Object(map) => {
            for key in keys {
                map.remove(*key);
            }
            map.values_mut().for_each(|v| strip(v, keys));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip(v, keys)),
        _ => {}
    }
}

fn start(dir: &tempfile::TempDir) -> (Engine, u16, Requests) {
    let (port, http_port) = (free_port(), free_port());
    let (receiver, requests) = http_receiver();
    channels(dir.path(), port, http_port, receiver);
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    (
        Engine::restart_in(dir.path(), port, &store),
        http_port,
        requests,
    )
}

#[test]
fn fhir_vitals_score_like_the_same_oru() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _, _) = start(&dir);
    let oru = oru_from_vector(
        &tv03(),
        &OruOptions {
            control_id: "HL7-TV03".into(),
            patient_id: "MRN-HL7".into(),
            ..OruOptions::default()
        },
    )
    .unwrap();
    let ack = engine.connect().exchange(oru.as_bytes());
    assert_eq!(segments(&ack)[1], "MSA|CA|HL7-TV03");
    let bundle = serde_json::to_vec(&tv03_bundle("MRN-FHIR")).unwrap();
    medway_fhir::validate(&bundle).expect("the test Bundle is valid R4");
    // MLLP carries the JSON as is; a JSON document gets no HL7 ACK, so nothing is read back.
    let mut connection = engine.connect();
    connection.write(&frame(&bundle));

    let mut scores = Vec::new();
    for patient in ["MRN-HL7^^^HOSP", "MRN-FHIR^^^HOSP"] {
        let mut stored = None;
        eventually(30, &format!("score of {patient}"), || {
            stored = score_of(&engine, patient);
            stored.is_some()
        });
        let mut stored = stored.unwrap();
        assert_eq!(stored["patient"], patient);
        stored.as_object_mut().unwrap().remove("patient");
        // Each input names its own message (`source`) and keeps its value as sent (the ORU's
        // OBX-5 `248234008^Alert^SCT`, the FHIR code `248234008`): everything else must match.
        strip(&mut stored, &["source", "original_value"]);
        scores.push(stored);
    }
    assert_eq!(
        scores[0], scores[1],
        "FHIR and HL7 give the same stored score"
    );
    // And it is TV03's expected score.
    assert_eq!(scores[1]["news2"]["total"], 4, "{}", scores[1]);
    assert_eq!(scores[1]["sirs"]["total"], 4, "{}", scores[1]);
    assert_eq!(scores[1]["qsofa"]["total"], 0, "{}", scores[1]);
}

#[test]
fn a_fhir_observation_without_a_patient_identifier_is_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _, _) = start(&dir);
    let observation = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/fhir/uscore_observation-spo2-with-fio2-component.json"
    ))
    .unwrap();
    let mut connection = engine.connect();
    connection.write(&frame(&observation));
    let mut errored = None;
    eventually(30, "the delivery errored", || {
        let out = engine.medway(&[
            "deliveries",
            "list",
            "--status",
            "errored",
            "--json",
            "--store",
            &engine.store,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        errored = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|d| d["destination"] == "scoring");
        errored.is_some()
    });
    let errored = errored.unwrap().to_string();
    assert!(
        errored.contains("no resolvable patient identifier"),
        "{errored}"
    );
    assert!(score_of(&engine, "example").is_none());
    drop(connection);
}

#[test]
fn http_destination_posts_a_fhir_vitals_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, http_port, requests) = start(&dir);
    let oru = oru_from_vector(
        &tv03(),
        &OruOptions {
            control_id: "TO-FHIR-1".into(),
            patient_id: "MRN-POST".into(),
            ..OruOptions::default()
        },
    )
    .unwrap();
    let ack = Mllp::connect(http_port).exchange(oru.as_bytes());
    assert_eq!(segments(&ack)[1], "MSA|CA|TO-FHIR-1");
    eventually(30, "the Bundle was posted", || {
        !requests.lock().unwrap().is_empty()
    });
    let (head, body) = requests.lock().unwrap()[0].clone();
    assert!(head.starts_with("post /fhir "), "{head}");
    assert!(
        head.contains("content-type: application/fhir+json"),
        "{head}"
    );
    let summary = medway_fhir::validate(&body).expect("a valid FHIR R4 Bundle");
    assert!(summary.is_bundle);
    // A Patient and one Observation per vital of the ORU (8 OBX).
    assert_eq!(summary.entries, 1 + 8);
    let observations = medway_fhir::observations(&body).unwrap();
    assert_eq!(observations.len(), 8);
    for o in &observations {
        let subject = o.subject.as_ref().unwrap();
        assert_eq!(
            subject.identifiers,
            vec![("urn:oid:1.2.826.0.1.99".to_owned(), "MRN-POST".to_owned())]
        );
        assert_eq!(o.status, "final");
        assert_eq!(o.effective.as_deref(), Some("2024-05-01T10:25:00Z"));
    }
    let bundle: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(bundle["type"], "transaction");
    assert!(
        bundle["entry"][0]["resource"].get("name").is_none(),
        "no name is sent"
    );
    let heart = observations
        .iter()
        .find(|o| o.codes.iter().any(|(_, c)| c == "8867-4"))
        .unwrap();
    assert_eq!(
        (heart.value, heart.unit.as_deref()),
        (Some(91.0), Some("/min"))
    );
}
