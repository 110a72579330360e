//! NEWS2 (RCP 2017, Chart 1) from one observation set.
//!
//! Bands are ordered `≤ upper-bound` checks exactly as printed (REFERENCE.md §1.3, §1.7 rule 1).
//! The set is every NEWS2 input within `news2_set_window` (15 min) of the newest one; the newest
//! one and every member must be within `vitals_window` (6 h) of the evaluation time; per
//! parameter the newest value of the set is used. Oxygen adds 2 on both scales; scale 2 changes only the SpO₂ row; new
//! confusion (C), V, P, U score 3. Missing parameters are `Missing` and the total is partial
//! (`complete = false`); the band is then `incomplete` unless the partial total is already ≥ 7
//! (`high` cannot get lower). NEWS2 is skipped — not scored, and says why — under 16 years
//! (PID-7) or when pregnancy is flagged. Never infers the scale from SpO₂ values.

use serde_json::{Value, json};

use super::observation::{Observation, VitalKind};
use super::scores::{Param, Points, params_json, total};
use super::settings::{O2WhenAbsent, ScoringSettings, micros};
use super::time::age_years;
use super::window::{PatientFlags, PatientWindow};

/// NEWS2 risk band (Chart 2/4), or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum News2Band {
    /// 0–4 without a single 3.
    Low,
    /// A 3 in any single parameter (total ≤ 4).
    LowMedium,
    /// 5–6.
    Medium,
    /// ≥ 7.
    High,
    /// Parameters missing and the partial total does not settle the band.
    Incomplete,
    /// NEWS2 not applicable (see [`News2Skip`]).
    NotApplicable,
}

impl News2Band {
    /// The DECISIONS.md spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            News2Band::Low => "low",
            News2Band::LowMedium => "low-medium",
            News2Band::Medium => "medium",
            News2Band::High => "high",
            News2Band::Incomplete => "incomplete",
            News2Band::NotApplicable => "not-applicable",
        }
    }
}

/// Why NEWS2 was not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News2Skip {
    /// PID-7 says younger than 16 at the evaluation time.
    AgeUnder16,
    /// Pregnancy flagged for the patient.
    Pregnancy,
}

impl News2Skip {
    /// Shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            News2Skip::AgeUnder16 => "NEWS2 is not used under 16 years (PID-7)",
            News2Skip::Pregnancy => "NEWS2 is not used in pregnancy (flagged)",
        }
    }
}

/// A NEWS2 result.
#[derive(Debug, Clone, PartialEq)]
pub struct News2Score {
    /// Respiration rate.
    pub rr: Param,
    /// SpO₂ (scale 1 or 2, see `scale`).
    pub spo2: Param,
    /// Air or oxygen.
    pub o2: Param,
    /// Systolic BP.
    pub sbp: Param,
    /// Pulse.
    pub hr: Param,
    /// Consciousness (ACVPU).
    pub cns: Param,
    /// Temperature.
    pub temp: Param,
    /// Sum of the present points.
    pub total: u8,
    /// No parameter missing.
    pub complete: bool,
    /// The band (see the module doc for incomplete scores).
    pub band: News2Band,
    /// The band the present points already guarantee (a lower bound when incomplete).
    pub min_band: News2Band,
    /// Any single parameter scored 3.
    pub any_three: bool,
    /// SpO₂ scale used (1 or 2).
    pub scale: u8,
    /// O₂ scored as air because the set had SpO₂ but no air/oxygen observation.
    pub o2_assumed: bool,
    /// Some input was preliminary.
    pub preliminary: bool,
    /// Time of the set's newest value, if any.
    pub set_at: Option<i64>,
    /// Set when NEWS2 was not computed.
    pub skipped: Option<News2Skip>,
}

/// RR: ≤8 → 3, 9–11 → 1, 12–20 → 0, 21–24 → 2, ≥25 → 3.
pub fn rr_points(v: f64) -> u8 {
    if v <= 8.0 {
        3
    } else if v <= 11.0 {
        1
    } else if v <= 20.0 {
        0
    } else if v <= 24.0 {
        2
    } else {
        3
    }
}

