//! `medway-hl7`: a zero-copy HL7 v2 codec — parse, path get/set, escapes, charsets, encode,
//! batches, ACK/NAK building and MLLP framing.
//!
//! This crate is a leaf: no async runtime, no serde. It never panics on input, never recurses
//! on input, and every operation is linear in the input size. Parse failures carry the byte
//! offset of the problem ([`ParseError`]). See each module's documentation for its rules.
//!
//! Choices other crates should know about:
//! * `get` on a path above the leaf (`PID-5`) returns the first repetition with its inner
//!   separators verbatim and escapes decoded between them (`OBX-5` = `Parker & Sons`);
//!   missing elements are `None`, present-but-empty ones `Some("")`; the MSH helpers
//!   (`control_id()`, …) return `None` for empty values;
//! * MSH-10 may be empty (the shared corpus accepts such messages) — check `control_id()`
//!   before relying on MSA-2;
//! * a 3-character MSH-2 is accepted when unambiguous; an undeclared role is represented by
//!   the field separator byte in [`Delimiters`] (never splits anything);
//! * without any CR, an LF that is not followed by a segment ID is a folded line (data);
//! * `Message::parse` takes exactly one message; files and batches go through [`parse_all`].
//!
//! ```
//! use bytes::Bytes;
//! let raw = Bytes::from_static(b"MSH|^~\\&|LAB|H|MEDWAY|H|20240501||ORU^R01|C1|P|2.5.1\rOBX|1|ST|X||Parker \\T\\ Sons\r");
//! let msg = medway_hl7::Message::parse(raw.clone()).unwrap();
//! assert_eq!(msg.get("OBX-5").as_deref(), Some("Parker & Sons"));
//! assert_eq!(msg.encode(), raw);
//! ```

pub mod ack;
pub mod batch;
mod charset;
mod delimiters;
mod encode;
mod error;
mod escape;
mod message;
pub mod mllp;
mod parser;
mod path;

pub use charset::Charset;
pub use delimiters::Delimiters;
pub use error::{ParseError, ParseErrorKind, PathError};
pub use escape::{escape, unescape};
pub use message::Message;
pub use path::{MAX_INDEX, Path};

/// Parses a file or stream that may hold several messages, plain or in FHS/BHS batches:
/// [`batch::split`] then [`Message::parse`] on each slice. Error offsets are relative to `raw`.
/// An envelope with zero messages yields an empty vector.
pub fn parse_all(raw: bytes::Bytes) -> Result<Vec<Message>, ParseError> {
    let batch = batch::split(&raw)?;
    batch
        .messages
        .into_iter()
        .zip(batch.offsets)
        .map(|(m, at)| Message::parse(m).map_err(|e| e.shifted(at)))
        .collect()
}
