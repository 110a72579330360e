//! MLLP framing (`0x0B payload 0x1C 0x0D`), as a pure, runtime-free byte state machine.
//!
//! The connectors crate wraps [`MllpFramer`] in a tokio-util codec; this module does no I/O.
//! Invariants: every byte of the buffer is examined at most once across calls (the scan
//! position inside an open frame is remembered), so decoding is linear in bytes received no
//! matter how the peer chunks its writes; frames split across reads and several frames per
//! read both work (W5, W6); nothing here panics or allocates beyond the frame itself.
//!
//! Tolerance policy (REFERENCE.md §5 "tolerate on input"):
//! * CR, LF, space and tab between frames are skipped silently (W8);
//! * any other byte outside a frame is discarded and counted in
//!   [`MllpFramer::discarded_garbage_bytes`] — not an error, unless more than `max_frame_bytes`
//!   garbage bytes arrive in a row without a start byte, which means the peer is not speaking
//!   MLLP at all ([`FrameError::NotMllp`]);
//! * `0x1C 0x0B` ends the frame and starts the next one (a missing trailing CR);
//! * `0x1C` followed by anything else is [`FrameError::BadEndBlock`] (the frame is dropped);
//! * a `0x0B` inside an open frame means the sender restarted: the partial frame is discarded
//!   (counted as garbage) and a new frame begins;
//! * a frame longer than `max_frame_bytes` is [`FrameError::TooLarge`]; the caller closes the
//!   connection. After any error the framer is back in its idle state.
//!
//! An empty frame (`0B 1C 0D`) yields an empty payload; the caller NAKs it.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Start block.
pub const SB: u8 = 0x0B;
/// End block.
pub const EB: u8 = 0x1C;
/// Trailing carriage return.
pub const CR: u8 = 0x0D;

/// A framing failure. The connection should normally be closed on any of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame exceeds the configured maximum.
    #[error("MLLP frame larger than {limit} bytes")]
    TooLarge {
        /// The configured maximum payload size.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside an MLLP frame after {received} payload bytes")]
    Truncated {
        /// Payload bytes received before EOF.
        received: usize,
    },
    /// `0x1C` followed by a byte other than `0x0D` (or `0x0B`).
    #[error("MLLP end block followed by 0x{byte:02X} instead of 0x0D")]
    BadEndBlock {
        /// The byte that followed `0x1C`.
        byte: u8,
    },
    /// Too much non-MLLP data without any start block: the peer is not speaking MLLP.
    #[error("not MLLP: {discarded} bytes without a start block")]
    NotMllp {
        /// Garbage bytes seen in a row.
        discarded: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for a start block.
    Idle,
    /// Inside a frame; payload starts at buffer index 0; `scanned` bytes are known free of
    /// SB/EB.
    InFrame { scanned: usize },
}

/// Streaming MLLP decoder.
#[derive(Debug, Clone)]
pub struct MllpFramer {
    max: usize,
    state: State,
    garbage_total: u64,
    garbage_run: usize,
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | b' ' | b'\t')
}

impl MllpFramer {
    /// A framer accepting payloads up to `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max: max_frame_bytes,
            state: State::Idle,
            garbage_total: 0,
            garbage_run: 0,
        }
    }

    /// Total non-whitespace bytes discarded outside frames (and partial frames abandoned by a
    /// restart) since creation.
    pub fn discarded_garbage_bytes(&self) -> u64 {
        self.garbage_total
    }

    fn garbage(&mut self, n: usize) {
        self.garbage_total = self.garbage_total.saturating_add(n as u64);
        self.garbage_run = self.garbage_run.saturating_add(n);
    }

    /// Returns the next complete payload, `None` if more bytes are needed. Consumed bytes are
    /// removed from `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            match self.state {
                State::Idle => {
                    let start = memchr::memchr(SB, buf);
                    let skipped = start.unwrap_or(buf.len());
                    let junk = buf[..skipped].iter().filter(|&&b| !is_ws(b)).count();
                    self.garbage(junk);
                    let _ = buf.split_to(skipped);
                    if start.is_none() {
                        if self.garbage_run > self.max {
                            let discarded = self.garbage_run;
                            self.garbage_run = 0;
                            return Err(FrameError::NotMllp { discarded });
                        }
                        return Ok(None);
                    }
                    let _ = buf.split_to(1); // the start block
                    self.garbage_run = 0;
                    self.state = State::InFrame { scanned: 0 };
                }
                State::InFrame { scanned } => {
                    // The caller owns `buf`; never trust a remembered position blindly.
                    let scanned = scanned.min(buf.len());
                    let hit = memchr::memchr2(EB, SB, &buf[scanned..]).map(|p| scanned + p);
                    let Some(at) = hit else {
                        if buf.len() > self.max {
                            return Err(self.too_large(buf));
                        }
                        self.state = State::InFrame { scanned: buf.len() };
                        return Ok(None);
                    };
                    if at > self.max {
                        return Err(self.too_large(buf));
                    }
                    if buf[at] == SB {
                        // Sender restarted: drop the partial frame, keep the new start block.
                        self.garbage(at);
                        let _ = buf.split_to(at);
                        self.state = State::Idle;
                        continue;
                    }
                    let Some(&next) = buf.get(at + 1) else {
                        // 0x1C is the last byte so far (W6): wait, without rescanning.
                        self.state = State::InFrame { scanned: at };
                        return Ok(None);
                    };
                    self.state = State::Idle;
                    match next {
                        CR => {
                            let payload = buf.split_to(at).freeze();
                            let _ = buf.split_to(2);
                            return Ok(Some(payload));
                        }
                        SB => {
                            let payload = buf.split_to(at).freeze();
                            let _ = buf.split_to(1); // EB; SB stays for the next frame
                            return Ok(Some(payload));
                        }
                        byte => {
                            let _ = buf.split_to(at + 1);
                            return Err(FrameError::BadEndBlock { byte });
                        }
                    }
                }
            }
        }
    }

    fn too_large(&mut self, buf: &mut BytesMut) -> FrameError {
        buf.clear();
        self.state = State::Idle;
        FrameError::TooLarge { limit: self.max }
    }

    /// Like [`MllpFramer::decode`] at end of stream: a frame still open is `Truncated`;
    /// trailing whitespace/garbage is consumed.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        match self.state {
            State::InFrame { scanned } if scanned + 1 == buf.len() && buf.last() == Some(&EB) => {
                // `0x1C` then EOF: the CR is missing, the frame is complete.
                let payload = buf.split_to(scanned).freeze();
                buf.clear();
                self.state = State::Idle;
                Ok(Some(payload))
            }
            State::InFrame { .. } => {
                let received = buf.len();
                buf.clear();
                self.state = State::Idle;
                Err(FrameError::Truncated { received })
            }
            State::Idle => {
                buf.clear();
                Ok(None)
            }
        }
    }
}

/// Appends `0x0B payload 0x1C 0x0D` to `dst`.
pub fn encode_frame(payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(payload.len() + 3);
    dst.put_u8(SB);
    dst.put_slice(payload);
    dst.put_u8(EB);
    dst.put_u8(CR);
}

#[cfg(test)]
mod tests;
