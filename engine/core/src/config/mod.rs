//! Configuration: `medway.toml` ([`EngineConfig`]) and channel files (`channels/*.toml`,
//! [`ChannelConfig`]).
//!
//! Every problem is a [`ConfigError`] naming the file, line and column, with a hint where one
//! helps. Connector settings stay as raw TOML here ([`ConnectorSpec`]) and are checked by the
//! connector that owns them (`deny_unknown_fields`), whose complaint is located back in the file.

mod channel;
mod engine;
mod error;
mod steps;
mod tests_file;

pub use channel::{
    ChannelConfig, ConnectorSpec, DestinationConfig, RetryPolicy, load_channel_dir,
    load_channel_file, parse_channel,
};
pub use engine::{DeliverySettings, EngineConfig, StoreConfig};
pub use error::{ConfigError, ConfigErrors, SettingsError, closest as closest_kind, line_col};
pub use steps::{DestinationSteps, ScriptRef, StepConfig, StepKind, looks_like_path};
pub use tests_file::{ChannelTest, Expectation, TestInput};
