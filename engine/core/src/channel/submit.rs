//! `submit`: parse, run the pipeline, commit, then build the reply.

use super::{ChannelHandle, ChannelInner, Reply, ReplyOutcome, Verdict, json};
use crate::clock::{hl7_now, now_micros};
use crate::message::{Inbound, MessageStatus, NewDelivery, NewMessage};
use bytes::Bytes;
use medway_hl7::Message;
use medway_hl7::ack::{self, AckError, AckMode, Outcome};

/// The acknowledgement a verdict earns in each mode. Enhanced mode: the accept ACK says
/// "committed" (CA) even for invalid content, whose error belongs to the application ACK.
pub fn ack_outcome(verdict: &Verdict, mode: AckMode) -> Outcome {
    match (verdict, mode) {
        (Verdict::Accept | Verdict::Filter, _) => Outcome::Accept,
        (Verdict::Invalid(e), AckMode::Original) => Outcome::Error(e.clone()),
        (Verdict::Invalid(_), AckMode::Enhanced) => Outcome::Accept,
        (Verdict::Reject(e), _) => Outcome::Reject(e.clone()),
    }
}

impl ChannelHandle {
    /// Handles one inbound message end to end and returns the reply to send. Never panics on
    /// input; every outcome is stored before it is acknowledged, except when the store fails.
    pub async fn submit(&self, inbound: Inbound) -> Reply {
        let inner = self.current();
        let received_at = now_micros();
        let peer = inbound.peer.map(|p| p.to_string());
        if json::looks_like_json(&inbound.payload) {
            return submit_json(&inner, inbound, peer, received_at).await;
        }
        let original = match Message::parse(inbound.payload.clone()) {
            Ok(message) => message,
            Err(error) => {
                return refuse_unparseable(
                    &inner,
                    inbound.payload,
                    peer,
                    inbound.parent,
                    inbound.origin,
                    error,
                )
                .await;
            }
        };
        let processed = run_pipeline(&inner, original.clone());
        let control_id = original.control_id().map(|c| json::bounded(c.into_owned()));
        let message_type = match (original.message_type(), original.trigger_event()) {
            (Some(t), Some(e)) => Some(format!("{t}^{e}")),
            (Some(t), None) => Some(t.into_owned()),
            _ => None,
        }
        .map(json::bounded);
        let (status, error) = match &processed.verdict {
            Verdict::Accept => (MessageStatus::Accepted, None),
            Verdict::Filter => (MessageStatus::Filtered, None),
            Verdict::Invalid(e) | Verdict::Reject(e) => {
                (MessageStatus::Error, Some(e.text.clone()))
            }
        };
        let encoded = processed.message.encode();
        let transformed = (encoded != inbound.payload).then_some(encoded);
        let (deliveries, wake) = if status == MessageStatus::Accepted {
            let chosen: Vec<_> = inner
                .destinations
                .iter()
                .filter(|d| processed.routes.contains(&d.name))
                .collect();
            (
                chosen
                    .iter()
                    .map(|d| NewDelivery {
                        destination: d.name.clone(),
                        ordering_key: d.ordering_key.as_deref().map(|path| {
                            processed.message.get(path).unwrap_or_default().into_owned()
                        }),
                    })
                    .collect(),
                chosen.iter().map(|d| d.wake.clone()).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let record = NewMessage {
            channel: inner.name.clone(),
            received_at,
            control_id: control_id.clone(),
            message_type,
            status,
            error,
            patient_key: patient_key(&processed.message),
            peer,
            parent: inbound.parent,
            origin: inbound.origin,
            raw: inbound.payload,
            transformed,
            deliveries,
        };
        let committed = inner.writer.commit(record, wake).await;
        let mode = ack::ack_mode(&original);
        let (outcome, ack_outcome, message_id) = match committed {
            Ok(id) => {
                let outcome = match &processed.verdict {
                    Verdict::Accept => ReplyOutcome::Accepted,
                    Verdict::Filter => ReplyOutcome::Filtered,
                    Verdict::Invalid(e) => ReplyOutcome::Invalid(e.text.clone()),
                    Verdict::Reject(e) => ReplyOutcome::Rejected(e.text.clone()),
                };
                (outcome, ack_outcome(&processed.verdict, mode), Some(id))
            }
            Err(store_error) => {
                tracing::error!(
                    channel = %inner.name,
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
                // Original mode: AR ("resend"); enhanced: CE (commit error).
                let ack = match mode {
                    AckMode::Original => Outcome::Reject(e),
                    AckMode::Enhanced => Outcome::Error(e),
                };
                (ReplyOutcome::Unavailable(reason), ack, None)
            }
        };
        tracing::debug!(
            channel = %inner.name,
            control_id = control_id.as_deref().unwrap_or(""),
            message_id,
            outcome = outcome_word(&outcome),
            "message handled"
        );
        let is_accept = matches!(ack_outcome, Outcome::Accept);
        let ack = ack::accept_ack_requested(&original, is_accept).then(|| {
            ack::build_ack(
                &original,
                &ack_outcome,
                &inner.ack_ids.for_message(message_id),
                &hl7_now(),
            )
        });
        Reply {
            outcome,
            ack,
            message_id,
        }
    }
}

/// Stores bytes that are not a parseable HL7 message as `error` and answers AR.
async fn refuse_unparseable(
    inner: &ChannelInner,
    raw: Bytes,
    peer: Option<String>,
    parent: Option<crate::message::Lineage>,
    origin: Option<String>,
    error: medway_hl7::ParseError,
) -> Reply {
    let reason = format!("not a parseable HL7 v2 message: {error}");
    // The kind's label and offset only: the full text may quote bytes of the message.
    tracing::warn!(channel = %inner.name, peer = peer.as_deref().unwrap_or(""),
        offset = error.offset, kind = error.kind.label(), "unparseable message refused");
    let record = NewMessage {
        channel: inner.name.clone(),
        received_at: now_micros(),
        control_id: None,
        message_type: None,
        status: MessageStatus::Error,
        error: Some(reason.clone()),
        patient_key: None,
        peer,
        parent,
        origin,
        raw: raw.clone(),
        transformed: None,
        deliveries: Vec::new(),
    };
    let message_id = inner.writer.commit(record, Vec::new()).await.ok();
    let ack_error = AckError {
        code: 100,
        text: reason.clone(),
        location: None,
    };
    let ack = ack::build_nak_for_unparseable(
        &raw,
        &ack_error,
        &inner.ack_ids.for_message(message_id),
        &hl7_now(),
    );
    Reply {
        outcome: ReplyOutcome::Rejected(reason),
        ack: Some(ack),
        message_id,
    }
}

/// Runs the channel's steps. Scripts may legally take up to their wall-clock budget: on the
/// multi-threaded runtime they run under `block_in_place`, so the other connections' tasks move
/// to another worker instead of waiting behind a slow script.
fn run_pipeline(inner: &ChannelInner, message: Message) -> super::Processed {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if inner.pipeline.has_scripts() && multi_thread {
        tokio::task::block_in_place(|| inner.pipeline.process(message))
    } else {
        inner.pipeline.process(message)
    }
}

/// Stores a JSON document (an alert, a webhook body, a FHIR resource). It must parse; a FHIR
/// resource (top-level `resourceType`) must be valid FHIR R4, else it is stored as `error` and
/// answered `Invalid` with the reason (an HTTP source sends 422). The channel's steps then run
/// on it with the document in `res`, exactly as they run on HL7 with `msg`; a transformed
/// document is stored as `transformed` and is what the destinations receive.
async fn submit_json(
    inner: &ChannelInner,
    inbound: Inbound,
    peer: Option<String>,
    received_at: i64,
) -> Reply {
    let json::JsonProcessed {
        verdict,
        identity,
        transformed,
        routes,
        ..
    } = run_json_pipeline(inner, &inbound.payload);
    let (status, error) = match &verdict {
        Verdict::Accept => (MessageStatus::Accepted, None),
        Verdict::Filter => (MessageStatus::Filtered, None),
        Verdict::Invalid(e) | Verdict::Reject(e) => (MessageStatus::Error, Some(e.text.clone())),
    };
    let chosen: Vec<_> = inner
        .destinations
        .iter()
        .filter(|d| routes.contains(&d.name))
        .collect();
    let deliveries = chosen
        .iter()
        .map(|d| NewDelivery {
            destination: d.name.clone(),
            ordering_key: None,
        })
        .collect();
    let wake = chosen.iter().map(|d| d.wake.clone()).collect();
    // For the log lines: the document's type (resourceType, `json`), never its `id`.
    let message_type_for_log = identity.message_type.clone().unwrap_or_default();
    let record = NewMessage {
        channel: inner.name.clone(),
        received_at,
        control_id: identity.control_id,
        message_type: identity.message_type,
        status,
        error,
        patient_key: None,
        peer,
        parent: inbound.parent,
        origin: inbound.origin,
        raw: inbound.payload,
        transformed,
        deliveries,
    };
    let (outcome, message_id) = match inner.writer.commit(record, wake).await {
        Ok(id) => {
            let outcome = match verdict {
                Verdict::Accept => ReplyOutcome::Accepted,
                Verdict::Filter => ReplyOutcome::Filtered,
                Verdict::Invalid(e) => ReplyOutcome::Invalid(e.text),
                Verdict::Reject(e) => ReplyOutcome::Rejected(e.text),
            };
            (outcome, Some(id))
        }
        Err(e) => {
            // Not the document's `id`: for a FHIR Patient it is often the MRN.
            tracing::error!(channel = %inner.name, message_type = %message_type_for_log,
                error = %e, "JSON document not stored");
            (
                ReplyOutcome::Unavailable(format!("message not stored: {e}")),
                None,
            )
        }
    };
    tracing::debug!(
        channel = %inner.name,
        message_type = %message_type_for_log,
        message_id,
        outcome = outcome_word(&outcome),
        "JSON document handled"
    );
    Reply {
        outcome,
        ack: None,
        message_id,
    }
}

/// A JSON body from this size on is parsed and validated under `block_in_place`: a large FHIR
/// Bundle takes tens of milliseconds (it is parsed several times), during which the worker's
/// other tasks (MLLP ACKs) would wait.
pub(crate) const BLOCKING_JSON_BYTES: usize = 64 * 1024;

/// [`run_pipeline`] for a JSON document: scripts, and large documents, run under
/// `block_in_place` likewise.
fn run_json_pipeline(inner: &ChannelInner, payload: &[u8]) -> json::JsonProcessed {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if (inner.pipeline.has_scripts() || payload.len() >= BLOCKING_JSON_BYTES) && multi_thread {
        tokio::task::block_in_place(|| json::process(&inner.pipeline, payload))
    } else {
        json::process(&inner.pipeline, payload)
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

/// The patient key: PID-3.1 with its assigning authority PID-3.4 (never a name or a bed).
fn patient_key(message: &Message) -> Option<String> {
    let id = message.get("PID-3.1")?;
    if id.is_empty() {
        return None;
    }
    let authority = message.get("PID-3.4.1").unwrap_or_default();
    Some(format!("{id}^{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{AckIds, ChannelInner, ChannelPipeline};
    use crate::config::parse_channel;
    use crate::script::{ScriptEngine, ScriptSettings};
    use crate::store::StoreWriter;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// One worker thread: validating a large FHIR Bundle inline would stop every other task
    /// (an MLLP connection's ACK) for as long as it takes; under `block_in_place` they go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_large_fhir_bundle_does_not_stall_the_other_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[source]\nkind = \"internal\"\n[[destination]]\nname = \"a\"\n\
                    kind = \"file\"\ndirectory = \"out\"\n";
        let config = parse_channel(&dir.path().join("big.toml"), text).unwrap();
        let engine = ScriptEngine::new(ScriptSettings::new(dir.path().join("lib")));
        let pipeline = ChannelPipeline::build(&config, &engine, dir.path()).unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let store = crate::store::open(&url, 2).await.unwrap();
        let (writer, _task) = StoreWriter::spawn(store, 16, 16);
        let handle = ChannelHandle::new(ChannelInner {
            name: Arc::from("big"),
            pipeline,
            destinations: Vec::new(),
            writer,
            ack_ids: Arc::new(AckIds::default()),
        });
        let entries: Vec<String> = (0..20_000)
            .map(|i| {
                format!(
                    r#"{{"resource":{{"resourceType":"Patient","id":"p{i}","active":true,"gender":"female","birthDate":"1970-01-01"}}}}"#
                )
            })
            .collect();
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
            entries.join(",")
        );
        assert!(bundle.len() > BLOCKING_JSON_BYTES);

        // A ticker on the one worker: the longest gap between its ticks.
        let longest_gap = Arc::new(AtomicU64::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let ticker = tokio::spawn({
            let longest_gap = longest_gap.clone();
            let stop = stop.clone();
            async move {
                let mut last = Instant::now();
                while !stop.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let gap = last.elapsed().as_millis() as u64;
                    longest_gap.fetch_max(gap, Ordering::SeqCst);
                    last = Instant::now();
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let submitted = tokio::spawn({
            let handle = handle.clone();
            let payload = Bytes::from(bundle);
            async move { handle.submit(Inbound::new(payload)).await }
        });
        let reply = submitted.await.unwrap();
        let took = started.elapsed().as_millis() as u64;
        stop.cancel();
        ticker.await.unwrap();
        assert!(
            matches!(reply.outcome, super::ReplyOutcome::Accepted),
            "{:?}",
            reply.outcome
        );
        assert!(
            took >= 100,
            "the bundle must take a while to validate: {took} ms"
        );
        let gap = longest_gap.load(Ordering::SeqCst);
        assert!(
            gap < took / 2,
            "ticker stalled {gap} ms while submit took {took} ms"
        );
    }
}
