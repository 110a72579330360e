//! Sources: where messages come from.

pub mod http;
pub mod internal;
pub mod mllp;
