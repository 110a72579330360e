//! Scoring end to end: every vector of `tests/clinical/score-vectors.jsonl` sent as an ORU over
//! MLLP to the running engine, the stored score compared field by field; wire vector W9 (°F);
//! and alerts — one per patient × rule per window, escalation when worse, silence after an
//! acknowledgement — handed to the alert channel.

mod support;

use medway_engine::scoring::testing::{OruOptions, oru_from_vector};
use serde_json::Value;
use support::*;

fn channels(dir: &std::path::Path, port: u16) {
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    std::fs::write(
        dir.join("channels/vitals.toml"),
        format!(
            r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{port}"

[[step]]
kind = "validate"
required = ["PID-3"]

[[destination]]
name = "scoring"
kind = "scoring"
alert_channel = "alerts"
ordering_key = "PID-3.1"
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

fn start(dir: &tempfile::TempDir) -> Engine {
    let port = free_port();
    channels(dir.path(), port);
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    Engine::restart_in(dir.path(), port, &store)
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

fn send_ack(engine: &Engine, message: &str) -> String {
    let ack = engine.connect().exchange(message.as_bytes());
    segments(&ack)[1].clone()
}

#[test]
fn every_score_vector_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir);
    let vectors = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clinical/score-vectors.jsonl"
    ))
    .unwrap();
    let vectors: Vec<Value> = vectors
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(vectors.len() >= 20);
    for v in &vectors {
        let id = v["id"].as_str().unwrap();
        let options = OruOptions {
            control_id: format!("{id}-E2E"),
            patient_id: format!("MRN-{id}"),
            ..OruOptions::default()
        };
        let oru = oru_from_vector(&v["in"], &options).unwrap();
        assert_eq!(send_ack(&engine, &oru), format!("MSA|CA|{id}-E2E"));
    }
    for v in &vectors {
        let id = v["id"].as_str().unwrap();
        let patient = format!("MRN-{id}^^^HOSP");
        let mut stored = None;
        eventually(30, &format!("score of {id}"), || {
            stored = score_of(&engine, &patient);
            stored.is_some()
        });
        let stored = stored.unwrap();
        assert_eq!(
            stored["patient"],
            patient.as_str(),
            "{id}: the right patient"
        );
        for score in ["news2", "qsofa", "sirs"] {
            for (key, expected) in v[score].as_object().unwrap() {
                assert_eq!(
                    &stored[score][key], expected,
                    "{id} {score}.{key}: {}",
                    stored[score]
                );
            }
        }
    }
}

#[test]
fn w9_fahrenheit_is_scored_as_38_4_celsius() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir);
    let oru = String::from_utf8(oru("W9-E2E", "2.5.1", "", "", "MRN-W9^^^HOSP^MR")).unwrap();
    assert_eq!(send_ack(&engine, &oru), "MSA|AA|W9-E2E");
    let mut stored = None;
    eventually(30, "W9 scored", || {
        stored = score_of(&engine, "MRN-W9^^^HOSP");
        stored.is_some()
    });
    let stored = stored.unwrap();
    // 101.1 °F → 38.39 → 38.4 °C: NEWS2 temperature 1, SIRS temperature criterion met.
    assert_eq!(stored["news2"]["temp"], 1, "{stored}");
    assert_eq!(stored["sirs"]["temp"], 1, "{stored}");
    let text = stored.to_string();
    assert!(
        text.contains("38.4"),
        "the converted value is shown: {text}"
    );
}

fn vitals(id: &str, patient: &str, time: &str, rr: u32, sbp: u32, hr: u32) -> String {
    format!(
        "MSH|^~\\&|VITALS|ICU|MEDWAY|HOSP|{time}||ORU^R01^ORU_R01|{id}|P|2.5.1\r\
PID|1||{patient}^^^HOSP^MR||TEST^PATIENT||19600101|F\r\
PV1|1|I|WARD7^12^A^HOSP\r\
OBR|1||{id}-OBS|85353-1^Vital signs panel^LN|||{time}\r\
OBX|1|NM|9279-1^Respiratory rate^LN||{rr}|/min^^UCUM|||||F|||{time}\r\
OBX|2|NM|59408-5^Oxygen saturation^LN||97|%^^UCUM|||||F|||{time}\r\
OBX|3|NM|3151-8^Inhaled oxygen flow rate^LN||0|L/min^^UCUM|||||F|||{time}\r\
OBX|4|NM|8480-6^Systolic blood pressure^LN||{sbp}|mm[Hg]^^UCUM|||||F|||{time}\r\
OBX|5|NM|8867-4^Heart rate^LN||{hr}|/min^^UCUM|||||F|||{time}\r\
OBX|6|CWE|1104441000000107^ACVPU scale^SCT||248234008^Alert^SCT|||||F|||{time}\r\
OBX|7|NM|8310-5^Body temperature^LN||37.0|Cel^^UCUM|||||F|||{time}\r"
    )
}

