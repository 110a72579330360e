//! The per-recipient rate limit of the alert destinations, and its digests.
//!
//! `rate_limit = { per_minute = 6, burst = 6 }` allows each recipient (an email address, a
//! webhook URL) `burst` messages at once and then one more every `60 / per_minute` seconds
//! (GCRA, the `governor` crate). `per_minute = 0` turns the limit off.
//!
//! When an alert for a recipient is over the limit it is **held, never dropped**:
//! 1. `send` answers `Retry::Later` with `retry_after` = the time until the limiter allows that
//!    recipient again (`rate limit: held for a digest to …`), and the alert is remembered in
//!    memory as *held* for that recipient.
//! 2. The next send to that recipient that the limiter allows — a held delivery coming back, or
//!    a new alert — sends **one digest** holding itself and every alert held for that recipient
//!    (up to the destination's digest size, oldest first): "N alerts in the last …".
//! 3. Only once the digest was accepted (SMTP 250 after DATA, HTTP 2xx) are the alerts in it
//!    marked as delivered to that recipient; each held delivery, when it comes back, is then
//!    reported sent with the summary `in digest <reference> to …` without sending anything.
//!    If the digest fails, its alerts are held again and retried like any other.
//!
//! So every alert reaches each of its recipients either alone or inside a digest, and a
//! delivery is recorded as sent only after that happened. The memory is per process: after a
//! restart, held deliveries simply come back and are sent again (possibly a second time, never
//! not at all). Held entries not seen for an hour and delivered marks older than a day are
//! forgotten (the delivery engine retries the delivery in any case).

