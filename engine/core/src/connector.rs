//! The contracts between the engine and its connectors.
//!
//! A [`Source`] turns bytes from the outside world into calls to
//! [`ChannelHandle::submit`](crate::channel::ChannelHandle::submit) and writes back the reply it
//! gets; a [`Destination`] sends one committed [`Delivery`]. Concrete connectors live in the
//! `medway-connectors` crate and reach the engine only through [`ConnectorFactory`], so the
//! engine never names one.

use crate::channel::ChannelHandle;
use crate::config::{ConfigError, ConnectorSpec};
use crate::message::Delivery;
use async_trait::async_trait;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a running source needs.
#[derive(Clone)]
pub struct SourceContext {
    pub channel: ChannelHandle,
    /// Fires when the source must stop accepting new input.
    pub shutdown: CancellationToken,
    /// Track per-connection tasks here so shutdown can wait for their in-flight replies.
    pub tracker: TaskTracker,
}

/// Why a source stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A source runs until `cx.shutdown` fires and returns after every in-flight message has its reply.
#[async_trait]
pub trait Source: Send + 'static {
    /// Binds listeners (if any). Called before `run`, so that readiness is reported only after
    /// every listener is bound and a port clash is reported at start.
    async fn bind(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError>;
}

/// Whether a failed delivery is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient (peer down, timeout, 5xx): retry with backoff.
    Later,
    /// Permanent (rejected content, 4xx): mark errored at once.
    Never,
}

/// A failed send attempt, with a short reason for people (never a message body).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    pub retry: Retry,
    pub reason: String,
    /// The peer asked to wait at least this long (HTTP `Retry-After`); the backoff never
    /// retries sooner.
    pub retry_after: Option<std::time::Duration>,
}

impl DeliveryError {
    pub fn later(reason: impl Into<String>) -> Self {
        Self {
            retry: Retry::Later,
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn never(reason: impl Into<String>) -> Self {
        Self {
            retry: Retry::Never,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// Retry no sooner than `wait` from now.
    pub fn after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

/// A successful send, summarised for the attempt log.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub summary: String,
}

/// Sends committed deliveries. Called again with the same delivery on retry, restart or
/// reprocess: use `delivery.id` as the idempotency key.
///
/// A worker calls `send` for each delivery of a claimed batch, then `flush` once, and records a
/// delivery as sent only after both succeeded. A destination may therefore stage work in `send`
/// and make the whole batch durable in `flush` (one fsync instead of one per message).
#[async_trait]
pub trait Destination: Send + Sync + 'static {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError>;
    /// Makes everything `send` staged since the last flush durable. If it fails, every delivery
    /// sent since the last successful flush is retried.
    async fn flush(&self) -> Result<(), DeliveryError> {
        Ok(())
    }
    /// A start-up check (table exists, broker reachable); failures are reported, not fatal.
    async fn check(&self) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// What the engine lends connectors that need more than their own settings.
#[derive(Clone, Default)]
pub struct ConnectorContext {
    /// The running channels, for destinations that hand messages to another channel.
    pub channels: crate::channel::ChannelDirectory,
    /// The store's read side (absent in `medway check` and `medway test-channel`).
    pub store: Option<Arc<dyn crate::store::Store>>,
}

/// Builds connectors from their `kind` and settings. Implemented by `medway-connectors`'s registry.
pub trait ConnectorFactory: Send + Sync {
    fn source(&self, channel: &str, spec: &ConnectorSpec) -> Result<Box<dyn Source>, ConfigError>;
    fn destination(
        &self,
        channel: &str,
        spec: &ConnectorSpec,
        cx: &ConnectorContext,
    ) -> Result<Arc<dyn Destination>, ConfigError>;
    /// The address a source listens on, if it listens (two channels may not share one), and
    /// the key naming it, for the error message.
    fn listen_address(&self, spec: &ConnectorSpec) -> Option<(String, &'static str)> {
        let _ = spec;
        None
    }
}
