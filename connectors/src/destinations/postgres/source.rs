//! Where a column's value comes from: an HL7 path, a top-level key of a JSON payload, or a
//! property of the delivery itself. Values are extracted here and rendered for the column's type
//! in `schema.rs`; nothing here logs or reports a value (they are patient data).

use bytes::Bytes;
use medway_engine::message::Delivery;
use std::borrow::Cow;

/// One column's value source, parsed from the channel file (`"PID-3.1"`, `"$.mrn"`,
/// `"$delivery_id"`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSource {
    Hl7(medway_hl7::Path),
    /// A top-level key of a JSON-object payload.
    Json(String),
    DeliveryId,
    MessageId,
    Channel,
    Destination,
    ControlId,
    MessageType,
    ReceivedAt,
    Payload,
}

pub const SPECIALS: &[&str] = &[
    "$delivery_id",
    "$message_id",
    "$channel",
    "$destination",
    "$control_id",
    "$message_type",
    "$received_at",
    "$payload",
];

impl ValueSource {
    /// Parses a source; the error is a short reason plus a hint.
    pub fn parse(text: &str) -> Result<Self, (String, String)> {
        let special = match text {
            "$delivery_id" => Some(Self::DeliveryId),
            "$message_id" => Some(Self::MessageId),
            "$channel" => Some(Self::Channel),
            "$destination" => Some(Self::Destination),
            "$control_id" => Some(Self::ControlId),
            "$message_type" => Some(Self::MessageType),
            "$received_at" => Some(Self::ReceivedAt),
            "$payload" => Some(Self::Payload),
            _ => None,
        };
        if let Some(special) = special {
            return Ok(special);
        }
        if let Some(key) = text.strip_prefix("$.") {
            if key.is_empty() {
                return Err((
                    "`$.` needs a key".to_string(),
                    "e.g. \"$.mrn\" takes the payload's top-level \"mrn\"".to_string(),
                ));
            }
            return Ok(Self::Json(key.to_string()));
        }
        if text.starts_with('$') {
            return Err((
                format!("unknown value source {text:?}"),
                format!(
                    "use an HL7 path (\"PID-3.1\"), \"$.key\" for a JSON payload, or one of: {}",
                    SPECIALS.join(", ")
                ),
            ));
        }
        text.parse::<medway_hl7::Path>()
            .map(Self::Hl7)
            .map_err(|e| {
                (
                    format!("{text:?} is not an HL7 path: {e}"),
                    "paths look like \"PID-3.1\", \"PID-3[2].4\", \"OBX(2)-5\"".to_string(),
                )
            })
    }
}

/// An extracted value, before it is rendered for its column's type.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Text(String),
    Integer(i64),
    /// Microseconds since the Unix epoch, UTC.
    Micros(i64),
    /// The payload bytes (text columns get them decoded).
    Payload(Bytes),
    Json(serde_json::Value),
}

/// The parsed payload, built once per delivery and only for the sources that need it.
pub struct Parsed {
    hl7: Option<medway_hl7::Message>,
    json: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Parsed {
    /// Parses what `sources` need; an error is a reason for people (never payload content).
    pub fn new(payload: &Bytes, sources: &[ValueSource]) -> Result<Self, String> {
        let needs_hl7 = sources.iter().any(|s| matches!(s, ValueSource::Hl7(_)));
        let needs_json = sources.iter().any(|s| matches!(s, ValueSource::Json(_)));
        let hl7 = if needs_hl7 {
            Some(
                medway_hl7::Message::parse(payload.clone())
                    .map_err(|e| format!("the payload is not an HL7 v2 message: {e}"))?,
            )
        } else {
            None
        };
        let json = if needs_json {
            match serde_json::from_slice::<serde_json::Value>(payload) {
                Ok(serde_json::Value::Object(map)) => Some(map),
                Ok(_) => return Err("the payload is JSON but not an object".to_string()),
                Err(_) => {
                    return Err(
                        "the payload is not a JSON object (needed by `$.` columns)".to_string()
                    );
                }
            }
        } else {
            None
        };
        Ok(Self { hl7, json })
    }

    /// The value of `source` for `delivery`. Missing or empty HL7 elements, HL7 `""` and JSON
    /// `null` or missing keys are all NULL.
    pub fn value(&self, source: &ValueSource, delivery: &Delivery) -> Value {
        let text = |s: Option<&str>| match s {
            Some(s) if !s.is_empty() => Value::Text(s.to_string()),
            _ => Value::Null,
        };
        match source {
            ValueSource::Hl7(path) => {
                let got = self.hl7.as_ref().and_then(|m| m.get_path(path));
                match got.as_deref() {
                    None | Some("") | Some("\"\"") => Value::Null,
                    Some(s) => Value::Text(s.to_string()),
                }
            }
            ValueSource::Json(key) => match self.json.as_ref().and_then(|m| m.get(key)) {
                None | Some(serde_json::Value::Null) => Value::Null,
                Some(value) => Value::Json(value.clone()),
            },
            ValueSource::DeliveryId => Value::Integer(delivery.id),
            ValueSource::MessageId => Value::Integer(delivery.message_id),
            ValueSource::Channel => text(Some(&delivery.channel)),
            ValueSource::Destination => text(Some(&delivery.destination)),
            ValueSource::ControlId => text(delivery.control_id.as_deref()),
            ValueSource::MessageType => text(delivery.message_type.as_deref()),
            ValueSource::ReceivedAt => Value::Micros(delivery.received_at),
            ValueSource::Payload => Value::Payload(delivery.payload.clone()),
        }
    }

    /// The payload as text: UTF-8 as is; otherwise decoded with the HL7 message's charset
    /// (MSH-18) when it is HL7, else with replacement characters.
    pub fn payload_text<'a>(&self, payload: &'a Bytes) -> Cow<'a, str> {
        if let Ok(text) = std::str::from_utf8(payload) {
            return Cow::Borrowed(text);
        }
        let charset = match &self.hl7 {
            Some(message) => Some(message.effective_charset()),
            None => medway_hl7::Message::parse(payload.clone())
                .ok()
                .map(|m| m.effective_charset()),
        };
        match charset {
            Some(charset) => Cow::Owned(charset.decode(Cow::Borrowed(payload)).into_owned()),
            None => String::from_utf8_lossy(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            ValueSource::parse("$delivery_id").unwrap(),
            ValueSource::DeliveryId
        );
        assert_eq!(
            ValueSource::parse("$.mrn").unwrap(),
            ValueSource::Json("mrn".into())
        );
        assert!(matches!(
            ValueSource::parse("PID-3.1").unwrap(),
            ValueSource::Hl7(_)
        ));
        assert!(ValueSource::parse("$nope").is_err());
        assert!(ValueSource::parse("$.").is_err());
        assert!(ValueSource::parse("PID-0").is_err());
        assert!(ValueSource::parse("not a path").is_err());
    }

    #[test]
    fn latin1_payload_is_decoded_by_msh18() {
        let payload = Bytes::from_static(
            b"MSH|^~\\&|A|B|C|D|20240501||ADT^A01|1|P|2.5.1||||||8859/1\rPID|1||1||M\xdcLLER\r",
        );
        let parsed = Parsed::new(&payload, &[ValueSource::Payload]).unwrap();
        assert!(parsed.payload_text(&payload).contains("MÜLLER"));
    }
}