use super::Alert;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use medway_engine::config::SettingsError;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `rate_limit = { per_minute = 6, burst = 6 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Messages per recipient per minute once the burst is spent; 0 = no limit.
    pub per_minute: u32,
    /// Messages a recipient may get at once (default: `per_minute`).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_minute: 6,
            burst: None,
        }
    }
}

/// Largest `per_minute`: 60 000 (one a millisecond).
const MAX_PER_MINUTE: u32 = 60_000;

impl RateLimit {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.per_minute > MAX_PER_MINUTE {
            return Err(SettingsError::new(format!(
                "rate_limit.per_minute must be at most {MAX_PER_MINUTE}"
            ))
            .key("rate_limit"));
        }
        if self.burst == Some(0) {
            return Err(SettingsError::new("rate_limit.burst must be at least 1")
                .key("rate_limit")
                .hint("leave `burst` out to allow `per_minute` at once"));
        }
        Ok(())
    }

    fn quota(&self) -> Option<Quota> {
        let per_minute = NonZeroU32::new(self.per_minute)?;
        let period = Duration::from_secs(60) / per_minute.get();
        let burst = self.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
        Quota::with_period(period).map(|q| q.allow_burst(burst))
    }
}

/// How an alert reached (or did not reach) one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent alone, or inside a digest (the text says which).
    Sent(String),
    /// Refused for good by the peer (the text says why).
    Refused(String),
}

/// What to do for one (delivery, recipient).
#[derive(Debug)]
pub enum Plan {
    /// Already handled by an earlier attempt or a digest.
    Done(Outcome),
    /// Within the limit and nothing held: send this alert alone.
    Single,
    /// Within the limit and other alerts are held: send them all as one digest.
    Digest(Claim),
    /// Over the limit: held until `wait` has passed.
    Held { wait: Duration, waiting: usize },
    /// This very alert is inside a digest being sent right now.
    InFlight,
}

/// The alerts of one digest: `alerts[0]` is the delivery being sent, then the held ones,
/// oldest first. Hand it back with [`RecipientLimiter::digest_sent`] or
/// [`RecipientLimiter::digest_failed`].
#[derive(Debug)]
pub struct Claim {
    pub recipient: String,
    pub alerts: Vec<(i64, Alert)>,
    /// When the oldest held alert was first held.
    pub since: Instant,
}

struct Held {
    alert: Alert,
    since: Instant,
    seen: Instant,
}

struct Done {
    at: Instant,
    recipients: BTreeMap<String, Outcome>,
}

#[derive(Default)]
struct State {
    /// recipient → delivery id → alert.
    held: HashMap<String, BTreeMap<i64, Held>>,
    /// (delivery id, recipient) inside a digest being sent.
    in_flight: HashSet<(i64, String)>,
    /// delivery id → outcome per recipient, until the delivery reports its result.
    done: HashMap<i64, Done>,
    calls: u64,
}

const FORGET_HELD: Duration = Duration::from_secs(3600);
const FORGET_DONE: Duration = Duration::from_secs(24 * 3600);

/// The limiter and the held / delivered bookkeeping of one destination.
pub struct RecipientLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    max_digest: usize,
    state: Mutex<State>,
}

impl RecipientLimiter {
    /// `max_digest`: the most alerts one digest lists (at least 2).
    pub fn new(limit: RateLimit, max_digest: usize) -> Self {
        Self {
            limiter: limit.quota().map(DefaultKeyedRateLimiter::keyed),
            clock: DefaultClock::default(),
            max_digest: max_digest.max(2),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides what to do for `recipient` of delivery `delivery_id`.
    pub fn plan(&self, delivery_id: i64, recipient: &str, alert: &Alert) -> Plan {
        let now = Instant::now();
        let mut state = self.state();
        state.calls += 1;
        if state.calls.is_multiple_of(64) {
            Self::forget_old(&mut state, now);
            if let Some(limiter) = &self.limiter {
                limiter.retain_recent();
            }
        }
        if let Some(outcome) = state
            .done
            .get(&delivery_id)
            .and_then(|d| d.recipients.get(recipient))
        {
            return Plan::Done(outcome.clone());
        }
        if state
            .in_flight
            .contains(&(delivery_id, recipient.to_string()))
        {
            return Plan::InFlight;
        }
        let Some(limiter) = &self.limiter else {
            return Plan::Single;
        };
        let key = recipient.to_string();
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(self.clock.now());
            let held = state.held.entry(key).or_default();
            held.entry(delivery_id)
                .and_modify(|h| {
                    h.seen = now;
                    h.alert = alert.clone();
                })
                .or_insert(Held {
                    alert: alert.clone(),
                    since: now,
                    seen: now,
                });
            return Plan::Held {
                wait,
                waiting: held.len(),
            };
        }
        let Some(held) = state.held.get_mut(recipient) else {
            return Plan::Single;
        };
        let own = held.remove(&delivery_id);
        if held.is_empty() {
            state.held.remove(recipient);
            return Plan::Single;
        }
        let ids: Vec<i64> = held.keys().copied().take(self.max_digest - 1).collect();
        let mut since = own.map_or(now, |h| h.since);
        let mut alerts = vec![(delivery_id, alert.clone())];
        for id in ids {
            if let Some(h) = held.remove(&id) {
                since = since.min(h.since);
                alerts.push((id, h.alert));
            }
        }
        if held.is_empty() {
            state.held.remove(recipient);
        }
        for (id, _) in &alerts {
            state.in_flight.insert((*id, recipient.to_string()));
        }
        Plan::Digest(Claim {
            recipient: recipient.to_string(),
            alerts,
            since,
        })
    }

    /// Records the outcome of a single send (or a refusal) for one recipient.
    pub fn record(&self, delivery_id: i64, recipient: &str, outcome: Outcome) {
        let mut state = self.state();
        state
            .done
            .entry(delivery_id)
            .or_insert_with(|| Done {
                at: Instant::now(),
                recipients: BTreeMap::new(),
            })
            .recipients
            .insert(recipient.to_string(), outcome);
    }

    /// The digest was accepted: every alert in it is delivered to its recipient.
    pub fn digest_sent(&self, claim: Claim, reference: &str) {
        let mut state = self.state();
        let now = Instant::now();
        for (id, _) in &claim.alerts {
            state.in_flight.remove(&(*id, claim.recipient.clone()));
            state
                .done
                .entry(*id)
                .or_insert_with(|| Done {
                    at: now,
                    recipients: BTreeMap::new(),
                })
                .recipients
                .insert(
                    claim.recipient.clone(),
                    Outcome::Sent(format!("in digest {reference}")),
                );
        }
    }

    /// The digest failed: its alerts (but the one being sent, which the caller retries) are
    /// held again.
    pub fn digest_failed(&self, claim: Claim) {
        let mut state = self.state();
        let now = Instant::now();
        let recipient = claim.recipient;
        for (index, (id, alert)) in claim.alerts.into_iter().enumerate() {
            state.in_flight.remove(&(id, recipient.clone()));
            if index == 0 {
                continue;
            }
            state
                .held
                .entry(recipient.clone())
                .or_default()
                .entry(id)
                .or_insert(Held {
                    alert,
                    since: claim.since,
                    seen: now,
                });
        }
    }

    /// The delivery reported its result: forget its marks.
    pub fn finished(&self, delivery_id: i64) {
        self.state().done.remove(&delivery_id);
    }

    /// The outcomes recorded so far for a delivery.
    pub fn outcomes(&self, delivery_id: i64) -> BTreeMap<String, Outcome> {
        self.state()
            .done
            .get(&delivery_id)
            .map(|d| d.recipients.clone())
            .unwrap_or_default()
    }

    fn forget_old(state: &mut State, now: Instant) {
        state.held.retain(|_, held| {
            held.retain(|_, h| now.duration_since(h.seen) < FORGET_HELD);
            !held.is_empty()
        });
        state
            .done
            .retain(|_, d| now.duration_since(d.at) < FORGET_DONE);
    }
}

/// `3 s`, `2 min`, `1 h 5 min` — for "N alerts in the last …".
pub fn span(duration: Duration) -> String {
    let secs = duration.as_secs().max(1);
    if secs < 120 {
        format!("{secs} s")
    } else if secs < 7200 {
        format!("{} min", secs.div_ceil(60))
    } else {
        format!("{} h {} min", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::alert::parse;

    fn alert(id: i64) -> Alert {
        let doc = format!(r#"{{"alert_id": {id}, "severity": "urgent"}}"#);
        Alert::new(parse(doc.as_bytes()).unwrap())
    }

    fn limiter(per_minute: u32, burst: u32) -> RecipientLimiter {
        RecipientLimiter::new(
            RateLimit {
                per_minute,
                burst: Some(burst),
            },
            50,
        )
    }

    #[test]
    fn over_the_limit_alerts_are_held_then_sent_as_one_digest() {
        let limiter = limiter(600, 2); // one every 100 ms after a burst of 2
        assert!(matches!(limiter.plan(1, "a@x", &alert(1)), Plan::Single));
        assert!(matches!(limiter.plan(2, "a@x", &alert(2)), Plan::Single));
        for id in 3..=5 {
            match limiter.plan(id, "a@x", &alert(id)) {
                Plan::Held { wait, waiting } => {
                    assert!(wait <= Duration::from_millis(100), "{wait:?}");
                    assert_eq!(waiting as i64, id - 2);
                }
                other => panic!("{other:?}"),
            }
        }
        // Another recipient is not affected.
        assert!(matches!(limiter.plan(3, "b@x", &alert(3)), Plan::Single));
        std::thread::sleep(Duration::from_millis(120));
        let Plan::Digest(claim) = limiter.plan(4, "a@x", &alert(4)) else {
            panic!("expected a digest");
        };
        let ids: Vec<i64> = claim.alerts.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [4, 3, 5]);
        // Held deliveries coming back while the digest is in flight wait.
        assert!(matches!(limiter.plan(3, "a@x", &alert(3)), Plan::InFlight));
        limiter.digest_sent(claim, "<d1>");
        for id in [3, 5] {
            match limiter.plan(id, "a@x", &alert(id)) {
                Plan::Done(Outcome::Sent(how)) => assert_eq!(how, "in digest <d1>"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_failed_digest_holds_its_alerts_again() {
        let limiter = limiter(600, 1);
        assert!(matches!(limiter.plan(1, "a@x", &alert(1)), Plan::Single));
        assert!(matches!(
            limiter.plan(2, "a@x", &alert(2)),
            Plan::Held { .. }
        ));
        assert!(matches!(
            limiter.plan(3, "a@x", &alert(3)),
            Plan::Held { .. }
        ));
        std::thread::sleep(Duration::from_millis(120));
        let Plan::Digest(claim) = limiter.plan(2, "a@x", &alert(2)) else {
            panic!("expected a digest");
        };
        limiter.digest_failed(claim);
        std::thread::sleep(Duration::from_millis(120));
        let Plan::Digest(claim) = limiter.plan(2, "a@x", &alert(2)) else {
            panic!("expected a digest again");
        };
        assert_eq!(claim.alerts.len(), 2);
    }

    #[test]
    fn digests_are_bounded_and_the_rest_stays_held() {
        let limiter = RecipientLimiter::new(
            RateLimit {
                per_minute: 600,
                burst: Some(1),
            },
            3,
        );
        assert!(matches!(limiter.plan(1, "a@x", &alert(1)), Plan::Single));
        for id in 2..=6 {
            assert!(matches!(
                limiter.plan(id, "a@x", &alert(id)),
                Plan::Held { .. }
            ));
        }
        std::thread::sleep(Duration::from_millis(120));
        let Plan::Digest(claim) = limiter.plan(7, "a@x", &alert(7)) else {
            panic!("expected a digest");
        };
        assert_eq!(claim.alerts.len(), 3);
        limiter.digest_sent(claim, "<d>");
        match limiter.plan(6, "a@x", &alert(6)) {
            Plan::Held { waiting, .. } => assert_eq!(waiting, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let limiter = limiter(0, 1);
        for id in 0..100 {
            assert!(matches!(limiter.plan(id, "a@x", &alert(id)), Plan::Single));
        }
    }

    #[test]
    fn recorded_outcomes_are_remembered_until_finished() {
        let limiter = limiter(0, 1);
        limiter.record(1, "a@x", Outcome::Refused("550".into()));
        assert!(matches!(
            limiter.plan(1, "a@x", &alert(1)),
            Plan::Done(Outcome::Refused(_))
        ));
        limiter.finished(1);
        assert!(matches!(limiter.plan(1, "a@x", &alert(1)), Plan::Single));
    }

    #[test]
    fn settings_bounds() {
        assert!(
            RateLimit {
                per_minute: 6,
                burst: Some(0)
            }
            .validate()
            .is_err()
        );
        assert!(
            RateLimit {
                per_minute: 60_001,
                burst: None
            }
            .validate()
            .is_err()
        );
        assert_eq!(span(Duration::from_secs(30)), "30 s");
        assert_eq!(span(Duration::from_secs(150)), "3 min");
    }
}
