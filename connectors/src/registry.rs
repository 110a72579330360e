//! The one place that maps a channel file's `kind = "…"` to a connector.

use crate::destinations::channel::{ChannelWriter, ChannelWriterSettings};
use crate::destinations::email::{EmailSender, EmailSettings};
use crate::destinations::file::{FileSettings, FileWriter};
use crate::destinations::http::{BodySettings, HttpSender, HttpSettings};
use crate::destinations::mllp::{MllpSender, MllpSenderSettings};
use crate::destinations::postgres::{PostgresSettings, PostgresWriter};
use crate::destinations::rabbitmq::{RabbitMqPublisher, RabbitMqSettings};
use crate::destinations::scoring::{ScoringDestination, ScoringSetup};
use crate::destinations::webhook::{WebhookSender, WebhookSettings};
use crate::sources::folder::{FolderSettings, FolderSource};
use crate::sources::http::{HttpListener, HttpSourceSettings};
use crate::sources::internal::{InternalSettings, InternalSource};
use crate::sources::mllp::{MllpListener, MllpSourceSettings};
use medway_engine::config::{ConfigError, ConnectorSpec, SettingsError, closest_kind};
use medway_engine::connector::{ConnectorContext, ConnectorFactory, Destination, Source};
use std::sync::Arc;

pub const SOURCE_KINDS: &[&str] = &["mllp", "http", "folder", "internal"];
pub const DESTINATION_KINDS: &[&str] = &[
    "file", "mllp", "channel", "scoring", "http", "postgres", "rabbitmq", "email", "webhook",
];

/// Builds every connector Medway ships.
#[derive(Debug, Default, Clone, Copy)]
pub struct Registry;

impl ConnectorFactory for Registry {
    fn source(&self, _channel: &str, spec: &ConnectorSpec) -> Result<Box<dyn Source>, ConfigError> {
        match spec.kind.as_str() {
            "mllp" => {
                let settings = MllpSourceSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Box::new(MllpListener::new(settings)))
            }
            "http" => {
                let settings = HttpSourceSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                let listener = HttpListener::new(settings).map_err(|e| spec.locate(e))?;
                Ok(Box::new(listener))
            }
            "folder" => {
                let settings = FolderSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Box::new(FolderSource::new(settings)))
            }
            "internal" => {
                InternalSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Box::new(InternalSource))
            }
            other => Err(spec.locate(unknown_kind("source", other, SOURCE_KINDS))),
        }
    }

    fn destination(
        &self,
        channel: &str,
        spec: &ConnectorSpec,
        cx: &ConnectorContext,
    ) -> Result<Arc<dyn Destination>, ConfigError> {
        match spec.kind.as_str() {
            "file" => {
                let settings = FileSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(FileWriter::new(settings)))
            }
            "mllp" => {
                let settings = MllpSenderSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(MllpSender::new(settings)))
            }
            "scoring" => {
                let setup = ScoringSetup::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(ScoringDestination::new(setup, cx.clone())))
            }
            "channel" => {
                let settings =
                    ChannelWriterSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(ChannelWriter::new(settings, cx.clone())))
            }
            "http" => {
                let settings = HttpSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                let body = BodySettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                let sender = HttpSender::new(settings).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(sender.with_body(body)))
            }
            "postgres" => {
                let settings = PostgresSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                let writer = PostgresWriter::new(settings).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(writer))
            }
            "rabbitmq" => {
                let settings = RabbitMqSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(RabbitMqPublisher::new(
                    settings,
                    format!("medway {channel}"),
                )))
            }
            "email" => {
                let settings = EmailSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                let sender = EmailSender::new(settings).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(sender))
            }
            "webhook" => {
                let settings = WebhookSettings::from_spec(spec).map_err(|e| spec.locate(e))?;
                let sender = WebhookSender::new(settings).map_err(|e| spec.locate(e))?;
                Ok(Arc::new(sender))
            }
            other => Err(spec.locate(unknown_kind("destination", other, DESTINATION_KINDS))),
        }
    }

    fn listen_address(&self, spec: &ConnectorSpec) -> Option<(String, &'static str)> {
        match spec.kind.as_str() {
            "mllp" => MllpSourceSettings::from_spec(spec)
                .ok()
                .and_then(|s| s.listen.parse::<std::net::SocketAddr>().ok())
                .map(|a| (a.to_string(), "listen")),
            "http" => HttpSourceSettings::from_spec(spec)
                .ok()
                .and_then(|s| s.listen.parse::<std::net::SocketAddr>().ok())
                .map(|a| (a.to_string(), "listen")),
            // Two folder channels on one inbox would race for its files.
            "folder" => FolderSettings::from_spec(spec)
                .ok()
                .map(|s| (s.canonical_inbox().display().to_string(), "path")),
            _ => None,
        }
    }
}

fn unknown_kind(what: &str, kind: &str, known: &[&str]) -> SettingsError {
    let error = SettingsError::new(format!("unknown {what} kind {kind:?}")).key("kind");
    match closest_kind(kind, known) {
        Some(best) => error.hint(format!("did you mean {best:?}?")),
        None => error.hint(format!("known {what} kinds: {}", known.join(", "))),
    }
}
