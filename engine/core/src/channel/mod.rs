//! The channel runtime: what happens between a source receiving bytes and the sender getting
//! its acknowledgement.
//!
//! [`ChannelHandle::submit`] parses the message, runs the [`ChannelPipeline`] (header checks
//! and steps, no I/O), commits the message with one delivery per chosen destination through
//! the [`WriterHandle`], and only then builds the reply. A store failure yields a negative
//! acknowledgement, never an accept. Rejected and invalid messages are stored too (status
//! `error`), so nothing a sender was told about is invisible to the interface team.
//!
//! A handle can be re-pointed at a new definition of its channel ([`ChannelHandle::replace`])
//! on reload: a message already being handled finishes under the definition it started with.

pub(crate) mod json;
mod processor;
mod reply;
mod submit;

pub use processor::{ChannelPipeline, Processed, ProcessedJson, Verdict, compile_script};
pub use reply::{AckIds, Reply, ReplyOutcome};
pub use submit::ack_outcome;

use crate::store::WriterHandle;
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// The running channels by name, for channel destinations. Updated as channels start and stop.
#[derive(Clone, Default)]
pub struct ChannelDirectory(Arc<RwLock<std::collections::HashMap<String, ChannelHandle>>>);

impl ChannelDirectory {
    pub fn get(&self, name: &str) -> Option<ChannelHandle> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn insert(&self, handle: ChannelHandle) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle.name().to_string(), handle);
    }

    /// Drops every handle (at shutdown, so the store writer can see its last handle go).
    pub(crate) fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn remove(&self, name: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// One destination as the channel runtime sees it: a name and the worker to wake.
#[derive(Clone)]
pub struct DestinationSlot {
    pub name: Arc<str>,
    pub wake: Arc<Notify>,
    /// HL7 path whose value orders this destination's deliveries (`PID-3.1`), if any.
    pub ordering_key: Option<String>,
}

/// One deployed definition of a channel.
pub struct ChannelInner {
    pub name: Arc<str>,
    pub pipeline: ChannelPipeline,
    pub destinations: Vec<DestinationSlot>,
    pub writer: WriterHandle,
    pub ack_ids: Arc<AckIds>,
}

/// A cheap, cloneable handle that sources use to submit messages to one channel.
#[derive(Clone)]
pub struct ChannelHandle {
    name: Arc<str>,
    current: Arc<RwLock<Arc<ChannelInner>>>,
}

impl ChannelHandle {
    pub fn new(inner: ChannelInner) -> Self {
        Self {
            name: inner.name.clone(),
            current: Arc::new(RwLock::new(Arc::new(inner))),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definition new messages are handled with.
    pub fn current(&self) -> Arc<ChannelInner> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Points new messages at a new definition (hot reload); in-flight ones keep the old one.
    pub fn replace(&self, inner: ChannelInner) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(inner);
    }
}

#[cfg(test)]
mod tests;
