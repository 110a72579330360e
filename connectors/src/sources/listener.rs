//! `TcpAcceptor`: what every listening source (MLLP, HTTP) does before its protocol starts —
//! bind (a port clash is reported at start), accept until shutdown, back off on accept errors
//! (EMFILE and friends) instead of spinning, and close a connection beyond `max_connections`
//! at once with one log line instead of letting it wait in the backlog.

use medway_engine::connector::SourceError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Binds `listen` (`host:port`), naming the address when it fails.
pub async fn bind(listen: &str) -> Result<TcpListener, SourceError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| SourceError::Bind {
            address: listen.to_string(),
            source,
        })
}

/// One accepted connection and its slot among `max_connections` (freed when dropped).
pub struct Accepted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

pub struct TcpAcceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
}

impl TcpAcceptor {
    pub fn new(listener: TcpListener, max_connections: usize) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
        }
    }

    /// The next connection within the limit (TCP_NODELAY set), or `None` once `shutdown` fires.
    pub async fn next(&self, channel: &str, shutdown: &CancellationToken) -> Option<Accepted> {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return None,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(channel, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(channel, %peer, limit = self.max_connections,
                    "connection refused: too many open connections");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            return Some(Accepted {
                stream,
                peer,
                permit,
            });
        }
    }
}
