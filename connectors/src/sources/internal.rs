//! `InternalSource`: a channel with no listener. Its messages come only from other channels
//! (a `kind = "channel"` destination, or Medway itself: the scoring destination hands alerts
//! to an alert channel this way).
//!
//! ```toml
//! [source]
//! kind = "internal"
//! ```

use async_trait::async_trait;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{Source, SourceContext, SourceError};
use serde::Deserialize;

/// `[source] kind = "internal"` takes no settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalSettings {}

impl InternalSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        spec.parse()
    }
}

pub struct InternalSource;

#[async_trait]
impl Source for InternalSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        cx.shutdown.cancelled().await;
        Ok(())
    }
}
