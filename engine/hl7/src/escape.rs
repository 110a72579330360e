//! HL7 escape sequences: decoding on read, encoding on write.
//!
//! Read side (`unescape`): `\F\ \S\ \T\ \R\ \E\` become the delimiter they name, `\P\` the
//! truncation character, `\Xhh…\` the bytes it spells (the caller then decodes them with the
//! message charset). Formatting and charset escapes (`\H\ \N\ \.br\ \.sp n\ \Zxx\ \Cxxyy\
//! \Mxxyyzz\`) and any unknown sequence are passed through verbatim, so nothing is lost. A
//! lone or unterminated escape character is kept literally (lenient), and a sequence never
//! spans a structural separator (component, repetition, subcomponent, field), so `\` before
//! a `^` is just text. Escapes never nest and the scan is a single forward pass: linear time,
//! no recursion, no panics. Unescaping `\X0D\` yields a CR *inside a value*; callers must
//! never re-split segments on unescaped text.
//!
//! Write side (`escape`): every delimiter, the escape character itself, and CR/LF (which would
//! otherwise end a segment) are written as escape sequences.

use std::borrow::Cow;

use memchr::memchr;

use crate::delimiters::Delimiters;

/// Standard replacement for a delimiter role the message does not declare.
fn role_or(d: &Delimiters, role: u8, standard: u8) -> u8 {
    if d.declared(role) { role } else { standard }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes escape sequences in `raw`. Borrowed when there is nothing to decode.
pub fn unescape<'a>(raw: &'a [u8], d: &Delimiters) -> Cow<'a, [u8]> {
    let Some(esc) = d.escape else {
        return Cow::Borrowed(raw);
    };
    let Some(first) = memchr(esc, raw) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != esc {
            out.push(b);
            i += 1;
            continue;
        }
        // Find the closing escape char, stopping at any structural separator.
        let body_start = i + 1;
        let mut j = body_start;
        while j < raw.len() && raw[j] != esc && !d.is_inner_separator(raw[j]) {
            j += 1;
        }
        if j >= raw.len() || raw[j] != esc || j == body_start {
            // Unterminated, interrupted by a separator, or `\\`: keep the escape char literally.
            out.push(b);
            i += 1;
            continue;
        }
        let body = &raw[body_start..j];
        let single = match body {
            b"F" => Some(d.field),
            b"S" => Some(role_or(d, d.component, b'^')),
            b"T" => Some(role_or(d, d.subcomponent, b'&')),
            b"R" => Some(role_or(d, d.repetition, b'~')),
            b"E" => Some(esc),
            b"P" => d.truncation,
            _ => None,
        };
        if let Some(c) = single {
            out.push(c);
        } else if body[0] == b'X' && decode_hex(&body[1..], &mut out) {
            // decoded in place
        } else {
            // Formatting / charset / local / unknown escape: verbatim.
            out.extend_from_slice(&raw[i..=j]);
        }
        i = j + 1;
    }
    Cow::Owned(out)
}

/// Appends the bytes spelled by an `\X…\` body; false (and nothing appended) if it is not an
/// even, non-empty run of hex digits.
fn decode_hex(hex: &[u8], out: &mut Vec<u8>) -> bool {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.iter().all(|b| hex_val(*b).is_some())
    {
        return false;
    }
    for pair in hex.chunks_exact(2) {
        let hi = hex_val(pair[0]).unwrap_or(0);
        let lo = hex_val(pair[1]).unwrap_or(0);
        out.push(hi << 4 | lo);
    }
    true
}

/// Whether `value` needs any escaping under `d`.
pub fn needs_escape(value: &[u8], d: &Delimiters) -> bool {
    value.iter().any(|&b| {
        b == d.field
            || b == d.component
            || b == d.repetition
            || b == d.subcomponent
            || Some(b) == d.escape
            || Some(b) == d.truncation
            || b == b'\r'
            || b == b'\n'
    })
}

/// Escapes `value` for use as the content of one element. `None` when escaping is needed but
/// the message has no escape character.
pub fn escape<'a>(value: &'a [u8], d: &Delimiters) -> Option<Cow<'a, [u8]>> {
    if !needs_escape(value, d) {
        return Some(Cow::Borrowed(value));
    }
    let esc = d.escape?;
    let mut out = Vec::with_capacity(value.len() + 8);
    for &b in value {
        let seq: Option<&[u8]> = if b == d.field {
            Some(b"F")
        } else if b == esc {
            Some(b"E")
        } else if b == d.component {
            Some(b"S")
        } else if b == d.subcomponent {
            Some(b"T")
        } else if b == d.repetition {
            Some(b"R")
        } else if Some(b) == d.truncation {
            Some(b"P")
        } else if b == b'\r' {
            Some(b"X0D")
        } else if b == b'\n' {
            Some(b"X0A")
        } else {
            None
        };
        match seq {
            Some(s) => {
                out.push(esc);
                out.extend_from_slice(s);
                out.push(esc);
            }
            None => out.push(b),
        }
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &str) -> String {
        String::from_utf8(unescape(s.as_bytes(), &Delimiters::default()).into_owned()).unwrap()
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(un(r"Parker \T\ Sons"), "Parker & Sons");
        assert_eq!(un(r"a\F\b\S\c\R\d\E\e"), r"a|b^c~d\e");
        assert_eq!(un(r"\X0D0A\"), "\r\n");
        assert_eq!(un(r"\X41\\X42\"), "AB");
    }

    #[test]
    fn verbatim_and_lenient() {
        assert_eq!(un(r"line\.br\next \H\bold\N\"), r"line\.br\next \H\bold\N\");
        assert_eq!(un(r"C:\temp"), r"C:\temp");
        assert_eq!(un(r"\X0\"), r"\X0\");
        assert_eq!(un(r"\\"), r"\\");
        assert_eq!(un(r"\Zabc\"), r"\Zabc\");
        assert_eq!(un(r"a\b^c\"), r"a\b^c\");
        assert!(matches!(
            unescape(b"plain", &Delimiters::default()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escape_roundtrip() {
        let d = Delimiters::default();
        let v = "a|b^c~d\\e&f\rg\nh";
        let e = escape(v.as_bytes(), &d).unwrap();
        assert_eq!(&*e, br"a\F\b\S\c\R\d\E\e\T\f\X0D\g\X0A\h");
        assert_eq!(un(std::str::from_utf8(&e).unwrap()), v);
        let none = Delimiters { escape: None, ..d };
        assert!(escape(b"a^b", &none).is_none());
        assert!(escape(b"ab", &none).is_some());
    }
}
