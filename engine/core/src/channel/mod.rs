//! The channel runtime: what happens between a source receiving bytes and the sender getting
//! its acknowledgement.
//!
//! [`ChannelHandle::submit`] parses the message, checks its header (MSH-9/10/11/12), runs the
//! channel's steps, commits the message with one delivery per destination through the
//! [`WriterHandle`], and only then builds the reply. A store failure yields a negative
//! acknowledgement, never an accept. Rejected and invalid messages are stored too (status
//! `error`), so nothing a sender was told about is invisible to the interface team.

mod pipeline;
mod reply;

pub use pipeline::Verdict;
pub use reply::{AckIds, Reply, ReplyOutcome};

use crate::config::{ChannelConfig, StepConfig};
use crate::store::WriterHandle;
use std::sync::Arc;
use tokio::sync::Notify;

/// One destination as the channel runtime sees it: a name and the worker to wake.
#[derive(Clone)]
pub struct DestinationSlot {
    pub name: Arc<str>,
    pub wake: Arc<Notify>,
}

/// The channel rules `submit` applies, fixed for one deployed version of the channel.
pub struct ChannelRules {
    pub accept_versions: Vec<String>,
    pub processing_ids: Vec<String>,
    pub steps: Vec<StepConfig>,
}

impl ChannelRules {
    pub fn from_config(config: &ChannelConfig) -> Self {
        Self {
            accept_versions: config.accept_versions.clone(),
            processing_ids: config.processing_ids.clone(),
            steps: config.steps.clone(),
        }
    }
}

struct ChannelInner {
    name: Arc<str>,
    rules: ChannelRules,
    destinations: Vec<DestinationSlot>,
    writer: WriterHandle,
    ack_ids: AckIds,
}

/// A cheap, cloneable handle that sources use to submit messages to one channel.
#[derive(Clone)]
pub struct ChannelHandle {
    inner: Arc<ChannelInner>,
}

impl ChannelHandle {
    pub fn new(
        name: &str,
        rules: ChannelRules,
        destinations: Vec<DestinationSlot>,
        writer: WriterHandle,
        ack_ids: AckIds,
    ) -> Self {
        Self {
            inner: Arc::new(ChannelInner {
                name: Arc::from(name),
                rules,
                destinations,
                writer,
                ack_ids,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }
}
