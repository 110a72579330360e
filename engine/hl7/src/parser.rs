//! Structural parsing of one message: segment and field spans, plus the acceptance rules.
//!
//! Invariants produced here and relied upon elsewhere:
//! * `segs[0]` is the MSH segment; its `fields` are indexed by standard MSH numbering
//!   (`fields[0]` = name, `[1]` = MSH-1, `[2]` = MSH-2, …); for other segments `fields[0]` is
//!   the name and `fields[n]` is field n;
//! * every span lies inside `buf` and inside its segment; segments do not overlap; the bytes
//!   between segments (terminators, blank lines) and after the last one (the trailer) are
//!   left untouched so `encode` can be byte-exact.
//!
//! Segment terminators: if the message holds any CR, a CR ends a segment (with a following
//! LF, i.e. CRLF, and blank lines absorbed into the gap) and a lone LF is field data (W7). If
//! there is no CR, LF ends segments — but only when the next line starts like a segment
//! (`[A-Z][A-Z0-9]{2}` then the field separator or end of line); otherwise the LF is a folded
//! line and stays data (real feeds break long OBR/OBX values this way). Trailing bytes made only
//! of CR, LF, space, tab, VT (0x0B) or FS (0x1C) after the last segment are the trailer.
//!
//! Rules (each a `ParseErrorKind`): input not empty; `MSH` first (after an optional UTF-8
//! BOM); legal delimiters (see `delimiters.rs`); every segment ID is `[A-Z][A-Z0-9]{2}` followed
//! by the field separator or end of segment; no second MSH and no batch segments inside one
//! message; bytes valid in the declared charset; no control characters inside MSH (MSH has no
//! text-typed field, so one means a broken header line); MSH-9.1 and MSH-12 valued (routing
//! needs the type, the ACK and ERR form need the version); MSH-12 starts with `2.<digit>`.
//! MSH-10 may be empty (see `check_msh`).
//! The parser is a single forward pass with memchr: linear time, no recursion, no panics.

use memchr::{memchr, memchr_iter, memmem};

use crate::charset::{self, Charset, Declared};
use crate::delimiters::Delimiters;
use crate::error::{ParseError, ParseErrorKind};

pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A byte span `[start, end)` in the message buffer.
pub(crate) type Span = (usize, usize);

/// One segment: its name, byte span (without terminator) and the range of its field spans in
/// `Layout::fields`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seg {
    pub name: [u8; 3],
    pub start: usize,
    pub end: usize,
    pub fields_from: usize,
    pub fields_to: usize,
}

/// The eagerly built index of a message.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub segs: Vec<Seg>,
    pub fields: Vec<Span>,
}

/// Bytes that may form the trailer after the last segment.
#[inline]
pub(crate) fn is_trailer_byte(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0x0B | 0x1C)
}

/// Whether `b` (at a line start) looks like a segment: `[A-Z][A-Z0-9]{2}` then `field`,
/// CR, LF or the end.
#[inline]
pub(crate) fn looks_like_segment(b: &[u8], field: u8) -> bool {
    b.len() >= 3
        && valid_name(&b[..3])
        && b.get(3)
            .is_none_or(|&c| c == field || c == b'\r' || c == b'\n')
}

#[inline]
pub(crate) fn valid_name(n: &[u8]) -> bool {
    n.len() == 3
        && n[0].is_ascii_uppercase()
        && (n[1].is_ascii_uppercase() || n[1].is_ascii_digit())
        && (n[2].is_ascii_uppercase() || n[2].is_ascii_digit())
}

/// End of the segment area: everything from the returned offset on is the trailer.
pub(crate) fn body_end(buf: &[u8], from: usize) -> usize {
    let mut e = buf.len();
    while e > from && is_trailer_byte(buf[e - 1]) {
        e -= 1;
    }
    // Trailing spaces/tabs directly after the data belong to the last field; the trailer
    // starts at the first line break after the data.
    match buf[e..].iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(p) => e + p,
        None => buf.len(),
    }
}

/// Splits `buf[from..to]` into segment spans, calling `each(start, end)` for each segment.
/// `cr_mode`: the message contains a CR. `field`: the field separator (used to recognise
/// segment starts in LF mode). Never fails: naming rules are checked by the caller.
pub(crate) fn for_each_segment(
    buf: &[u8],
    from: usize,
    to: usize,
    cr_mode: bool,
    field: u8,
    mut each: impl FnMut(usize, usize) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut start = from;
    let mut search = from;
    while start < to {
        let term = if cr_mode { b'\r' } else { b'\n' };
        let end = match memchr(term, &buf[search..to]) {
            Some(p) => search + p,
            None => to,
        };
        let mut next = end;
        while next < to && (buf[next] == b'\r' || buf[next] == b'\n') {
            next += 1;
        }
        if !cr_mode && next < to && !looks_like_segment(&buf[next..to], field) {
            // Folded line: the LF is data, the segment continues.
            search = next;
            continue;
        }
        each(start, end)?;
        start = next;
        search = next;
    }
    Ok(())
}

