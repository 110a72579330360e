//! A destination's own scripts: `filter` and `transform` before sending, `response` after.
//!
//! Like the channel pipeline, this does no I/O, so the delivery worker and `medway
//! test-channel` share it. A script error here errors the delivery (it stays visible and can be
//! reprocessed once the script is fixed); retrying an unchanged script would not help.
//!
//! A JSON payload (a webhook body, a FHIR resource) runs the same scripts with the document in
//! `res`; what a transform leaves there is sent, members in their original order.

use crate::channel::{compile_script, json};
use crate::config::{ChannelConfig, ConfigError, DestinationConfig};
use crate::connector::{DeliveryError, Response};
use crate::script::{Script, ScriptEngine, ScriptRun, restore_order};
use bytes::Bytes;
use medway_hl7::Message;
use rhai::Map;
use std::path::Path;
use std::sync::Arc;

/// What to do with one delivery after the destination's `filter` and `transform`.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    Send(Bytes),
    /// The destination's filter returned false: recorded as sent, with this note.
    Skip(String),
}

/// A `response` script's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseDecision {
    Sent,
    Retry(String),
    Error(String),
}

/// The compiled scripts of one destination (all optional).
#[derive(Default)]
pub struct DestinationScripts {
    channel: Arc<str>,
    filter: Option<Script>,
    transform: Option<Script>,
    response: Option<Script>,
    engine: Option<ScriptEngine>,
}

impl DestinationScripts {
    pub fn build(
        channel: &ChannelConfig,
        destination: &DestinationConfig,
        engine: &ScriptEngine,
        scripts_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let compile = |r: &Option<crate::config::ScriptRef>| {
            r.as_ref()
                .map(|r| compile_script(engine, scripts_dir, &channel.file, r))
                .transpose()
        };
        Ok(Self {
            channel: Arc::from(channel.name.as_str()),
            filter: compile(&destination.steps.filter)?,
            transform: compile(&destination.steps.transform)?,
            response: compile(&destination.steps.response)?,
            engine: Some(engine.clone()),
        })
    }

    /// Runs `filter` then `transform` on the payload. `Err` is a permanent failure (reason).
    pub fn prepare(&self, payload: &Bytes) -> Result<Prepared, String> {
        let (Some(engine), true) = (
            &self.engine,
            self.filter.is_some() || self.transform.is_some(),
        ) else {
            return Ok(Prepared::Send(payload.clone()));
        };
        let document = if json::looks_like_json(payload) {
            Some(json::parse(payload).map_err(|e| format!("destination scripts: {e}"))?)
        } else {
            None
        };
        let mut run = match &document {
            Some(document) => ScriptRun::json(document, &self.channel, engine.limits())
                .map_err(|e| format!("destination scripts: {e}"))?,
            None => {
                let message = Message::parse(payload.clone()).map_err(|e| {
                    format!("destination scripts need an HL7 v2 message or JSON: {e}")
                })?;
                ScriptRun::new(message, &self.channel)
            }
        };
        if let Some(filter) = &self.filter {
            let output = engine
                .run(filter, &mut run)
                .map_err(|e| format!("filter script error: {e}"))?;
            if let Some(reason) = output.rejected {
                return Err(format!("rejected by {}: {reason}", filter.name()));
            }
            match output.value.as_bool() {
                Ok(true) => {}
                Ok(false) => {
                    return Ok(Prepared::Skip(format!(
                        "skipped by filter {}",
                        filter.name()
                    )));
                }
                Err(kind) => {
                    return Err(format!(
                        "filter {} returned {kind}, not true/false",
                        filter.name()
                    ));
                }
            }
        }
        if let Some(transform) = &self.transform {
            let output = engine
                .run(transform, &mut run)
                .map_err(|e| format!("transform script error: {e}"))?;
            if let Some(reason) = output.rejected {
                return Err(format!("rejected by {}: {reason}", transform.name()));
            }
        }
        match (document, run.document()) {
            (Some(original), Some(Ok(changed))) => Ok(Prepared::Send(if changed == original {
                payload.clone()
            } else {
                json::to_bytes(&restore_order(&original, changed))
            })),
            // An HL7 message a transform turned into JSON by setting `res`.
            (None, Some(Ok(built))) => Ok(Prepared::Send(json::to_bytes(&built))),
            (_, Some(Err(e))) => Err(format!("after the destination scripts: {e}")),
            _ => match run.message() {
                Some(message) => Ok(Prepared::Send(message.encode())),
                None => Err("destination scripts left no message".into()),
            },
        }
    }

    /// Runs the `response` script, if any, on what the destination answered.
    pub fn judge(
        &self,
        sent: &Bytes,
        result: &Result<Response, DeliveryError>,
    ) -> Option<ResponseDecision> {
        let (Some(engine), Some(script)) = (&self.engine, &self.response) else {
            return None;
        };
        let mut response = Map::new();
        match result {
            Ok(r) => {
                response.insert("ok".into(), true.into());
                response.insert("summary".into(), r.summary.clone().into());
                response.insert("error".into(), "".into());
                response.insert("retryable".into(), false.into());
            }
            Err(e) => {
                response.insert("ok".into(), false.into());
                response.insert("summary".into(), "".into());
                response.insert("error".into(), e.reason.clone().into());
                response.insert(
                    "retryable".into(),
                    (e.retry == crate::connector::Retry::Later).into(),
                );
            }
        }
        let run = if json::looks_like_json(sent) {
            json::parse(sent).and_then(|document| {
                ScriptRun::json(&document, &self.channel, engine.limits())
                    .map_err(|e| e.to_string())
            })
        } else {
            Message::parse(sent.clone())
                .map(|message| ScriptRun::new(message, &self.channel))
                .map_err(|e| format!("not an HL7 v2 message or JSON: {e}"))
        };
        let mut run = match run {
            Ok(run) => run.with_response(response),
            Err(e) => {
                return Some(ResponseDecision::Error(format!(
                    "response script cannot run: {e}"
                )));
            }
        };
        let decision = match engine.run(script, &mut run) {
            Err(e) => ResponseDecision::Error(format!("response script error: {e}")),
            Ok(output) => match (output.rejected, output.value.to_string().as_str()) {
                (Some(reason), _) => ResponseDecision::Error(reason),
                (None, "sent") => ResponseDecision::Sent,
                (None, "retry") => {
                    ResponseDecision::Retry(format!("{} asked for a retry", script.name()))
                }
                (None, "error") => {
                    ResponseDecision::Error(format!("{} decided error", script.name()))
                }
                (None, other) => ResponseDecision::Error(format!(
                    "response script {} returned {other:?}, not \"sent\", \"retry\" or \"error\"",
                    script.name()
                )),
            },
        };
        Some(decision)
    }
}
