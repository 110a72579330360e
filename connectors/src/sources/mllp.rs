//! `MllpListener`: the MLLP source. Accepts TCP connections, frames messages, hands each to the
//! channel and writes back the reply, one message at a time per connection (stop-and-wait).
//!
//! Limits: `max_connections` (a connection beyond it is closed at once with one log line),
//! `max_frame_bytes` (an oversized frame ends that connection only), `idle_timeout_secs`.
//! Shutdown: stop accepting; each connection finishes the message in hand (its reply is sent)
//! and closes. Never logs a message body.
//!
//! Optional `[source.tls]` (`crate::tls::ServerTlsSettings`): every connection does a TLS
//! handshake first (within `HANDSHAKE_TIMEOUT`), with the config current at accept time, so a
//! reloaded certificate applies to new connections only. A failed handshake (plain TCP, wrong
//! or missing client certificate) closes that connection with one log line.
//!
//! Optional `rate_limit = { per_second, burst }` per peer IP: a message over the budget is not
//! stored; the peer gets a negative ACK telling it to resend later (`crate::mllp::refusal`).

use crate::mllp::{MllpCodec, MllpCodecError, refusal};
use crate::rate_limit::{KeyedRateLimiter, RateLimitSettings};
use crate::sources::listener::{Accepted, TcpAcceptor};
use crate::tls::{ServerTls, ServerTlsSettings, in_tls_table, subject};
use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use medway_engine::channel::ChannelHandle;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{Source, SourceContext, SourceError};
use medway_engine::message::Inbound;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// A TLS client gets this long to finish its handshake; a silent or stalled peer holds a
/// connection slot no longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `[source.tls]`: TLS (and optionally mutual TLS) on every connection.
    pub tls: Option<ServerTlsSettings>,
    /// `rate_limit = { per_second, burst }` per peer IP address.
    pub rate_limit: Option<RateLimitSettings>,
    /// The loaded TLS config (read by `from_spec`, so a bad file is a settings error at start).
    #[serde(skip)]
    pub loaded_tls: Option<ServerTls>,
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
        let mut settings: Self = spec.parse()?;
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
        if let Some(limit) = &settings.rate_limit {
            limit.validate()?;
        }
        if let Some(tls) = &settings.tls {
            tls.validate().map_err(in_tls_table)?;
            settings.loaded_tls = Some(
                ServerTls::load(tls)
                    .map_err(SettingsError::from)
                    .map_err(in_tls_table)?,
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
        self.listener = Some(crate::sources::listener::bind(&self.settings.listen).await?);
        Ok(())
    }

    async fn run(mut self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        if self.listener.is_none() {
            self.bind().await?;
        }
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let tls = self.settings.loaded_tls.clone();
        if let Some(tls) = &tls {
            tls.spawn_reloader(cx.shutdown.clone());
        }
        let rate = match self.settings.rate_limit {
            Some(settings) => {
                // Validated in `from_spec`; an error here would be a bug, reported, not a panic.
                let invalid =
                    |e: SettingsError| SourceError::Io(std::io::Error::other(e.to_string()));
                let limiter = KeyedRateLimiter::new(settings).map_err(invalid)?;
                limiter.spawn_trimmer(cx.shutdown.clone());
                // One warning per peer per second at most, however fast it is refused.
                let warnings = KeyedRateLimiter::new(RateLimitSettings {
                    per_second: 1,
                    burst: 1,
                })
                .map_err(invalid)?;
                warnings.spawn_trimmer(cx.shutdown.clone());
                Some(RateLimit { limiter, warnings })
            }
            None => None,
        };
        tracing::info!(channel = cx.channel.name(), listen = %self.settings.listen,
            tls = tls.is_some(), mutual_tls = self.settings.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()),
            "MLLP listener ready");
        let acceptor = TcpAcceptor::new(listener, self.settings.max_connections);
        while let Some(Accepted {
            stream,
            peer,
            permit,
        }) = acceptor.next(cx.channel.name(), &cx.shutdown).await
        {
            let connection = Connection {
                channel: cx.channel.clone(),
                peer,
                max_frame_bytes: self.settings.max_frame_bytes,
                idle: Duration::from_secs(self.settings.idle_timeout_secs),
                shutdown: cx.shutdown.clone(),
                rate: rate.clone(),
                _permit: permit,
            };
            match &tls {
                None => {
                    cx.tracker.spawn(connection.run(stream));
                }
                Some(tls) => {
                    // The config current now: a reload applies to connections accepted after it.
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                    cx.tracker
                        .spawn(connection.handshake_then_run(acceptor, stream));
                }
            }
        }
        drop(acceptor);
        cx.tracker.close();
        cx.tracker.wait().await;
        tracing::info!(channel = cx.channel.name(), "MLLP listener stopped");
        Ok(())
    }
}

/// The per-peer budget and the limiter that keeps its warnings to one a second per peer.
#[derive(Clone)]
struct RateLimit {
    limiter: Arc<KeyedRateLimiter<IpAddr>>,
    warnings: Arc<KeyedRateLimiter<IpAddr>>,
}

/// One accepted connection.
struct Connection {
    channel: ChannelHandle,
    peer: SocketAddr,
    max_frame_bytes: usize,
    idle: Duration,
    shutdown: CancellationToken,
    rate: Option<RateLimit>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// TLS handshake (bounded by `HANDSHAKE_TIMEOUT` and shutdown), then the MLLP loop.
    async fn handshake_then_run(self, acceptor: tokio_rustls::TlsAcceptor, stream: TcpStream) {
        let channel = self.channel.name();
        let handshake = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            done = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => done,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::warn!(channel, peer = %self.peer, reason = %error,
                    "TLS handshake failed; connection closed");
                return;
            }
            Err(_) => {
                tracing::warn!(channel, peer = %self.peer, timeout = ?HANDSHAKE_TIMEOUT,
                    "TLS handshake timed out; connection closed");
                return;
            }
        };
        let (_, session) = stream.get_ref();
        let client = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| subject::display_name(leaf));
        tracing::debug!(channel, peer = %self.peer, client_subject = client.as_deref().unwrap_or("-"),
            version = ?session.protocol_version(), "TLS connection established");
        self.run(stream).await;
    }

    async fn run<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
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
            if let Some(refusal) = self.over_rate_limit(&payload) {
                if let Err(error) = framed.send(refusal).await {
                    tracing::debug!(channel, peer = %self.peer, %error, "could not send the reply");
                    break;
                }
                continue;
            }
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

    /// `Some(negative ACK)` when this peer is over its budget: the message is not stored.
    fn over_rate_limit(&self, payload: &bytes::Bytes) -> Option<bytes::Bytes> {
        let rate = self.rate.as_ref()?;
        let ip = self.peer.ip();
        let wait = rate.limiter.check(&ip).err()?;
        if rate.warnings.check(&ip).is_ok() {
            tracing::warn!(channel = self.channel.name(), peer = %self.peer,
                control_id = %refusal::control_id(payload), wait_ms = wait.as_millis() as u64,
                "rate limit exceeded; message refused (not stored), peer told to resend later");
        }
        Some(refusal::rate_limited(payload, wait))
    }
}
