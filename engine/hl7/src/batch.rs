//! Batch and file splitting: `[FHS] { [BHS] { MSH … } [BTS] } [FTS]`, and plain
//! back-to-back messages.
//!
//! `split` walks segment starts once (same terminator rules as the message parser) and cuts
//! the input into zero-copy `Bytes` slices, one per message; each slice runs from its `MSH` to
//! the start of the next header/trailer segment, so it keeps its own terminators, blank lines
//! and trailer and re-encodes byte for byte. Envelope segments are reported separately.
//!
//! Rules (each a `ParseErrorKind::BadBatch` unless noted): the input starts (after an optional
//! BOM) with MSH, FHS or BHS (else `JunkBeforeMsh`/`NoMsh`/`Empty`); FHS only as the very first
//! segment (a second one is an error); no second BHS while a batch is open (BTS closes it);
//! nothing after FTS; any non-envelope segment must belong to a message (a batch whose
//! segments have no MSH is rejected); each message uses the delimiters its FHS/BHS declares
//! (`DelimiterMismatch`). BTS/FTS counts are *not* enforced: real senders write stale counts
//! (the corpus has an empty batch whose BTS says 2). Linear time, no recursion, no panics.

use bytes::Bytes;

use crate::delimiters::Delimiters;
use crate::error::{ParseError, ParseErrorKind};
use crate::parser::{self, BOM};

/// The result of splitting a file or batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// One zero-copy slice per message, in order.
    pub messages: Vec<Bytes>,
    /// Byte offset of each message slice in the input.
    pub offsets: Vec<usize>,
    /// The input had an FHS segment.
    pub has_file_header: bool,
    /// The input had at least one BHS segment.
    pub has_batch_header: bool,
    /// Envelope segments (FHS, BHS, BTS, FTS) with their terminators, in order.
    pub envelope: Vec<Bytes>,
}

fn bad(offset: usize, msg: &str) -> ParseError {
    ParseError::new(offset, ParseErrorKind::BadBatch(msg.into()))
}

fn delim_text(buf: &[u8], seg_start: usize, enc_end: usize) -> String {
    String::from_utf8_lossy(&buf[seg_start + 3..enc_end]).into_owned()
}

