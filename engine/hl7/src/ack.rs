//! Acknowledgement builder (REFERENCE.md §4, wire vectors W1–W4).
//!
//! Mode: *original* when MSH-15 and MSH-16 are both empty, else *enhanced*, where the builder
//! writes the accept (commit) ACK `CA`/`CE`/`CR`. The ACK reuses the inbound delimiters,
//! swaps sender/receiver (MSH-3/4 ← inbound MSH-5/6, MSH-5/6 ← inbound MSH-3/4), copies
//! MSH-11/12, and echoes the inbound MSH-10 in MSA-2. MSH-9 is `ACK` for versions up to 2.3.1 and
//! `ACK^<trigger>^ACK` from 2.4 on; a valued MSH-18 is copied (the copied header bytes are in
//! that charset). ERR is written in the version's own form: v2.5+ `ERR||loc|
//! code^text^HL70357|E|||diag`, v2.3/2.4 `ERR|seg^seq^field^code&text&HL70357`. Segments end
//! with CR. Error texts are short and must never contain PHI (they are caller-supplied). The
//! builders never panic, whatever the inbound bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::delimiters::Delimiters;
use crate::escape::escape;
use crate::message::Message;
use crate::path::Path;

/// Acknowledgement mode of an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// MSH-15 and MSH-16 both empty: one application ACK (AA/AE/AR).
    Original,
    /// Either valued: accept ACK (CA/CE/CR) governed by MSH-15.
    Enhanced,
}

/// MSA-1 codes (HL7 table 0008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept.
    CA,
    /// Commit error.
    CE,
    /// Commit reject.
    CR,
}

impl AckCode {
    /// The two-letter code.
    pub fn as_str(&self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }
}

/// Where an error is (ERR-2 / ERR-1 location).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLocation {
    /// Segment ID, e.g. `PID`.
    pub segment: String,
    /// 1-based segment sequence (occurrence).
    pub sequence: u32,
    /// Field number.
    pub field: u32,
}

/// An error to report in MSA/ERR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// HL7 table 0357 code (e.g. 101, 203, 207).
    pub code: u16,
    /// Short diagnostic text, no PHI. Empty → the table 0357 description is used in MSA-3.
    pub text: String,
    /// Location, when known.
    pub location: Option<ErrorLocation>,
}

/// What happened to the inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (or filtered): AA / CA.
    Accept,
    /// Content error: AE / CE.
    Error(AckError),
    /// Rejected (unsupported type/version/processing id, internal failure): AR / CR.
    Reject(AckError),
}

/// HL7 table 0357 description for a code.
pub fn table_0357(code: u16) -> &'static str {
    match code {
        0 => "Message accepted",
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        104 => "Value too long",
        198 => "Non-Conformant Value",
        199 => "Other",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        202 => "Unsupported processing id",
        203 => "Unsupported version id",
        204 => "Unknown key identifier",
        205 => "Duplicate key identifier",
        206 => "Application record locked",
        207 => "Application internal error",
        _ => "Application error",
    }
}

/// MSH-15/16 both empty → original mode.
pub fn ack_mode(inbound: &Message) -> AckMode {
    if inbound.accept_ack_type().is_none() && inbound.app_ack_type().is_none() {
        AckMode::Original
    } else {
        AckMode::Enhanced
    }
}

/// Whether an accept ACK must be sent. Original mode: always. Enhanced mode, by MSH-15:
/// `AL` always, `NE` never, `ER` only on error/reject, `SU` only on success; an empty or
/// unknown MSH-15 is treated as `AL` (a sender that asked for enhanced mode is waiting).
pub fn accept_ack_requested(inbound: &Message, outcome_is_accept: bool) -> bool {
    if ack_mode(inbound) == AckMode::Original {
        return true;
    }
    match inbound.accept_ack_type().as_deref().map(str::trim) {
        Some("NE") => false,
        Some("ER") => !outcome_is_accept,
        Some("SU") => outcome_is_accept,
        _ => true,
    }
}

