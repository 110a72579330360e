//! `HttpListener`: the HTTP(S) source. HL7 v2 over HTTP, FHIR R4 JSON and generic JSON webhooks
//! (`[source] kind = "http"`), each POST handed to the channel and answered after the commit.
//!
//! hyper's server is driven directly (no framework): this module owns the accept loop, so it can
//! enforce `max_connections` (a connection beyond it is closed at once, as the MLLP listener
//! does), knows each peer's address (rate limits, logs), and picks up a reloaded TLS
//! configuration on the next accept without rebinding. HTTP/1.1 (keep-alive) and HTTP/2 (ALPN
//! `h2` over TLS, prior knowledge in clear) are both served.
//!
//! Shutdown: stop accepting; every connection finishes the requests in hand (their answers are
//! sent), then closes. Never logs a body: channel, peer, status, control id or resourceType.

pub mod auth;
mod handler;
pub mod settings;

pub use settings::HttpSourceSettings;

use crate::rate_limit::KeyedRateLimiter;
use crate::sources::listener::{Accepted, TcpAcceptor};
use crate::tls::ServerTls;
use async_trait::async_trait;
use handler::{Client, Handler};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use medway_engine::config::SettingsError;
use medway_engine::connector::{Source, SourceContext, SourceError};
use sha2::Digest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// ALPN protocols offered over TLS, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// HTTP/2 streams served at once on one connection (each may hold a body of max_body_bytes).
const MAX_CONCURRENT_STREAMS: u32 = 8;

pub struct HttpListener {
    settings: HttpSourceSettings,
    tls: Option<ServerTls>,
    listener: Option<TcpListener>,
}

impl HttpListener {
    /// Reads the TLS files (if any) now, so a missing or broken certificate is reported with
    /// the channel file's line, by `medway check` too.
    pub fn new(settings: HttpSourceSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        let tls = match &settings.tls {
            Some(tls) => Some(ServerTls::load(tls).map_err(SettingsError::from)?),
            None => None,
        };
        Ok(Self {
            settings,
            tls,
            listener: None,
        })
    }

    /// The bound address (after `bind`), useful when listening on port 0.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// The server config for new connections, with ALPN set (the shared one has none: MLLP over
/// TLS must not offer `h2`).
fn with_alpn(config: &Arc<rustls::ServerConfig>) -> TlsAcceptor {
    let mut config = rustls::ServerConfig::clone(config);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    TlsAcceptor::from(Arc::new(config))
}

#[async_trait]
impl Source for HttpListener {
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
        let channel = cx.channel.name().to_string();
        let limiter = match self.settings.rate_limit {
            Some(limit) => {
                let limiter = KeyedRateLimiter::<Client>::new(limit)
                    .map_err(|e| SourceError::Io(std::io::Error::other(e.to_string())))?;
                limiter.spawn_trimmer(cx.shutdown.clone());
                Some(limiter)
            }
            None => None,
        };
        let api_keys = self
            .settings
            .api_keys()
            .map_err(|e| SourceError::Io(std::io::Error::other(e.to_string())))?;
        let handler = Arc::new(Handler {
            channel: cx.channel.clone(),
            path: self.settings.path.clone(),
            api_keys,
            limiter,
            max_body_bytes: self.settings.max_body_bytes,
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                self.settings.inflight_body_bytes(),
            )),
            request_timeout: self.settings.request_timeout(),
            idempotency: Default::default(),
        });
        let mut tls = self.tls.as_ref().map(|tls| {
            tls.spawn_reloader(cx.shutdown.clone());
            let mut updates = tls.watch();
            let acceptor = with_alpn(&updates.borrow_and_update());
            (updates, acceptor)
        });
        let acceptor = TcpAcceptor::new(listener, self.settings.max_connections);
        let header_timeout = self.settings.header_timeout();
        tracing::info!(channel, listen = %self.settings.listen, tls = tls.is_some(), "HTTP listener ready");
        while let Some(Accepted {
            stream,
            peer,
            permit,
        }) = acceptor.next(&channel, &cx.shutdown).await
        {
            // A reloaded certificate applies from the next connection on.
            let tls_acceptor = tls.as_mut().map(|(updates, acceptor)| {
                if updates.has_changed().unwrap_or(false) {
                    *acceptor = with_alpn(&updates.borrow_and_update());
                    tracing::info!(channel, "HTTP listener uses the reloaded TLS certificate");
                }
                acceptor.clone()
            });
            let connection = Connection {
                handler: handler.clone(),
                peer,
                header_timeout,
                shutdown: cx.shutdown.clone(),
                _permit: permit,
            };
            cx.tracker.spawn(connection.run(stream, tls_acceptor));
        }
        drop(acceptor);
        cx.tracker.close();
        cx.tracker.wait().await;
        tracing::info!(channel, "HTTP listener stopped");
        Ok(())
    }
}

