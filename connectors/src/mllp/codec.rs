//! `MllpCodec`: MLLP framing as a `tokio_util` codec.
//!
//! Decoding delegates to the pure [`MllpFramer`] (forward scan, linear in bytes received, with a
//! frame size limit); encoding wraps a payload in `0x0B … 0x1C 0x0D`.

use bytes::{Bytes, BytesMut};
use medway_hl7::mllp::{FrameError, MllpFramer, encode_frame};
use tokio_util::codec::{Decoder, Encoder};

#[derive(Debug, thiserror::Error)]
pub enum MllpCodecError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct MllpCodec {
    framer: MllpFramer,
}

impl MllpCodec {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            framer: MllpFramer::new(max_frame_bytes),
        }
    }

    /// Bytes outside any frame that were not whitespace (discarded).
    pub fn garbage_bytes(&self) -> u64 {
        self.framer.discarded_garbage_bytes()
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = MllpCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, MllpCodecError> {
        Ok(self.framer.decode(src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, MllpCodecError> {
        Ok(self.framer.decode_eof(src)?)
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = MllpCodecError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), MllpCodecError> {
        encode_frame(&payload, dst);
        Ok(())
    }
}
