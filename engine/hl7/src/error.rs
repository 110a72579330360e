//! Typed errors of the codec.
//!
//! Every parse failure is a [`ParseError`]: the byte offset in the input the caller handed
//! us (not in some internal buffer) plus a descriptive [`ParseErrorKind`], so that a NAK, a
//! log line or a quarantine record can point at the exact byte. Path and edit failures are
//! [`PathError`]s. Error texts must never contain message content beyond a few structural
//! bytes (delimiters, segment names): field values are PHI and stay out of logs.

use thiserror::Error;

/// A message (or batch file) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("offset {offset}: {kind}")]
pub struct ParseError {
    /// Byte offset of the problem, relative to the start of the input given to the parser.
    pub offset: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(offset: usize, kind: ParseErrorKind) -> Self {
        Self { offset, kind }
    }

    /// The same error, with its offset moved by `base` (used when a message is parsed out
    /// of a larger batch file, so that offsets stay relative to the file).
    #[must_use]
    pub fn shifted(mut self, base: usize) -> Self {
        self.offset = self.offset.saturating_add(base);
        self
    }
}

/// The reason a parse failed. Each variant is one documented rule (see `parser.rs` and
/// `batch.rs` for where each rule lives).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The input is empty (or holds only a BOM / line breaks).
    #[error("empty input")]
    Empty,
    /// No `MSH` segment at all.
    #[error("no MSH segment")]
    NoMsh,
    /// Something other than `MSH` (or a batch header) precedes the first `MSH`.
    #[error("unexpected data before the MSH segment (MSH found at offset {msh_offset})")]
    JunkBeforeMsh {
        /// Where the first `MSH` was found.
        msh_offset: usize,
    },
    /// MSH-1 (the byte after `MSH`) is missing or not a legal delimiter.
    #[error("bad field separator: {0}")]
    BadFieldSeparator(String),
    /// MSH-2 is empty, too short, too long, ambiguous, or holds an illegal/duplicate byte.
    #[error("bad encoding characters: {0}")]
    BadEncodingCharacters(String),
    /// A segment does not start with a 3-character segment ID (`[A-Z][A-Z0-9]{2}`) followed
    /// by the field separator or the end of the segment.
    #[error("bad segment name {0:?}")]
    BadSegmentName(String),
    /// A segment that cannot appear inside a single message (a second `MSH`, or a batch
    /// envelope segment: use [`crate::parse_all`] for files and batches).
    #[error("unexpected {0} segment inside a message")]
    UnexpectedSegment(String),
    /// A required MSH field is empty or absent.
    #[error("required field {0} is empty")]
    MissingField(&'static str),
    /// An MSH field holds a control character (a broken line inside the header). MSH has no
    /// text-typed fields, so a CR/LF/other control byte there means the header was folded.
    #[error("control character 0x{byte:02X} in {field}")]
    ControlCharacterInHeader {
        /// The MSH field, e.g. `MSH-10`.
        field: String,
        /// The offending byte.
        byte: u8,
    },
    /// MSH-12 is not an HL7 v2 version identifier (`2.<digit>…`).
    #[error("MSH-12 {0:?} is not an HL7 v2 version")]
    BadVersion(String),
    /// The bytes are not valid in the character set the message declares (MSH-18; absent
    /// means UTF-8).
    #[error("invalid {charset} byte sequence")]
    InvalidCharset {
        /// The charset the bytes were checked against.
        charset: String,
    },
    /// A batch/file envelope is malformed (two FHS, two BHS in one batch, segments outside any
    /// message, data after FTS, …).
    #[error("bad batch structure: {0}")]
    BadBatch(String),
    /// A message inside a batch uses other delimiters than its FHS/BHS declares.
    #[error("message delimiters {found:?} differ from the batch header's {declared:?}")]
    DelimiterMismatch {
        /// MSH-1 + MSH-2 of the message.
        found: String,
        /// FHS/BHS-1 + -2 of the enclosing header.
        declared: String,
    },
    /// The input is larger than the codec supports (4 GiB).
    #[error("input too large")]
    TooLarge,
}

impl ParseErrorKind {
    /// The kind's name without any text from the input: safe for logs, where a quoted segment
    /// start or field value could carry patient data.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Empty => "empty input",
            Self::NoMsh => "no MSH segment",
            Self::JunkBeforeMsh { .. } => "junk before MSH",
            Self::BadFieldSeparator(_) => "bad field separator",
            Self::BadEncodingCharacters(_) => "bad encoding characters",
            Self::BadSegmentName(_) => "bad segment name",
            Self::UnexpectedSegment(_) => "unexpected segment",
            Self::MissingField(_) => "required MSH field empty",
            Self::ControlCharacterInHeader { .. } => "control character in MSH",
            Self::BadVersion(_) => "bad MSH-12 version",
            Self::InvalidCharset { .. } => "invalid bytes for the charset",
            Self::BadBatch(_) => "bad batch structure",
            Self::DelimiterMismatch { .. } => "delimiters differ from the batch header",
            Self::TooLarge => "input too large",
        }
    }
}

/// A path could not be parsed, or an edit could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path text is not `SEG(occurrence)-field[repetition].component.subcomponent`.
    #[error("bad path {path:?}: {reason}")]
    Syntax {
        /// The text given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// MSH-1 and MSH-2 define the delimiters and cannot be changed through `set`.
    #[error("MSH-1 and MSH-2 are read-only")]
    ReadOnly,
    /// `set` does not create segments.
    #[error("segment {0} not present")]
    SegmentNotFound(String),
    /// The message declares no separator for the level the path addresses (e.g. a
    /// repetition > 1 when MSH-2 has no repetition separator).
    #[error("the message has no {0} separator")]
    NoSeparator(&'static str),
    /// The value holds a delimiter or line break but the message has no escape character.
    #[error("value needs escaping but the message declares no escape character")]
    NoEscapeCharacter,
    /// The value holds a character the message's charset (MSH-18) cannot represent.
    #[error("value not representable in charset {0}")]
    Unrepresentable(String),
}
