//! JSON payloads (webhook bodies, alert documents, FHIR resources): how one is recognised,
//! read, validated and run through a channel's steps — without I/O, so `submit`, the
//! destination scripts and `medway test-channel` share it.
//!
//! Invariants: a payload is JSON when its first non-blank byte (after an optional UTF-8 BOM)
//! is `{` or `[`; HL7 v2 starts with `MSH`, `FHS` or `BHS`. The stored raw bytes keep their BOM;
//! only parsing skips it. Errors never quote the payload.

use super::{ChannelPipeline, Verdict};
use medway_hl7::ack::AckError;
use serde_json::Value;

/// The longest control id or message type stored, in characters. Both come from the sender
/// (MSH-10, a JSON `id`) and `control_id` is indexed: PostgreSQL refuses a B-tree entry over
/// about 2.7 KB, and the group commit would then fail every message of the batch, whichever
/// channel or client sent it.
pub(crate) const MAX_ID_CHARS: usize = 200;

/// `text` cut to [`MAX_ID_CHARS`] characters (on a character boundary).
pub(crate) fn bounded(mut text: String) -> String {
    if let Some((end, _)) = text.char_indices().nth(MAX_ID_CHARS) {
        text.truncate(end);
    }
    text
}

/// The UTF-8 byte order mark some senders put before a JSON body.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The payload without a leading UTF-8 BOM.
pub(crate) fn without_bom(payload: &[u8]) -> &[u8] {
    payload.strip_prefix(BOM).unwrap_or(payload)
}

/// Whether the payload is a JSON document (`{` or `[` first) rather than HL7 v2.
pub(crate) fn looks_like_json(payload: &[u8]) -> bool {
    without_bom(payload)
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

/// Parses a JSON payload (BOM allowed). The error names the line and column, never content.
pub(crate) fn parse(payload: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(without_bom(payload)).map_err(|e| {
        format!(
            "not valid JSON: {} at line {} column {}",
            category(&e),
            e.line(),
            e.column()
        )
    })
}

fn category(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end",
    }
}

/// What became of one JSON payload: the verdict, what to store and where it goes.
#[derive(Debug)]
pub(crate) struct JsonProcessed {
    pub verdict: Verdict,
    pub identity: Identity,
    /// The document after the steps (`None` when it did not parse).
    pub document: Option<Value>,
    /// The serialised document when the steps changed it (stored, and delivered).
    pub transformed: Option<bytes::Bytes>,
    /// The destinations chosen; empty unless accepted.
    pub routes: Vec<std::sync::Arc<str>>,
}

/// Parses the payload, validates a FHIR resource, runs the channel's steps on the document
/// (`res`) and validates a transformed FHIR resource again. Never panics.
pub(crate) fn process(pipeline: &ChannelPipeline, payload: &[u8]) -> JsonProcessed {
    let invalid = |code, text| {
        Verdict::Invalid(AckError {
            code,
            text,
            location: None,
        })
    };
    let refused = |verdict, identity, document| JsonProcessed {
        verdict,
        identity,
        document,
        transformed: None,
        routes: Vec::new(),
    };
    let document = match parse(payload) {
        Ok(document) => document,
        Err(reason) => return refused(invalid(100, reason), Identity::default(), None),
    };
    let (identity, check) = identify(payload, &document);
    if let Err(reason) = check {
        return refused(invalid(100, reason), identity, Some(document));
    }
    if !pipeline.has_steps() {
        return JsonProcessed {
            verdict: Verdict::Accept,
            identity,
            document: Some(document),
            transformed: None,
            routes: pipeline.destinations().to_vec(),
        };
    }
    let processed = pipeline.process_json(&document);
    let mut verdict = processed.verdict;
    let transformed = (processed.document != document).then(|| {
        let bytes = to_bytes(&processed.document);
        if verdict == Verdict::Accept
            && identity.fhir
            && let Err(reason) = check_fhir(&bytes)
        {
            verdict = invalid(
                207,
                format!("the transformed resource is not valid FHIR R4: {reason}"),
            );
        }
        bytes
    });
    let routes = if verdict == Verdict::Accept {
        processed.routes
    } else {
        Vec::new()
    };
    JsonProcessed {
        verdict,
        identity,
        document: Some(processed.document),
        transformed,
        routes,
    }
}

/// What the store records about a JSON document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    /// A FHIR resource (validated as R4), not a plain JSON document.
    pub fhir: bool,
}

