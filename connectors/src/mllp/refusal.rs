//! Replies a listener sends for a message it refuses *before* the channel sees it (today: over
//! the peer's rate limit). Nothing is stored, so the reply must tell the sender to keep the
//! message and resend: AR in original mode, CE in enhanced mode (the same pair the channel uses
//! when the store is unavailable), with ERR-3 207 and the wait in MSA-3 / ERR-8.

use bytes::Bytes;
use medway_hl7::Message;
use medway_hl7::ack::{self, AckError, AckMode, Outcome};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// ERR-3 code for the refusal: "application internal error", which senders read as transient.
pub const RATE_LIMIT_ERROR_CODE: u16 = 207;

static REFUSALS: AtomicU64 = AtomicU64::new(1);

/// The negative acknowledgement for a message over the rate limit; `wait` is how long until the
/// peer's budget allows another one.
pub fn rate_limited(payload: &Bytes, wait: Duration) -> Bytes {
    let millis = wait.as_millis().max(1);
    let error = AckError {
        code: RATE_LIMIT_ERROR_CODE,
        text: format!("rate limit exceeded; message not stored, resend after {millis} ms"),
        location: None,
    };
    // Not a message id: nothing was stored. "MWRL" keeps these apart from the channel's ids.
    let ack_id = format!("MWRL{}", REFUSALS.fetch_add(1, Ordering::Relaxed));
    let now = medway_engine::clock::hl7_now();
    match Message::parse(payload.clone()) {
        Ok(message) => {
            let outcome = match ack::ack_mode(&message) {
                AckMode::Original => Outcome::Reject(error),
                AckMode::Enhanced => Outcome::Error(error),
            };
            ack::build_ack(&message, &outcome, &ack_id, &now)
        }
        Err(_) => ack::build_nak_for_unparseable(payload, &error, &ack_id, &now),
    }
}

/// The control id (MSH-10) of a message for logs, if it parses; never any other field.
pub fn control_id(payload: &Bytes) -> String {
    Message::parse(payload.clone())
        .ok()
        .and_then(|m| m.control_id().map(|c| c.into_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_is_ar_with_the_reason_and_the_original_control_id() {
        let msg = Bytes::from_static(
            b"MSH|^~\\&|LAB|H|MW|H|20240501103000||ORU^R01|CTRL42|P|2.5\rPID|1||123\r",
        );
        let reply = rate_limited(&msg, Duration::from_millis(250));
        let ack = Message::parse(reply).expect("ACK parses");
        assert_eq!(ack.get("MSA-1").unwrap_or_default(), "AR");
        assert_eq!(ack.get("MSA-2").unwrap_or_default(), "CTRL42");
        let text = ack.get("MSA-3").unwrap_or_default().into_owned();
        assert!(
            text.contains("rate limit exceeded") && text.contains("250 ms"),
            "{text}"
        );
        assert_eq!(ack.get("ERR-3.1").unwrap_or_default(), "207");
    }

    #[test]
    fn enhanced_mode_gets_ce_and_garbage_gets_ar() {
        let msg = Bytes::from_static(
            b"MSH|^~\\&|LAB|H|MW|H|20240501103000||ORU^R01|C2|P|2.5|||AL|NE\rPID|1\r",
        );
        let ack = Message::parse(rate_limited(&msg, Duration::from_secs(1))).expect("parses");
        assert_eq!(ack.get("MSA-1").unwrap_or_default(), "CE");
        let garbage = Bytes::from_static(b"not hl7 at all");
        let ack = rate_limited(&garbage, Duration::from_secs(1));
        let text = String::from_utf8_lossy(&ack);
        assert!(text.contains("\rMSA|AR||rate limit exceeded"), "{text}");
    }
}
