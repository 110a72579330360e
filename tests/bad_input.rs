//! Bad input gets a clear outcome — an AR with ERR, or the connection closed with one log line —
//! never a panic, never a half-stored message, and the engine keeps serving everyone else.

mod support;

use std::time::Duration;
use support::*;

fn engine(dir: &tempfile::TempDir) -> Engine {
    let port = free_port();
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    Engine::start(dir.path(), &channel_toml(port, ""), port, &store)
}

fn assert_healthy(engine: &Engine) {
    let ack = engine
        .connect()
        .exchange(&oru("HEALTHY", "2.5.1", "", "", "MRN1^^^HOSP^MR"));
    assert_eq!(segments(&ack)[1], "MSA|AA|HEALTHY");
    assert!(!engine.log().contains("panicked"), "{}", engine.log());
}

#[test]
fn oversized_frame_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut bystander = engine.connect();
    let mut conn = engine.connect();
    let mut big = vec![SB];
    big.extend(oru("BIG", "2.5.1", "", "", "MRN1^^^HOSP^MR"));
    big.extend(std::iter::repeat_n(b'A', 70_000));
    conn.write(&big);
    assert!(conn.read_frame().is_none(), "no reply, connection closed");
    eventually(5, "one log line", || {
        engine.log().contains("bad MLLP frame")
    });
    assert_eq!(engine.log().matches("bad MLLP frame").count(), 1);
    // The other open connection still works.
    let ack = bystander.exchange(&oru("STILL", "2.5.1", "", "", "MRN1^^^HOSP^MR"));
    assert_eq!(segments(&ack)[1], "MSA|AA|STILL");
    assert!(engine.messages().iter().all(|m| m["control_id"] != "BIG"));
    assert_healthy(&engine);
}

#[test]
fn garbage_before_a_frame_is_discarded_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let mut bytes = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    bytes.extend(frame(&oru("AFTERJUNK", "2.5.1", "", "", "MRN1^^^HOSP^MR")));
    conn.write(&bytes);
    assert_eq!(segments(&conn.read_frame().unwrap())[1], "MSA|AA|AFTERJUNK");
    drop(conn);
    eventually(5, "garbage reported", || {
        engine.log().contains("discarded bytes outside MLLP frames")
    });
    assert_eq!(engine.messages().len(), 1);
    assert_healthy(&engine);
}

#[test]
fn non_hl7_payload_no_msh_and_empty_frame_get_ar_and_are_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    for payload in [
        &b"hello, world"[..],
        b"PID|1||MRN1^^^HOSP^MR\rOBX|1|NM|X||1\r",
        b"",
    ] {
        let segs = segments(&conn.exchange(payload));
        assert!(
            segs[0].starts_with("MSH|"),
            "an HL7 ACK even for garbage: {segs:?}"
        );
        assert!(segs[1].starts_with("MSA|AR|"), "{segs:?}");
        assert!(segs.iter().any(|s| s.starts_with("ERR|")), "{segs:?}");
    }
    let stored = engine.messages();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|m| {
        m["status"] == "error"
            && m["error"]
                .as_str()
                .unwrap()
                .starts_with("not a parseable HL7 v2 message")
            && m["deliveries"].as_array().unwrap().is_empty()
    }));
    let id = stored.last().unwrap()["id"].as_i64().unwrap().to_string();
    let shown = engine.medway(&["messages", "show", &id, "--json", "--store", &engine.store]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["raw"], "hello, world", "stored whole, byte for byte");
    assert_healthy(&engine);
}

#[test]
fn truncated_frame_is_reported_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    let mut conn = engine.connect();
    let mut partial = vec![SB];
    partial.extend(&oru("HALF", "2.5.1", "", "", "MRN1^^^HOSP^MR")[..60]);
    conn.write(&partial);
    conn.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(conn.read_frame().is_none());
    eventually(5, "truncation logged", || {
        engine.log().contains("bad MLLP frame")
    });
    assert!(engine.messages().is_empty());
    assert_healthy(&engine);
}

#[test]
fn idle_connections_beyond_the_limit_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir);
    // The channel allows 8 connections.
    let idle: Vec<Mllp> = (0..8).map(|_| engine.connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = engine.connect();
    assert!(extra.is_closed(), "the ninth connection is closed at once");
    eventually(5, "refusal logged", || {
        engine.log().contains("too many open connections")
    });
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    assert_healthy(&engine);
}