/// SpO₂ scale 1: ≤91 → 3, 92–93 → 2, 94–95 → 1, ≥96 → 0.
pub fn spo2_scale1_points(v: f64) -> u8 {
    if v <= 91.0 {
        3
    } else if v <= 93.0 {
        2
    } else if v <= 95.0 {
        1
    } else {
        0
    }
}

/// SpO₂ scale 2: ≤83 → 3, 84–85 → 2, 86–87 → 1, 88–92 → 0; ≥93 on air → 0; on O₂ 93–94 → 1,
/// 95–96 → 2, ≥97 → 3. `on_oxygen = None` (unknown) above 92 → `None` (missing).
pub fn spo2_scale2_points(v: f64, on_oxygen: Option<bool>) -> Option<u8> {
    if v <= 83.0 {
        Some(3)
    } else if v <= 85.0 {
        Some(2)
    } else if v <= 87.0 {
        Some(1)
    } else if v <= 92.0 {
        Some(0)
    } else {
        match on_oxygen? {
            false => Some(0),
            true if v <= 94.0 => Some(1),
            true if v <= 96.0 => Some(2),
            true => Some(3),
        }
    }
}

/// Systolic: ≤90 → 3, 91–100 → 2, 101–110 → 1, 111–219 → 0, ≥220 → 3.
pub fn sbp_points(v: f64) -> u8 {
    if v <= 90.0 {
        3
    } else if v <= 100.0 {
        2
    } else if v <= 110.0 {
        1
    } else if v <= 219.0 {
        0
    } else {
        3
    }
}

/// Pulse: ≤40 → 3, 41–50 → 1, 51–90 → 0, 91–110 → 1, 111–130 → 2, ≥131 → 3.
pub fn hr_points(v: f64) -> u8 {
    if v <= 40.0 {
        3
    } else if v <= 50.0 {
        1
    } else if v <= 90.0 {
        0
    } else if v <= 110.0 {
        1
    } else if v <= 130.0 {
        2
    } else {
        3
    }
}

/// Temperature °C (already rounded when converted): ≤35.0 → 3, 35.1–36.0 → 1, 36.1–38.0 → 0,
/// 38.1–39.0 → 1, ≥39.1 → 2.
pub fn temp_points(v: f64) -> u8 {
    if v <= 35.0 {
        3
    } else if v <= 36.0 {
        1
    } else if v <= 38.0 {
        0
    } else if v <= 39.0 {
        1
    } else {
        2
    }
}

/// ACVPU: A → 0; C (new confusion), V, P, U → 3.
pub fn cns_points(letter: &str) -> u8 {
    if letter == "A" { 0 } else { 3 }
}

/// Whether an ACVPU observation says Alert (its letter; the rank 0 when the letter was lost).
pub(crate) fn is_alert(o: &Observation) -> bool {
    match o.text.as_deref() {
        Some(letter) => letter == "A",
        None => o.value == 0.0,
    }
}

/// The band the points guarantee: ≥7 high, 5–6 medium, a single 3 low-medium, else low.
pub fn band_for(total: u8, any_three: bool) -> News2Band {
    if total >= 7 {
        News2Band::High
    } else if total >= 5 {
        News2Band::Medium
    } else if any_three {
        News2Band::LowMedium
    } else {
        News2Band::Low
    }
}

const SET_KINDS: &[VitalKind] = &[
    VitalKind::RespiratoryRate,
    VitalKind::SpO2,
    VitalKind::OxygenFlow,
    VitalKind::Fio2,
    VitalKind::OnOxygen,
    VitalKind::Systolic,
    VitalKind::HeartRate,
    VitalKind::Acvpu,
    VitalKind::Temperature,
];

const O2_KINDS: &[VitalKind] = &[VitalKind::OxygenFlow, VitalKind::Fio2, VitalKind::OnOxygen];

fn says_oxygen(o: &Observation) -> bool {
    match o.kind {
        VitalKind::OxygenFlow => o.value > 0.0,
        VitalKind::Fio2 => o.value > 0.21,
        _ => o.value >= 1.0,
    }
}

fn skipped_score(skip: News2Skip, scale: u8) -> News2Score {
    let m = Param::missing;
    News2Score {
        rr: m(),
        spo2: m(),
        o2: m(),
        sbp: m(),
        hr: m(),
        cns: m(),
        temp: m(),
        total: 0,
        complete: false,
        band: News2Band::NotApplicable,
        min_band: News2Band::NotApplicable,
        any_three: false,
        scale,
        o2_assumed: false,
        preliminary: false,
        set_at: None,
        skipped: Some(skip),
    }
}

