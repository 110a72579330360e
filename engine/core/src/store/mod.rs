//! The durable store: messages, their deliveries and every delivery attempt.
//!
//! One [`Store`] trait, two backends through sqlx: [`SqliteStore`] (the embedded default: one
//! file, WAL, `synchronous=FULL`) and [`PostgresStore`] (production, shared by several nodes,
//! `synchronous_commit=on`). Both pass the same contract suite (`tests/store_contract.rs`).
//!
//! Writes go through the [`StoreWriter`], which batches concurrent requests into one transaction
//! (group commit) and answers each caller only after that transaction is durable. Reads and
//! delivery claims go straight to the backend. This module never decides routing or retries; it
//! records what the channel runtime and the delivery workers decided.

mod claim;
mod clinical;
mod migrations;
mod postgres;
mod rows;
mod sqlite;
mod writer;

pub use claim::ClaimOrder;
pub use clinical::{AlertFilter, AlertRow, Clinical, ObservationRow, ScoreRow};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use writer::{StoreWriter, WriterHandle};

use crate::message::{Delivery, DeliveryStatus, MessageStatus, NewMessage};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unsupported store URL {0:?} (use sqlite://FILE or postgres://…)")]
    BadUrl(String),
    #[error("cannot prepare the store: {0}")]
    Setup(String),
    #[error("the store writer has stopped")]
    WriterClosed,
}

/// The result of one send attempt, as recorded by a delivery worker.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub delivery_id: i64,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    pub started_at: i64,
    pub duration_us: i64,
    pub result: AttemptResult,
}

#[derive(Debug, Clone)]
pub enum AttemptResult {
    Sent {
        summary: String,
    },
    /// Failed; try again at `next_attempt_at` (UTC micros).
    Retry {
        reason: String,
        next_attempt_at: i64,
    },
    /// Failed for good (permanent error or attempt limit).
    Errored {
        reason: String,
    },
}

impl AttemptResult {
    fn status(&self) -> DeliveryStatus {
        match self {
            Self::Sent { .. } => DeliveryStatus::Sent,
            Self::Retry { .. } => DeliveryStatus::Retrying,
            Self::Errored { .. } => DeliveryStatus::Errored,
        }
    }

    fn outcome_word(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::Retry { .. } => "retry",
            Self::Errored { .. } => "error",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Sent { summary } => summary,
            Self::Retry { reason, .. } | Self::Errored { reason } => reason,
        }
    }
}

/// What a worker gets from [`Store::claim`].
#[derive(Debug, Default)]
pub struct Claim {
    /// Leased to the caller, oldest first.
    pub deliveries: Vec<Delivery>,
    /// When the head of the queue becomes due, if it is waiting for a retry.
    pub next_due: Option<i64>,
}

/// Filters for listing messages; all optional.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub channel: Option<String>,
    pub status: Option<MessageStatus>,
    pub control_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: u32,
}

/// A message as listed (no body).
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub channel: String,
    /// The message this one was handed over from (channel destination), if any.
    pub parent_id: Option<i64>,
    pub received_at: i64,
    pub control_id: Option<String>,
    pub message_type: Option<String>,
    pub status: MessageStatus,
    pub error: Option<String>,
}

/// A message with its bodies, for `messages show`.
#[derive(Debug, Clone)]
pub struct MessageDetail {
    pub summary: MessageSummary,
    pub patient_key: Option<String>,
    pub peer: Option<String>,
    /// The source's ingestion key (a file source: `file:<sha256>:<index>`), if it gave one.
    pub origin: Option<String>,
    pub raw: Vec<u8>,
    pub transformed: Option<Vec<u8>>,
}

/// A delivery as shown to people.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub message_id: i64,
    pub channel: String,
    pub destination: String,
    pub ordering_key: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Filters for listing deliveries; all optional.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub id: Option<i64>,
    pub channel: Option<String>,
    pub destination: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub message_id: Option<i64>,
    /// Created at or after (UTC micros).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: u32,
}

/// One recorded send attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub attempt: u32,
    pub started_at: i64,
    pub duration_us: i64,
    /// `sent`, `retry` or `error`.
    pub outcome: String,
    pub detail: Option<String>,
}

/// A new delivery of an already stored message (reprocessing): history is never rewritten.
#[derive(Debug, Clone)]
pub struct Redelivery {
    pub message_id: i64,
    pub channel: String,
    pub destination: String,
    pub ordering_key: Option<String>,
}

/// Counts per channel × destination × status, for `medway status` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct QueueCount {
    pub channel: String,
    pub destination: String,
    pub status: DeliveryStatus,
    pub count: i64,
}

/// The read side, for people and tools (`medway messages`, `medway deliveries`, the admin API).
#[async_trait]
pub trait Inspect: Send + Sync {
    async fn list_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Vec<MessageSummary>, StoreError>;

    async fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError>;

    /// Deliveries of the given messages, by message id then delivery id.
    async fn deliveries_of(&self, message_ids: &[i64]) -> Result<Vec<DeliveryView>, StoreError>;

    async fn queue_counts(&self) -> Result<Vec<QueueCount>, StoreError>;

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Ids of the messages handed over from this one (channel destinations).
    async fn children(&self, message_id: i64) -> Result<Vec<i64>, StoreError>;

    /// The message a delivery already created in another channel, if it did (idempotency of
    /// the channel destination).
    async fn find_child(&self, parent_delivery_id: i64) -> Result<Option<i64>, StoreError>;

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, StoreError>;

    async fn attempts(&self, delivery_id: i64) -> Result<Vec<AttemptView>, StoreError>;
}

/// The durable store. Every method is safe to call concurrently.
#[async_trait]
pub trait Store: Inspect + Clinical + Send + Sync + 'static {
    /// Commits messages (each with its deliveries) and delivery outcomes in **one durable
    /// transaction**; returns the new message ids in order. On error nothing was written.
    async fn write_batch(
        &self,
        messages: &[NewMessage],
        outcomes: &[DeliveryOutcome],
    ) -> Result<Vec<i64>, StoreError>;

    /// Leases up to `limit` due deliveries of one destination, oldest first under the ordering
    /// rules of [`ClaimOrder`], and reports when the first waiting one becomes due.
    async fn claim(
        &self,
        channel: &str,
        destination: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
        order: ClaimOrder,
    ) -> Result<Claim, StoreError>;

    /// Drops the leases on these deliveries (claimed but not attempted), keeping their order.
    async fn release(&self, delivery_ids: &[i64]) -> Result<(), StoreError>;

    /// Adds new queued deliveries for stored messages (reprocessing); returns their ids.
    async fn add_deliveries(&self, deliveries: &[Redelivery]) -> Result<Vec<i64>, StoreError>;

    /// Drops every lease held by `owner` (at start-up of a single node, and at clean shutdown).
    async fn release_leases(&self, owner: &str) -> Result<(), StoreError>;
}

/// Opens the store named by `url`, creating its schema if needed.
pub async fn open(url: &str, pool_size: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, pool_size).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(url, pool_size).await?))
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}

/// Converts a status string read back from the database.
fn message_status(text: &str) -> MessageStatus {
    MessageStatus::parse(text).unwrap_or(MessageStatus::Error)
}

fn delivery_status(text: &str) -> DeliveryStatus {
    DeliveryStatus::parse(text).unwrap_or(DeliveryStatus::Errored)
}
