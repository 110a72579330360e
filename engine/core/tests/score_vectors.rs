//! Every vector of `tests/clinical/score-vectors.jsonl` through the real path: the ORU the
//! DECISIONS.md table describes → `Message::parse` → `extract` → `PatientWindow` → `score`,
//! compared field by field with the vector (integers, `"missing"`, `complete`, `band`). Plus
//! the REFERENCE.md §3 example (W9's °F message): NEWS2 11 high, qSOFA 3, SIRS 4.

use bytes::Bytes;
use medway_engine::scoring::testing::{OruOptions, oru_from_vector};
use medway_engine::scoring::{
    CodeMap, PatientFlags, PatientKey, PatientWindow, Scores, ScoringSettings, VitalKind, extract,
};
use serde_json::Value;

const VECTORS: &str = include_str!("../../../tests/clinical/score-vectors.jsonl");

fn vectors() -> Vec<Value> {
    VECTORS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("vector line is JSON"))
        .collect()
}

fn score_message(raw: &str, settings: &ScoringSettings) -> (Scores, Vec<String>) {
    let msg = medway_hl7::Message::parse(Bytes::from(raw.to_string())).expect("ORU parses");
    let ex = extract(&msg, &CodeMap::builtin(), settings);
    let patient = ex.patient.clone().expect("patient key");
    let mut window = PatientWindow::new(patient);
    window.absorb(&ex);
    let at = window.newest_time().expect("observations");
    let problems = ex.problems.iter().map(|p| p.detail.clone()).collect();
    (
        window.score(at, settings, &PatientFlags::default()),
        problems,
    )
}

/// Compares every key the vector names; returns the mismatches.
fn compare(id: &str, score: &str, expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(expected) = expected.as_object() else {
        return vec![format!("{id} {score}: expected is not an object")];
    };
    for (key, want) in expected {
        let got = actual.get(key).unwrap_or(&Value::Null);
        if got != want {
            out.push(format!("{id} {score}.{key}: expected {want}, got {got}"));
        }
    }
    out
}

#[test]
fn every_score_vector_passes() {
    let all = vectors();
    assert!(all.len() >= 20, "vectors: {}", all.len());
    let settings = ScoringSettings::default();
    let mut failures = Vec::new();
    for (i, v) in all.iter().enumerate() {
        let id = v["id"].as_str().unwrap_or("?");
        let options = OruOptions {
            control_id: format!("V{i:04}"),
            ..OruOptions::default()
        };
        let oru = oru_from_vector(&v["in"], &options).expect("vector builds");
        let (scores, problems) = score_message(&oru, &settings);
        if !problems.is_empty() {
            failures.push(format!("{id}: extraction problems {problems:?}"));
        }
        assert_eq!(scores.patient, PatientKey::new("MRN12345", "HOSP"));
        let json = scores.to_json();
        assert_eq!(json["patient"], "MRN12345^^^HOSP");
        for score in ["news2", "qsofa", "sirs"] {
            failures.extend(compare(id, score, &v[score], &json[score]));
        }
        if let Some(c) = v.get("temp_c_normalised").and_then(Value::as_f64) {
            let used = &scores.news2.temp.inputs;
            assert_eq!(used.len(), 1, "{id}");
            if used[0].value != c {
                failures.push(format!(
                    "{id}: temperature {} °C, expected {c}",
                    used[0].value
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

pub const REFERENCE_EXAMPLE: &str = "MSH|^~\\&|VITALS|ICU|MEDWAY|HOSP|20240501103000||ORU^R01^ORU_R01|VS000123|P|2.5.1|||AL|NE\r\
PID|1||MRN12345^^^HOSP^MR||TEST^PATIENT||19600101|F\r\
PV1|1|I|WARD7^12^A^HOSP\r\
OBR|1||OBS-77|85353-1^Vital signs panel^LN|||20240501102500\r\
OBX|1|NM|9279-1^Respiratory rate^LN||24|/min^^UCUM|12-20|H|||F|||20240501102500\r\
OBX|2|NM|59408-5^Oxygen saturation in Arterial blood by Pulse oximetry^LN||94|%^^UCUM|||||F|||20240501102500\r\
OBX|3|NM|3151-8^Inhaled oxygen flow rate^LN||0|L/min^^UCUM|||||F|||20240501102500\r\
OBX|4|NM|8480-6^Systolic blood pressure^LN||98|mm[Hg]^^UCUM|||||F|||20240501102500\r\
OBX|5|NM|8867-4^Heart rate^LN||112|/min^^UCUM|||||F|||20240501102500\r\
OBX|6|CE|1104441000000107^ACVPU scale^SCT||130987000^Acute confusion^SCT|||||F|||20240501102500\r\
OBX|7|NM|8310-5^Body temperature^LN||101.1|[degF]^^UCUM|||||F|||20240501102500\r\
OBR|2||LAB-88|58410-2^CBC panel - Blood by Automated count^LN|||20240501100000\r\
OBX|1|NM|6690-2^Leukocytes [#/volume] in Blood by Automated count^LN||15.2|10*3/uL^^UCUM|4.0-11.0|H|||F|||20240501100000\r";

#[test]
fn reference_section3_example_and_w9() {
    let (scores, problems) = score_message(REFERENCE_EXAMPLE, &ScoringSettings::default());
    // The example's ACVPU OBX has no OBX-6, and one `|` too few: its `F` lands in OBX-10 and
    // its time in OBX-13. OBX-11 empty is read as final (and reported); the time falls back
    // to OBR-7, which is the same.
    assert_eq!(problems, ["OBX-11 empty: read as final"]);
    let j = scores.to_json();
    // RR 24 → 2, SpO2 94 → 1, air → 0, SBP 98 → 2, HR 112 → 2, confusion → 3, 38.4 °C → 1.
    let n = &j["news2"];
    for (k, v) in [
        ("rr", 2),
        ("spo2", 1),
        ("o2", 0),
        ("sbp", 2),
        ("hr", 2),
        ("cns", 3),
        ("temp", 1),
    ] {
        assert_eq!(n[k], v, "news2.{k}");
    }
    assert_eq!(n["total"], 11);
    assert_eq!(n["complete"], true);
    assert_eq!(n["band"], "high");
    assert_eq!(n["o2_assumed"], false);
    assert_eq!(j["qsofa"]["total"], 3);
    assert_eq!(j["qsofa"]["complete"], true);
    assert_eq!(j["sirs"]["total"], 4);
    assert_eq!(j["sirs"]["complete"], true);
    assert_eq!(j["at"], "2024-05-01T10:25:00Z");
    // W9: stored value 101.1 °F, scored as 38.4 °C.
    let temp = &scores.news2.temp.inputs[0];
    assert_eq!(temp.kind, VitalKind::Temperature);
    assert_eq!(temp.value, 38.4);
    assert_eq!(temp.unit, "Cel");
    assert_eq!(temp.original_value, "101.1");
    assert_eq!(temp.original_unit, "[degF]");
    // The WBC came from the lab OBR (24-h window), 25 minutes earlier.
    let wbc = &scores.sirs.wbc.inputs[0];
    assert_eq!((wbc.value, wbc.source.as_str()), (15.2, "VS000123"));
}