/// One accepted connection (any number of requests on it).
struct Connection {
    handler: Arc<Handler>,
    peer: SocketAddr,
    header_timeout: Duration,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        match tls {
            None => self.serve(TokioIo::new(stream), None).await,
            Some(acceptor) => {
                let handshake = tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    done = tokio::time::timeout(self.header_timeout, acceptor.accept(stream)) => done,
                };
                match handshake {
                    Ok(Ok(stream)) => {
                        let cert = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|leaf| sha2::Sha256::digest(leaf.as_ref()).into());
                        self.serve(TokioIo::new(stream), cert).await
                    }
                    Ok(Err(error)) => {
                        tracing::info!(channel = self.handler.channel.name(), peer = %self.peer,
                            %error, "TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::info!(channel = self.handler.channel.name(), peer = %self.peer,
                            "TLS handshake timed out");
                    }
                }
            }
        }
    }

    /// `cert`: SHA-256 of the client's certificate (mutual TLS), which scopes its
    /// Idempotency-Keys when it has no API key.
    async fn serve<I>(&self, io: TokioIo<I>, cert: Option<[u8; 32]>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .keep_alive(true);
        // Each stream may collect up to max_body_bytes: hyper's default of 200 streams would
        // let one connection hold 200 bodies in memory at once.
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .keep_alive_interval(Some(Duration::from_secs(30)));
        let handler = self.handler.clone();
        let peer = self.peer;
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            service_fn(move |request| {
                let handler = handler.clone();
                let busy = activity.begin();
                async move {
                    let answer = handler.handle(peer, cert, request).await;
                    drop(busy);
                    Ok::<_, std::convert::Infallible>(answer)
                }
            })
        };
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        // Idle means no request in hand: a socket that never sends a byte (hyper-util waits
        // for the first bytes to tell HTTP/1 from HTTP/2 with no timeout), headers that never
        // complete, a kept-alive HTTP/1 connection or an HTTP/2 connection with no stream. It
        // would hold one of max_connections slots, so it is closed after header_timeout.
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = self.shutdown.cancelled() => {
                    // Requests in hand finish and get their answer; then the connection closes.
                    connection.as_mut().graceful_shutdown();
                    break connection.await;
                }
                _ = tokio::time::sleep_until(activity.idle_deadline(self.header_timeout)) => {
                    if activity.idle_for(self.header_timeout) {
                        tracing::debug!(channel = self.handler.channel.name(), peer = %self.peer,
                            "idle HTTP connection closed");
                        connection.as_mut().graceful_shutdown();
                        // A peer that does not read the GOAWAY is dropped after a second, but
                        // never while a request is in hand: an HTTP/2 stream opened just before
                        // the GOAWAY is still served, and its message may already be committed.
                        loop {
                            tokio::select! {
                                _ = connection.as_mut() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                    if activity.is_idle() {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(channel = self.handler.channel.name(), peer = %self.peer, %error,
                "HTTP connection ended with an error");
        }
    }
}

/// Requests in hand on one connection, and when the last one ended (or the connection opened).
struct Activity {
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn last(&self) -> Instant {
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection becomes idle for `limit` if nothing happens meanwhile.
    fn idle_deadline(&self, limit: Duration) -> Instant {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            Instant::now() + limit
        } else {
            self.last() + limit
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    fn idle_for(&self, limit: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && self.last().elapsed() >= limit
    }
}

/// One request in hand; its end counts as activity.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
