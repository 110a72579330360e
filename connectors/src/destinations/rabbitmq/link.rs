//! The broker link: one connection and one confirm-mode channel, kept up by a supervisor task.
//!
//! The supervisor connects, publishes the session through a `watch`, and waits until the
//! session breaks (a send saw an error or a timeout, or the connection/channel status is no
//! longer `connected`). It then drops the session, waits with exponential backoff + jitter
//! (the state is `Down` meanwhile, so sends fail fast) and connects again. lapin's own
//! auto-recovery is not used. The supervisor stops when the publisher is dropped.

use super::settings::RabbitMqSettings;
use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// How often the supervisor looks at a quiet session's status.
const STATUS_POLL: Duration = Duration::from_millis(250);
/// A session that lived this long resets the reconnect backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// One live connection and its confirm-mode channel.
pub(crate) struct Session {
    connection: Connection,
    pub(crate) channel: Channel,
    broken: AtomicBool,
    wake: Notify,
}

impl Session {
    pub(crate) fn healthy(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
            && self.connection.status().connected()
            && self.channel.status().connected()
    }

    /// Asks the supervisor to drop this session and reconnect.
    pub(crate) fn mark_broken(&self) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }
}

#[derive(Clone)]
pub(crate) enum Link {
    /// A connect attempt is in progress (or the supervisor has not started yet).
    Connecting,
    Up(Arc<Session>),
    /// The last attempt failed or the session broke; the next attempt is at `retry_at`.
    Down {
        reason: String,
        retry_at: Instant,
    },
    Stopped,
}

/// Runs until `stop` fires; publishes every state change on `state`.
pub(crate) async fn supervise(
    settings: Arc<RabbitMqSettings>,
    name: String,
    state: watch::Sender<Link>,
    stop: CancellationToken,
) {
    let initial = Duration::from_millis(settings.reconnect_initial_ms);
    let max = Duration::from_millis(settings.reconnect_max_ms);
    let endpoint = settings.endpoint();
    let mut backoff = initial;
    let mut had_session = false;
    loop {
        state.send_replace(Link::Connecting);
        let attempt = tokio::select! {
            () = stop.cancelled() => break,
            attempt = tokio::time::timeout(settings.connect_timeout(), connect(&settings, &name)) => attempt,
        };
        let reason = match attempt {
            Ok(Ok(session)) => {
                let session = Arc::new(session);
                let since = Instant::now();
                if had_session {
                    tracing::info!(destination = %name, %endpoint, "RabbitMQ reconnected");
                } else {
                    tracing::info!(destination = %name, %endpoint, "RabbitMQ connected");
                }
                had_session = true;
                state.send_replace(Link::Up(session.clone()));
                let stopped = watch_session(&session, &stop).await;
                close_in_background(&session);
                if stopped {
                    break;
                }
                if since.elapsed() >= STABLE_AFTER {
                    backoff = initial;
                }
                "connection lost".to_string()
            }
            Ok(Err(error)) => error,
            Err(_) => format!(
                "connect timed out after {} ms",
                settings.connect_timeout().as_millis()
            ),
        };
        let wait = jitter(backoff);
        tracing::warn!(destination = %name, %endpoint, %reason, retry_in_ms = wait.as_millis() as u64, "RabbitMQ unavailable");
        state.send_replace(Link::Down {
            reason,
            retry_at: Instant::now() + wait,
        });
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        backoff = backoff.saturating_mul(2).min(max);
    }
    state.send_replace(Link::Stopped);
}

/// Waits until the session breaks (false) or `stop` fires (true).
async fn watch_session(session: &Session, stop: &CancellationToken) -> bool {
    loop {
        tokio::select! {
            () = stop.cancelled() => return true,
            () = session.wake.notified() => {}
            () = tokio::time::sleep(STATUS_POLL) => {}
        }
        if !session.healthy() {
            session.broken.store(true, Ordering::Release);
            return false;
        }
    }
}

fn close_in_background(session: &Arc<Session>) {
    let session = session.clone();
    tokio::spawn(async move {
        let close = session
            .connection
            .close(200, "medway: reconnecting or stopping".into());
        let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
    });
}

/// Up to +25 % of `base`, from the clock's low bits (no RNG dependency needed for this).
fn jitter(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// Connects, opens the channel in confirm mode and declares the configured topology.
async fn connect(settings: &RabbitMqSettings, name: &str) -> Result<Session, String> {
    let Some(uri) = settings.uri.clone() else {
        return Err("no broker URL".into());
    };
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let connection = Connection::connect_uri(uri, properties)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", settings.endpoint()))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| format!("cannot open a channel: {e}"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| format!("cannot enable publisher confirms: {e}"))?;
    if let Some(declare) = &settings.declare {
        let exchange = settings.exchange.as_str();
        if let Some(kind) = &declare.exchange_type {
            let kind = match kind.as_str() {
                "direct" => ExchangeKind::Direct,
                "fanout" => ExchangeKind::Fanout,
                "topic" => ExchangeKind::Topic,
                "headers" => ExchangeKind::Headers,
                other => ExchangeKind::Custom(other.into()),
            };
            let options = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(short(exchange)?, kind, options, FieldTable::default())
                .await
                .map_err(|e| format!("cannot declare exchange {exchange:?}: {e}"))?;
        }
        if let Some(queue) = &declare.queue {
            channel
                .queue_declare(
                    short(queue)?,
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("cannot declare queue {queue:?}: {e}"))?;
            if !exchange.is_empty() {
                let key = declare.binding_key.as_deref().unwrap_or("");
                channel
                    .queue_bind(
                        short(queue)?,
                        short(exchange)?,
                        short(key)?,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| format!("cannot bind queue {queue:?} to {exchange:?}: {e}"))?;
            }
        }
    }
    Ok(Session {
        connection,
        channel,
        broken: AtomicBool::new(false),
        wake: Notify::new(),
    })
}

fn short(name: &str) -> Result<ShortString, String> {
    ShortString::try_new(name).map_err(|_| format!("name longer than 255 bytes: {name:.40}…"))
}
