//! Character sets (MSH-18, HL7 table 0211) and byte → text decoding.
//!
//! Policy:
//! * MSH-18 absent/empty, `UNICODE UTF-8`, `UTF-8`, or `ASCII` → UTF-8, and the parser
//!   *validates* the whole message as UTF-8 (ASCII is a subset; a cp1252 byte in such a message
//!   is a parse error, because its meaning is unknowable);
//! * `8859/1` … `8859/9`, `8859/15` (and the `ISO8859-n` / `ISO-8859-n` / `ISO_IR nnn`
//!   spellings) → that single-byte charset, decoded with encoding_rs (every byte is valid);
//!   *except* when the bytes are valid UTF-8 holding non-ASCII text: then the declaration is
//!   wrong (a very common SAP/German feed error, see the fhirbolt corpus files) and the text is
//!   decoded as UTF-8 — a Latin-1 text is essentially never valid multi-byte UTF-8;
//! * any other value → UTF-8 if the bytes are valid UTF-8, else windows-1252 (lossless: every
//!   byte maps to one character).
//!
//! Decoding never fails and never panics: bytes produced by `\X..\` hex escapes that are not
//! valid in the effective charset fall back to windows-1252 (lossless) rather than U+FFFD.

use std::borrow::Cow;

use encoding_rs::Encoding;

/// The effective charset used to turn field bytes into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 (validated at parse time).
    Utf8,
    /// A single-byte charset decoded through encoding_rs.
    SingleByte(&'static Encoding),
}

impl Charset {
    /// Human-readable name.
    pub fn name(&self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::SingleByte(e) => e.name(),
        }
    }

    /// Decodes bytes (already unescaped) to text. Borrowed when no conversion is needed.
    pub fn decode<'a>(&self, bytes: Cow<'a, [u8]>) -> Cow<'a, str> {
        match bytes {
            Cow::Borrowed(b) => self.decode_slice(b),
            Cow::Owned(v) => Cow::Owned(self.decode_vec(v)),
        }
    }

    fn decode_slice<'a>(&self, b: &'a [u8]) -> Cow<'a, str> {
        if b.is_ascii() {
            // ASCII is identical in every supported charset.
            return Cow::Borrowed(std::str::from_utf8(b).unwrap_or_default());
        }
        match self {
            Charset::Utf8 => match std::str::from_utf8(b) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => fallback(b),
            },
            Charset::SingleByte(e) => e.decode_without_bom_handling(b).0,
        }
    }

    fn decode_vec(&self, v: Vec<u8>) -> String {
        match self {
            Charset::Utf8 => match String::from_utf8(v) {
                Ok(s) => s,
                Err(e) => fallback(e.as_bytes()).into_owned(),
            },
            Charset::SingleByte(enc) => enc.decode_without_bom_handling(&v).0.into_owned(),
        }
    }

    /// Encodes text for writing into a message in this charset. `None` if some character
    /// is not representable.
    pub fn encode<'a>(&self, s: &'a str) -> Option<Cow<'a, [u8]>> {
        match self {
            Charset::Utf8 => Some(Cow::Borrowed(s.as_bytes())),
            Charset::SingleByte(e) => {
                let (bytes, _, had_errors) = e.encode(s);
                (!had_errors).then_some(bytes)
            }
        }
    }
}

fn fallback(b: &[u8]) -> Cow<'_, str> {
    encoding_rs::WINDOWS_1252.decode_without_bom_handling(b).0
}

/// What the parser must do about an MSH-18 value.
pub(crate) enum Declared {
    /// Validate as UTF-8 (reject otherwise).
    StrictUtf8,
    /// A single-byte charset; switch to UTF-8 if the bytes are valid non-ASCII UTF-8.
    SingleByte(&'static Encoding),
    /// Unknown name: UTF-8 if valid, else windows-1252.
    Unknown,
}

/// Maps an MSH-18 (first repetition, first component) value to a policy.
pub(crate) fn declared(msh18: &[u8]) -> Declared {
    let t = msh18.trim_ascii();
    if t.is_empty() {
        return Declared::StrictUtf8;
    }
    let upper: Vec<u8> = t.to_ascii_uppercase();
    match upper.as_slice() {
        b"UNICODE UTF-8" | b"UTF-8" | b"UTF8" | b"ASCII" | b"US-ASCII" | b"ISO_IR 192" => {
            return Declared::StrictUtf8;
        }
        _ => {}
    }
    // 8859 family: "8859/1", "ISO8859-15", "ISO-8859-1", "ISO_IR 100" …
    let part = if let Some(rest) = upper.strip_prefix(b"ISO_IR ") {
        match rest {
            b"100" => Some(1),
            b"101" => Some(2),
            b"109" => Some(3),
            b"110" => Some(4),
            b"144" => Some(5),
            b"127" => Some(6),
            b"126" => Some(7),
            b"138" => Some(8),
            b"148" => Some(9),
            _ => None,
        }
    } else {
        let digits_from = upper.windows(4).position(|w| w == b"8859").map(|p| p + 4);
        digits_from.and_then(|p| {
            let tail = &upper[p..];
            let tail = tail
                .strip_prefix(b"/")
                .or_else(|| tail.strip_prefix(b"-"))?;
            std::str::from_utf8(tail).ok()?.parse::<u8>().ok()
        })
    };
    let label: Option<&[u8]> = match part {
        Some(1) => Some(b"iso-8859-1"),
        Some(2) => Some(b"iso-8859-2"),
        Some(3) => Some(b"iso-8859-3"),
        Some(4) => Some(b"iso-8859-4"),
        Some(5) => Some(b"iso-8859-5"),
        Some(6) => Some(b"iso-8859-6"),
        Some(7) => Some(b"iso-8859-7"),
        Some(8) => Some(b"iso-8859-8"),
        Some(9) => Some(b"iso-8859-9"),
        Some(15) => Some(b"iso-8859-15"),
        _ => None,
    };
    match label.and_then(Encoding::for_label) {
        Some(e) => Declared::SingleByte(e),
        None => Declared::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(matches!(declared(b""), Declared::StrictUtf8));
        assert!(matches!(declared(b"UNICODE UTF-8"), Declared::StrictUtf8));
        assert!(matches!(declared(b"8859/1"), Declared::SingleByte(_)));
        assert!(matches!(declared(b"ISO8859-15"), Declared::SingleByte(_)));
        assert!(matches!(declared(b"8859/9"), Declared::SingleByte(_)));
        assert!(matches!(declared(b"KLINGON"), Declared::Unknown));
    }

    #[test]
    fn decode_latin1_and_fallback() {
        let l1 = Charset::SingleByte(Encoding::for_label(b"iso-8859-1").unwrap());
        assert_eq!(l1.decode(Cow::Borrowed(b"D\xfcsseldorf")), "Düsseldorf");
        assert_eq!(Charset::Utf8.decode(Cow::Owned(vec![0x96])), "\u{2013}");
        assert!(matches!(
            Charset::Utf8.decode(Cow::Borrowed(b"abc")),
            Cow::Borrowed(_)
        ));
    }
}
