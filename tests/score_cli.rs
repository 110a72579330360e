//! `medway score FILE..` end to end on the built binary: every score vector (as one
//! multi-message file, and as one file per vector), the REFERENCE §3 example (W9, °F), grouping
//! by patient with interleaved messages, evaluation at each patient's newest observation time,
//! and exit 1 on unreadable or unparseable input.

use medway_engine::scoring::testing::{OruOptions, oru_from_vector};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const VECTORS: &str = include_str!("clinical/score-vectors.jsonl");

fn vectors() -> Vec<Value> {
    VECTORS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("vector JSON"))
        .collect()
}

fn medway_score(args: &[&Path]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medway"))
        .arg("score")
        .args(args)
        .output()
        .expect("spawn medway");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn options(id: &str, n: usize) -> OruOptions {
    OruOptions {
        control_id: format!("CLI{n:04}"),
        patient_id: format!("P-{id}"),
        ..OruOptions::default()
    }
}

fn check_vectors(lines: &[Value]) {
    let all = vectors();
    assert_eq!(lines.len(), all.len(), "one line per patient");
    let mut failures = Vec::new();
    for v in &all {
        let id = v["id"].as_str().unwrap_or("?");
        let key = format!("P-{id}^^^HOSP");
        let line = lines
            .iter()
            .find(|l| l["patient"] == key.as_str())
            .unwrap_or_else(|| panic!("{id}: no line for {key}"));
        for score in ["news2", "qsofa", "sirs"] {
            for (k, want) in v[score].as_object().expect("object") {
                let got = &line[score][k];
                if got != want {
                    failures.push(format!("{id} {score}.{k}: expected {want}, got {got}"));
                }
            }
        }
        assert_eq!(line["at"], "2024-05-01T10:25:00Z", "{id}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_vector_through_medway_score_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = String::new();
    for (n, v) in vectors().iter().enumerate() {
        let id = v["id"].as_str().unwrap();
        all.push_str(&oru_from_vector(&v["in"], &options(id, n)).unwrap());
    }
    let file = dir.path().join("vectors.hl7");
    std::fs::write(&file, all).unwrap();
    let (code, lines, stderr) = medway_score(&[&file]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    check_vectors(&lines);
}

#[test]
fn every_vector_through_medway_score_one_file_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for (n, v) in vectors().iter().enumerate() {
        let id = v["id"].as_str().unwrap();
        let file = dir.path().join(format!("{id}.hl7"));
        std::fs::write(&file, oru_from_vector(&v["in"], &options(id, n)).unwrap()).unwrap();
        files.push(file);
    }
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, lines, stderr) = medway_score(&args);
    assert_eq!(code, 0, "{stderr}");
    check_vectors(&lines);
}

const W9: &str = "MSH|^~\\&|VITALS|ICU|MEDWAY|HOSP|20240501103000||ORU^R01^ORU_R01|VS000123|P|2.5.1|||AL|NE\r\
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
fn reference_example_w9_fahrenheit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w9.hl7");
    std::fs::write(&file, W9).unwrap();
    let (code, lines, _) = medway_score(&[&file]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l["patient"], "MRN12345^^^HOSP");
    assert_eq!(l["news2"]["total"], 11);
    assert_eq!(l["news2"]["band"], "high");
    assert_eq!(l["news2"]["temp"], 1);
    assert_eq!(l["news2"]["inputs"]["temp"][0]["value"], 38.4);
    assert_eq!(l["news2"]["inputs"]["temp"][0]["original_value"], "101.1");
    assert_eq!(l["news2"]["inputs"]["temp"][0]["original_unit"], "[degF]");
    assert_eq!(l["qsofa"]["total"], 3);
    assert_eq!(l["sirs"]["total"], 4);
}

#[test]
fn interleaved_patients_are_grouped_and_scored_at_their_own_newest_time() {
    // Patient A: a full normal set at 10:25, then a later lone HR at 11:00 (the NEWS2 set moves
    // to 11:00 and is incomplete). Patient B: a sick set at 09:00, messages interleaved with A's.
    let normal = serde_json::json!({"rr": 16, "spo2": 97, "o2": false, "sbp": 120, "hr": 72,
        "acvpu": "A", "temp_c": 37.0, "wbc": 7.5});
    let sick = serde_json::json!({"rr": 26, "spo2": 90, "o2": true, "sbp": 88, "hr": 135,
        "acvpu": "U", "temp_c": 39.5, "wbc": 20.0});
    let a = |n: usize, at: &str, input: &Value| {
        oru_from_vector(
            input,
            &OruOptions {
                control_id: format!("A{n}"),
                patient_id: "A1".into(),
                observed_at: at.into(),
                ..OruOptions::default()
            },
        )
        .unwrap()
    };
    let b = oru_from_vector(
        &sick,
        &OruOptions {
            control_id: "B1".into(),
            patient_id: "B1".into(),
            authority: "OTHERHOSP".into(),
            observed_at: "20240501090000".into(),
            ..OruOptions::default()
        },
    )
    .unwrap();
    let late_hr = a(2, "20240501110000", &serde_json::json!({"hr": 95}));
    let file_text = format!("{}{}{}", late_hr, b, a(1, "20240501102500", &normal));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.hl7");
    std::fs::write(&file, file_text).unwrap();
    let (code, lines, stderr) = medway_score(&[&file]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 2);
    let (la, lb) = (&lines[0], &lines[1]);
    assert_eq!(la["patient"], "A1^^^HOSP");
    assert_eq!(la["at"], "2024-05-01T11:00:00Z");
    assert_eq!(la["news2"]["hr"], 1);
    assert_eq!(la["news2"]["rr"], "missing");
    assert_eq!(la["news2"]["complete"], false);
    assert_eq!(la["news2"]["band"], "incomplete");
    // qSOFA/SIRS take the latest within 6 h: A's 10:25 values, never B's.
    assert_eq!(la["qsofa"]["total"], 0);
    assert_eq!(la["sirs"]["hr"], 1);
    assert_eq!(la["sirs"]["total"], 1);
    assert_eq!(lb["patient"], "B1^^^OTHERHOSP");
    assert_eq!(lb["at"], "2024-05-01T09:00:00Z");
    assert_eq!(lb["news2"]["total"], 3 + 3 + 2 + 3 + 3 + 3 + 2);
    assert_eq!(lb["news2"]["band"], "high");
    assert_eq!(lb["qsofa"]["total"], 3);
    assert_eq!(lb["sirs"]["total"], 4);
}

#[test]
fn batch_files_are_read() {
    let v = &vectors()[0];
    let oru = oru_from_vector(&v["in"], &options("BATCH", 1)).unwrap();
    let text = format!("FHS|^~\\&|VITALS|ICU\rBHS|^~\\&|VITALS|ICU\r{oru}BTS|1\rFTS|1\r");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.hl7");
    std::fs::write(&file, text).unwrap();
    let (code, lines, stderr) = medway_score(&[&file]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["patient"], "P-BATCH^^^HOSP");
    assert_eq!(lines[0]["news2"]["total"], 0);
}

#[test]
fn bad_input_exits_1_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.hl7");
    let (code, lines, stderr) = medway_score(&[&missing]);
    assert_eq!((code, lines.len()), (1, 0));
    assert!(
        stderr.contains("cannot read") && stderr.contains("missing.hl7"),
        "{stderr}"
    );

    let garbage = dir.path().join("garbage.hl7");
    std::fs::write(&garbage, "this is not HL7\n").unwrap();
    let (code, lines, stderr) = medway_score(&[&garbage]);
    assert_eq!((code, lines.len()), (1, 0));
    assert!(
        stderr.contains("garbage.hl7") && stderr.contains("not parseable"),
        "{stderr}"
    );

    // A parseable ORU without PID-3: nothing scored for it, exit 1, the rest still printed.
    let good = oru_from_vector(&vectors()[0]["in"], &options("OK", 1)).unwrap();
    let no_pid = good.replace("PID|1||P-OK^^^HOSP^MR|", "PID|1|||");
    let file = dir.path().join("nopid.hl7");
    std::fs::write(&file, format!("{no_pid}{good}")).unwrap();
    let (code, lines, stderr) = medway_score(&[&file]);
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1);
    assert!(stderr.contains("no patient identifier"), "{stderr}");
    assert!(
        !stderr.contains("P-OK"),
        "no identifiers in diagnostics: {stderr}"
    );
}