fn alerts(engine: &Engine) -> Vec<Value> {
    let out = engine.medway(&["alerts", "list", "--json", "--store", &engine.store]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The NEWS2 alerts only (these vitals also make qSOFA positive: a separate rule).
fn news2_alerts(engine: &Engine) -> Vec<Value> {
    alerts(engine)
        .into_iter()
        .filter(|a| a["rule"] == "news2")
        .collect()
}

#[test]
fn alerts_are_deduplicated_escalated_and_silenced_by_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&dir);
    // NEWS2 5 (RR 24 → 2, SBP 98 → 2, HR 95 → 1): urgent.
    assert_eq!(
        send_ack(
            &engine,
            &vitals("A1", "P-ALERT", "20240501100000", 24, 98, 95)
        ),
        "MSA|AA|A1"
    );
    eventually(30, "urgent alert", || news2_alerts(&engine).len() == 1);
    assert_eq!(news2_alerts(&engine)[0]["severity"], "urgent");
    assert!(
        alerts(&engine)
            .iter()
            .any(|a| a["rule"] == "qsofa" && a["severity"] == "sepsis")
    );
    // Same band again ten minutes later: no second alert.
    assert_eq!(
        send_ack(
            &engine,
            &vitals("A2", "P-ALERT", "20240501101000", 24, 98, 95)
        ),
        "MSA|AA|A2"
    );
    eventually(30, "A2 scored", || {
        score_of(&engine, "P-ALERT^^^HOSP")
            .is_some_and(|s| s["at"].as_str().unwrap_or("").contains("10:10"))
    });
    assert_eq!(
        news2_alerts(&engine).len(),
        1,
        "one alert per patient × rule per window"
    );
    assert_eq!(
        alerts(&engine).len(),
        2,
        "and one qSOFA alert, not repeated either"
    );
    // Worse: NEWS2 ≥ 7 (RR 26 → 3, SBP 88 → 3, HR 95 → 1): emergency at once.
    assert_eq!(
        send_ack(
            &engine,
            &vitals("A3", "P-ALERT", "20240501102000", 26, 88, 95)
        ),
        "MSA|AA|A3"
    );
    eventually(30, "escalation", || {
        news2_alerts(&engine)
            .iter()
            .any(|a| a["severity"] == "emergency")
    });
    let list = news2_alerts(&engine);
    let emergency = list.iter().find(|a| a["severity"] == "emergency").unwrap();
    assert_eq!(emergency["escalated_from"], "urgent");
    assert!(
        !emergency["title"].as_str().unwrap().contains("P-ALERT"),
        "no identifier in the title"
    );
    assert!(emergency["title"].as_str().unwrap().contains("WARD7 12/A"));
    // Acknowledged: repeats stop, even after the window.
    let id = emergency["id"].to_string();
    let out = engine.medway(&[
        "alerts",
        "ack",
        &id,
        "--by",
        "nurse.jones",
        "--store",
        &engine.store,
    ]);
    assert!(out.status.success());
    assert_eq!(
        send_ack(
            &engine,
            &vitals("A4", "P-ALERT", "20240501160000", 26, 88, 95)
        ),
        "MSA|AA|A4"
    );
    eventually(30, "A4 scored", || {
        score_of(&engine, "P-ALERT^^^HOSP")
            .is_some_and(|s| s["at"].as_str().unwrap_or("").contains("16:00"))
    });
    let news2 = news2_alerts(&engine);
    assert_eq!(news2.len(), 2, "acknowledging stops repeats: {news2:?}");
    // Each alert reached the alert channel as a message (lineage to the ORU) and its file.
    eventually(30, "alerts dispatched", || {
        std::fs::read_dir(dir.path().join("alerts"))
            .map(|d| d.count())
            .unwrap_or(0)
            >= 2
    });
    let sepsis_or_not: Vec<Value> = alerts(&engine);
    assert!(
        sepsis_or_not
            .iter()
            .all(|a| a["dispatched_message_id"].is_i64()),
        "{sepsis_or_not:?}"
    );
}
