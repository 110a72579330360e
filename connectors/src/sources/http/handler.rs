//! One request: path, method, API key, rate limit, content type, body; then the channel's
//! `submit`, and its outcome in the content's own terms (an HL7 ACK, a FHIR OperationOutcome,
//! a webhook's `{"message_id": N}`).

use super::auth::ApiKeys;
use crate::rate_limit::{KeyedRateLimiter, retry_after_secs};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use medway_engine::channel::{ChannelHandle, Reply, ReplyOutcome};
use medway_engine::message::Inbound;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest accepted `Idempotency-Key` (it is stored, and indexed, in the message's origin).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Idempotency keys remembered per listener to answer 409 to a reused key with another body.
/// Beyond it (or after a restart) such a body is stored as a new message: never lost.
const REMEMBERED_KEYS: usize = 10_000;

/// Seconds a client is asked to wait when the store is unavailable.
const STORE_RETRY_AFTER_SECS: u64 = 5;

const HL7_CONTENT_TYPE: &str = "x-application/hl7-v2+er7";
const FHIR_CONTENT_TYPE: &str = "application/fhir+json; charset=utf-8";
const JSON_CONTENT_TYPE: &str = "application/json";
const ACCEPTED_TYPES: &str = "x-application/hl7-v2+er7, application/hl7-v2, text/plain (HL7 v2); \
    application/fhir+json (FHIR R4); application/json (FHIR R4 or any JSON document)";

/// Who a rate-limit budget belongs to: the API key when one was presented and valid, else the
/// peer's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Client {
    Key([u8; 32]),
    Ip(IpAddr),
}

/// What a request carries, from its `Content-Type` (parameters such as charset ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Hl7,
    Fhir,
    /// `application/json`: FHIR when the top-level object has `resourceType`, else a webhook.
    Json,
}

fn declared(headers: &HeaderMap) -> Option<Declared> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        "x-application/hl7-v2+er7" | "application/hl7-v2" | "text/plain" => Some(Declared::Hl7),
        "application/fhir+json" => Some(Declared::Fhir),
        "application/json" => Some(Declared::Json),
        _ => None,
    }
}

/// For the log line: what was handled (never the body).
#[derive(Debug, Default)]
struct Note {
    kind: &'static str,
    /// HL7 control id or FHIR resourceType.
    detail: Option<String>,
    message_id: Option<i64>,
}

/// Shared by every connection of one listener.
pub(super) struct Handler {
    pub channel: ChannelHandle,
    pub path: String,
    pub api_keys: ApiKeys,
    pub limiter: Option<Arc<KeyedRateLimiter<Client>>>,
    pub max_body_bytes: usize,
    /// Bytes of bodies held by all requests of this listener (`max_inflight_body_bytes`).
    pub body_budget: Arc<Semaphore>,
    pub request_timeout: Duration,
    /// (client scope, Idempotency-Key) → SHA-256 of the body stored under it.
    pub idempotency: Mutex<HashMap<(String, String), [u8; 32]>>,
}

/// How a request's `Idempotency-Key` is stored: the message's origin, and what to remember.
struct Idempotency {
    scope: String,
    key: String,
    body_hash: [u8; 32],
}

impl Idempotency {
    /// `http:<client>:<key>:<body sha256>`: scoped by client so two clients choosing the same
    /// key do not collide, and tied to the body so a reused key never silently drops a new one.
    fn origin(&self) -> String {
        format!("http:{}:{}:{}", self.scope, self.key, hex(&self.body_hash))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type Answer = Response<Full<Bytes>>;

/// Marks an answer given before the whole body was read.
#[derive(Clone, Copy)]
struct UnreadBody;

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    /// The listener's budget of body bytes in flight is spent.
    Busy,
    Read,
}

impl Handler {
    /// `client_cert`: SHA-256 of the client certificate (mutual TLS), if one was presented.
    pub async fn handle(
        &self,
        peer: SocketAddr,
        client_cert: Option<[u8; 32]>,
        request: Request<Incoming>,
    ) -> Answer {
        let version = request.version();
        let mut note = Note::default();
        let mut answer = self.route(peer, client_cert, request, &mut note).await;
        let status = answer.status();
        // An answer given before the body was read ends the connection: the unread rest of the
        // body would otherwise be taken for the next request.
        let unread = matches!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
        ) || answer.extensions().get::<UnreadBody>().is_some();
        if unread && version < Version::HTTP_2 {
            answer
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let channel = self.channel.name();
        let detail = note.detail.as_deref().unwrap_or("");
        if status.is_client_error() || status.is_server_error() {
            tracing::info!(channel, %peer, status = status.as_u16(), kind = note.kind, detail,
                message_id = note.message_id, "HTTP request refused");
        } else {
            tracing::debug!(channel, %peer, status = status.as_u16(), kind = note.kind, detail,
                message_id = note.message_id, "HTTP request handled");
        }
        answer
    }

