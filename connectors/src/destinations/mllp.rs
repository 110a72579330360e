//! `MllpSender`: the MLLP destination. Sends each delivery as one framed message and waits for
//! its ACK (stop-and-wait) on a kept-alive connection.
//!
//! ```toml
//! [[destination]]
//! name = "lab-system"
//! kind = "mllp"
//! address = "10.1.2.3:6661"
//! connect_timeout_ms = 5000
//! response_timeout_ms = 10000
//! on_application_error = "retry"   # AE/CE: "retry" (default) or "error"
//! # optional TLS: ca_file = the peer's CA (else the system's); cert/key = mutual TLS
//! tls = { ca_file = "ca.pem", cert_file = "client.pem", key_file = "client.key", server_name = "lab" }
//! ```
//! Invariants: an ACK counts only if its MSA-2 equals the MSH-10 just sent — a late or
//! mismatched ACK is never taken for another message; after a timeout or a mismatch the
//! connection is closed before anything is retried, so a stale ACK can never arrive on the
//! connection used for the next message. AA/CA → sent; AE/CE → retry or error (setting);
//! AR/CR → error, except with ERR-3 207 (the peer's own trouble: store down, rate limit), which
//! asks for a resend and is retried. Never logs a message body.

use crate::mllp::{ClientError, MllpClient};
use crate::tls::{ClientTls, ClientTlsSettings, in_tls_table};
use async_trait::async_trait;
use bytes::Bytes;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{DeliveryError, Destination, Response};
use medway_engine::message::Delivery;
use medway_hl7::Message;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::Mutex;

/// `[[destination]] kind = "mllp"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpSenderSettings {
    /// `host:port` of the receiving system.
    pub address: String,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_response_timeout")]
    pub response_timeout_ms: u64,
    /// What an application error (AE/CE) means: `"retry"` or `"error"`.
    #[serde(default = "default_on_error")]
    pub on_application_error: String,
    /// Keep the connection open between messages (default) or close it after each ACK.
    #[serde(default = "default_true")]
    pub keep_alive: bool,
    /// `tls = { ca_file, cert_file, key_file, server_name }`: connect over TLS.
    pub tls: Option<ClientTlsSettings>,
}

fn default_connect_timeout() -> u64 {
    5_000
}
fn default_response_timeout() -> u64 {
    10_000
}
fn default_on_error() -> String {
    "retry".into()
}
fn default_true() -> bool {
    true
}

impl MllpSenderSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        if let Some(tls) = &settings.tls {
            // Reads the files now so a bad path is a settings error at start, not at first send.
            ClientTls::from_settings(tls).map_err(in_tls_table)?;
        }
        if !settings.address.contains(':') {
            return Err(SettingsError::new(format!(
                "`address` must be host:port, got {:?}",
                settings.address
            ))
            .key("address"));
        }
        if !["retry", "error"].contains(&settings.on_application_error.as_str()) {
            return Err(SettingsError::new(
                "`on_application_error` must be \"retry\" or \"error\"",
            )
            .key("on_application_error"));
        }
        Ok(settings)
    }
}

pub struct MllpSender {
    settings: MllpSenderSettings,
    /// Built once; `None` when the settings have no `tls` (or, after `from_spec` checked them,
    /// could not be rebuilt — then every send fails with the reason instead of going plain).
    tls: Result<Option<ClientTls>, String>,
    connection: Mutex<Option<MllpClient>>,
}

impl MllpSender {
    pub fn new(settings: MllpSenderSettings) -> Self {
        let tls = match &settings.tls {
            None => Ok(None),
            Some(tls) => ClientTls::from_settings(tls)
                .map(Some)
                .map_err(|e| e.to_string()),
        };
        Self {
            settings,
            tls,
            connection: Mutex::new(None),
        }
    }

    fn judge(&self, sent_control_id: &str, reply: &Bytes) -> Result<Response, Judgement> {
        let ack = Message::parse(reply.clone())
            .map_err(|e| Judgement::CloseAndRetry(format!("the reply is not an HL7 ACK: {e}")))?;
        let acked = ack.get("MSA-2").unwrap_or_default();
        if acked != sent_control_id {
            return Err(Judgement::CloseAndRetry(format!(
                "ACK for another message (MSA-2 {:?}, sent {sent_control_id:?})",
                acked.as_ref()
            )));
        }
        let code = ack.get("MSA-1").unwrap_or_default().into_owned();
        let text = ack.get("MSA-3").unwrap_or_default();
        let reason = |what: &str| {
            let text: String = text.chars().take(200).collect();
            if text.is_empty() {
                format!("peer answered {what}")
            } else {
                format!("peer answered {what}: {text}")
            }
        };
        match code.as_str() {
            "AA" | "CA" => Ok(Response {
                summary: format!("{code} for {sent_control_id}"),
            }),
            "AE" | "CE" if self.settings.on_application_error == "retry" => {
                Err(Judgement::Retry(reason(&code)))
            }
            // ERR-3 from v2.5 on; before that the code sits in ERR-1.4.
            "AR" | "CR"
                if ack.get("ERR-3.1").unwrap_or_default() == "207"
                    || ack.get("ERR-1.4.1").unwrap_or_default() == "207" =>
            {
                Err(Judgement::Retry(reason(&code)))
            }
            "AE" | "CE" | "AR" | "CR" => Err(Judgement::Never(reason(&code))),
            other => Err(Judgement::CloseAndRetry(format!(
                "unknown ACK code {other:?}"
            ))),
        }
    }
}

enum Judgement {
    Retry(String),
    Never(String),
    /// The stream can no longer be trusted: drop the connection, then retry.
    CloseAndRetry(String),
}

#[async_trait]
impl Destination for MllpSender {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let message = Message::parse(delivery.payload.clone())
            .map_err(|e| DeliveryError::never(format!("not an HL7 v2 message: {e}")))?;
        let Some(control_id) = message.control_id().map(|c| c.into_owned()) else {
            return Err(DeliveryError::never("no MSH-10 to match the ACK against"));
        };
        let mut slot = self.connection.lock().await;
        if slot.is_none() {
            let tls = self
                .tls
                .as_ref()
                .map_err(|e| DeliveryError::never(e.clone()))?;
            let client = MllpClient::connect_over(
                &self.settings.address,
                tls.as_ref(),
                Duration::from_millis(self.settings.connect_timeout_ms),
                Duration::from_millis(self.settings.response_timeout_ms),
            )
            .await
            .map_err(|e| DeliveryError::later(e.to_string()))?;
            *slot = Some(client);
        }
        let Some(client) = slot.as_mut() else {
            return Err(DeliveryError::later("no connection"));
        };
        let reply = match client.send(delivery.payload.clone()).await {
            Ok(reply) => reply,
            Err(error) => {
                // Timeout, reset or bad framing: this connection may still deliver a stale ACK.
                *slot = None;
                let reason = match error {
                    ClientError::Timeout(t) => format!("no ACK within {t:?}; connection closed"),
                    other => other.to_string(),
                };
                return Err(DeliveryError::later(reason));
            }
        };
        let verdict = self.judge(&control_id, &reply);
        if matches!(verdict, Err(Judgement::CloseAndRetry(_))) || !self.settings.keep_alive {
            *slot = None;
        }
        verdict.map_err(|j| match j {
            Judgement::Retry(r) | Judgement::CloseAndRetry(r) => DeliveryError::later(r),
            Judgement::Never(r) => DeliveryError::never(r),
        })
    }
}
