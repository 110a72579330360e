//! SIRS (ACCP/SCCM 1992): temperature > 38 or < 36 °C; heart rate > 90; RR > 20 or PaCO₂ < 32
//! mmHg; WBC > 12 or < 4 ×10³/µL or bands > 10 % — one point per criterion, met at ≥ 2.
//!
//! All operators are strict (REFERENCE.md §1.2): exactly 38.0, 36.0, 90, 20, 32, 12.0, 4.0 and 10
//! do not count. Vitals are the newest within `vitals_window` (6 h), PaCO₂/WBC/bands the newest
//! within `labs_window` (24 h). A two-input criterion is met if either present input meets it,
//! 0 if some input is present and none meets it, and missing only when both are absent. Never
//! mixes in the 2001 variant (temp > 38.3, glucose, mental state).

use serde_json::{Value, json};

use super::observation::{Observation, VitalKind};
use super::scores::{Param, params_json, total};
use super::settings::ScoringSettings;
use super::window::PatientWindow;

/// A SIRS result.
#[derive(Debug, Clone, PartialEq)]
pub struct SirsScore {
    /// Temperature criterion.
    pub temp: Param,
    /// Heart-rate criterion.
    pub hr: Param,
    /// Respiration (RR or PaCO₂).
    pub resp: Param,
    /// White cells (WBC or bands).
    pub wbc: Param,
    /// Criteria met among the present ones (0–4).
    pub total: u8,
    /// No criterion missing.
    pub complete: bool,
    /// Some input was preliminary.
    pub preliminary: bool,
}

impl SirsScore {
    /// SIRS: ≥ 2 criteria (already definitive when incomplete).
    pub fn met(&self) -> bool {
        self.total >= 2
    }

    /// DECISIONS.md shape plus `met`, `preliminary`, `inputs`.
    pub fn to_json(&self) -> Value {
        let mut m = params_json(&[
            ("temp", &self.temp),
            ("hr", &self.hr),
            ("resp", &self.resp),
            ("wbc", &self.wbc),
        ]);
        m.insert("total".into(), json!(self.total));
        m.insert("complete".into(), json!(self.complete));
        m.insert("met".into(), json!(self.met()));
        m.insert("preliminary".into(), json!(self.preliminary));
        Value::Object(m)
    }
}

/// An optional input and the test that meets the criterion.
type Criterion<'a> = (Option<&'a Observation>, fn(f64) -> bool);

/// A criterion over several optional inputs, each with its own test.
fn either(inputs: &[Criterion<'_>]) -> Param {
    let present: Vec<(&Observation, bool)> = inputs
        .iter()
        .filter_map(|(o, test)| o.map(|o| (o, test(o.value))))
        .collect();
    if present.is_empty() {
        return Param::missing();
    }
    let met = present.iter().any(|(_, m)| *m);
    let used: Vec<&Observation> = present.iter().map(|(o, _)| *o).collect();
    Param::scored(u8::from(met), &used)
}

/// SIRS for `window` as of `at`. The operators are written as the published criteria are.
#[allow(clippy::manual_range_contains)]
pub fn score(window: &PatientWindow, at: i64, settings: &ScoringSettings) -> SirsScore {
    let vital = |kind| window.latest(kind, at, settings.vitals_window, settings);
    let lab = |kind| window.latest(kind, at, settings.labs_window, settings);
    let temp = either(&[(vital(VitalKind::Temperature), |t| t > 38.0 || t < 36.0)]);
    let hr = either(&[(vital(VitalKind::HeartRate), |h| h > 90.0)]);
    let resp = either(&[
        (vital(VitalKind::RespiratoryRate), |r| r > 20.0),
        (lab(VitalKind::PaCO2), |p| p < 32.0),
    ]);
    let wbc = either(&[
        (lab(VitalKind::Wbc), |w| w > 12.0 || w < 4.0),
        (lab(VitalKind::Bands), |b| b > 10.0),
    ]);
    let (total, complete) = total(&[&temp, &hr, &resp, &wbc]);
    let preliminary = [&temp, &hr, &resp, &wbc].iter().any(|p| p.is_preliminary());
    SirsScore {
        temp,
        hr,
        resp,
        wbc,
        total,
        complete,
        preliminary,
    }
}