/// Names a parsed document. A top-level object with `resourceType` is a FHIR resource and must
/// be valid R4 (the `Err` is the reason, naming the element and line, no values); its type and
/// id become the message type and control id, even when it is invalid (so `medway messages`
/// shows which resource failed). Other JSON is stored as it is: `id` or `alert_id`, and
/// `<kind>-alert` for alert documents, else `json`.
pub(crate) fn identify(payload: &[u8], document: &Value) -> (Identity, Result<(), String>) {
    let text = |key: &str| {
        document.get(key).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    if document.get("resourceType").is_some() {
        let identity = Identity {
            control_id: document
                .get("id")
                .and_then(Value::as_str)
                .map(|id| bounded(id.to_owned())),
            message_type: text("resourceType").map(bounded),
            fhir: true,
        };
        return match check_fhir(payload) {
            Ok(summary) => (
                Identity {
                    control_id: summary.id.map(bounded),
                    message_type: Some(bounded(summary.resource_type)),
                    fhir: true,
                },
                Ok(()),
            ),
            Err(reason) => (identity, Err(reason)),
        };
    }
    let identity = Identity {
        control_id: text("id").or_else(|| text("alert_id")).map(bounded),
        message_type: text("kind")
            .map(|k| bounded(format!("{k}-alert")))
            .or_else(|| Some("json".to_string())),
        fhir: false,
    };
    (identity, Ok(()))
}

/// Validates a FHIR R4 resource (BOM allowed); the error says what and where, never a value.
pub(crate) fn check_fhir(payload: &[u8]) -> Result<medway_fhir::ResourceSummary, String> {
    medway_fhir::validate(payload).map_err(|e| e.to_string())
}

/// A document serialised for storing and delivery (compact, members in their order).
pub(crate) fn to_bytes(document: &Value) -> bytes::Bytes {
    // Serialising a `Value` cannot fail (its keys are strings).
    bytes::Bytes::from(serde_json::to_vec(document).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_json_after_bom_and_blanks() {
        assert!(looks_like_json(b"\xEF\xBB\xBF {\"a\":1}"));
        assert!(looks_like_json(b"\n[1]"));
        assert!(!looks_like_json(b"MSH|^~\\&|"));
        assert!(!looks_like_json(b""));
    }

    #[test]
    fn parses_with_bom_and_reports_position_only() {
        assert_eq!(parse(b"\xEF\xBB\xBF{\"a\":1}").unwrap()["a"], 1);
        let err = parse(b"{\"secret\": tru").unwrap_err();
        assert!(err.starts_with("not valid JSON"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn fhir_resources_are_validated_and_named() {
        let good = br#"{"resourceType":"Patient","id":"p1","active":true}"#;
        let doc = parse(good).unwrap();
        let (identity, check) = identify(good, &doc);
        assert_eq!(check, Ok(()));
        assert_eq!(identity.message_type.as_deref(), Some("Patient"));
        assert_eq!(identity.control_id.as_deref(), Some("p1"));
        assert!(identity.fhir);

        let bad = b"\xEF\xBB\xBF{\"resourceType\":\"Patient\",\"id\":\"p2\",\"activ\":true}";
        let doc = parse(bad).unwrap();
        let (identity, check) = identify(bad, &doc);
        let reason = check.unwrap_err();
        assert!(reason.contains("activ"), "{reason}");
        assert_eq!(identity.control_id.as_deref(), Some("p2"));

        let plain = br#"{"event":"x","id":7}"#;
        let (identity, check) = identify(plain, &parse(plain).unwrap());
        assert_eq!(check, Ok(()));
        assert_eq!(identity.control_id.as_deref(), Some("7"));
        assert_eq!(identity.message_type.as_deref(), Some("json"));
        assert!(!identity.fhir);
    }

    #[test]
    fn long_ids_are_cut_on_a_character_boundary() {
        let long = format!(
            r#"{{"id":"{}","kind":"{}"}}"#,
            "é".repeat(3000),
            "k".repeat(500)
        );
        let (identity, _) = identify(long.as_bytes(), &parse(long.as_bytes()).unwrap());
        let id = identity.control_id.unwrap();
        assert_eq!(id.chars().count(), MAX_ID_CHARS);
        assert!(id.chars().all(|c| c == 'é'));
        assert_eq!(identity.message_type.unwrap().chars().count(), MAX_ID_CHARS);

        let fhir = format!(
            r#"{{"resourceType":"Patient","id":"{}"}}"#,
            "a".repeat(3000)
        );
        let (identity, _) = identify(fhir.as_bytes(), &parse(fhir.as_bytes()).unwrap());
        assert_eq!(identity.control_id.unwrap().len(), MAX_ID_CHARS);
        assert_eq!(bounded("short".into()), "short");
    }
}
