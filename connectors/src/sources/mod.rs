//! Sources: where messages come from.

pub mod folder;
pub mod http;
pub mod internal;
pub mod listener;
pub mod mllp;
