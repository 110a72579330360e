//! A stop-and-wait MLLP client: send one framed message, wait for one framed reply.
//! Used by `medway send` (and its load mode) and by the MLLP sender destination, over plain TCP
//! or TLS (`crate::tls::ClientTls`).

use super::codec::{MllpCodec, MllpCodecError};
use crate::tls::ClientTls;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A byte stream the client can frame: plain TCP or TLS over it. Boxed so `MllpClient` has one
/// type either way (one indirection per read/write, nothing next to the network round trip).
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {address} failed: {source}")]
    Tls {
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
    framed: Framed<Box<dyn Stream>, MllpCodec>,
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
        Self::connect_over(address, None, connect_timeout, timeout).await
    }

    /// Connects over plain TCP (`tls` = `None`) or TLS. `connect_timeout` bounds the TCP
    /// connect and the handshake together.
    pub async fn connect_over(
        address: &str,
        tls: Option<&ClientTls>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let stream = tokio::time::timeout(connect_timeout, Self::open(address, tls))
            .await
            .map_err(|_| ClientError::Timeout(connect_timeout))??;
        Ok(Self {
            framed: Framed::new(stream, MllpCodec::new(64 * 1024 * 1024)),
            timeout,
        })
    }

    async fn open(address: &str, tls: Option<&ClientTls>) -> Result<Box<dyn Stream>, ClientError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|source| ClientError::Connect {
                address: address.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => Ok(Box::new(stream)),
            Some(tls) => {
                let stream =
                    tls.connect(stream, address)
                        .await
                        .map_err(|source| ClientError::Tls {
                            address: address.to_string(),
                            source,
                        })?;
                Ok(Box::new(stream))
            }
        }
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