    async fn route(
        &self,
        peer: SocketAddr,
        client_cert: Option<[u8; 32]>,
        request: Request<Incoming>,
        note: &mut Note,
    ) -> Answer {
        if request.uri().path() != self.path {
            return json_error(StatusCode::NOT_FOUND, "no such path");
        }
        if request.method() != Method::POST {
            let mut answer = json_error(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
            answer
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return answer;
        }
        let key = self.authenticate(request.headers());
        // Limited before the key is judged, so guessing keys is limited per address too.
        let client = key.map_or(Client::Ip(peer.ip()), Client::Key);
        if let Some(limiter) = &self.limiter
            && let Err(wait) = limiter.check(&client)
        {
            let secs = retry_after_secs(wait);
            let mut answer = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("rate limit exceeded; retry after {secs} s"),
            );
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return answer;
        }
        if !self.api_keys.is_empty() && key.is_none() {
            let mut answer = json_error(
                StatusCode::UNAUTHORIZED,
                "a valid API key is required (Authorization: Bearer <key> or X-API-Key: <key>)",
            );
            answer
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return answer;
        }
        let idempotency_key = match request.headers().get("idempotency-key") {
            None => None,
            Some(value) => match value.to_str() {
                Ok(text) if !text.trim().is_empty() && text.len() <= MAX_IDEMPOTENCY_KEY => {
                    Some(text.trim().to_string())
                }
                _ => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII \
                             characters"
                        ),
                    );
                }
            },
        };
        let Some(declared) = declared(request.headers()) else {
            return json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported Content-Type; accepted: {ACCEPTED_TYPES}"),
            );
        };
        // `_held` keeps the body's share of the budget until the message has its answer.
        let (body, _held) = match self.read_body(request).await {
            Ok(read) => read,
            Err(answer) => return answer,
        };
        let api_key = key;
        let idempotency = idempotency_key.map(|key| Idempotency {
            // The API key's hash, else the client certificate's, else one shared scope.
            scope: match (api_key, client_cert) {
                (Some(hash), _) => format!("key-{}", hex(&hash[..16])),
                (None, Some(cert)) => format!("cert-{}", hex(&cert[..16])),
                (None, None) => "anonymous".to_string(),
            },
            key,
            body_hash: Sha256::digest(&body).into(),
        });
        if let Some(idempotency) = &idempotency
            && self.reused_with_another_body(idempotency)
        {
            return json_error(
                StatusCode::CONFLICT,
                "this Idempotency-Key was already used with a different body; use a new key",
            );
        }
        let origin = idempotency.as_ref().map(Idempotency::origin);
        let answer = match declared {
            Declared::Hl7 => self.hl7(peer, body, origin, note).await,
            Declared::Fhir => self.json(peer, body, origin, true, note).await,
            Declared::Json => self.json(peer, body, origin, false, note).await,
        };
        if let Some(idempotency) = idempotency
            && note.message_id.is_some()
        {
            self.remember(idempotency);
        }
        answer
    }

    fn reused_with_another_body(&self, idempotency: &Idempotency) -> bool {
        let seen = self.idempotency.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&(idempotency.scope.clone(), idempotency.key.clone()))
            .is_some_and(|hash| *hash != idempotency.body_hash)
    }

    fn remember(&self, idempotency: Idempotency) {
        let mut seen = self.idempotency.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED_KEYS {
            // Forgetting only weakens the 409 to storing the body as a new message.
            seen.clear();
        }
        seen.insert((idempotency.scope, idempotency.key), idempotency.body_hash);
    }

    /// The hash of a valid presented key (`Authorization: Bearer` or `X-API-Key`).
    fn authenticate(&self, headers: &HeaderMap) -> Option<[u8; 32]> {
        if self.api_keys.is_empty() {
            return None;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        bearer
            .into_iter()
            .chain(api_key)
            .find_map(|presented| self.api_keys.verify(presented.trim()))
    }

    /// Reads the body within `max_body_bytes`, `request_timeout` and the listener's shared
    /// budget of body bytes in flight, which it returns as a permit to hold until answered.
    async fn read_body(
        &self,
        request: Request<Incoming>,
    ) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Answer> {
        let too_large = || {
            json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {} bytes", self.max_body_bytes),
            )
        };
        let declared_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|n| n > self.max_body_bytes as u64) {
            return Err(too_large());
        }
        // Only receiving is timed: once the body is in, the message is submitted and always
        // answered (a timeout then could hide a stored message from its sender).
        match tokio::time::timeout(self.request_timeout, self.collect(request.into_body())).await {
            Err(_) => Err(json_error(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            )),
            Ok(Err(BodyError::TooLarge)) => Err(too_large()),
            Ok(Err(BodyError::Busy)) => {
                let mut answer = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many request bodies in flight; retry shortly",
                );
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
                answer.extensions_mut().insert(UnreadBody);
                Err(answer)
            }
            Ok(Err(BodyError::Read)) => Err(json_error(
                StatusCode::BAD_REQUEST,
                "could not read the request body",
            )),
            Ok(Ok(read)) => Ok(read),
        }
    }

    /// Collects the body chunk by chunk, taking each chunk's bytes from the shared budget
    /// first: memory for bodies stays bounded however many connections and streams are open.
    async fn collect(
        &self,
        mut body: Incoming,
    ) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyError> {
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Read)?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers
            };
            total += chunk.len();
            if total > self.max_body_bytes {
                return Err(BodyError::TooLarge);
            }
            let size = u32::try_from(chunk.len()).map_err(|_| BodyError::TooLarge)?;
            if size > 0 {
                let permit = self
                    .body_budget
                    .clone()
                    .try_acquire_many_owned(size)
                    .map_err(|_| BodyError::Busy)?;
                match &mut held {
                    Some(held) => held.merge(permit),
                    None => held = Some(permit),
                }
            }
            chunks.push(chunk);
        }
        let body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().unwrap_or_default(),
            _ => {
                let mut joined = bytes::BytesMut::with_capacity(total);
                for chunk in &chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        };
        Ok((body, held))
    }

    fn inbound(&self, peer: SocketAddr, body: Bytes, origin: Option<String>) -> Inbound {
        // Idempotency-Key: the channel stores a retried POST only once.
        Inbound {
            peer: Some(peer),
            origin,
            ..Inbound::new(body)
        }
    }

    /// HL7 v2: the channel's ACK, exactly as MLLP would send it, as the body.
    async fn hl7(
        &self,
        peer: SocketAddr,
        body: Bytes,
        origin: Option<String>,
        note: &mut Note,
    ) -> Answer {
        note.kind = "hl7v2";
        if first_byte(&body).is_some_and(|b| b == b'{' || b == b'[') {
            return json_error(
                StatusCode::BAD_REQUEST,
                "the Content-Type says HL7 v2 but the body is JSON; send it as application/json \
                 or application/fhir+json",
            );
        }
        let reply = self.channel.submit(self.inbound(peer, body, origin)).await;
        note.message_id = reply.message_id;
        let Reply { outcome, ack, .. } = reply;
        if let Some(ack) = &ack {
            note.detail = ack_control_id(ack);
        }
        let status = match outcome {
            ReplyOutcome::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // AA, AE and AR alike: the HL7 answer is in the ACK.
            _ if ack.is_some() => StatusCode::OK,
            _ => StatusCode::NO_CONTENT,
        };
        let mut answer = Response::new(Full::new(ack.unwrap_or_default()));
        *answer.status_mut() = status;
        if status != StatusCode::NO_CONTENT {
            answer.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(HL7_CONTENT_TYPE),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answer.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(STORE_RETRY_AFTER_SECS),
            );
        }
        answer
    }

    /// FHIR R4 resources and generic JSON documents. `fhir`: the Content-Type said FHIR.
    async fn json(
        &self,
        peer: SocketAddr,
        body: Bytes,
        origin: Option<String>,
        fhir: bool,
        note: &mut Note,
    ) -> Answer {
        // A UTF-8 byte order mark is legal before JSON text from some tools; the stored
        // document is the JSON itself.
        let body = match body.strip_prefix(b"\xEF\xBB\xBF") {
            Some(_) => body.slice(3..),
            None => body,
        };
        let parsed: Value = match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(error) => {
                note.kind = if fhir { "fhir" } else { "json" };
                // serde_json's message names a position, never the content.
                let reason = format!("not valid JSON: {error}");
                return if fhir {
                    outcome_answer(StatusCode::BAD_REQUEST, "error", "structure", &reason)
                } else {
                    json_error(StatusCode::BAD_REQUEST, &reason)
                };
            }
        };
        let resource_type = parsed.get("resourceType").map(|v| v.as_str());
        if fhir || resource_type.is_some() {
            note.kind = "fhir";
            let Some(Some(resource_type)) = resource_type else {
                return outcome_answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "error",
                    "required",
                    "a FHIR resource must be a JSON object with a string `resourceType`",
                );
            };
            note.detail = Some(resource_type.to_string());
            let bundle = resource_type == "Bundle";
            let reply = self.channel.submit(self.inbound(peer, body, origin)).await;
            note.message_id = reply.message_id;
            return fhir_answer(reply, bundle);
        }
        note.kind = "json";
        let reply = self.channel.submit(self.inbound(peer, body, origin)).await;
        note.message_id = reply.message_id;
        match (reply.outcome, reply.message_id) {
            (ReplyOutcome::Accepted | ReplyOutcome::Filtered, Some(id)) => {
                json_answer(StatusCode::ACCEPTED, &json!({ "message_id": id }))
            }
            (ReplyOutcome::Invalid(reason), _) => {
                json_error(StatusCode::UNPROCESSABLE_ENTITY, &reason)
            }
            (ReplyOutcome::Rejected(reason), _) => json_error(StatusCode::BAD_REQUEST, &reason),
            (ReplyOutcome::Unavailable(_), _)
            | (ReplyOutcome::Accepted | ReplyOutcome::Filtered, None) => unavailable(),
        }
    }
}

