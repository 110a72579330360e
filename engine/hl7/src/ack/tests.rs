//! Wire vectors W1–W4 (tests/clinical/wire-vectors.md) and ACK rules.

use bytes::Bytes;

use super::*;

const W1: &str = "MSH|^~\\&|VITALS|ICU|MEDWAY|HOSP|20240501103000||ORU^R01^ORU_R01|VS000123|P|2.5.1|||AL|NE\r\
PID|1||MRN12345^^^HOSP^MR||TEST^PATIENT||19600101|F\r\
OBX|1|NM|9279-1^Respiratory rate^LN||24|/min^^UCUM|12-20|H|||F|||20240501102500\r";

fn msg(s: &str) -> Message {
    Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
}

fn text(b: Bytes) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn w1_enhanced_commit_accept() {
    let m = msg(W1);
    assert_eq!(ack_mode(&m), AckMode::Enhanced);
    assert!(accept_ack_requested(&m, true));
    let ack = build_ack(&m, &Outcome::Accept, "ACK0001", "20240501103001");
    assert_eq!(
        text(ack),
        "MSH|^~\\&|MEDWAY|HOSP|VITALS|ICU|20240501103001||ACK^R01^ACK|ACK0001|P|2.5.1\rMSA|CA|VS000123\r"
    );
}

#[test]
fn w2_original_mode() {
    let m = msg(&W1.replace("|||AL|NE", ""));
    assert_eq!(ack_mode(&m), AckMode::Original);
    assert!(accept_ack_requested(&m, false));
    let ack = text(build_ack(&m, &Outcome::Accept, "A2", "20240501103001"));
    assert!(ack.ends_with("\rMSA|AA|VS000123\r"), "{ack}");
}

#[test]
fn w3_unsupported_version() {
    let original = msg(&W1.replace("|2.5.1|||AL|NE", "|2.9.9"));
    let err = AckError {
        code: 203,
        text: String::new(),
        location: Some(ErrorLocation {
            segment: "MSH".into(),
            sequence: 1,
            field: 12,
        }),
    };
    let ack = text(build_ack(
        &original,
        &Outcome::Reject(err.clone()),
        "A3",
        "20240501103001",
    ));
    assert!(
        ack.contains("\rMSA|AR|VS000123|Unsupported version id\r"),
        "{ack}"
    );
    assert!(
        ack.ends_with("\rERR||MSH^1^12|203^Unsupported version id^HL70357|E\r"),
        "{ack}"
    );
    let enhanced = msg(&W1.replace("|2.5.1|", "|2.9.9|"));
    let ack = text(build_ack(
        &enhanced,
        &Outcome::Reject(err),
        "A3",
        "20240501103001",
    ));
    assert!(ack.contains("\rMSA|CR|VS000123|"), "{ack}");
}

#[test]
fn w4_required_field_missing_both_forms() {
    let err = AckError {
        code: 101,
        text: "PID-3 missing".into(),
        location: Some(ErrorLocation {
            segment: "PID".into(),
            sequence: 1,
            field: 3,
        }),
    };
    let v25 = msg(&W1.replace("|||AL|NE", ""));
    let ack = text(build_ack(
        &v25,
        &Outcome::Error(err.clone()),
        "A4",
        "20240501103001",
    ));
    assert!(ack.contains("\rMSA|AE|VS000123|PID-3 missing\r"), "{ack}");
    assert!(
        ack.ends_with("\rERR||PID^1^3|101^Required field missing^HL70357|E|||PID-3 missing\r"),
        "{ack}"
    );
    let v24 = msg(&W1.replace("|2.5.1|||AL|NE", "|2.4"));
    let ack = text(build_ack(
        &v24,
        &Outcome::Error(err.clone()),
        "A4",
        "20240501103001",
    ));
    assert!(ack.contains("||ACK^R01^ACK|A4|P|2.4\r"), "{ack}");
    assert!(
        ack.ends_with("\rERR|PID^1^3^101&Required field missing&HL70357\r"),
        "{ack}"
    );
    let v23 = msg(&W1.replace("|2.5.1|||AL|NE", "|2.3"));
    let ack = text(build_ack(
        &v23,
        &Outcome::Error(err),
        "A4",
        "20240501103001",
    ));
    assert!(ack.contains("||ACK|A4|P|2.3\r"), "{ack}");
}

#[test]
fn accept_ack_type_semantics() {
    let with = |t: &str| msg(&W1.replace("|||AL|NE", &format!("|||{t}|NE")));
    assert!(!accept_ack_requested(&with("NE"), true));
    assert!(accept_ack_requested(&with("ER"), false));
    assert!(!accept_ack_requested(&with("ER"), true));
    assert!(accept_ack_requested(&with("SU"), true));
    assert!(!accept_ack_requested(&with("SU"), false));
    assert!(accept_ack_requested(&with(""), true));
}

#[test]
fn escapes_caller_text_and_reuses_delimiters() {
    let m = msg("MSH#!@%*#S#F#R#G#1##ORU!R01#ID1#P#2.5.1\rPID#1\r");
    let err = AckError {
        code: 207,
        text: "db#down!".into(),
        location: None,
    };
    let ack = text(build_ack(&m, &Outcome::Reject(err), "X", "T"));
    assert!(
        ack.starts_with("MSH#!@%*#R#G#S#F#T##ACK!R01!ACK#X#P#2.5.1\r"),
        "{ack}"
    );
    assert!(ack.contains("MSA#AR#ID1#db%F%down%S%\r"), "{ack}");
}

#[test]
fn nak_for_unparseable() {
    let err = AckError {
        code: 100,
        text: "bad segment".into(),
        location: None,
    };
    let ack = text(build_nak_for_unparseable(
        b"MSH|^~\\&|S|F|R|G|1||ORU^R01|C9|P|2.3\rjunk\r",
        &err,
        "N1",
        "T",
    ));
    assert_eq!(
        ack,
        "MSH|^~\\&|R|G|S|F|T||ACK|N1|P|2.3\rMSA|AR|C9|bad segment\rERR|^^^100&Segment sequence error&HL70357\r"
    );
    let ack = text(build_nak_for_unparseable(
        b"\x00\xff garbage",
        &err,
        "N2",
        "T",
    ));
    assert!(
        ack.starts_with("MSH|^~\\&|||||T||ACK|N2||\rMSA|AR||bad segment\r"),
        "{ack}"
    );
    let _ = build_nak_for_unparseable(b"", &err, "N3", "T");
    let _ = build_nak_for_unparseable(b"MSH", &err, "N3", "T");
}

#[test]
fn charset_is_copied_so_the_ack_reparses() {
    let m = Message::parse(Bytes::from_static(
        b"MSH|^~\\&|K\xd6LN|F|R|G|1||ADT^A01|C1|P|2.5|||||DE|8859/1\rPID|1\r",
    ))
    .unwrap();
    let ack = build_ack(&m, &Outcome::Accept, "A", "T");
    assert!(ack.starts_with(b"MSH|^~\\&|R|G|K\xd6LN|F|T||ACK^A01^ACK|A|P|2.5||||||8859/1\r"));
    let back = Message::parse(ack).unwrap();
    assert_eq!(back.get("MSH-5").unwrap(), "KÖLN");
}
