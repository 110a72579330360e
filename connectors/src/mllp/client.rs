//! A stop-and-wait MLLP client: send one framed message, wait for one framed reply.
//! Used by `medway send` (and its load mode) and by the MLLP sender destination.

use super::codec::{MllpCodec, MllpCodecError};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection closed by peer before a reply")]
    Closed,
    #[error("{0}")]
    Codec(#[from] MllpCodecError),
}

pub struct MllpClient {
    framed: Framed<TcpStream, MllpCodec>,
    timeout: Duration,
}

impl MllpClient {
    pub async fn connect(address: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::connect_with(address, timeout, timeout).await
    }

    /// Connects with separate connect and reply timeouts.
    pub async fn connect_with(
        address: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ClientError::Timeout(connect_timeout))?
            .map_err(|source| ClientError::Connect {
                address: address.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            framed: Framed::new(stream, MllpCodec::new(64 * 1024 * 1024)),
            timeout,
        })
    }

    /// Sends one message and returns the reply frame's payload.
    pub async fn send(&mut self, payload: Bytes) -> Result<Bytes, ClientError> {
        self.framed.send(payload).await?;
        self.receive().await
    }

    /// Waits for the next reply frame.
    pub async fn receive(&mut self) -> Result<Bytes, ClientError> {
        match tokio::time::timeout(self.timeout, self.framed.next()).await {
            Err(_) => Err(ClientError::Timeout(self.timeout)),
            Ok(None) => Err(ClientError::Closed),
            Ok(Some(reply)) => Ok(reply?),
        }
    }
}
