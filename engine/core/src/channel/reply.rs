//! The reply a source sends back, built only after the store has answered.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to a submitted message, in words a source can map to its protocol
/// (an MLLP ACK code, an HTTP status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Durably stored (AA/CA; HTTP 200/201/202).
    Accepted,
    /// Durably stored as `filtered` (AA/CA).
    Filtered,
    /// Stored as `error`: the content is invalid (AE; HTTP 422). Resending it unchanged will not help.
    Invalid(String),
    /// Refused: unparseable or unsupported header (AR/CR; HTTP 400).
    Rejected(String),
    /// Not stored: the store failed. The sender should resend later (AR/CE; HTTP 503).
    Unavailable(String),
}

impl ReplyOutcome {
    /// True when the sender may forget the message: it is durably stored.
    pub fn is_stored_ok(&self) -> bool {
        matches!(self, Self::Accepted | Self::Filtered)
    }
}

/// The reply to one submitted message.
#[derive(Debug, Clone)]
pub struct Reply {
    pub outcome: ReplyOutcome,
    /// The HL7 acknowledgement to send, if the sender asked for one (MSH-15).
    pub ack: Option<Bytes>,
    /// The stored message id, when the message (even an invalid one) was stored.
    pub message_id: Option<i64>,
}

/// Generates control ids for Medway's own ACKs (MSH-10 of the ACK): `MW` + the stored message
/// id when there is one, else `MWX` + a per-process counter seeded from the clock. Unique, and
/// never a timestamp alone (Mirth's ACK ids collide).
#[derive(Debug)]
pub struct AckIds {
    fallback: AtomicU64,
}

impl Default for AckIds {
    fn default() -> Self {
        let seed = (crate::clock::now_micros() as u64 / 1000) % 10_000_000_000;
        Self {
            fallback: AtomicU64::new(seed * 1000),
        }
    }
}

impl AckIds {
    pub fn for_message(&self, message_id: Option<i64>) -> String {
        match message_id {
            Some(id) => format!("MW{id}"),
            None => format!("MWX{}", self.fallback.fetch_add(1, Ordering::Relaxed)),
        }
    }
}