/// FHIR: 201 for a stored resource, 200 for a stored Bundle, 422 invalid, 400 refused, 503.
fn fhir_answer(reply: Reply, bundle: bool) -> Answer {
    match (reply.outcome, reply.message_id) {
        (ReplyOutcome::Accepted | ReplyOutcome::Filtered, Some(id)) => outcome_answer(
            if bundle {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            "information",
            "informational",
            &format!("stored as message {id}"),
        ),
        (ReplyOutcome::Invalid(reason), _) => outcome_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            "error",
            "invalid",
            &reason,
        ),
        (ReplyOutcome::Rejected(reason), _) => {
            outcome_answer(StatusCode::BAD_REQUEST, "error", "processing", &reason)
        }
        (ReplyOutcome::Unavailable(_), _)
        | (ReplyOutcome::Accepted | ReplyOutcome::Filtered, None) => {
            let mut answer = outcome_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                "transient",
                "message not stored (store unavailable); resend later",
            );
            answer.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(STORE_RETRY_AFTER_SECS),
            );
            answer
        }
    }
}

fn outcome_answer(status: StatusCode, severity: &str, code: &str, diagnostics: &str) -> Answer {
    let body = medway_fhir::operation_outcome(severity, code, diagnostics, None).to_string();
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(FHIR_CONTENT_TYPE),
    );
    answer
}