/// (major, minor) of an MSH-12 value; unknown → (2, 5).
fn version_of(v: &[u8]) -> (u32, u32) {
    let s = std::str::from_utf8(v).unwrap_or("");
    let mut it = s.split(['.', '^']);
    let major = it.next().and_then(|x| x.trim().parse().ok());
    let minor = it.next().and_then(|x| {
        let digits: String = x.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    match (major, minor) {
        (Some(a), Some(b)) => (a, b),
        _ => (2, 5),
    }
}

struct Writer<'a> {
    out: BytesMut,
    d: &'a Delimiters,
}

impl Writer<'_> {
    fn raw(&mut self, b: &[u8]) {
        self.out.put_slice(b);
    }
    fn sep(&mut self) {
        self.out.put_u8(self.d.field);
    }
    /// Writes caller text escaped; characters that cannot be escaped are replaced by `?`.
    fn text(&mut self, s: &str) {
        match escape(s.as_bytes(), self.d) {
            Some(e) => self.out.put_slice(&e),
            None => {
                for &b in s.as_bytes() {
                    let structural = b == self.d.field
                        || b == self.d.component
                        || b == self.d.repetition
                        || b == self.d.subcomponent
                        || b == b'\r'
                        || b == b'\n';
                    self.out.put_u8(if structural { b'?' } else { b });
                }
            }
        }
    }
    fn end(&mut self) {
        self.out.put_u8(b'\r');
    }
}

/// Raw header values an ACK needs (still escaped in the inbound delimiters).
struct Header<'a> {
    d: Delimiters,
    enc: Vec<u8>,
    f: [&'a [u8]; 7], // MSH-3, 4, 5, 6, 10, 11, 12
    trigger: &'a [u8],
    /// MSH-18, copied so that the header bytes we copy keep their declared charset.
    charset: &'a [u8],
}

fn write_ack(h: &Header<'_>, code: AckCode, err: Option<&AckError>, id: &str, ts: &str) -> Bytes {
    let d = &h.d;
    let mut w = Writer {
        out: BytesMut::with_capacity(256),
        d,
    };
    let version = version_of(h.f[6]);
    w.raw(b"MSH");
    w.sep();
    w.raw(&h.enc);
    for v in [h.f[2], h.f[3], h.f[0], h.f[1]] {
        w.sep();
        w.raw(v);
    }
    w.sep();
    w.text(ts);
    w.sep();
    w.sep();
    w.raw(b"ACK");
    if version >= (2, 4) && !h.trigger.is_empty() && d.declared(d.component) {
        w.out.put_u8(d.component);
        w.raw(h.trigger);
        w.out.put_u8(d.component);
        w.raw(b"ACK");
    }
    w.sep();
    w.text(id);
    w.sep();
    w.raw(h.f[5]);
    w.sep();
    w.raw(h.f[6]);
    if !h.charset.is_empty() {
        for _ in 13..=18 {
            w.sep();
        }
        w.raw(h.charset);
    }
    w.end();
    w.raw(b"MSA");
    w.sep();
    w.raw(code.as_str().as_bytes());
    w.sep();
    w.raw(h.f[4]);
    if let Some(e) = err {
        let desc = table_0357(e.code);
        w.sep();
        w.text(if e.text.is_empty() { desc } else { &e.text });
        w.end();
        write_err(&mut w, e, version);
    }
    w.end_if_needed();
    w.out.freeze()
}

impl Writer<'_> {
    fn end_if_needed(&mut self) {
        if !self.out.ends_with(b"\r") {
            self.end();
        }
    }
}

fn write_err(w: &mut Writer<'_>, e: &AckError, version: (u32, u32)) {
    let d = *w.d;
    let comp = d.component;
    let code = e.code.to_string();
    let desc = table_0357(e.code);
    w.raw(b"ERR");
    w.sep();
    let loc = |w: &mut Writer<'_>| {
        if let Some(l) = &e.location {
            w.text(&l.segment);
            w.out.put_u8(comp);
            w.raw(l.sequence.to_string().as_bytes());
            w.out.put_u8(comp);
            w.raw(l.field.to_string().as_bytes());
        }
    };
    if version >= (2, 5) {
        w.sep();
        loc(w);
        w.sep();
        w.raw(code.as_bytes());
        w.out.put_u8(comp);
        w.raw(desc.as_bytes());
        w.out.put_u8(comp);
        w.raw(b"HL70357");
        w.sep();
        w.raw(b"E");
        if !e.text.is_empty() {
            w.sep();
            w.sep();
            w.sep();
            w.text(&e.text);
        }
    } else {
        if e.location.is_some() {
            loc(w);
        } else {
            w.out.put_u8(comp);
            w.out.put_u8(comp);
        }
        w.out.put_u8(comp);
        w.raw(code.as_bytes());
        if d.declared(d.subcomponent) {
            w.out.put_u8(d.subcomponent);
            w.raw(desc.as_bytes());
            w.out.put_u8(d.subcomponent);
            w.raw(b"HL70357");
        }
    }
    w.end();
}

