//! Parser-level wire vectors (W7, W10) and the public read/write contract.

use std::borrow::Cow;

use bytes::Bytes;
use medway_hl7::{Message, ParseErrorKind, Path, PathError, parse_all};

fn parse(s: &[u8]) -> Message {
    Message::parse(Bytes::copy_from_slice(s)).unwrap_or_else(|e| panic!("{e}"))
}

fn err(s: &[u8]) -> ParseErrorKind {
    Message::parse(Bytes::copy_from_slice(s)).unwrap_err().kind
}

const MSH: &str = "MSH|^~\\&|LAB|H|MEDWAY|H|20240501||ORU^R01^ORU_R01|C1|P|2.5.1";

#[test]
fn w7_lf_only_segments() {
    let text = format!("{MSH}\nPID|1||123^^^H^MR||DOE^JANE\nOBX|1|NM|8867-4^HR^LN||112\n");
    let m = parse(text.as_bytes());
    assert_eq!(m.segment_names().collect::<Vec<_>>(), ["MSH", "PID", "OBX"]);
    assert_eq!(m.get("OBX-5").unwrap(), "112");
    assert_eq!(m.encode(), Bytes::from(text));
}

#[test]
fn w7_lf_inside_a_cr_message_is_data() {
    let text = format!("{MSH}\rOBX|1|TX|REPORT||line one\nline two\nPID|not a segment\rNTE|1\r");
    let m = parse(text.as_bytes());
    assert_eq!(m.segment_names().collect::<Vec<_>>(), ["MSH", "OBX", "NTE"]);
    assert_eq!(m.get("OBX-5").unwrap(), "line one\nline two\nPID");
    assert_eq!(m.get("OBX-6").unwrap(), "not a segment");
}

#[test]
fn crlf_and_mixed_terminators_roundtrip_after_edit() {
    let text = format!("{MSH}\r\nPID|1||123\r\nPV1|1|I\rOBX|1\r\n\r\n");
    let mut m = parse(text.as_bytes());
    assert_eq!(m.segment_count(), 4);
    m.set("PV1-2", "O").unwrap();
    assert_eq!(m.encode(), Bytes::from(text.replace("PV1|1|I", "PV1|1|O")));
}

#[test]
fn lf_mode_folded_lines_are_data() {
    // A long value broken across lines (real feeds do this; corpus nhc_catalyze-io).
    let text = format!("{MSH}\nOBR|1|||X||||||||||||(608)258-\n8866|||Final\nDG1|1\n");
    let m = parse(text.as_bytes());
    assert_eq!(m.segment_names().collect::<Vec<_>>(), ["MSH", "OBR", "DG1"]);
    assert_eq!(m.get("OBR-16").unwrap(), "(608)258-\n8866");
    assert_eq!(m.get("OBR-19").unwrap(), "Final");
}

#[test]
fn w10_subcomponent_escape_is_not_structure() {
    let m = parse(format!("{MSH}\rOBX|1|ST|NAME||Parker \\T\\ Sons\r").as_bytes());
    assert_eq!(m.get("OBX-5").unwrap(), "Parker & Sons");
    assert_eq!(m.get("OBX-5.1").unwrap(), "Parker & Sons");
    assert_eq!(m.get("OBX-5.1.1").unwrap(), "Parker & Sons");
    assert_eq!(m.get("OBX-5.1.2"), None);
    assert_eq!(
        m.to_nested()[1][5],
        vec![vec![vec!["Parker & Sons".to_string()]]]
    );
    assert_eq!(
        m.get_raw(&"OBX-5".parse().unwrap()).unwrap(),
        b"Parker \\T\\ Sons"
    );
}