fn json_answer(status: StatusCode, value: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(value.to_string())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    answer
}

/// `{"error": "..."}` with `status`.
fn json_error(status: StatusCode, message: &str) -> Answer {
    json_answer(status, &json!({ "error": message }))
}

fn unavailable() -> Answer {
    let mut answer = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "message not stored (store unavailable); resend later",
    );
    answer.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(STORE_RETRY_AFTER_SECS),
    );
    answer
}

fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// MSA-2 of an ACK (the acknowledged control id), for the log.
fn ack_control_id(ack: &Bytes) -> Option<String> {
    let message = medway_hl7::Message::parse(ack.clone()).ok()?;
    message.get("MSA-2").map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("header"),
        );
        headers
    }

    #[test]
    fn content_types_ignore_parameters_and_case() {
        assert_eq!(
            declared(&headers("x-application/hl7-v2+er7")),
            Some(Declared::Hl7)
        );
        assert_eq!(
            declared(&headers("Application/HL7-v2; charset=UTF-8")),
            Some(Declared::Hl7)
        );
        assert_eq!(
            declared(&headers("text/plain;charset=us-ascii")),
            Some(Declared::Hl7)
        );
        assert_eq!(
            declared(&headers("application/fhir+json; fhirVersion=4.0")),
            Some(Declared::Fhir)
        );
        assert_eq!(
            declared(&headers("application/json; charset=utf-8")),
            Some(Declared::Json)
        );
        assert_eq!(declared(&headers("application/xml")), None);
        assert_eq!(declared(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn fhir_answers_carry_an_operation_outcome() {
        let answer = outcome_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            "error",
            "invalid",
            "Patient.gender: unknown code",
        );
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], FHIR_CONTENT_TYPE);
        let body = answer
            .into_body()
            .collect()
            .await
            .expect("full body")
            .to_bytes();
        let outcome: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["severity"], "error");
        assert_eq!(outcome["issue"][0]["code"], "invalid");
        assert_eq!(
            outcome["issue"][0]["diagnostics"],
            "Patient.gender: unknown code"
        );
    }
}