fn code_for(mode: AckMode, outcome: &Outcome) -> (AckCode, Option<&AckError>) {
    match (mode, outcome) {
        (AckMode::Original, Outcome::Accept) => (AckCode::AA, None),
        (AckMode::Original, Outcome::Error(e)) => (AckCode::AE, Some(e)),
        (AckMode::Original, Outcome::Reject(e)) => (AckCode::AR, Some(e)),
        (AckMode::Enhanced, Outcome::Accept) => (AckCode::CA, None),
        (AckMode::Enhanced, Outcome::Error(e)) => (AckCode::CE, Some(e)),
        (AckMode::Enhanced, Outcome::Reject(e)) => (AckCode::CR, Some(e)),
    }
}

/// Builds the ACK for a parsed inbound message.
pub fn build_ack(
    inbound: &Message,
    outcome: &Outcome,
    ack_control_id: &str,
    timestamp: &str,
) -> Bytes {
    let raw = |p: &str| -> &[u8] {
        p.parse::<Path>()
            .ok()
            .and_then(|p| inbound.get_raw(&p))
            .unwrap_or(&[])
    };
    let d = *inbound.delimiters();
    let h = Header {
        d,
        enc: raw("MSH-2").to_vec(),
        f: [
            raw("MSH-3"),
            raw("MSH-4"),
            raw("MSH-5"),
            raw("MSH-6"),
            raw("MSH-10"),
            raw("MSH-11"),
            raw("MSH-12"),
        ],
        trigger: raw("MSH-9.2"),
        charset: raw("MSH-18"),
    };
    let (code, err) = code_for(ack_mode(inbound), outcome);
    write_ack(&h, code, err, ack_control_id, timestamp)
}

/// Best-effort AR for input that did not parse: reads whatever MSH fields are readable
/// (delimiters if legal, else the standard set; fields only if free of control bytes and
/// foreign delimiters) and answers `AR` with the error.
pub fn build_nak_for_unparseable(
    raw: &[u8],
    error: &AckError,
    ack_control_id: &str,
    timestamp: &str,
) -> Bytes {
    let head_len = raw.len().min(4096);
    let head = &raw[..head_len];
    let msh_at = memchr::memmem::find(head, b"MSH");
    let (d, enc) = match msh_at.map(|at| Delimiters::read(head, at)) {
        Some(Ok((d, enc_end))) => (d, head[msh_at.unwrap_or(0) + 4..enc_end].to_vec()),
        _ => (Delimiters::default(), b"^~\\&".to_vec()),
    };
    let mut fields: Vec<&[u8]> = Vec::new();
    if let Some(at) = msh_at {
        let line_end = head[at..]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .map_or(head.len(), |p| at + p);
        // fields[n] == MSH-(n+1) for n >= 1 (split starts at MSH-1's separator)
        fields = head[at..line_end].split(|&b| b == d.field).collect();
    }
    let clean = |n: usize| -> &[u8] {
        let v = fields.get(n.wrapping_sub(1)).copied().unwrap_or(&[]);
        let ok = v.len() <= 200
            && v.iter()
                .all(|&b| (0x20..0x7F).contains(&b) && b != d.field && b != d.repetition);
        if ok { v } else { &[] }
    };
    let trigger_src = clean(9);
    let trigger = trigger_src
        .split(|&b| b == d.component)
        .nth(1)
        .unwrap_or(&[]);
    let h = Header {
        d,
        enc,
        f: [
            clean(3),
            clean(4),
            clean(5),
            clean(6),
            clean(10),
            clean(11),
            clean(12),
        ],
        trigger,
        charset: &[],
    };
    write_ack(&h, AckCode::AR, Some(error), ack_control_id, timestamp)
}

#[cfg(test)]
mod tests;