/// Builds the segment/field index of `buf` whose MSH starts at `msh_at`. With `validate`,
/// applies the segment naming rules (used by `parse`; edits re-index without them).
pub(crate) fn index(
    buf: &[u8],
    msh_at: usize,
    d: &Delimiters,
    validate: bool,
) -> Result<Layout, ParseError> {
    let cr_mode = memchr(b'\r', &buf[msh_at..]).is_some();
    let to = body_end(buf, msh_at);
    let mut layout = Layout {
        segs: Vec::with_capacity(32),
        fields: Vec::with_capacity(to.saturating_sub(msh_at) / 6),
    };
    for_each_segment(buf, msh_at, to, cr_mode, d.field, |s, e| {
        let seg = &buf[s..e];
        let first = layout.segs.is_empty();
        if validate {
            if !looks_like_segment(seg, d.field) {
                let shown: String = String::from_utf8_lossy(&seg[..seg.len().min(8)]).into();
                return Err(ParseError::new(s, ParseErrorKind::BadSegmentName(shown)));
            }
            let n = &seg[..3];
            if !first && matches!(n, b"MSH" | b"FHS" | b"BHS" | b"BTS" | b"FTS") {
                let name = String::from_utf8_lossy(n).into_owned();
                return Err(ParseError::new(s, ParseErrorKind::UnexpectedSegment(name)));
            }
        }
        let name = [
            seg.first().copied().unwrap_or(b'?'),
            seg.get(1).copied().unwrap_or(b'?'),
            seg.get(2).copied().unwrap_or(b'?'),
        ];
        let fields_from = layout.fields.len();
        layout.fields.push((s, (s + 3).min(e)));
        if first {
            // MSH-1 is the separator byte itself; MSH-2 and on follow the generic split.
            layout.fields.push(((s + 3).min(e), (s + 4).min(e)));
        }
        if e > s + 3 {
            let mut fs = s + 4;
            for p in memchr_iter(d.field, &buf[s + 4..e]) {
                layout.fields.push((fs, s + 4 + p));
                fs = s + 4 + p + 1;
            }
            layout.fields.push((fs, e));
        }
        layout.segs.push(Seg {
            name,
            start: s,
            end: e,
            fields_from,
            fields_to: layout.fields.len(),
        });
        Ok(())
    })?;
    Ok(layout)
}

/// Finds where MSH starts: after an optional BOM. Errors: empty input, junk before MSH, no MSH.
pub(crate) fn locate_msh(buf: &[u8]) -> Result<usize, ParseError> {
    let start = if buf.starts_with(BOM) { BOM.len() } else { 0 };
    if buf[start..].iter().all(|&b| is_trailer_byte(b)) {
        return Err(ParseError::new(0, ParseErrorKind::Empty));
    }
    if buf[start..].starts_with(b"MSH") {
        return Ok(start);
    }
    match memmem::find(&buf[start..], b"MSH") {
        Some(p) => Err(ParseError::new(
            start,
            ParseErrorKind::JunkBeforeMsh {
                msh_offset: start + p,
            },
        )),
        None => Err(ParseError::new(start, ParseErrorKind::NoMsh)),
    }
}

/// Applies the charset rule; returns the effective charset.
pub(crate) fn check_charset(buf: &[u8], from: usize, msh18: &[u8]) -> Result<Charset, ParseError> {
    let body = &buf[from..];
    match charset::declared(msh18) {
        Declared::StrictUtf8 => match std::str::from_utf8(body) {
            Ok(_) => Ok(Charset::Utf8),
            Err(e) => Err(ParseError::new(
                from + e.valid_up_to(),
                ParseErrorKind::InvalidCharset {
                    charset: "UTF-8".into(),
                },
            )),
        },
        Declared::SingleByte(enc) => {
            if !body.is_ascii() && std::str::from_utf8(body).is_ok() {
                Ok(Charset::Utf8)
            } else {
                Ok(Charset::SingleByte(enc))
            }
        }
        Declared::Unknown => Ok(if std::str::from_utf8(body).is_ok() {
            Charset::Utf8
        } else {
            Charset::SingleByte(encoding_rs::WINDOWS_1252)
        }),
    }
}

/// MSH rules: no control characters, MSH-9.1 and MSH-12 valued, MSH-12 is v2.x.
pub(crate) fn check_msh(buf: &[u8], layout: &Layout, d: &Delimiters) -> Result<(), ParseError> {
    let Some(msh) = layout.segs.first() else {
        return Err(ParseError::new(0, ParseErrorKind::NoMsh));
    };
    let fields = &layout.fields[msh.fields_from..msh.fields_to];
    for (n, &(s, e)) in fields.iter().enumerate().skip(1) {
        if let Some(p) = buf[s..e].iter().position(|&b| b < 0x20 || b == 0x7F) {
            return Err(ParseError::new(
                s + p,
                ParseErrorKind::ControlCharacterInHeader {
                    field: format!("MSH-{n}"),
                    byte: buf[s + p],
                },
            ));
        }
    }
    let field = |n: usize| fields.get(n).map(|&(s, e)| (s, &buf[s..e]));
    let first_component = |v: &'_ [u8]| -> usize {
        v.iter()
            .position(|&b| b == d.component || b == d.repetition || b == d.subcomponent)
            .unwrap_or(v.len())
    };
    let missing = |n: usize, name: &'static str| -> Result<(usize, Vec<u8>), ParseError> {
        match field(n) {
            Some((s, v)) if !v[..first_component(v)].trim_ascii().is_empty() => {
                Ok((s, v[..first_component(v)].to_vec()))
            }
            Some((s, _)) => Err(ParseError::new(s, ParseErrorKind::MissingField(name))),
            None => Err(ParseError::new(msh.end, ParseErrorKind::MissingField(name))),
        }
    };
    missing(9, "MSH-9")?;
    // MSH-10 is deliberately *not* required: multi/ files in the corpus hold accepted messages
    // with an empty control id. Callers that must ACK check `Message::control_id()`.
    let (at, version) = missing(12, "MSH-12")?;
    let v = version.trim_ascii();
    let ok = v.len() >= 3 && v[0] == b'2' && v[1] == b'.' && v[2].is_ascii_digit();
    if !ok {
        let shown = String::from_utf8_lossy(&v[..v.len().min(16)]).into_owned();
        return Err(ParseError::new(at, ParseErrorKind::BadVersion(shown)));
    }
    Ok(())
}