/// Splits `raw` into messages. See the module docs for the rules.
pub fn split(raw: &Bytes) -> Result<Batch, ParseError> {
    let buf: &[u8] = raw;
    let start = if buf.starts_with(BOM) { BOM.len() } else { 0 };
    if buf[start..].iter().all(|&b| parser::is_trailer_byte(b)) {
        return Err(ParseError::new(0, ParseErrorKind::Empty));
    }
    let head = &buf[start..];
    if !(head.starts_with(b"MSH") || head.starts_with(b"FHS") || head.starts_with(b"BHS")) {
        // Reuse the single-message diagnosis (junk before MSH / no MSH).
        return Err(parser::locate_msh(buf)
            .err()
            .unwrap_or_else(|| bad(start, "bad start")));
    }
    // The first header's field separator drives LF-mode segment detection.
    let field = buf.get(start + 3).copied().unwrap_or(b'|');
    let cr_mode = memchr::memchr(b'\r', head).is_some();
    let to = parser::body_end(buf, start);

    let mut segs: Vec<(usize, usize, usize)> = Vec::new(); // (start, end, next_start)
    let mut last: Option<(usize, usize)> = None;
    parser::for_each_segment(buf, start, to, cr_mode, field, |s, e| {
        if let Some((ps, pe)) = last.take() {
            segs.push((ps, pe, s));
        }
        last = Some((s, e));
        Ok(())
    })?;
    if let Some((ps, pe)) = last {
        segs.push((ps, pe, buf.len()));
    }

    let mut out = Batch::default();
    let mut file_delims: Option<(Delimiters, String)> = None;
    let mut batch_delims: Option<(Delimiters, String)> = None;
    let mut batch_open = false;
    let mut after_fts = false;
    let mut current: Option<usize> = None; // start of the open message
    let close = |out: &mut Batch, current: &mut Option<usize>, end: usize| {
        if let Some(ms) = current.take() {
            out.messages.push(raw.slice(ms..end));
            out.offsets.push(ms);
        }
    };
    for (i, &(s, e, next)) in segs.iter().enumerate() {
        let name = &buf[s..(s + 3).min(e)];
        let is_header_like = parser::looks_like_segment(&buf[s..e], field)
            || buf.get(s + 3).is_some_and(|b| !b.is_ascii_alphanumeric());
        let kind = if is_header_like { name } else { b"" as &[u8] };
        if after_fts {
            return Err(bad(s, "segment after FTS"));
        }
        match kind {
            b"FHS" => {
                if i != 0 {
                    let msg = if out.has_file_header {
                        "second FHS"
                    } else {
                        "FHS not first"
                    };
                    return Err(bad(s, msg));
                }
                let (d, enc_end) = Delimiters::read(buf, s)?;
                file_delims = Some((d, delim_text(buf, s, enc_end)));
                out.has_file_header = true;
                out.envelope.push(raw.slice(s..next));
            }
            b"BHS" => {
                close(&mut out, &mut current, s);
                if batch_open {
                    return Err(bad(s, "second BHS inside one batch (no BTS before it)"));
                }
                let (d, enc_end) = Delimiters::read(buf, s)?;
                batch_delims = Some((d, delim_text(buf, s, enc_end)));
                batch_open = true;
                out.has_batch_header = true;
                out.envelope.push(raw.slice(s..next));
            }
            b"BTS" => {
                close(&mut out, &mut current, s);
                batch_open = false;
                batch_delims = None;
                out.envelope.push(raw.slice(s..next));
            }
            b"FTS" => {
                close(&mut out, &mut current, s);
                after_fts = true;
                out.envelope.push(raw.slice(s..next));
            }
            b"MSH" => {
                close(&mut out, &mut current, s);
                if let Some((_, declared)) = batch_delims.as_ref().or(file_delims.as_ref()) {
                    let (_, enc_end) = Delimiters::read(buf, s)?;
                    let found = delim_text(buf, s, enc_end);
                    if &found != declared {
                        return Err(ParseError::new(
                            s,
                            ParseErrorKind::DelimiterMismatch {
                                found,
                                declared: declared.clone(),
                            },
                        ));
                    }
                }
                current = Some(s);
            }
            _ => {
                if current.is_none() {
                    return Err(bad(s, "segment outside any message (no MSH before it)"));
                }
            }
        }
    }
    close(&mut out, &mut current, buf.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> Result<Batch, ParseErrorKind> {
        split(&Bytes::copy_from_slice(s.as_bytes())).map_err(|e| e.kind)
    }

    const M: &str = "MSH|^~\\&|A||B||1||ADT^A01|1|P|2.5\rPID|1\r";

    #[test]
    fn back_to_back_and_batches() {
        let b = sp(&format!("{M}\r{M}")).unwrap();
        assert_eq!(b.messages.len(), 2);
        assert_eq!(&b.messages[0][..], format!("{M}\r").as_bytes());
        let b = sp(&format!(
            "FHS|^~\\&\rBHS|^~\\&\r{M}{M}BTS|2\rBHS|^~\\&\r{M}BTS|1\rFTS|2\n"
        ))
        .unwrap();
        assert_eq!(b.messages.len(), 3);
        assert!(b.has_file_header && b.has_batch_header);
        assert_eq!(b.envelope.len(), 6);
        let b = sp("FHS|^~\\&\rBHS|^~\\&\rBTS|2\rFTS|1\n").unwrap();
        assert!(b.messages.is_empty());
    }

    #[test]
    fn bad_structures() {
        assert!(matches!(
            sp(&format!("FHS|^~\\&\r{M}FHS|^~\\&\r")),
            Err(ParseErrorKind::BadBatch(_))
        ));
        assert!(matches!(
            sp(&format!("BHS|^~\\&\r{M}BHS|^~\\&\r")),
            Err(ParseErrorKind::BadBatch(_))
        ));
        assert!(matches!(
            sp("BHS|^~\\&\rPID|1\rBTS|1\r"),
            Err(ParseErrorKind::BadBatch(_))
        ));
        assert!(matches!(
            sp(&format!("{M}FTS|1\r{M}")),
            Err(ParseErrorKind::BadBatch(_))
        ));
        assert!(matches!(
            sp("BHS|^~\\&\rMSH|^~&|A||B||1||ADT^A01|1|P|2.5\r"),
            Err(ParseErrorKind::DelimiterMismatch { .. })
        ));
        assert!(matches!(
            sp("junk\rMSH|"),
            Err(ParseErrorKind::JunkBeforeMsh { .. })
        ));
        assert!(matches!(sp(""), Err(ParseErrorKind::Empty)));
    }
}