#[test]
fn get_semantics() {
    let m = parse(
        format!("{MSH}\rPID|1||A1^^^H1^MR~B2^^^H2&X&ISO^PI||DOE^JOHN^Q||||||||||||\rOBX|1\rOBX|2|ST|||two\r")
            .as_bytes(),
    );
    assert_eq!(m.get("MSH-1").unwrap(), "|");
    assert_eq!(m.get("MSH-2").unwrap(), "^~\\&");
    assert_eq!(m.get("MSH-2.1").unwrap(), "^~\\&");
    assert_eq!(m.get("MSH-2.2"), None);
    assert_eq!(m.get("MSH-9").unwrap(), "ORU^R01^ORU_R01");
    assert_eq!(m.get("MSH.9.2").unwrap(), "R01");
    assert_eq!(m.get("PID-3").unwrap(), "A1^^^H1^MR");
    assert_eq!(m.get("PID-3[2].4").unwrap(), "H2&X&ISO");
    assert_eq!(m.get("PID-3[2].4.2").unwrap(), "X");
    assert_eq!(m.get("PID-3[3]"), None);
    assert_eq!(m.get("PID-3.2").unwrap(), "");
    assert_eq!(m.get("PID-5.4"), None);
    assert_eq!(m.get("PID-17").unwrap(), "");
    assert_eq!(m.get("PID-18"), None);
    assert_eq!(m.get("OBX(2)-5").unwrap(), "two");
    assert_eq!(m.get("OBX(3)-1"), None);
    assert_eq!(m.get("ZZZ-1"), None);
    for bad in [
        "",
        "PID",
        "pid-1",
        "PID-0",
        "PID-1.",
        "PID-1.1.1.1",
        "PID-99999999999",
    ] {
        assert_eq!(m.get(bad), None, "{bad}");
    }
    assert!(matches!(m.get("PID-5.1").unwrap(), Cow::Borrowed("DOE")));
    assert_eq!(m.count_segments("OBX"), 2);
    assert_eq!(
        (m.message_type().unwrap(), m.trigger_event().unwrap()),
        ("ORU".into(), "R01".into())
    );
    assert_eq!(m.message_structure().unwrap(), "ORU_R01");
    assert_eq!(m.control_id().unwrap(), "C1");
    assert_eq!(m.processing_id().unwrap(), "P");
    assert_eq!(m.version().unwrap(), "2.5.1");
    assert_eq!(m.accept_ack_type(), None);
    assert_eq!(m.charset(), None);
}

#[test]
fn nested_contract() {
    let m = parse(b"MSH|^~\\&|A||B||1||ADT^A01|9|P|2.3\rPID|||1^^^X&Y~2||\r");
    let n = m.to_nested();
    let s = |v: &str| v.to_string();
    assert_eq!(n[0][0], vec![vec![vec![s("MSH")]]]);
    assert_eq!(n[0][1], vec![vec![vec![s("|")]]]);
    assert_eq!(n[0][2], vec![vec![vec![s("^~\\&")]]]);
    assert_eq!(n[0][4], vec![vec![vec![s("")]]]);
    assert_eq!(n[0][9], vec![vec![vec![s("ADT")], vec![s("A01")]]]);
    assert_eq!(n[1][0], vec![vec![vec![s("PID")]]]);
    assert_eq!(n[1][1], vec![vec![vec![s("")]]]);
    assert_eq!(
        n[1][3],
        vec![
            vec![vec![s("1")], vec![s("")], vec![s("")], vec![s("X"), s("Y")]],
            vec![vec![s("2")]]
        ]
    );
    assert_eq!(n[1].len(), 6);
}

#[test]
fn bom_and_trailer_kept() {
    let text = format!("\u{feff}{MSH}\r\n\r\n\x0b\r\n");
    let m = parse(text.as_bytes());
    assert!(m.has_bom());
    assert_eq!(m.segment_count(), 1);
    assert_eq!(m.encode(), Bytes::from(text));
}

#[test]
fn custom_delimiters_and_short_msh2() {
    let m = parse(b"MSH^~|\\&^A^^B^^1^^ADT~A24^7^P^2.4\rPID^1^^X~Y|Z\r");
    assert_eq!(m.get("MSH-9.2").unwrap(), "A24");
    assert_eq!(m.get("PID-3.2").unwrap(), "Y");
    assert_eq!(m.get("PID-3[2]").unwrap(), "Z");
    let m = parse(b"MSH|^\\&|A||B||1||ADT^A01|7|P|2.3\rPID|1||X~Y\r");
    assert_eq!(
        m.get("PID-3").unwrap(),
        "X~Y",
        "no repetition separator declared"
    );
    let mut m = parse(b"MSH|^~&|A||B||1||ADT^A01|7|P|2.5\rPID|1||\\T\\\r");
    assert_eq!(m.delimiters().escape, None);
    assert_eq!(m.get("PID-3").unwrap(), "\\T\\");
    assert_eq!(m.set("PID-3", "a^b"), Err(PathError::NoEscapeCharacter));
}

#[test]
fn escapes_and_charsets() {
    let m = parse(
        format!("{MSH}\rNTE|1||a\\X0D0A\\b \\H\\bold\\N\\ \\.br\\ x\\E\\y \\Xc3a9\\ lone\\\r")
            .as_bytes(),
    );
    assert_eq!(
        m.get("NTE-3").unwrap(),
        "a\r\nb \\H\\bold\\N\\ \\.br\\ x\\y é lone\\"
    );
    let latin1 = b"MSH|^~\\&|A||B||1||ADT^A01|7|P|2.5|||||D|8859/1\rPID|1||D\xfcsseldorf \\XE9\\\r";
    let m = parse(latin1);
    assert_eq!(m.get("PID-3").unwrap(), "Düsseldorf é");
    let mut m2 = m.clone();
    m2.set("PID-5", "Ärger").unwrap();
    assert!(m2.encode().windows(5).any(|w| w == b"\xc4rger"));
    assert!(matches!(
        m2.set("PID-5", "日本"),
        Err(PathError::Unrepresentable(_))
    ));
    // Declared 8859-15 but the bytes are UTF-8 (fhirbolt corpus case): decoded as UTF-8.
    let m = parse(
        "MSH|^~\\&|A||B||1||ADT^A01|7|P|2.5|||||D|ISO8859-15\rPID|1||Düsseldorf\r".as_bytes(),
    );
    assert_eq!(m.get("PID-3").unwrap(), "Düsseldorf");
    assert!(matches!(
        err(b"MSH|^~\\&|A||B||1||ADT^A01|7|P|2.5\rPID|1||\x96\r"),
        ParseErrorKind::InvalidCharset { .. }
    ));
}

