//! The delimiter set of a message, read from MSH-1 and MSH-2 (or FHS/BHS-1/-2).
//!
//! Rules (documented because each one rejects real inputs):
//! * every delimiter is a printable, non-alphanumeric ASCII byte (0x21–0x7E, not `[A-Za-z0-9]`);
//!   space, control bytes and non-ASCII bytes are rejected;
//! * all delimiters are distinct (the field separator included);
//! * MSH-2 holds 4 characters (component, repetition, escape, subcomponent, in that order) or
//!   5 (the 5th is the v2.7 truncation character, tolerated in any version);
//! * MSH-2 of exactly 3 characters is accepted only when it is unambiguous: every character is
//!   the standard one for its role (`^ ~ \ &`) and they appear in standard order, so each role
//!   is known (`^~&` = no escape character, `^\&` = no repetition separator). Other short,
//!   empty or longer-than-5 values are rejected.
//!
//! A role the message does not declare is represented by the field separator itself (a byte
//! that can never occur inside a field, so nothing is ever split on it) — or `None` for the
//! escape and truncation characters. This module never allocates on the happy path and never
//! panics on any input.

use crate::error::{ParseError, ParseErrorKind};

/// The delimiters in force for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiters {
    /// MSH-1, usually `|`.
    pub field: u8,
    /// Usually `^`. Equals `field` when MSH-2 declares no component separator.
    pub component: u8,
    /// Usually `~`. Equals `field` when MSH-2 declares no repetition separator.
    pub repetition: u8,
    /// Usually `\`; `None` when MSH-2 declares none (escape sequences are then plain text).
    pub escape: Option<u8>,
    /// Usually `&`. Equals `field` when MSH-2 declares no subcomponent separator.
    pub subcomponent: u8,
    /// The v2.7 truncation character (usually `#`), when MSH-2 has a 5th character.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    /// The standard `|^~\&` set.
    fn default() -> Self {
        Self {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: b'&',
            truncation: None,
        }
    }
}

/// Standard characters in MSH-2 order, used to decode 3-character MSH-2 values.
const STANDARD: [u8; 4] = [b'^', b'~', b'\\', b'&'];

fn legal(b: u8) -> bool {
    (0x21..=0x7E).contains(&b) && !b.is_ascii_alphanumeric()
}

fn show(b: u8) -> String {
    if (0x20..0x7F).contains(&b) {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02X}")
    }
}

impl Delimiters {
    /// Whether `role` is a real, declared separator (not the "absent" placeholder).
    pub(crate) fn declared(&self, role: u8) -> bool {
        role != self.field
    }

    /// True when `b` is one of the structural separators inside a field (component,
    /// repetition, subcomponent).
    #[inline]
    pub(crate) fn is_inner_separator(&self, b: u8) -> bool {
        b == self.component || b == self.repetition || b == self.subcomponent || b == self.field
    }

