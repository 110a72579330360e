//! Destinations: where committed deliveries go.

pub mod file;
pub mod http;
