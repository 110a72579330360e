//! Wire vectors W1–W10 (`tests/clinical/wire-vectors.md`) against the running binary, raw bytes
//! on 127.0.0.1. W9's scoring half (°F → 38.4 °C) belongs to the scoring destination; here the
//! stored value is checked to be kept exactly as sent.

mod support;

use support::*;

const REQUIRE_PID3: &str = "[[step]]\nkind = \"validate\"\nrequired = [\"PID-3\"]\n";

fn engine(dir: &tempfile::TempDir) -> Engine {
    let port = free_port();
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    Engine::start(dir.path(), &channel_toml(port, REQUIRE_PID3), port, &store)
}

#[test]
fn w1_enhanced_mode_gets_a_commit_accept() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let ack =
        engine
            .connect()
            .exchange(&oru("VS000123", "2.5.1", "AL", "NE", "MRN12345^^^HOSP^MR"));
    let segs = segments(&ack);
    assert_eq!(segs.len(), 2, "MSH + MSA only: {segs:?}");
    let msh = &segs[0];
    assert!(
        msh.starts_with("MSH|^~\\&|MEDWAY|HOSP|VITALS|ICU|"),
        "{msh}"
    );
    assert!(!field(msh, 7).is_empty(), "MSH-7 timestamp");
    assert_eq!(field(msh, 9), "ACK^R01^ACK");
    let ack_id = field(msh, 10);
    assert!(
        !ack_id.is_empty() && ack_id != "VS000123",
        "a new control id: {ack_id}"
    );
    assert_eq!(field(msh, 11), "P");
    assert_eq!(field(msh, 12), "2.5.1");
    assert_eq!(segs[1], "MSA|CA|VS000123");
}

#[test]
fn w2_original_mode_gets_aa() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let ack = engine
        .connect()
        .exchange(&oru("VS000123", "2.5.1", "", "", "MRN12345^^^HOSP^MR"));
    assert_eq!(segments(&ack)[1], "MSA|AA|VS000123");
}

#[test]
fn w3_unsupported_version_is_rejected_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let segs = segments(&conn.exchange(&oru("V3", "2.9.9", "", "", "MRN1^^^HOSP^MR")));
    assert!(segs[1].starts_with("MSA|AR|V3"), "{segs:?}");
    assert_eq!(
        segs[2],
        "ERR||MSH^1^12|203^Unsupported version id^HL70357|E|||unsupported HL7 version \"2.9.9\""
    );
    let segs = segments(&conn.exchange(&oru("V3E", "2.9.9", "AL", "NE", "MRN1^^^HOSP^MR")));
    assert!(segs[1].starts_with("MSA|CR|V3E"), "{segs:?}");
    // Both are stored as errors, with the reason, and delivered nowhere.
    let stored = engine.messages();
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|m| m["status"] == "error" && m["deliveries"].as_array().unwrap().is_empty())
    );
}

#[test]
fn w4_missing_pid3_gets_ae_with_err_in_the_version_form() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let segs = segments(&conn.exchange(&oru("V4", "2.5.1", "", "", "")));
    assert_eq!(segs[1], "MSA|AE|V4|PID-3 missing");
    assert_eq!(
        segs[2],
        "ERR||PID^1^3|101^Required field missing^HL70357|E|||PID-3 missing"
    );
    let segs = segments(&conn.exchange(&oru("V4old", "2.4", "", "", "")));
    assert!(segs[1].starts_with("MSA|AE|V4old"), "{segs:?}");
    assert_eq!(segs[2], "ERR|PID^1^3^101&Required field missing&HL70357");
    let stored = engine.messages();
    assert!(
        stored
            .iter()
            .all(|m| m["status"] == "error" && m["error"] == "PID-3 missing")
    );
}

#[test]
fn w5_two_frames_in_one_write_get_two_acks_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let mut both = frame(&oru("FIRST", "2.5.1", "", "", "MRN1^^^HOSP^MR"));
    both.extend(frame(&oru("SECOND", "2.5.1", "", "", "MRN2^^^HOSP^MR")));
    conn.write(&both);
    assert_eq!(segments(&conn.read_frame().unwrap())[1], "MSA|AA|FIRST");
    assert_eq!(segments(&conn.read_frame().unwrap())[1], "MSA|AA|SECOND");
}