    /// The MSH-2 text these delimiters would be written as (4 or 5 characters; roles that
    /// are absent are omitted, matching how they were read).
    pub fn encoding_characters(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5);
        if self.declared(self.component) {
            out.push(self.component);
        }
        if self.declared(self.repetition) {
            out.push(self.repetition);
        }
        if let Some(e) = self.escape {
            out.push(e);
        }
        if self.declared(self.subcomponent) {
            out.push(self.subcomponent);
        }
        if let Some(t) = self.truncation {
            out.push(t);
        }
        out
    }

    /// Reads the delimiters of a header segment (`MSH`, `FHS` or `BHS`) starting at
    /// `seg_start` in `buf`. Returns the delimiters and the end offset of the encoding
    /// characters (MSH-2). Offsets in errors are absolute in `buf`.
    pub(crate) fn read(buf: &[u8], seg_start: usize) -> Result<(Delimiters, usize), ParseError> {
        let sep_at = seg_start + 3;
        let field = match buf.get(sep_at) {
            None => {
                return Err(ParseError::new(
                    sep_at.min(buf.len()),
                    ParseErrorKind::BadFieldSeparator("missing".into()),
                ));
            }
            Some(&b) if !legal(b) => {
                return Err(ParseError::new(
                    sep_at,
                    ParseErrorKind::BadFieldSeparator(format!(
                        "{} is not a printable non-alphanumeric ASCII character",
                        show(b)
                    )),
                ));
            }
            Some(&b) => b,
        };
        let enc_start = sep_at + 1;
        let rest = buf.get(enc_start..).unwrap_or(&[]);
        let enc_len = rest
            .iter()
            .position(|&b| b == field || b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        let enc = &rest[..enc_len];
        let bad = |at: usize, msg: String| {
            Err(ParseError::new(
                enc_start + at,
                ParseErrorKind::BadEncodingCharacters(msg),
            ))
        };
        for (i, &b) in enc.iter().enumerate() {
            if !legal(b) {
                return bad(
                    i,
                    format!(
                        "{} is not a printable non-alphanumeric ASCII character",
                        show(b)
                    ),
                );
            }
            if enc[..i].contains(&b) {
                return bad(i, format!("{} appears twice", show(b)));
            }
        }
        let d = match enc.len() {
            0 => return bad(0, "MSH-2 is empty".into()),
            4 | 5 => Delimiters {
                field,
                component: enc[0],
                repetition: enc[1],
                escape: Some(enc[2]),
                subcomponent: enc[3],
                truncation: enc.get(4).copied(),
            },
            3 => {
                // Unambiguous only if each char is the standard one for its role, in order.
                let mut roles = [None; 4];
                let mut next_role = 0;
                for (i, &b) in enc.iter().enumerate() {
                    match STANDARD[next_role..].iter().position(|&s| s == b) {
                        Some(p) => {
                            roles[next_role + p] = Some(b);
                            next_role += p + 1;
                        }
                        None => {
                            return bad(
                                i,
                                "3 encoding characters are accepted only as an ordered subset of ^~\\&"
                                    .into(),
                            );
                        }
                    }
                }
                Delimiters {
                    field,
                    component: roles[0].unwrap_or(field),
                    repetition: roles[1].unwrap_or(field),
                    escape: roles[2],
                    subcomponent: roles[3].unwrap_or(field),
                    truncation: None,
                }
            }
            n if n < 3 => return bad(0, format!("only {n} encoding characters (need 4)")),
            n => return bad(5, format!("{n} encoding characters (at most 5)")),
        };
        if enc.contains(&field) {
            // Unreachable by construction (enc stops at `field`), kept as a guard.
            return bad(0, "field separator repeated in MSH-2".into());
        }
        Ok((d, enc_start + enc_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<Delimiters, ParseErrorKind> {
        Delimiters::read(s.as_bytes(), 0)
            .map(|d| d.0)
            .map_err(|e| e.kind)
    }

    #[test]
    fn standard_and_truncation() {
        assert_eq!(read("MSH|^~\\&|x").unwrap(), Delimiters::default());
        let d = read("MSH|^~\\&#|x").unwrap();
        assert_eq!(d.truncation, Some(b'#'));
        let d = read("MSH^~|\\&^x").unwrap();
        assert_eq!((d.field, d.component, d.repetition), (b'^', b'~', b'|'));
        let d = read("MSH#!@%*#").unwrap();
        assert_eq!(
            (d.component, d.repetition, d.escape, d.subcomponent),
            (b'!', b'@', Some(b'%'), b'*')
        );
    }

    #[test]
    fn three_chars_only_when_unambiguous() {
        let d = read("MSH|^~&|").unwrap();
        assert_eq!(d.escape, None);
        assert_eq!(d.subcomponent, b'&');
        let d = read("MSH|^\\&|").unwrap();
        assert_eq!(d.repetition, b'|');
        assert_eq!(d.encoding_characters(), b"^\\&");
        assert!(read("MSH|@%\\|").is_err());
        assert!(read("MSH|&~^|").is_err());
    }

    #[test]
    fn rejects() {
        for s in [
            "MSH",
            "MSHH0",
            "MSH|",
            "MSH||",
            "MSH|^|",
            "MSH|0000|",
            "MSH|^^A\\0|",
            "MSH|^~\\&#$|",
            "MSH|^ \\E|",
            "MSH|^\u{ff}&|",
            "MSH|^~\\\\&|",
            "MSH| ~\\&|",
        ] {
            assert!(read(s).is_err(), "{s:?}");
        }
    }
}