/// NEWS2 for `window` as of `at`.
pub fn score(
    window: &PatientWindow,
    at: i64,
    settings: &ScoringSettings,
    flags: &PatientFlags,
) -> News2Score {
    let scale = window.spo2_scale(at, settings, flags);
    if flags.pregnant {
        return skipped_score(News2Skip::Pregnancy, scale);
    }
    let zone = &settings.default_zone;
    if let Some(age) = window.birth_date().and_then(|b| age_years(b, at, zone))
        && age < i32::from(settings.news2_min_age_years)
    {
        return skipped_score(News2Skip::AgeUnder16, scale);
    }
    // The set: the newest NEWS2 input within the vitals window, and everything within
    // `news2_set_window` before it.
    let set_at = SET_KINDS
        .iter()
        .filter_map(|k| window.latest(*k, at, settings.vitals_window, settings))
        .map(|o| o.observed_at)
        .max();
    // Members are also never older than the vitals window (stale values are not used).
    let stale_before = at.saturating_sub(micros(settings.vitals_window));
    let set: Vec<&Observation> = match set_at {
        Some(t) => window.select(
            SET_KINDS,
            t.saturating_sub(micros(settings.news2_set_window))
                .max(stale_before),
            t,
            settings,
        ),
        None => Vec::new(),
    };
    let newest = |kind: VitalKind| set.iter().copied().find(|o| o.kind == kind);

    let number = |kind, f: fn(f64) -> u8| match newest(kind) {
        Some(o) => Param::scored(f(o.value), &[o]),
        None => Param::missing(),
    };
    let rr = number(VitalKind::RespiratoryRate, rr_points);
    let sbp = number(VitalKind::Systolic, sbp_points);
    let hr = number(VitalKind::HeartRate, hr_points);
    let temp = number(VitalKind::Temperature, temp_points);
    let cns = match newest(VitalKind::Acvpu) {
        Some(o) => Param::scored(if is_alert(o) { 0 } else { 3 }, &[o]),
        None => Param::missing(),
    };

    // Air or oxygen: the newest O₂ observations of the set; at one time, oxygen wins.
    let o2_obs: Vec<&Observation> = {
        let newest_t = set
            .iter()
            .find(|o| O2_KINDS.contains(&o.kind))
            .map(|o| o.observed_at);
        set.iter()
            .copied()
            .filter(|o| O2_KINDS.contains(&o.kind) && Some(o.observed_at) == newest_t)
            .collect()
    };
    let spo2_obs = newest(VitalKind::SpO2);
    let mut o2_assumed = false;
    let (o2, on_oxygen) = if o2_obs.is_empty() {
        match (spo2_obs, settings.o2_when_absent) {
            (Some(_), O2WhenAbsent::AssumeAir) => {
                o2_assumed = true;
                (
                    Param {
                        points: Points::Value(0),
                        inputs: Vec::new(),
                    },
                    Some(false),
                )
            }
            _ => (Param::missing(), None),
        }
    } else {
        let on = o2_obs.iter().any(|o| says_oxygen(o));
        let used: Vec<&Observation> = o2_obs
            .iter()
            .copied()
            .filter(|o| says_oxygen(o) == on)
            .collect();
        (Param::scored(if on { 2 } else { 0 }, &used), Some(on))
    };
    let spo2 = match spo2_obs {
        None => Param::missing(),
        Some(o) if scale == 2 => match spo2_scale2_points(o.value, on_oxygen) {
            Some(p) => Param::scored(p, &[o]),
            None => Param::missing(),
        },
        Some(o) => Param::scored(spo2_scale1_points(o.value), &[o]),
    };

    let params = [&rr, &spo2, &o2, &sbp, &hr, &cns, &temp];
    let (total, complete) = total(&params);
    let any_three = params.iter().any(|p| p.points == Points::Value(3));
    let preliminary = params.iter().any(|p| p.is_preliminary());
    let min_band = band_for(total, any_three);
    let band = if complete || min_band == News2Band::High {
        min_band
    } else {
        News2Band::Incomplete
    };
    News2Score {
        rr,
        spo2,
        o2,
        sbp,
        hr,
        cns,
        temp,
        total,
        complete,
        band,
        min_band,
        any_three,
        scale,
        o2_assumed,
        preliminary,
        set_at,
        skipped: None,
    }
}