#[test]
fn structural_rejections() {
    assert_eq!(err(b""), ParseErrorKind::Empty);
    assert_eq!(err(b"\r\n"), ParseErrorKind::Empty);
    assert!(matches!(err(b"PID|1\r"), ParseErrorKind::NoMsh));
    assert!(matches!(
        err(format!("{MSH}\rPID|1\r{MSH}\r").as_bytes()),
        ParseErrorKind::UnexpectedSegment(_)
    ));
    assert!(matches!(
        err(format!("{MSH}\rpid|1\r").as_bytes()),
        ParseErrorKind::BadSegmentName(_)
    ));
    assert!(matches!(
        err(format!("{MSH}\rPIDX|1\r").as_bytes()),
        ParseErrorKind::BadSegmentName(_)
    ));
    assert!(matches!(
        err(format!("{MSH}\r \rPID|1\r").as_bytes()),
        ParseErrorKind::BadSegmentName(_)
    ));
    assert!(matches!(
        err(b"MSH|^~\\&|A||B||1||ADT^A01|7|P|\r"),
        ParseErrorKind::MissingField("MSH-12")
    ));
    assert!(matches!(
        err(b"MSH|^~\\&|A||B||1||^A01|7|P|2.5\r"),
        ParseErrorKind::MissingField("MSH-9")
    ));
    assert!(matches!(
        err(b"MSH|^~\\&|A||B||1||ADT^A01|7|P|3.0\r"),
        ParseErrorKind::BadVersion(_)
    ));
    assert!(matches!(
        err(b"MSH|^~\\&|A||B||1||ADT^A01|7\t|P|2.5\r"),
        ParseErrorKind::ControlCharacterInHeader { .. }
    ));
    // Segment with only a name is fine.
    let m = parse(format!("{MSH}\rZZZ\rPID\r").as_bytes());
    assert_eq!(m.get("ZZZ-1"), None);
    assert_eq!(m.segment_count(), 3);
}

#[test]
fn set_paths() {
    let mut m = parse(format!("{MSH}\rPID|1\rOBX|1\rOBX|2\r").as_bytes());
    m.set("OBX(2)-5.2", "x").unwrap();
    assert_eq!(m.get("OBX(2)-5").unwrap(), "^x");
    m.set("PID-3[3]", "c").unwrap();
    assert_eq!(
        m.get_raw(&"PID-3[3]".parse::<Path>().unwrap()).unwrap(),
        b"c"
    );
    assert_eq!(m.segment_bytes(1).unwrap(), b"PID|1||~~c");
    m.set("MSH-10", "NEW~1").unwrap();
    assert_eq!(m.control_id().unwrap(), "NEW~1");
    assert_eq!(
        m.get_raw(&"MSH-10".parse::<Path>().unwrap()).unwrap(),
        b"NEW\\R\\1"
    );
    assert_eq!(m.set("MSH-1", "#"), Err(PathError::ReadOnly));
    assert!(m.raw().starts_with(b"MSH|") && !m.raw().windows(3).any(|w| w == b"NEW"));
    let again = Message::parse(m.encode()).unwrap();
    assert_eq!(again.to_nested(), m.to_nested());
}

#[test]
fn parse_all_offsets_are_file_relative() {
    let good = format!("{MSH}\rPID|1\r");
    let file = format!("{good}{good}MSH|^~\\&|A||B||1||ADT^A01|7|P|\r");
    let e = parse_all(Bytes::from(file.clone())).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::MissingField("MSH-12"));
    assert!(e.offset > 2 * good.len());
    assert_eq!(
        parse_all(Bytes::from(format!("{good}{good}")))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn message_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Message>();
    let raw = Bytes::from(format!("{MSH}\r"));
    let m = Message::parse(raw.clone()).unwrap();
    assert_eq!(
        m.encode().as_ptr(),
        raw.as_ptr(),
        "unchanged encode must not copy"
    );
    assert_eq!(m.raw().as_ptr(), raw.as_ptr());
}
