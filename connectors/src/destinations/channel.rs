//! `ChannelWriter`: the channel destination. Hands a delivery to another channel of the same
//! engine, as if it had arrived on that channel's source; the new message records its parent
//! message and delivery, so lineage is visible both ways (`medway messages show`).
//!
//! ```toml
//! [[destination]]
//! name = "to-adt"
//! kind = "channel"
//! target = "adt-normalize"
//! ```
//! Idempotent: a delivery that already created a message in the target (a retry after a crash
//! between hand-over and the status commit) is not handed over again. Outcomes: stored in the
//! target → sent; refused by the target (invalid, rejected) → errored; the target's store
//! unavailable or the target channel not running → retried.

use async_trait::async_trait;
use medway_engine::channel::ReplyOutcome;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{ConnectorContext, DeliveryError, Destination, Response};
use medway_engine::message::{Delivery, Inbound, Lineage};
use serde::Deserialize;

/// `[[destination]] kind = "channel"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelWriterSettings {
    /// The name of the channel to hand messages to.
    pub target: String,
}

impl ChannelWriterSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        if settings.target.is_empty() {
            return Err(SettingsError::new("`target` names no channel").key("target"));
        }
        Ok(settings)
    }
}

pub struct ChannelWriter {
    settings: ChannelWriterSettings,
    cx: ConnectorContext,
}

impl ChannelWriter {
    pub fn new(settings: ChannelWriterSettings, cx: ConnectorContext) -> Self {
        Self { settings, cx }
    }
}

#[async_trait]
impl Destination for ChannelWriter {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let target = &self.settings.target;
        let Some(store) = &self.cx.store else {
            return Err(DeliveryError::later("no store to check earlier hand-overs"));
        };
        if let Some(child) = store
            .find_child(delivery.id)
            .await
            .map_err(|e| DeliveryError::later(e.to_string()))?
        {
            return Ok(Response {
                summary: format!("already handed over as message {child} in {target}"),
            });
        }
        let Some(channel) = self.cx.channels.get(target) else {
            return Err(DeliveryError::later(format!(
                "channel {target:?} is not running"
            )));
        };
        let reply = channel
            .submit(Inbound {
                parent: Some(Lineage {
                    message_id: delivery.message_id,
                    delivery_id: delivery.id,
                }),
                ..Inbound::new(delivery.payload.clone())
            })
            .await;
        let child = reply
            .message_id
            .map_or_else(|| "no message".to_string(), |id| format!("message {id}"));
        match reply.outcome {
            ReplyOutcome::Accepted | ReplyOutcome::Filtered => Ok(Response {
                summary: format!("handed over to {target} as {child}"),
            }),
            ReplyOutcome::Invalid(reason) | ReplyOutcome::Rejected(reason) => Err(
                DeliveryError::never(format!("{target} refused it ({child}): {reason}")),
            ),
            ReplyOutcome::Unavailable(reason) => {
                Err(DeliveryError::later(format!("{target}: {reason}")))
            }
        }
    }

    async fn check(&self) -> Result<(), DeliveryError> {
        match self.cx.channels.get(&self.settings.target) {
            Some(_) => Ok(()),
            None => Err(DeliveryError::later(format!(
                "channel {:?} is not running",
                self.settings.target
            ))),
        }
    }
}
