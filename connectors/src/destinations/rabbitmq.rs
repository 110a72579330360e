//! `RabbitMqPublisher`: the RabbitMQ destination. Publishes each delivery as one persistent AMQP
//! message and reports it sent only after the broker's publisher confirm.
//!
//! ```toml
//! [[destination]]
//! name = "bus"
//! kind = "rabbitmq"
//! url_file = "/run/secrets/amqp-url"        # or url = "amqp://…", or url_env = "VAR";
//!                                            # none of them: env MEDWAY_AMQP_URL
//! exchange = "hl7"                           # template; "" = the default exchange
//! routing_key = "{channel}.{type}.{trigger}" # template
//! mandatory = true                           # unroutable → returned → retried (default true)
//! content_type = "x-application/hl7-v2+er7"  # default
//! declare = { exchange_type = "topic", queue = "hl7.oru", binding_key = "#" }  # optional
//! connect_timeout_ms = 5000                  # connect + channel + confirm mode + declare
//! publish_timeout_ms = 10000                 # publish + confirm
//! reconnect_initial_ms = 100                 # backoff doubles up to reconnect_max_ms (+ jitter)
//! reconnect_max_ms = 30000
//! heartbeat_secs = 15                        # unless the URL has ?heartbeat=
//! ```
//!
//! Templates: `{channel}`, `{destination}`, `{type}` (MSH-9.1) and `{trigger}` (MSH-9.2) of the
//! received message, `{control_id}` (MSH-10), `{message_id}`, `{delivery_id}`, and any HL7 path
//! such as `{PID-3.4}`, read from the payload as delivered (after transforms). A missing value
//! renders as the empty string; values are not escaped (a `.` in a value adds a topic word). A
//! rendered name longer than 255 bytes, or a path placeholder on a payload that is not HL7, is a
//! permanent error. `declare` declares the (fixed-name) exchange as durable, and the queue as
//! durable bound with `binding_key` (default: the routing key when it has no placeholder), on
//! every connect.
//!
//! Each message: body = payload bytes, `delivery_mode = 2` (persistent), `message_id` = the
//! delivery id (the idempotency key: a retried delivery is published again with the same id, so
//! consumers can drop duplicates), `content_type`, `timestamp` = received time (seconds),
//! `app_id = "medway"`, and string headers `medway-channel`, `medway-message-id`,
//! `medway-control-id` and `medway-message-type` (e.g. `ORU^R01`; the last two when known).
//!
//! Invariants: `Ok` means the broker confirmed (acked) the message and did not return it; a
//! nack, a return (`mandatory` and no route), a timeout or any connection/channel error is
//! `Retry::Later` (an unrenderable routing key is `Retry::Never`). One connection and one
//! confirm-mode channel per destination, shared by concurrent sends. A supervisor task owns the
//! connection (see `link`): it reconnects with backoff after any error; while the broker is
//! unavailable `send` fails at once with the last reason (and a `retry_after` no earlier than the
//! next attempt), and no send ever waits longer than `connect_timeout_ms + publish_timeout_ms`.
//! Never logs a message body nor the URL's credentials.

mod link;
mod settings;
mod template;

pub use settings::{DEFAULT_URL_ENV, DeclareSettings, RabbitMqSettings};

use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation};
use link::{Link, Session};
use medway_engine::connector::{DeliveryError, Destination, Response};
use medway_engine::message::Delivery;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

