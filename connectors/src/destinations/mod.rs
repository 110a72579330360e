//! Destinations: where committed deliveries go.

pub mod channel;
pub mod file;
pub mod http;
pub mod mllp;
pub mod postgres;
pub mod rabbitmq;
