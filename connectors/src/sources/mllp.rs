//! `MllpListener`: the MLLP source. Accepts TCP connections, frames messages, hands each to the
//! channel and writes back the reply, one message at a time per connection (stop-and-wait).
//!
//! Limits: `max_connections` (a connection beyond it is closed at once with one log line),
//! `max_frame_bytes` (an oversized frame ends that connection only), `idle_timeout_secs`.
//! Shutdown: stop accepting; each connection finishes the message in hand (its reply is sent)
//! and closes. Never logs a message body.

use crate::mllp::{MllpCodec, MllpCodecError};
use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use medway_engine::channel::ChannelHandle;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{Source, SourceContext, SourceError};
use medway_engine::message::Inbound;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// `[source] kind = "mllp"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpSourceSettings {
    /// `host:port` to listen on.
    pub listen: String,
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
}

fn default_max_frame() -> usize {
    16 * 1024 * 1024
}
fn default_max_connections() -> usize {
    256
}
fn default_idle_timeout() -> u64 {
    300
}

impl MllpSourceSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        if settings.listen.parse::<SocketAddr>().is_err() {
            return Err(SettingsError::new(format!(
                "`listen` must be host:port with a numeric address, got {:?}",
                settings.listen
            ))
            .key("listen")
            .hint("e.g. listen = \"127.0.0.1:2575\" or \"0.0.0.0:2575\""));
        }
        if settings.max_connections == 0 || settings.max_frame_bytes < 16 {
            return Err(
                SettingsError::new("max_connections and max_frame_bytes must be positive")
                    .key("max_connections"),
            );
        }
        Ok(settings)
    }
}

pub struct MllpListener {
    settings: MllpSourceSettings,
    listener: Option<TcpListener>,
}

impl MllpListener {
    pub fn new(settings: MllpSourceSettings) -> Self {
        Self {
            settings,
            listener: None,
        }
    }

    /// The bound address (after `bind`), useful when listening on port 0.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }
}

#[async_trait]
impl Source for MllpListener {
    async fn bind(&mut self) -> Result<(), SourceError> {
        let listener = TcpListener::bind(&self.settings.listen)
            .await
            .map_err(|source| SourceError::Bind {
                address: self.settings.listen.clone(),
                source,
            })?;
        self.listener = Some(listener);
        Ok(())
    }

    async fn run(mut self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        if self.listener.is_none() {
            self.bind().await?;
        }
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let limit = Arc::new(Semaphore::new(self.settings.max_connections));
        tracing::info!(channel = cx.channel.name(), listen = %self.settings.listen, "MLLP listener ready");
        loop {
            let accepted = tokio::select! {
                _ = cx.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(channel = cx.channel.name(), %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                tracing::warn!(channel = cx.channel.name(), %peer, limit = self.settings.max_connections,
                    "connection refused: too many open connections");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                channel: cx.channel.clone(),
                peer,
                max_frame_bytes: self.settings.max_frame_bytes,
                idle: Duration::from_secs(self.settings.idle_timeout_secs),
                shutdown: cx.shutdown.clone(),
                _permit: permit,
            };
            cx.tracker.spawn(connection.run(stream));
        }
        drop(listener);
        cx.tracker.close();
        cx.tracker.wait().await;
        tracing::info!(channel = cx.channel.name(), "MLLP listener stopped");
        Ok(())
    }
}

/// One accepted connection.
struct Connection {
    channel: ChannelHandle,
    peer: SocketAddr,
    max_frame_bytes: usize,
    idle: Duration,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let mut framed = Framed::new(stream, MllpCodec::new(self.max_frame_bytes));
        let channel = self.channel.name();
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                next = tokio::time::timeout(self.idle, framed.next()) => next,
            };
            let payload = match next {
                Err(_) => {
                    tracing::debug!(channel, peer = %self.peer, "idle timeout; closing");
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(MllpCodecError::Frame(error)))) => {
                    tracing::warn!(channel, peer = %self.peer, %error, "bad MLLP frame; closing the connection");
                    break;
                }
                Ok(Some(Err(MllpCodecError::Io(error)))) => {
                    tracing::debug!(channel, peer = %self.peer, %error, "connection error");
                    break;
                }
                Ok(Some(Ok(payload))) => payload,
            };
            // Not raced against shutdown: a message being handled always gets its reply.
            let reply = self
                .channel
                .submit(Inbound {
                    peer: Some(self.peer),
                    ..Inbound::new(payload)
                })
                .await;
            if let Some(ack) = reply.ack
                && let Err(error) = framed.send(ack).await
            {
                tracing::debug!(channel, peer = %self.peer, %error, "could not send the reply");
                break;
            }
        }
        let garbage = framed.codec().garbage_bytes();
        if garbage > 0 {
            tracing::warn!(channel, peer = %self.peer, bytes = garbage, "discarded bytes outside MLLP frames");
        }
    }
}
