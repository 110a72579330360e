//! qSOFA (Sepsis-3): RR ≥ 22, systolic ≤ 100, altered mentation — one point each, positive at ≥ 2.
//!
//! Operators are the published ≥ and ≤ (not the strict copies some sites print; REFERENCE.md
//! §1.1). Each input is the newest usable value within `vitals_window` (6 h) of the evaluation
//! time. Mentation follows [`QsofaMentation`]: by default GCS < 15 or ACVPU other than A (either
//! present decides; both absent → missing); `gcs_le_13` uses GCS ≤ 13 only. A missing input is
//! `Missing`, the total partial and `complete = false` — never a silent 0.

use serde_json::{Value, json};

use super::observation::VitalKind;
use super::scores::{Param, params_json, total};
use super::settings::{QsofaMentation, ScoringSettings};
use super::window::PatientWindow;

/// A qSOFA result.
#[derive(Debug, Clone, PartialEq)]
pub struct QsofaScore {
    /// RR ≥ 22.
    pub rr: Param,
    /// Systolic ≤ 100.
    pub sbp: Param,
    /// Altered mentation.
    pub ment: Param,
    /// Sum of present points (0–3).
    pub total: u8,
    /// No input missing.
    pub complete: bool,
    /// The mentation rule applied.
    pub rule: QsofaMentation,
    /// Some input was preliminary.
    pub preliminary: bool,
}

impl QsofaScore {
    /// Sepsis screen positive: total ≥ 2 (already definitive when incomplete).
    pub fn positive(&self) -> bool {
        self.total >= 2
    }

    /// DECISIONS.md shape plus `positive`, `rule`, `preliminary`, `inputs`.
    pub fn to_json(&self) -> Value {
        let mut m = params_json(&[("rr", &self.rr), ("sbp", &self.sbp), ("ment", &self.ment)]);
        m.insert("total".into(), json!(self.total));
        m.insert("complete".into(), json!(self.complete));
        m.insert("positive".into(), json!(self.positive()));
        m.insert("rule".into(), json!(self.rule.as_str()));
        m.insert("preliminary".into(), json!(self.preliminary));
        Value::Object(m)
    }
}

/// qSOFA for `window` as of `at`.
pub fn score(window: &PatientWindow, at: i64, settings: &ScoringSettings) -> QsofaScore {
    let latest = |kind| window.latest(kind, at, settings.vitals_window, settings);
    let rr = match latest(VitalKind::RespiratoryRate) {
        Some(o) => Param::scored(u8::from(o.value >= 22.0), &[o]),
        None => Param::missing(),
    };
    let sbp = match latest(VitalKind::Systolic) {
        Some(o) => Param::scored(u8::from(o.value <= 100.0), &[o]),
        None => Param::missing(),
    };
    let gcs = latest(VitalKind::Gcs);
    let ment = match settings.qsofa_mentation {
        QsofaMentation::GcsLe13 => match gcs {
            Some(g) => Param::scored(u8::from(g.value <= 13.0), &[g]),
            None => Param::missing(),
        },
        QsofaMentation::GcsLt15OrAcvpu => {
            let acvpu = latest(VitalKind::Acvpu);
            let gcs_altered = gcs.map(|g| g.value < 15.0);
            let acvpu_altered = acvpu.map(|a| !super::news2::is_alert(a));
            let used: Vec<_> = [gcs, acvpu].into_iter().flatten().collect();
            match (gcs_altered, acvpu_altered) {
                (None, None) => Param::missing(),
                (g, a) => Param::scored(u8::from(g == Some(true) || a == Some(true)), &used),
            }
        }
    };
    let (total, complete) = total(&[&rr, &sbp, &ment]);
    let preliminary = [&rr, &sbp, &ment].iter().any(|p| p.is_preliminary());
    QsofaScore {
        rr,
        sbp,
        ment,
        total,
        complete,
        rule: settings.qsofa_mentation,
        preliminary,
    }
}
