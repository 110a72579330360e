//! Destinations: where committed deliveries go.

pub mod channel;
pub mod file;
pub mod mllp;
pub mod http;
pub mod postgres;
pub mod rabbitmq;