impl News2Score {
    /// DECISIONS.md shape plus `min_band`, `scale`, `o2_assumed`, `preliminary`, `inputs`,
    /// and `skipped` when not computed.
    pub fn to_json(&self) -> Value {
        let mut m = params_json(&[
            ("rr", &self.rr),
            ("spo2", &self.spo2),
            ("o2", &self.o2),
            ("sbp", &self.sbp),
            ("hr", &self.hr),
            ("cns", &self.cns),
            ("temp", &self.temp),
        ]);
        m.insert("total".into(), json!(self.total));
        m.insert("complete".into(), json!(self.complete));
        m.insert("band".into(), json!(self.band.as_str()));
        m.insert("min_band".into(), json!(self.min_band.as_str()));
        m.insert("scale".into(), json!(self.scale));
        m.insert("o2_assumed".into(), json!(self.o2_assumed));
        m.insert("preliminary".into(), json!(self.preliminary));
        if let Some(skip) = self.skipped {
            m.insert("skipped".into(), json!(skip.as_str()));
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart1_edges_inclusive_as_printed() {
        let rr: Vec<u8> = [8.0, 9.0, 11.0, 12.0, 20.0, 21.0, 24.0, 25.0]
            .map(rr_points)
            .to_vec();
        assert_eq!(rr, [3, 1, 1, 0, 0, 2, 2, 3]);
        let s1: Vec<u8> = [91.0, 92.0, 93.0, 94.0, 95.0, 96.0]
            .map(spo2_scale1_points)
            .to_vec();
        assert_eq!(s1, [3, 2, 2, 1, 1, 0]);
        let sbp: Vec<u8> = [90.0, 91.0, 100.0, 101.0, 110.0, 111.0, 219.0, 220.0]
            .map(sbp_points)
            .to_vec();
        assert_eq!(sbp, [3, 2, 2, 1, 1, 0, 0, 3]);
        let hr: Vec<u8> = [
            40.0, 41.0, 50.0, 51.0, 90.0, 91.0, 110.0, 111.0, 130.0, 131.0,
        ]
        .map(hr_points)
        .to_vec();
        assert_eq!(hr, [3, 1, 1, 0, 0, 1, 1, 2, 2, 3]);
        let t: Vec<u8> = [35.0, 35.1, 36.0, 36.1, 38.0, 38.1, 39.0, 39.1]
            .map(temp_points)
            .to_vec();
        assert_eq!(t, [3, 1, 1, 0, 0, 1, 1, 2]);
        assert_eq!(cns_points("A"), 0);
        for l in ["C", "V", "P", "U"] {
            assert_eq!(cns_points(l), 3);
        }
    }

    #[test]
    fn scale2_rows() {
        let air = Some(false);
        let o2 = Some(true);
        let at = |v, o| spo2_scale2_points(v, o);
        assert_eq!(
            [83.0, 84.0, 85.0, 86.0, 87.0, 88.0, 92.0].map(|v| at(v, None)),
            [
                Some(3),
                Some(2),
                Some(2),
                Some(1),
                Some(1),
                Some(0),
                Some(0)
            ]
        );
        assert_eq!(at(93.0, air), Some(0));
        assert_eq!(at(100.0, air), Some(0));
        assert_eq!(
            [93.0, 94.0, 95.0, 96.0, 97.0].map(|v| at(v, o2)),
            [Some(1), Some(1), Some(2), Some(2), Some(3)]
        );
        assert_eq!(at(93.0, None), None);
    }

    #[test]
    fn bands() {
        assert_eq!(band_for(0, false), News2Band::Low);
        assert_eq!(band_for(4, false), News2Band::Low);
        assert_eq!(band_for(3, true), News2Band::LowMedium);
        assert_eq!(band_for(5, true), News2Band::Medium);
        assert_eq!(band_for(6, false), News2Band::Medium);
        assert_eq!(band_for(7, false), News2Band::High);
        assert_eq!(band_for(20, true), News2Band::High);
    }
}
