//! `{placeholder}` templates for the exchange and the routing key, parsed once at start-up.

use medway_engine::message::Delivery;
use medway_hl7::{Message, Path};
use std::borrow::Cow;

/// A placeholder that needs no parsing of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Channel,
    Destination,
    /// MSH-9.1 of the received message.
    Type,
    /// MSH-9.2 of the received message.
    Trigger,
    ControlId,
    MessageId,
    DeliveryId,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Field),
    /// An HL7 path read from the payload, e.g. `PID-3.4`.
    Path(Path, String),
}

/// The named placeholders; anything else between braces must be an HL7 path.
pub(crate) const PLACEHOLDERS: &[&str] = &[
    "channel",
    "destination",
    "type",
    "trigger",
    "control_id",
    "message_id",
    "delivery_id",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; the error is a sentence for a `SettingsError`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err("unmatched `}`".into());
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err("unclosed `{`".into());
            };
            let name = after[..close].trim();
            parts.push(match name {
                "channel" => Part::Field(Field::Channel),
                "destination" => Part::Field(Field::Destination),
                "type" => Part::Field(Field::Type),
                "trigger" => Part::Field(Field::Trigger),
                "control_id" => Part::Field(Field::ControlId),
                "message_id" => Part::Field(Field::MessageId),
                "delivery_id" => Part::Field(Field::DeliveryId),
                path => match path.parse::<Path>() {
                    Ok(parsed) => Part::Path(parsed, path.to_string()),
                    Err(error) => {
                        return Err(format!(
                            "{{{path}}} is neither a placeholder nor an HL7 path ({error})"
                        ));
                    }
                },
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// True when the template has no placeholder (the same name for every delivery).
    pub(crate) fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(text)] => Some(text),
            _ => None,
        }
    }

    pub(crate) fn needs_payload(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Path(..)))
    }

    /// Renders for one delivery. `message` is the parsed payload, required when
    /// [`Template::needs_payload`]. A missing value renders as the empty string.
    pub(crate) fn render(&self, delivery: &Delivery, message: Option<&Message>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => out.push_str(&field_value(*field, delivery)),
                Part::Path(path, _) => {
                    if let Some(value) = message.and_then(|m| m.get_path(path)) {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }
}

fn field_value(field: Field, delivery: &Delivery) -> Cow<'_, str> {
    let message_type = delivery.message_type.as_deref().unwrap_or("");
    let mut type_parts = message_type.split('^');
    match field {
        Field::Channel => Cow::Borrowed(&delivery.channel),
        Field::Destination => Cow::Borrowed(&delivery.destination),
        Field::Type => Cow::Borrowed(type_parts.next().unwrap_or("")),
        Field::Trigger => Cow::Borrowed(type_parts.nth(1).unwrap_or("")),
        Field::ControlId => Cow::Borrowed(delivery.control_id.as_deref().unwrap_or("")),
        Field::MessageId => Cow::Owned(delivery.message_id.to_string()),
        Field::DeliveryId => Cow::Owned(delivery.id.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn delivery(payload: &'static [u8]) -> Delivery {
        Delivery {
            id: 42,
            message_id: 7,
            channel: "lab".into(),
            destination: "bus".into(),
            attempts: 0,
            control_id: Some("C1".into()),
            message_type: Some("ORU^R01".into()),
            payload: Bytes::from_static(payload),
            received_at: 0,
            ordering_key: None,
        }
    }

    #[test]
    fn renders_fields_and_paths() {
        let d = delivery(
            b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|C1|P|2.5\rPID|1||123^^^HOSP||DOE^JOHN\r",
        );
        let t =
            Template::parse("hl7.{channel}.{type}.{trigger}.{PID-3.4}.{control_id}.{delivery_id}")
                .unwrap();
        assert!(t.needs_payload());
        let m = Message::parse(d.payload.clone()).unwrap();
        assert_eq!(t.render(&d, Some(&m)), "hl7.lab.ORU.R01.HOSP.C1.42");
        assert_eq!(t.render(&d, None), "hl7.lab.ORU.R01..C1.42");
    }

    #[test]
    fn literal_and_errors() {
        assert_eq!(Template::parse("medway").unwrap().literal(), Some("medway"));
        assert_eq!(Template::parse("").unwrap().literal(), Some(""));
        assert!(Template::parse("a.{type}").unwrap().literal().is_none());
        assert!(Template::parse("a.{type").is_err());
        assert!(Template::parse("a}").is_err());
        assert!(Template::parse("{nope}").is_err());
    }
}
