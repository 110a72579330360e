//! MLLP shared by the listener source, the sender and `medway send`: the tokio codec around
//! `medway_hl7::mllp::MllpFramer`, and a small stop-and-wait client.

mod client;
mod codec;

pub use client::{ClientError, MllpClient};
pub use codec::{MllpCodec, MllpCodecError};