pub struct RabbitMqPublisher {
    settings: Arc<RabbitMqSettings>,
    /// The connection name shown in the broker (e.g. `medway lab/bus`).
    name: String,
    state: watch::Sender<Link>,
    started: OnceLock<()>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl RabbitMqPublisher {
    /// `settings` must come from [`RabbitMqSettings::from_spec`] (or `resolve`). Nothing
    /// connects until the first `send` or `check`.
    pub fn new(settings: RabbitMqSettings, name: impl Into<String>) -> Self {
        let stop = CancellationToken::new();
        Self {
            settings: Arc::new(settings),
            name: name.into(),
            state: watch::Sender::new(Link::Connecting),
            started: OnceLock::new(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        }
    }

    pub fn settings(&self) -> &RabbitMqSettings {
        &self.settings
    }

    fn ensure_started(&self) {
        self.started.get_or_init(|| {
            tokio::spawn(link::supervise(
                self.settings.clone(),
                self.name.clone(),
                self.state.clone(),
                self.stop.clone(),
            ));
        });
    }

    /// The live session, waiting for a connect in progress up to `connect_timeout_ms`; fails
    /// at once while the supervisor is backing off.
    async fn session(&self) -> Result<Arc<Session>, DeliveryError> {
        self.ensure_started();
        let mut state = self.state.subscribe();
        let deadline = tokio::time::Instant::now() + self.settings.connect_timeout();
        loop {
            match &*state.borrow_and_update() {
                Link::Up(session) if session.healthy() => return Ok(session.clone()),
                Link::Up(session) => {
                    session.mark_broken();
                    return Err(DeliveryError::later("broker unavailable: connection lost"));
                }
                Link::Down { reason, retry_at } => {
                    let wait = retry_at.saturating_duration_since(Instant::now());
                    return Err(
                        DeliveryError::later(format!("broker unavailable: {reason}")).after(wait),
                    );
                }
                Link::Stopped => return Err(DeliveryError::later("publisher stopped")),
                Link::Connecting => {}
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(DeliveryError::later("publisher stopped")),
                Err(_) => {
                    return Err(DeliveryError::later(format!(
                        "broker unavailable: still connecting to {} after {} ms",
                        self.settings.endpoint(),
                        self.settings.connect_timeout_ms
                    )));
                }
            }
        }
    }

    /// (exchange, routing key) for one delivery.
    fn route(&self, delivery: &Delivery) -> Result<(ShortString, ShortString), DeliveryError> {
        let (Some(exchange), Some(routing_key)) = (
            &self.settings.exchange_template,
            &self.settings.routing_key_template,
        ) else {
            return Err(DeliveryError::never("settings were not resolved"));
        };
        let parsed = if exchange.needs_payload() || routing_key.needs_payload() {
            match medway_hl7::Message::parse(delivery.payload.clone()) {
                Ok(message) => Some(message),
                Err(error) => {
                    return Err(DeliveryError::never(format!(
                        "the routing templates read HL7 fields but the payload is not HL7: {error}"
                    )));
                }
            }
        } else {
            None
        };
        let render = |template: &template::Template, key: &str| {
            let text = template.render(delivery, parsed.as_ref());
            ShortString::try_new(text).map_err(|_| {
                DeliveryError::never(format!("the rendered {key} is longer than 255 bytes"))
            })
        };
        Ok((
            render(exchange, "exchange")?,
            render(routing_key, "routing key")?,
        ))
    }

    fn properties(&self, delivery: &Delivery) -> BasicProperties {
        let mut headers = FieldTable::default();
        let mut put = |key: &str, value: &str| {
            headers.insert(
                ShortString::from(key),
                AMQPValue::LongString(LongString::from(value.as_bytes())),
            );
        };
        put("medway-channel", &delivery.channel);
        put("medway-message-id", &delivery.message_id.to_string());
        if let Some(control_id) = &delivery.control_id {
            put("medway-control-id", control_id);
        }
        if let Some(message_type) = &delivery.message_type {
            put("medway-message-type", message_type);
        }
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(delivery.id.to_string()))
            .with_app_id("medway".into())
            .with_headers(headers);
        if let Ok(content_type) = ShortString::try_new(self.settings.content_type.as_str()) {
            properties = properties.with_content_type(content_type);
        }
        if let Ok(seconds) = u64::try_from(delivery.received_at / 1_000_000) {
            properties = properties.with_timestamp(seconds);
        }
        properties
    }
}

#[async_trait]
impl Destination for RabbitMqPublisher {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let (exchange, routing_key) = self.route(delivery)?;
        let session = self.session().await?;
        let options = BasicPublishOptions {
            mandatory: self.settings.mandatory,
            ..BasicPublishOptions::default()
        };
        let properties = self.properties(delivery);
        let publish = async {
            session
                .channel
                .basic_publish(
                    exchange.clone(),
                    routing_key.clone(),
                    options,
                    &delivery.payload,
                    properties,
                )
                .await?
                .await
        };
        let target = format!(
            "exchange {:?} routing key {:?}",
            exchange.as_str(),
            routing_key.as_str()
        );
        match tokio::time::timeout(self.settings.publish_timeout(), publish).await {
            Ok(Ok(Confirmation::Ack(None))) => Ok(Response {
                summary: format!("published to {target}, confirmed"),
            }),
            Ok(Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)))) => {
                Err(DeliveryError::later(format!(
                    "returned by the broker ({} {}): no queue bound for {target}",
                    returned.reply_code, returned.reply_text
                )))
            }
            Ok(Ok(Confirmation::Nack(None))) => Err(DeliveryError::later(format!(
                "the broker nacked the message for {target}"
            ))),
            Ok(Ok(Confirmation::NotRequested)) => {
                session.mark_broken();
                Err(DeliveryError::later("the channel is not in confirm mode"))
            }
            Ok(Err(error)) => {
                // Any error leaves the channel or the connection suspect: start afresh.
                session.mark_broken();
                Err(DeliveryError::later(format!(
                    "publish to {target} failed: {error}"
                )))
            }
            Err(_) => {
                // The confirm may still come on this channel; a fresh one avoids waiting on a
                // dead peer until the heartbeat notices. A late confirm means a duplicate at
                // worst, which message_id lets consumers drop.
                session.mark_broken();
                Err(DeliveryError::later(format!(
                    "no confirm within {} ms for {target}",
                    self.settings.publish_timeout_ms
                )))
            }
        }
    }

    async fn check(&self) -> Result<(), DeliveryError> {
        self.session().await.map(|_| ())
    }
}