#[test]
fn channel_codes_and_scale2_flag() {
    let dir = tempfile::tempdir().unwrap();
    // TV17's inputs without the SPO2SCALE observation; scale 2 comes from --scale2.
    let tv17 = vectors().into_iter().find(|v| v["id"] == "TV17").unwrap();
    let mut input = tv17["in"].clone();
    input.as_object_mut().unwrap().remove("scale");
    let oru = oru_from_vector(&input, &options("S2", 1)).unwrap();
    // A monitor sending its own heart-rate code with a non-UCUM unit.
    let local = "MSH|^~\\&|WACS|ICU|MEDWAY|HOSP|20240501103000||ORU^R01|WA1|P|2.5.1\r\
                 PID|1||P-WA^^^HOSP^MR\r\
                 OBX|1|ST|Heart Rate^Heart Rate^WAP||135|^BPM|||||F|||20240501103000\r";
    let file = dir.path().join("in.hl7");
    std::fs::write(&file, format!("{oru}{local}")).unwrap();
    let codes = dir.path().join("codes.csv");
    std::fs::write(&codes, "system,code,kind\nWAP,Heart Rate,heart_rate\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medway"))
        .args(["score", "--scale2", "P-S2^^^HOSP", "--codes"])
        .arg(&codes)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["news2"]["scale"], 2);
    assert_eq!(lines[0]["news2"]["spo2"], tv17["news2"]["spo2"]);
    assert_eq!(lines[0]["news2"]["total"], tv17["news2"]["total"]);
    assert_eq!(lines[1]["patient"], "P-WA^^^HOSP");
    assert_eq!(lines[1]["news2"]["hr"], 3);
    assert_eq!(lines[1]["news2"]["complete"], false);
    // Without the map the local code is not a scoring input: no observations, no line.
    let (code, lines, _) = medway_score(&[&file]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["news2"]["scale"], 1);
}
