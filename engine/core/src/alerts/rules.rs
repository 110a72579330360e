//! Which alerts a score set raises, and whether an existing alert suppresses it.

use crate::store::AlertRow;
use serde::Deserialize;

/// What the rules need to know about one score set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreSummary {
    pub news2_total: Option<i64>,
    /// Some NEWS2 parameter scored 3 (the "red score").
    pub news2_single_three: bool,
    pub news2_band: Option<String>,
    pub news2_complete: bool,
    pub qsofa_total: Option<i64>,
    pub qsofa_complete: bool,
    pub sirs_total: Option<i64>,
    pub sirs_complete: bool,
    /// SIRS used a WBC value (the informational rule needs one).
    pub wbc_present: bool,
}

/// Thresholds and the suppression window, per scoring destination.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRules {
    pub news2_emergency: i64,
    pub news2_urgent: i64,
    pub news2_single_three_urgent: bool,
    pub qsofa_positive: i64,
    /// 0 disables the informational SIRS alert.
    pub sirs_informational: i64,
    /// One alert per patient × rule within this window, unless it gets worse.
    pub suppression_minutes: i64,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            news2_emergency: 7,
            news2_urgent: 5,
            news2_single_three_urgent: true,
            qsofa_positive: 2,
            sirs_informational: 2,
            suppression_minutes: 240,
        }
    }
}

/// An alert the rules want raised.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// `news2`, `qsofa` or `sirs`: the dedup key with the patient.
    pub rule: &'static str,
    /// `emergency`, `urgent`, `sepsis` or `info`.
    pub severity: &'static str,
    /// Higher is worse; compared only within one rule.
    pub rank: i64,
    /// Why, in words a clinician reads (no identifiers).
    pub reasons: Vec<String>,
}

impl AlertRules {
    /// The alerts a score set raises, worst first.
    pub fn evaluate(&self, s: &ScoreSummary) -> Vec<Candidate> {
        let mut out = Vec::new();
        let partial = |complete: bool| {
            if complete {
                ""
            } else {
                " (incomplete: more can only add)"
            }
        };
        if let Some(total) = s.news2_total {
            if total >= self.news2_emergency {
                out.push(Candidate {
                    rule: "news2",
                    severity: "emergency",
                    rank: 3,
                    reasons: vec![format!(
                        "NEWS2 {total} ≥ {}{}",
                        self.news2_emergency,
                        partial(s.news2_complete)
                    )],
                });
            } else if total >= self.news2_urgent
                || (self.news2_single_three_urgent && s.news2_single_three)
            {
                let mut reasons = Vec::new();
                if total >= self.news2_urgent {
                    reasons.push(format!(
                        "NEWS2 {total} ≥ {}{}",
                        self.news2_urgent,
                        partial(s.news2_complete)
                    ));
                }
                if s.news2_single_three {
                    reasons.push("a single NEWS2 parameter scores 3".to_string());
                }
                out.push(Candidate {
                    rule: "news2",
                    severity: "urgent",
                    rank: 2,
                    reasons,
                });
            }
        }
        if let Some(total) = s.qsofa_total
            && total >= self.qsofa_positive
        {
            out.push(Candidate {
                rule: "qsofa",
                severity: "sepsis",
                rank: 2,
                reasons: vec![format!(
                    "qSOFA {total} ≥ {}: sepsis screen positive{}",
                    self.qsofa_positive,
                    partial(s.qsofa_complete)
                )],
            });
        }
        if self.sirs_informational > 0
            && s.wbc_present
            && let Some(total) = s.sirs_total
            && total >= self.sirs_informational
        {
            out.push(Candidate {
                rule: "sirs",
                severity: "info",
                rank: 1,
                reasons: vec![format!(
                    "SIRS {total} ≥ {}{}",
                    self.sirs_informational,
                    partial(s.sirs_complete)
                )],
            });
        }
        out
    }
}

/// What to do with a candidate given the newest alert of the same patient × rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new alert.
    Raise,
    /// Worse than the alert in force: a new alert at once, naming the previous severity.
    Escalate { from: String },
    /// Covered by the alert in force (same or lower band within its window, or acknowledged).
    Suppress,
}

