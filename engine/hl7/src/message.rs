//! The parsed message: zero-copy, lazily split below the field level.
//!
//! A `Message` owns the input `Bytes` (a cheap reference-counted handle: cloning a message or
//! its raw bytes never copies payload). Segment and field spans are built eagerly by
//! `parser.rs`; repetitions, components and subcomponents are found on access by scanning the
//! field's bytes, which is cheaper than materialising a tree nobody reads.
//!
//! Read semantics (`get`): the addressed element is unescaped and charset-decoded; the result
//! borrows from the buffer when no escape or conversion is involved. A path that stops above
//! the leaf level (`PID-5`, `PID-5.1` over subcomponents) returns the first repetition's (or
//! the component's) text with its inner separators kept verbatim and escape sequences decoded
//! between them — convenient for simple values (`OBX-5` = `Parker & Sons`, W10) but lossy
//! about structure; use full paths when structure matters. MSH-1 and MSH-2 are atomic. An
//! element that does not exist is `None`; one that exists but is empty is `Some("")`.
//! Nothing here panics on any input or path.

use std::borrow::Cow;

use bytes::Bytes;
use memchr::memchr_iter;

use crate::charset::Charset;
use crate::delimiters::Delimiters;
use crate::error::{ParseError, PathError};
use crate::escape::unescape;
use crate::parser::{self, Layout, Seg, Span};
use crate::path::Path;

/// One parsed HL7 v2 message.
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) original: Bytes,
    pub(crate) buf: Bytes,
    pub(crate) msh_at: usize,
    pub(crate) delims: Delimiters,
    pub(crate) charset: Charset,
    pub(crate) layout: Layout,
    pub(crate) modified: bool,
}

/// The `n`-th (1-based) piece of `v` split on `sep`, as a sub-span; `None` if there are fewer.
pub(crate) fn nth_piece(v: Span, buf: &[u8], sep: u8, n: u32) -> Option<Span> {
    let (s, e) = v;
    let mut idx = 1u32;
    let mut from = s;
    for p in memchr_iter(sep, &buf[s..e]) {
        if idx == n {
            return Some((from, s + p));
        }
        idx += 1;
        from = s + p + 1;
    }
    (idx == n).then_some((from, e))
}

/// Splits a span on `sep` (one piece when `sep` is an undeclared role, i.e. the field sep).
fn pieces(v: Span, buf: &[u8], sep: u8) -> impl Iterator<Item = Span> + '_ {
    let (s, e) = v;
    let mut from = s;
    let mut it = memchr_iter(sep, &buf[s..e]);
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match it.next() {
            Some(p) => {
                let piece = (from, s + p);
                from = s + p + 1;
                Some(piece)
            }
            None => {
                done = true;
                Some((from, e))
            }
        }
    })
}

impl Message {
    /// Parses one message. Rules and error kinds: see `parser.rs`. Batches and files with
    /// several messages go through [`crate::parse_all`].
    pub fn parse(raw: Bytes) -> Result<Message, ParseError> {
        if u32::try_from(raw.len()).is_err() {
            return Err(ParseError::new(0, crate::error::ParseErrorKind::TooLarge));
        }
        let buf: &[u8] = &raw;
        let msh_at = parser::locate_msh(buf)?;
        let (delims, _) = Delimiters::read(buf, msh_at)?;
        let layout = parser::index(buf, msh_at, &delims, true)?;
        let msh18 = layout
            .segs
            .first()
            .and_then(|m| layout.fields[m.fields_from..m.fields_to].get(18).copied())
            .map(|f| {
                let f = nth_piece(f, buf, delims.repetition, 1).unwrap_or(f);
                nth_piece(f, buf, delims.component, 1).unwrap_or(f)
            })
            .map_or(&[][..], |(s, e)| &buf[s..e]);
        let charset = parser::check_charset(buf, msh_at, msh18)?;
        parser::check_msh(buf, &layout, &delims)?;
        Ok(Message {
            original: raw.clone(),
            buf: raw,
            msh_at,
            delims,
            charset,
            layout,
            modified: false,
        })
    }

    /// The original input bytes, exactly as given to `parse` (even after `set`).
    pub fn raw(&self) -> &Bytes {
        &self.original
    }

    /// The delimiters declared by MSH-1/MSH-2.
    pub fn delimiters(&self) -> &Delimiters {
        &self.delims
    }

    /// The charset used to decode text (see `charset.rs` for how MSH-18 maps to it).
    pub fn effective_charset(&self) -> Charset {
        self.charset
    }

    /// True if the message started with a UTF-8 BOM (kept for byte-exact `encode`).
    pub fn has_bom(&self) -> bool {
        self.msh_at > 0
    }

    pub(crate) fn seg_fields(&self, seg: &Seg) -> &[Span] {
        &self.layout.fields[seg.fields_from..seg.fields_to]
    }

    pub(crate) fn find_segment(&self, name: &[u8; 3], occurrence: u32) -> Option<&Seg> {
        let idx = usize::try_from(occurrence).ok()?.checked_sub(1)?;
        self.layout.segs.iter().filter(|s| &s.name == name).nth(idx)
    }

    /// The span of the element a path addresses, in the current buffer.
    pub(crate) fn locate(&self, path: &Path) -> Option<Span> {
        let seg = self.find_segment(&path.segment, path.occurrence)?;
        let field = *self
            .seg_fields(seg)
            .get(usize::try_from(path.field).ok()?)?;
        let buf: &[u8] = &self.buf;
        let d = &self.delims;
        if seg.name == *b"MSH" && path.field <= 2 {
            let atomic = path.repetition == 1
                && path.component.is_none_or(|c| c == 1)
                && path.subcomponent.is_none_or(|s| s == 1);
            return atomic.then_some(field);
        }
        let rep = nth_piece(field, buf, d.repetition, path.repetition)?;
        let Some(c) = path.component else {
            return Some(rep);
        };
        let comp = nth_piece(rep, buf, d.component, c)?;
        let Some(s) = path.subcomponent else {
            return Some(comp);
        };
        nth_piece(comp, buf, d.subcomponent, s)
    }

