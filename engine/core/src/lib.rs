//! `medway-engine`: the channel runtime at the heart of Medway.
//!
//! It owns the message vocabulary ([`message`]), the contracts every connector implements
//! ([`connector`]), channel configuration ([`config`]), the per-channel pipeline that parses,
//! validates and commits a message before any ACK is built ([`channel`]), the durable store and its
//! group-committing writer ([`store`]), and the delivery workers that drain committed deliveries
//! ([`delivery`]).
//!
//! Invariants: a message is acknowledged as accepted only after the store reports its transaction
//! durable; the store is the only buffer (nothing waits in memory that the store does not hold).
//! This crate never names a concrete connector: sources and destinations arrive through
//! [`connector::ConnectorFactory`]. It never logs a message body.

pub mod alerts;
pub mod channel;
pub mod channel_tests;
pub mod clock;
pub mod config;
pub mod connector;
pub mod delivery;
pub mod engine;
pub mod message;
pub mod scoring;
pub mod script;
pub mod store;

pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;
