//! Destinations: where committed deliveries go.

pub mod alert;
pub mod channel;
pub mod email;
pub mod file;
pub mod http;
pub mod mllp;
pub mod postgres;
pub mod rabbitmq;
pub mod scoring;
pub mod webhook;