#[test]
fn w6_end_block_split_across_writes_is_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let mut bytes = vec![SB];
    bytes.extend(oru("SPLIT", "2.5.1", "", "", "MRN1^^^HOSP^MR"));
    bytes.push(EB);
    conn.write(&bytes);
    std::thread::sleep(std::time::Duration::from_millis(150));
    conn.write(&[CR]);
    assert_eq!(segments(&conn.read_frame().unwrap())[1], "MSA|AA|SPLIT");
    assert_eq!(engine.messages().len(), 1);
}

#[test]
fn w7_lf_segments_parse_and_lf_inside_a_cr_message_is_data() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let lf_only = String::from_utf8(oru("LFONLY", "2.5.1", "", "", "MRN1^^^HOSP^MR"))
        .unwrap()
        .replace('\r', "\n");
    assert_eq!(
        segments(&conn.exchange(lf_only.as_bytes()))[1],
        "MSA|AA|LFONLY"
    );
    let mut with_text = oru("LFTEXT", "2.5.1", "", "", "MRN1^^^HOSP^MR");
    with_text.extend_from_slice(b"OBX|3|TX|REPORT^Report^L||line one\nline two|||||F\r");
    assert_eq!(segments(&conn.exchange(&with_text))[1], "MSA|AA|LFTEXT");
    // Delivered byte for byte, and the LF stays inside OBX-5.
    let out = dir.path().join("out");
    eventually(10, "both files delivered", || {
        delivered_files(&out).len() == 2
    });
    let file = delivered_files(&out)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("LFTEXT"))
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), with_text);
    let inspect = engine.medway(&["hl7", "inspect", "--json", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let obx3 = json[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0][0][0][0] == "OBX" && s[1][0][0][0] == "3")
        .unwrap();
    assert_eq!(obx3[5][0][0][0], "line one\nline two");
}

#[test]
fn w8_whitespace_between_frames_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let mut bytes = frame(&oru("WS1", "2.5.1", "", "", "MRN1^^^HOSP^MR"));
    bytes.push(b'\n');
    bytes.extend(frame(&oru("WS2", "2.5.1", "", "", "MRN1^^^HOSP^MR")));
    conn.write(&bytes);
    assert_eq!(segments(&conn.read_frame().unwrap())[1], "MSA|AA|WS1");
    assert_eq!(segments(&conn.read_frame().unwrap())[1], "MSA|AA|WS2");
    assert!(
        !engine.log().contains("discarded bytes"),
        "whitespace is not garbage"
    );
}

#[test]
fn w9_fahrenheit_value_is_stored_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let sent = oru("W9", "2.5.1", "", "", "MRN1^^^HOSP^MR");
    assert_eq!(segments(&engine.connect().exchange(&sent))[1], "MSA|AA|W9");
    let id = engine.messages()[0]["id"].as_i64().unwrap().to_string();
    let shown = engine.medway(&["messages", "show", &id, "--json", "--store", &engine.store]);
    let value: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(value["raw"].as_str().unwrap().as_bytes(), sent.as_slice());
    assert!(
        value["raw"]
            .as_str()
            .unwrap()
            .contains("|101.1|[degF]^^UCUM|")
    );
}

#[test]
fn w10_escaped_ampersand_is_text_not_a_subcomponent() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut msg = oru("W10", "2.5.1", "", "", "MRN1^^^HOSP^MR");
    msg.extend_from_slice(b"OBX|3|ST|NOTE^Note^L||Parker \\T\\ Sons|||||F\r");
    assert_eq!(segments(&engine.connect().exchange(&msg))[1], "MSA|AA|W10");
    let out = dir.path().join("out");
    eventually(10, "file delivered", || delivered_files(&out).len() == 1);
    let file = delivered_files(&out).remove(0);
    let inspect = engine.medway(&["hl7", "inspect", "--json", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let obx3 = json[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0][0][0][0] == "OBX" && s[1][0][0][0] == "3")
        .unwrap();
    assert_eq!(obx3[5], serde_json::json!([[["Parker & Sons"]]]));
}
