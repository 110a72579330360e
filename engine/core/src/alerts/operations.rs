//! Operational alerts: the engine watching itself, on the same alert machinery as clinical
//! alerts (stored, handed to the alert channel, dispatched with retries).
//!
//! Each check evaluates a set of conditions — deliveries errored since the last check, a
//! destination's queue over its depth limit, a listener that stopped, a channel silent for too
//! long, a channel's error rate over its limit — and turns each into a started/resolved pair:
//! one alert when a condition starts (rule = the condition's key, no patient), and its
//! resolution when it stops. A condition that stays true raises nothing more.

use serde::Deserialize;

/// `[operations]` in `medway.toml`. No `alert_channel`, no operational alerts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OperationsSettings {
    /// The channel operational alerts are handed to (e.g. the `alerts` channel).
    pub alert_channel: Option<String>,
    /// How often the conditions are checked.
    pub check_secs: u64,
    /// Queued + retrying deliveries of one destination above which it is an alert.
    pub queue_depth: i64,
    /// A channel with no message for this long is an alert (0: off).
    pub silent_channel_minutes: u64,
    /// Percentage of messages stored as `error` over the last check window (0: off).
    pub error_rate_percent: u32,
}

impl Default for OperationsSettings {
    fn default() -> Self {
        Self {
            alert_channel: None,
            check_secs: 30,
            queue_depth: 1000,
            silent_channel_minutes: 0,
            error_rate_percent: 0,
        }
    }
}

/// One condition found true in a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Stable key: the alert's rule, e.g. `errored:oru-vitals/bus`.
    pub key: String,
    /// What a person reads (no patient data).
    pub title: String,
    pub reasons: Vec<String>,
}

/// What to do after a check, given which conditions are open (started and not resolved).
pub fn transitions<'a>(
    found: &'a [Condition],
    open: &'a [String],
) -> (Vec<&'a Condition>, Vec<&'a String>) {
    let started = found.iter().filter(|c| !open.contains(&c.key)).collect();
    let resolved = open
        .iter()
        .filter(|key| !found.iter().any(|c| &c.key == *key))
        .collect();
    (started, resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str) -> Condition {
        Condition {
            key: key.into(),
            title: key.into(),
            reasons: vec![],
        }
    }

    #[test]
    fn started_and_resolved_pairs() {
        let found = [c("queue:a/b"), c("errored:a/c")];
        let open = vec!["queue:a/b".to_string(), "silent:x".to_string()];
        let (started, resolved) = transitions(&found, &open);
        assert_eq!(started, vec![&found[1]], "only the new condition starts");
        assert_eq!(resolved, vec![&open[1]], "the one no longer true resolves");
    }
}
