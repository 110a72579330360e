//! The message vocabulary shared by sources, the channel runtime, the store and destinations.
//!
//! A message arrives as an [`Inbound`] (raw bytes plus where they came from), becomes a
//! [`NewMessage`] once the channel has decided its status and destinations, and is committed with
//! one [`NewDelivery`] per chosen destination. Delivery workers later see each as a [`Delivery`].
//! Statuses follow DESIGN.md: a message is `accepted | filtered | error`; a delivery moves
//! `queued → sent` or `queued → retrying → … → sent | errored`.

use bytes::Bytes;
use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a source hands to [`crate::channel::ChannelHandle::submit`].
#[derive(Debug, Clone)]
pub struct Inbound {
    pub payload: Bytes,
    /// The remote peer, when the source is a network listener (logged, never the body).
    pub peer: Option<SocketAddr>,
    /// Set when another channel handed this message over (a channel destination).
    pub parent: Option<Lineage>,
    /// An ingestion key unique per channel (the folder source sends
    /// `file:<name>:<mtime ns>:<sha256>:<index>`): a message whose origin the channel already
    /// stored is not stored again, so a source that re-reads its input after a crash never
    /// double-stores. `None` for sources that cannot
    /// name their input (MLLP: the sender resends a new message).
    pub origin: Option<String>,
}

impl Inbound {
    pub fn new(payload: Bytes) -> Self {
        Self {
            payload,
            peer: None,
            parent: None,
            origin: None,
        }
    }
}

/// Where a handed-over message came from: lineage is visible both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage {
    pub message_id: i64,
    pub delivery_id: i64,
}

/// The final status of a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored and handed to its destinations.
    Accepted,
    /// Stored, but a channel filter dropped it (no deliveries).
    Filtered,
    /// Stored for inspection; the sender got a negative acknowledgement.
    Error,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Filtered => "filtered",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "accepted" => Some(Self::Accepted),
            "filtered" => Some(Self::Filtered),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Retrying,
    Sent,
    Errored,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Errored => "errored",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Self::Queued),
            "retrying" => Some(Self::Retrying),
            "sent" => Some(Self::Sent),
            "errored" => Some(Self::Errored),
            _ => None,
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message ready to be committed, with its deliveries.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub channel: Arc<str>,
    pub received_at: i64,
    pub control_id: Option<String>,
    /// `MSH-9.1^MSH-9.2`, e.g. `ORU^R01`.
    pub message_type: Option<String>,
    pub status: MessageStatus,
    /// Why the message is `error` (short, never PHI).
    pub error: Option<String>,
    /// Patient key (PID-3.1 with its assigning authority), used for ordering and scoring.
    pub patient_key: Option<String>,
    pub peer: Option<String>,
    pub parent: Option<Lineage>,
    /// The source's ingestion key (see [`Inbound::origin`]). The store keeps at most one
    /// message per (channel, origin) and answers a duplicate with the existing message's id.
    pub origin: Option<String>,
    pub raw: Bytes,
    /// The message after channel transforms, when they changed it.
    pub transformed: Option<Bytes>,
    pub deliveries: Vec<NewDelivery>,
}

/// One destination chosen for a message at commit time. Recovery never re-runs routing.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub destination: Arc<str>,
    /// Deliveries with the same key on one destination are sent in order.
    pub ordering_key: Option<String>,
}

/// A delivery claimed by a worker, carrying what the destination needs to send it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stable across retries, restarts and reprocessing: the destination's idempotency key.
    pub id: i64,
    pub message_id: i64,
    pub channel: String,
    pub destination: String,
    /// Attempts already made before this one.
    pub attempts: u32,
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    /// The bytes to deliver (transformed form if any, else raw).
    pub payload: Bytes,
    pub received_at: i64,
    /// Deliveries with the same key are sent in order (see `ClaimOrder::ByKey`).
    pub ordering_key: Option<String>,
}
