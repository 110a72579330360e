//! Sources: where messages come from.

pub mod internal;
pub mod mllp;
