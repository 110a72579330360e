//! `submit`: parse, check the header, run the steps, commit, then build the reply.

use super::{ChannelHandle, ChannelRules, Reply, ReplyOutcome};
use crate::clock::{hl7_now, now_micros};
use crate::config::StepConfig;
use crate::message::{Inbound, MessageStatus, NewDelivery, NewMessage};
use bytes::Bytes;
use medway_hl7::Message;
use medway_hl7::ack::{self, AckError, AckMode, ErrorLocation, Outcome};

/// What the header checks and steps decided about a parsed message, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accept,
    /// A step filtered it out: stored as `filtered`, acknowledged as accepted.
    Filter,
    /// Invalid content (a validator failed): stored as `error`, AE.
    Invalid(AckError),
    /// Unsupported header (MSH-9/10/11/12): stored as `error`, AR/CR.
    Reject(AckError),
}

impl ChannelHandle {
    /// Handles one inbound message end to end and returns the reply to send. Never panics on
    /// input; every outcome is stored before it is acknowledged, except when the store fails.
    pub async fn submit(&self, inbound: Inbound) -> Reply {
        let received_at = now_micros();
        let peer = inbound.peer.map(|p| p.to_string());
        let message = match Message::parse(inbound.payload.clone()) {
            Ok(message) => message,
            Err(error) => return self.refuse_unparseable(inbound.payload, peer, error).await,
        };
        let verdict = check(&self.inner.rules, &message);
        let control_id = message.control_id().map(|c| c.into_owned());
        let message_type = match (message.message_type(), message.trigger_event()) {
            (Some(t), Some(e)) if !e.is_empty() => Some(format!("{t}^{e}")),
            (Some(t), _) => Some(t.into_owned()),
            _ => None,
        };
        let (status, error) = match &verdict {
            Verdict::Accept => (MessageStatus::Accepted, None),
            Verdict::Filter => (MessageStatus::Filtered, None),
            Verdict::Invalid(e) | Verdict::Reject(e) => {
                (MessageStatus::Error, Some(e.text.clone()))
            }
        };
        let deliveries = if status == MessageStatus::Accepted {
            self.inner
                .destinations
                .iter()
                .map(|d| NewDelivery {
                    destination: d.name.clone(),
                    ordering_key: None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let wake = if deliveries.is_empty() {
            Vec::new()
        } else {
            self.inner
                .destinations
                .iter()
                .map(|d| d.wake.clone())
                .collect()
        };
        let record = NewMessage {
            channel: self.inner.name.clone(),
            received_at,
            control_id: control_id.clone(),
            message_type,
            status,
            error,
            patient_key: patient_key(&message),
            peer,
            raw: inbound.payload,
            transformed: None,
            deliveries,
        };
        let committed = self.inner.writer.commit(record, wake).await;
        let mode = ack::ack_mode(&message);
        let (outcome, ack_outcome, message_id) = match (committed, verdict) {
            (Ok(id), Verdict::Accept) => (ReplyOutcome::Accepted, Outcome::Accept, Some(id)),
            (Ok(id), Verdict::Filter) => (ReplyOutcome::Filtered, Outcome::Accept, Some(id)),
            (Ok(id), Verdict::Invalid(e)) => {
                // Enhanced mode: the accept ACK says "committed" (CA); the content error belongs
                // to the application ACK, which Medway does not send on the same connection.
                let ack = match mode {
                    AckMode::Original => Outcome::Error(e.clone()),
                    AckMode::Enhanced => Outcome::Accept,
                };
                (ReplyOutcome::Invalid(e.text), ack, Some(id))
            }
            (Ok(id), Verdict::Reject(e)) => (
                ReplyOutcome::Rejected(e.text.clone()),
                Outcome::Reject(e),
                Some(id),
            ),
            (Err(store_error), verdict) => {
                tracing::error!(
                    channel = %self.inner.name,
                    control_id = control_id.as_deref().unwrap_or(""),
                    error = %store_error,
                    "message not stored; sending a negative acknowledgement"
                );
                let reason = "message not stored (store unavailable); resend later".to_string();
                let e = AckError {
                    code: 207,
                    text: reason.clone(),
                    location: None,
                };
                let _ = verdict;
                // Original mode: AR ("resend"); enhanced: CE (commit error).
                let ack = match mode {
                    AckMode::Original => Outcome::Reject(e),
                    AckMode::Enhanced => Outcome::Error(e),
                };
                (ReplyOutcome::Unavailable(reason), ack, None)
            }
        };
        tracing::debug!(
            channel = %self.inner.name,
            control_id = control_id.as_deref().unwrap_or(""),
            message_id,
            outcome = ?outcome_word(&outcome),
            "message handled"
        );
        let is_accept = matches!(ack_outcome, Outcome::Accept);
        let ack = ack::accept_ack_requested(&message, is_accept).then(|| {
            ack::build_ack(
                &message,
                &ack_outcome,
                &self.inner.ack_ids.for_message(message_id),
                &hl7_now(),
            )
        });
        Reply {
            outcome,
            ack,
            message_id,
        }
    }

    /// Stores bytes that are not a parseable HL7 message as `error` and answers AR.
    async fn refuse_unparseable(
        &self,
        raw: Bytes,
        peer: Option<String>,
        error: medway_hl7::ParseError,
    ) -> Reply {
        let reason = format!("not a parseable HL7 v2 message: {error}");
        tracing::warn!(channel = %self.inner.name, peer = peer.as_deref().unwrap_or(""), %error, "unparseable message refused");
        let record = NewMessage {
            channel: self.inner.name.clone(),
            received_at: now_micros(),
            control_id: None,
            message_type: None,
            status: MessageStatus::Error,
            error: Some(reason.clone()),
            patient_key: None,
            peer,
            raw: raw.clone(),
            transformed: None,
            deliveries: Vec::new(),
        };
        let message_id = self.inner.writer.commit(record, Vec::new()).await.ok();
        let ack_error = AckError {
            code: 100,
            text: reason.clone(),
            location: None,
        };
        let ack = ack::build_nak_for_unparseable(
            &raw,
            &ack_error,
            &self.inner.ack_ids.for_message(message_id),
            &hl7_now(),
        );
        Reply {
            outcome: ReplyOutcome::Rejected(reason),
            ack: Some(ack),
            message_id,
        }
    }
}

fn outcome_word(outcome: &ReplyOutcome) -> &'static str {
    match outcome {
        ReplyOutcome::Accepted => "accepted",
        ReplyOutcome::Filtered => "filtered",
        ReplyOutcome::Invalid(_) => "invalid",
        ReplyOutcome::Rejected(_) => "rejected",
        ReplyOutcome::Unavailable(_) => "unavailable",
    }
}

/// Header checks (MSH-9, MSH-10, MSH-11, MSH-12) then the channel's steps, in order.
pub fn check(rules: &ChannelRules, message: &Message) -> Verdict {
    let msh = |field: u32| {
        Some(ErrorLocation {
            segment: "MSH".into(),
            sequence: 1,
            field,
        })
    };
    if message.message_type().is_none_or(|t| t.is_empty()) {
        return Verdict::Reject(AckError {
            code: 101,
            text: "MSH-9 message type missing".into(),
            location: msh(9),
        });
    }
    if message.control_id().is_none_or(|c| c.is_empty()) {
        return Verdict::Reject(AckError {
            code: 101,
            text: "MSH-10 control id missing".into(),
            location: msh(10),
        });
    }
    let version = message.version().unwrap_or_default();
    if !rules.accept_versions.iter().any(|v| *v == version) {
        return Verdict::Reject(AckError {
            code: 203,
            text: format!("unsupported HL7 version {:?}", version.as_ref()),
            location: msh(12),
        });
    }
    let processing = message.processing_id().unwrap_or_default();
    if !rules.processing_ids.iter().any(|p| *p == processing) {
        return Verdict::Reject(AckError {
            code: 202,
            text: format!("unsupported processing id {:?}", processing.as_ref()),
            location: msh(11),
        });
    }
    for step in &rules.steps {
        match step {
            StepConfig::Required { paths } => {
                for path in paths {
                    if message.get(path).is_none_or(|v| v.trim().is_empty()) {
                        return Verdict::Invalid(AckError {
                            code: 101,
                            text: format!("{path} missing"),
                            location: location_of(path),
                        });
                    }
                }
            }
        }
    }
    Verdict::Accept
}

/// `PID-3.1` → PID, occurrence 1, field 3 (for ERR-2).
fn location_of(path: &str) -> Option<ErrorLocation> {
    let parsed: medway_hl7::Path = path.parse().ok()?;
    Some(ErrorLocation {
        segment: parsed.segment_name().to_string(),
        sequence: parsed.occurrence,
        field: parsed.field,
    })
}

/// The patient key: PID-3.1 with its assigning authority PID-3.4 (never a name or a bed).
fn patient_key(message: &Message) -> Option<String> {
    let id = message.get("PID-3.1")?;
    if id.is_empty() {
        return None;
    }
    let authority = message.get("PID-3.4.1").unwrap_or_default();
    Some(format!("{id}^{authority}"))
}
