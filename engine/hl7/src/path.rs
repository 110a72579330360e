//! Element paths: `SEG(occurrence)-field[repetition].component.subcomponent`.
//!
//! All numbers are 1-based; occurrence and repetition default to 1; `.` is accepted in place
//! of `-` (`PID.5.1`). MSH numbering is the standard one: MSH-1 is the field separator, MSH-2
//! the encoding characters. Every number is capped at [`MAX_INDEX`] so that a hostile path
//! cannot make `set` allocate gigabytes of separators. `Display` writes the canonical form
//! (defaults omitted) and parses back to an equal `Path`. Parsing never panics.

use std::fmt;
use std::str::FromStr;

use crate::error::PathError;

/// Largest accepted number in any position of a path.
pub const MAX_INDEX: u32 = 10_000;

/// A parsed element path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Path {
    /// Segment ID, e.g. `*b"PID"`.
    pub segment: [u8; 3],
    /// 1-based occurrence of the segment in the message.
    pub occurrence: u32,
    /// 1-based field number (MSH-1 = field separator).
    pub field: u32,
    /// 1-based repetition.
    pub repetition: u32,
    /// 1-based component, if the path goes below the field.
    pub component: Option<u32>,
    /// 1-based subcomponent, if the path goes below the component.
    pub subcomponent: Option<u32>,
}

impl Path {
    /// The segment ID as text.
    pub fn segment_name(&self) -> &str {
        std::str::from_utf8(&self.segment).unwrap_or("???")
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Cursor<'_> {
    fn err(&self, reason: &'static str) -> PathError {
        PathError::Syntax {
            path: self.text.chars().take(64).collect(),
            reason,
        }
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn number(&mut self) -> Result<u32, PathError> {
        let start = self.i;
        let mut v: u32 = 0;
        while let Some(&c) = self.s.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v.saturating_mul(10).saturating_add(u32::from(c - b'0'));
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err("expected a number"));
        }
        if v == 0 {
            return Err(self.err("numbers are 1-based"));
        }
        if v > MAX_INDEX {
            return Err(self.err("number too large"));
        }
        Ok(v)
    }
}

impl FromStr for Path {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut c = Cursor {
            s: text.as_bytes(),
            i: 0,
            text,
        };
        let name = c.s.get(..3).ok_or_else(|| c.err("too short"))?;
        let ok_name = name[0].is_ascii_uppercase()
            && name[1..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok_name {
            return Err(c.err("segment ID must be 3 characters [A-Z][A-Z0-9][A-Z0-9]"));
        }
        let segment = [name[0], name[1], name[2]];
        c.i = 3;
        let occurrence = if c.eat(b'(') {
            let n = c.number()?;
            if !c.eat(b')') {
                return Err(c.err("expected ')'"));
            }
            n
        } else {
            1
        };
        if !(c.eat(b'-') || c.eat(b'.')) {
            return Err(c.err("expected '-' or '.' after the segment"));
        }
        let field = c.number()?;
        let repetition = if c.eat(b'[') {
            let n = c.number()?;
            if !c.eat(b']') {
                return Err(c.err("expected ']'"));
            }
            n
        } else {
            1
        };
        let component = if c.eat(b'.') { Some(c.number()?) } else { None };
        let subcomponent = if component.is_some() && c.eat(b'.') {
            Some(c.number()?)
        } else {
            None
        };
        if c.i != c.s.len() {
            return Err(c.err("unexpected trailing characters"));
        }
        Ok(Path {
            segment,
            occurrence,
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.segment_name())?;
        if self.occurrence != 1 {
            write!(f, "({})", self.occurrence)?;
        }
        write!(f, "-{}", self.field)?;
        if self.repetition != 1 {
            write!(f, "[{}]", self.repetition)?;
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
            if let Some(s) = self.subcomponent {
                write!(f, ".{s}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let p: Path = "PID-3[2].1.2".parse().unwrap();
        assert_eq!(
            (p.field, p.repetition, p.component, p.subcomponent),
            (3, 2, Some(1), Some(2))
        );
        let p: Path = "OBX(3)-5".parse().unwrap();
        assert_eq!((p.occurrence, p.field, p.component), (3, 5, None));
        assert_eq!(
            "PID.5.1".parse::<Path>().unwrap(),
            "PID-5.1".parse().unwrap()
        );
        assert_eq!("ZB1-2".parse::<Path>().unwrap().segment_name(), "ZB1");
    }

    #[test]
    fn display_roundtrips() {
        for s in [
            "PID-5",
            "PID-3[2].1.2",
            "OBX(3)-5",
            "MSH-9.2",
            "PID(2)-1[3].4",
        ] {
            let p: Path = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(p.to_string().parse::<Path>().unwrap(), p);
        }
        let p: Path = "PID(1)-5[1].1".parse().unwrap();
        assert_eq!(p.to_string(), "PID-5.1");
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "PI",
            "pid-5",
            "PID",
            "PID-",
            "PID-0",
            "PID-5.",
            "PID-5.1.2.3",
            "PID(0)-1",
            "PID-5[",
            "PID-5x",
            "PID-99999",
            "PID-5[2",
            "1ID-5",
            "PÏD-5",
            "PID-+5",
        ] {
            assert!(s.parse::<Path>().is_err(), "{s:?}");
        }
    }
}