/// Dedup and escalation. `now` is the score's observation time (UTC micros).
pub fn decide(candidate: &Candidate, latest: Option<&AlertRow>, now: i64) -> Decision {
    let Some(latest) = latest else {
        return Decision::Raise;
    };
    if latest.state == "resolved" {
        return Decision::Raise;
    }
    if candidate.rank > latest.rank {
        return Decision::Escalate {
            from: latest.severity.clone(),
        };
    }
    // Acknowledged: a person is on it; only a worse band speaks again.
    if latest.state == "acknowledged" {
        return Decision::Suppress;
    }
    if now < latest.suppress_until {
        Decision::Suppress
    } else {
        Decision::Raise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(news2: i64, three: bool, qsofa: i64, sirs: i64, wbc: bool) -> ScoreSummary {
        ScoreSummary {
            news2_total: Some(news2),
            news2_single_three: three,
            news2_band: None,
            news2_complete: true,
            qsofa_total: Some(qsofa),
            qsofa_complete: true,
            sirs_total: Some(sirs),
            sirs_complete: true,
            wbc_present: wbc,
        }
    }

    fn severities(c: &[Candidate]) -> Vec<(&str, &str)> {
        c.iter().map(|c| (c.rule, c.severity)).collect()
    }

    #[test]
    fn thresholds_match_the_decisions() {
        let rules = AlertRules::default();
        assert!(rules.evaluate(&summary(4, false, 1, 1, true)).is_empty());
        assert_eq!(
            severities(&rules.evaluate(&summary(4, true, 0, 0, false))),
            [("news2", "urgent")]
        );
        assert_eq!(
            severities(&rules.evaluate(&summary(5, false, 0, 0, false))),
            [("news2", "urgent")]
        );
        assert_eq!(
            severities(&rules.evaluate(&summary(6, false, 0, 0, false))),
            [("news2", "urgent")]
        );
        assert_eq!(
            severities(&rules.evaluate(&summary(7, true, 2, 2, true))),
            [
                ("news2", "emergency"),
                ("qsofa", "sepsis"),
                ("sirs", "info")
            ]
        );
        // SIRS without a WBC value is not an alert.
        assert!(rules.evaluate(&summary(0, false, 0, 3, false)).is_empty());
    }

    #[test]
    fn partial_totals_that_cross_a_threshold_fire() {
        let mut s = summary(7, false, 0, 0, false);
        s.news2_complete = false;
        let c = AlertRules::default().evaluate(&s);
        assert_eq!(c[0].severity, "emergency");
        assert!(c[0].reasons[0].contains("incomplete"));
    }

    fn existing(state: &str, rank: i64, until: i64) -> AlertRow {
        AlertRow {
            id: 1,
            patient: "P".into(),
            rule: "news2".into(),
            severity: if rank == 3 { "emergency" } else { "urgent" }.into(),
            rank,
            state: state.into(),
            title: String::new(),
            detail: serde_json::Value::Null,
            score_id: None,
            raised_at: 0,
            suppress_until: until,
            updated_at: 0,
            escalated_from: None,
            acknowledged_by: None,
            acknowledged_at: None,
            resolved_by: None,
            resolved_at: None,
            dispatched_message_id: None,
        }
    }

    #[test]
    fn one_alert_per_window_escalation_at_once_and_ack_stops_repeats() {
        let urgent = Candidate {
            rule: "news2",
            severity: "urgent",
            rank: 2,
            reasons: vec![],
        };
        let emergency = Candidate {
            rule: "news2",
            severity: "emergency",
            rank: 3,
            reasons: vec![],
        };
        assert_eq!(decide(&urgent, None, 10), Decision::Raise);
        let open = existing("open", 2, 100);
        assert_eq!(decide(&urgent, Some(&open), 50), Decision::Suppress);
        assert_eq!(
            decide(&emergency, Some(&open), 50),
            Decision::Escalate {
                from: "urgent".into()
            }
        );
        assert_eq!(
            decide(&urgent, Some(&open), 150),
            Decision::Raise,
            "a new window"
        );
        let acked = existing("acknowledged", 2, 100);
        assert_eq!(decide(&urgent, Some(&acked), 150), Decision::Suppress);
        assert_eq!(
            decide(&emergency, Some(&acked), 150),
            Decision::Escalate {
                from: "urgent".into()
            }
        );
        assert_eq!(
            decide(&urgent, Some(&existing("resolved", 2, 100)), 50),
            Decision::Raise
        );
    }
}
