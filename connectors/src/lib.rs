//! `medway-connectors`: every source and destination Medway ships, and the one [`registry`]
//! that builds them from a channel file's `kind`.
//!
//! Adding a connector = one module here, one match arm in `registry.rs`, one test against the
//! real service. Connectors talk to the engine only through `medway_engine::connector`; they
//! never touch the store's SQL and never log a message body.

pub mod destinations;
pub mod mllp;
pub mod rate_limit;
pub mod registry;
pub mod sources;
pub mod tls;

pub use registry::Registry;
