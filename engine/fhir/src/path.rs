//! Where a problem is. fhirbolt reads a resource into memory before checking it (its
//! `resourceType` may come last), so its errors carry neither a path nor a position: the
//! validator finds the failing element's JSON path itself ([`crate::validate`]) and this
//! scanner turns that path into a line and column of the original bytes. It looks at object
//! keys (FHIR element names) and array indexes only, never at values.

/// The longest key kept in a path; longer ones are cut (unknown keys are user input).
const MAX_KEY: usize = 64;

enum Frame {
    Object { key: Option<String>, want_key: bool },
    Array { index: usize, want_value: bool },
}

fn render(stack: &[Frame]) -> String {
    let mut path = String::from("$");
    for frame in stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                path.push('.');
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index, .. } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    path
}

/// Cuts and cleans a key for use in a path.
pub(crate) fn clean_key(key: &str) -> String {
    key.chars()
        .take(MAX_KEY)
        .filter(|c| !c.is_control())
        .collect()
}

/// The 1-based line and column (in bytes) where the element at `target` (as rendered by
/// [`render`], e.g. `$.entry[1].resource.active`) starts in `json`; `(1, 1)` when not found.
pub(crate) fn position_of(json: &[u8], target: &str) -> (usize, usize) {
    let offset = offset_of_path(json, target).unwrap_or(0);
    let before = &json[..offset];
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    (line, offset - line_start + 1)
}

fn offset_of_path(json: &[u8], target: &str) -> Option<usize> {
    if target == "$" {
        return Some(0);
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < json.len() {
        let byte = json[i];
        if !byte.is_ascii_whitespace()
            && !matches!(byte, b']' | b',')
            && let Some(Frame::Array { want_value, .. }) = stack.last_mut()
            && *want_value
        {
            *want_value = false;
            if render(&stack) == target {
                return Some(i);
            }
        }
        match byte {
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array {
                index: 0,
                want_value: true,
            }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index, want_value }) => {
                    *index += 1;
                    *want_value = true;
                }
                Some(Frame::Object { want_key, .. }) => *want_key = true,
                None => {}
            },
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < json.len() && json[j] != b'"' {
                    if json[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                if let Some(Frame::Object { key, want_key }) = stack.last_mut()
                    && *want_key
                {
                    let raw = &json[start..j.min(json.len())];
                    *key = Some(clean_key(&String::from_utf8_lossy(raw)));
                    *want_key = false;
                    if render(&stack) == target {
                        return Some(i);
                    }
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// fhirbolt's message with anything that could be a value removed. fhirbolt quotes some
/// values (`"…"`, `` `…` ``) and prints others bare (`invalid value: Jane, expected a
/// boolean`): the unexpected part of "invalid type/value" is reduced to its kind, quoted text
/// not naming a field becomes `…`, and "expected one of [...]" lists are cut.
pub(crate) fn redact(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    };
    let message = match message.find(", expected one of") {
        Some(at) => &message[..at],
        None => message,
    };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(at) = rest.rfind(", expected ")
        {
            let unexpected = &rest[..at];
            let kind = KINDS
                .iter()
                .find(|kind| unexpected.starts_with(*kind))
                .copied()
                .unwrap_or("a value");
            return format!("{prefix}{kind}{}", redact_quotes(&rest[at..]));
        }
    }
    redact_quotes(message)
}

/// The kinds serde and fhirbolt name an unexpected input by (the words before its value).
const KINDS: &[&str] = &[
    "boolean",
    "integer",
    "floating point",
    "decimal",
    "string",
    "character",
    "map",
    "sequence",
    "null",
    "unit",
    "primitive",
    "resourceType",
];

fn redact_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[open] as char;
        let before = &rest[..open];
        out.push_str(before);
        let after = &rest[open + 1..];
        let Some(close) = after.find(quote) else {
            out.push('…');
            rest = "";
            break;
        };
        let inner = &after[..close];
        let names_a_field = quote == '`' && before.ends_with("field ");
        out.push(quote);
        if names_a_field {
            out.push_str(&clean_key(inner));
        } else {
            out.push('…');
        }
        out.push(quote);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_paths() {
        let json = b"{\n  \"resourceType\": \"Bundle\",\n  \"entry\": [\n    {\"resource\": {}},\n    {\"resource\": {\"active\": \"x\"}}\n  ]\n}";
        assert_eq!(position_of(json, "$"), (1, 1));
        assert_eq!(position_of(json, "$.entry"), (3, 3));
        assert_eq!(position_of(json, "$.entry[1]"), (5, 5));
        assert_eq!(position_of(json, "$.entry[1].resource.active"), (5, 19));
        assert_eq!(position_of(json, "$.nowhere"), (1, 1));
    }

    #[test]
    fn values_are_redacted() {
        assert_eq!(
            redact("invalid type: string \"Jane Doe\", expected a boolean at line 3 column 9"),
            "invalid type: string, expected a boolean"
        );
        assert_eq!(
            redact("unknown field `nmae`, expected one of [\"id\", \"name\"]"),
            "unknown field `nmae`"
        );
        assert_eq!(
            redact("invalid value: integer `123`, expected u32"),
            "invalid value: integer, expected u32"
        );
        assert_eq!(
            redact("invalid value: Jane, expected a boolean"),
            "invalid value: a value, expected a boolean"
        );
        assert_eq!(
            redact("invalid type: decimal `98.6`, expected a string"),
            "invalid type: decimal, expected a string"
        );
        assert_eq!(redact("unknown variant `Patientt`"), "unknown variant `…`");
        assert_eq!(redact("missing field `status`"), "missing field `status`");
    }
}
