//! Destinations: where committed deliveries go.

pub mod file;
