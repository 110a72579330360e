//! MLLP shared by the listener source, the sender and `medway send`: the tokio codec around
//! `medway_hl7::mllp::MllpFramer`, a small stop-and-wait client (plain TCP or TLS), and the
//! replies a listener sends for messages it refuses before the channel sees them.

mod client;
mod codec;
pub mod refusal;

pub use client::{ClientError, MllpClient};
pub use codec::{MllpCodec, MllpCodecError};