    /// Decodes a span as text (unescape, then charset).
    fn text(&self, span: Span) -> Cow<'_, str> {
        let raw = &self.buf[span.0..span.1];
        self.charset.decode(unescape(raw, &self.delims))
    }

    /// Value at `path`, unescaped and decoded. `None` for a missing element or a bad path.
    pub fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        let p: Path = path.parse().ok()?;
        self.get_path(&p)
    }

    /// Like [`Message::get`] with a pre-parsed path (no re-parsing in hot loops).
    pub fn get_path(&self, path: &Path) -> Option<Cow<'_, str>> {
        let span = self.locate(path)?;
        if path.segment == *b"MSH" && path.field <= 2 {
            return Some(
                self.charset
                    .decode(Cow::Borrowed(&self.buf[span.0..span.1])),
            );
        }
        Some(self.text(span))
    }

    /// The still-escaped bytes of the element at `path` (current content, after any `set`).
    pub fn get_raw(&self, path: &Path) -> Option<&[u8]> {
        let (s, e) = self.locate(path)?;
        Some(&self.buf[s..e])
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.layout.segs.len()
    }

    /// Segment IDs in order.
    pub fn segment_names(&self) -> impl Iterator<Item = &str> {
        self.layout
            .segs
            .iter()
            .map(|s| std::str::from_utf8(&s.name).unwrap_or("???"))
    }

    /// The still-escaped bytes of the `index`-th (0-based) segment, without its terminator.
    pub fn segment_bytes(&self, index: usize) -> Option<&[u8]> {
        let seg = self.layout.segs.get(index)?;
        self.buf.get(seg.start..seg.end)
    }

    /// How many segments have this ID.
    pub fn count_segments(&self, name: &str) -> usize {
        self.layout
            .segs
            .iter()
            .filter(|s| s.name == name.as_bytes())
            .count()
    }

    /// True once `set` has changed the message.
    pub fn is_modified(&self) -> bool {
        self.modified
    }

    /// The message bytes: the original input (a cheap clone) when unchanged, otherwise the
    /// edited bytes — untouched segments, terminators, BOM and trailer are kept as they were.
    pub fn encode(&self) -> Bytes {
        self.buf.clone()
    }

    fn msh(&self, path: &str) -> Option<Cow<'_, str>> {
        self.get(path).filter(|v| !v.is_empty())
    }

    /// MSH-9.1 (e.g. `ORU`). The MSH helpers return `None` for empty values.
    pub fn message_type(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-9.1")
    }
    /// MSH-9.2 (e.g. `R01`).
    pub fn trigger_event(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-9.2")
    }
    /// MSH-9.3 (e.g. `ORU_R01`).
    pub fn message_structure(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-9.3")
    }
    /// MSH-10, the message control ID.
    pub fn control_id(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-10")
    }
    /// MSH-11.1 (`P`, `T`, `D`).
    pub fn processing_id(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-11.1")
    }
    /// MSH-12.1 (e.g. `2.5.1`).
    pub fn version(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-12.1")
    }
    /// MSH-15, accept acknowledgment type.
    pub fn accept_ack_type(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-15")
    }
    /// MSH-16, application acknowledgment type.
    pub fn app_ack_type(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-16")
    }
    /// MSH-18, character set as declared.
    pub fn charset(&self) -> Option<Cow<'_, str>> {
        self.msh("MSH-18")
    }

    /// The inspect contract: segments → fields → repetitions → components → subcomponents,
    /// unescaped. Field 0 is the segment name; MSH-1 and MSH-2 are verbatim single values.
    pub fn to_nested(&self) -> Vec<Vec<Vec<Vec<Vec<String>>>>> {
        let buf: &[u8] = &self.buf;
        let d = &self.delims;
        let leaf = |v: Vec<String>| vec![vec![v]];
        self.layout
            .segs
            .iter()
            .map(|seg| {
                let is_msh = seg.name == *b"MSH";
                self.seg_fields(seg)
                    .iter()
                    .enumerate()
                    .map(|(i, &f)| {
                        if i == 0 || (is_msh && i <= 2) {
                            let s = self.charset.decode(Cow::Borrowed(&buf[f.0..f.1]));
                            return leaf(vec![s.into_owned()]);
                        }
                        pieces(f, buf, d.repetition)
                            .map(|r| {
                                pieces(r, buf, d.component)
                                    .map(|c| {
                                        pieces(c, buf, d.subcomponent)
                                            .map(|s| self.text(s).into_owned())
                                            .collect()
                                    })
                                    .collect()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    /// Sets the element at `path` to `value` (escaped as needed, encoded in the message
    /// charset). Missing fields, repetitions, components and subcomponents are created;
    /// missing segments are not (error). A path without a component replaces the whole
    /// repetition; MSH-1 and MSH-2 are read-only. Changing MSH-18 does not transcode.
    pub fn set(&mut self, path: &str, value: &str) -> Result<(), PathError> {
        let p: Path = path.parse()?;
        self.set_path(&p, value)
    }

    /// Like [`Message::set`] with a pre-parsed path.
    pub fn set_path(&mut self, path: &Path, value: &str) -> Result<(), PathError> {
        crate::encode::set(self, path, value)
    }
}
