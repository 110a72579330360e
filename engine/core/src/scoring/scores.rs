//! The result of scoring one patient at one time, and its JSON form.
//!
//! [`Points`] is a parameter's points or `Missing` (never a silent 0); a [`Param`] carries the
//! inputs it was computed from (value, unit, time, status, source) so a clinician can see why.
//! [`Scores::to_json`] is exactly the DECISIONS.md shape — `patient` as `ID^^^AUTH`, each
//! parameter an integer or `"missing"`, `total`, `complete`, NEWS2 `band` — plus extra keys
//! (`at`, `o2_assumed`, `scale`, `preliminary`, `inputs`, …). It prints values the caller asked
//! for; it never logs.

use serde_json::{Map, Value, json};

use super::news2::News2Score;
use super::observation::{Observation, PatientKey, ResultStatus, VitalKind};
use super::qsofa::QsofaScore;
use super::sirs::SirsScore;
use super::time::rfc3339;

/// A parameter's points, or missing (no usable value in the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Points {
    /// Points awarded.
    Value(u8),
    /// No usable input: the score is incomplete.
    Missing,
}

impl Points {
    /// The points, if present.
    pub fn value(self) -> Option<u8> {
        match self {
            Points::Value(v) => Some(v),
            Points::Missing => None,
        }
    }

    /// An integer, or the string `"missing"`.
    pub fn to_json(self) -> Value {
        match self {
            Points::Value(v) => json!(v),
            Points::Missing => json!("missing"),
        }
    }
}

/// One input a parameter used.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// What it is.
    pub kind: VitalKind,
    /// Canonical value.
    pub value: f64,
    /// Code for coded kinds (ACVPU letter).
    pub text: Option<String>,
    /// Canonical unit.
    pub unit: String,
    /// As sent.
    pub original_value: String,
    /// As sent.
    pub original_unit: String,
    /// UTC microseconds.
    pub observed_at: i64,
    /// OBX-11.
    pub status: ResultStatus,
    /// The source message (MSH-10 or the caller's id).
    pub source: String,
}

impl From<&Observation> for Input {
    fn from(o: &Observation) -> Input {
        Input {
            kind: o.kind,
            value: o.value,
            text: o.text.clone(),
            unit: o.unit.clone(),
            original_value: o.original_value.clone(),
            original_unit: o.original_unit.clone(),
            observed_at: o.observed_at,
            status: o.status,
            source: o.source.clone(),
        }
    }
}

impl Input {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!(self.kind.as_str()));
        match &self.text {
            Some(text) => m.insert("value".into(), json!(text)),
            None => m.insert("value".into(), json!(self.value)),
        };
        m.insert("unit".into(), json!(self.unit));
        m.insert("original_value".into(), json!(self.original_value));
        m.insert("original_unit".into(), json!(self.original_unit));
        m.insert("at".into(), json!(rfc3339(self.observed_at)));
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("source".into(), json!(self.source));
        Value::Object(m)
    }
}

/// A scored parameter and what it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Points or missing.
    pub points: Points,
    /// The inputs used (empty when missing).
    pub inputs: Vec<Input>,
}

impl Param {
    /// A missing parameter.
    pub fn missing() -> Param {
        Param {
            points: Points::Missing,
            inputs: Vec::new(),
        }
    }

    /// Points from these observations.
    pub fn scored(points: u8, inputs: &[&Observation]) -> Param {
        Param {
            points: Points::Value(points),
            inputs: inputs.iter().map(|o| Input::from(*o)).collect(),
        }
    }

    /// Whether any input is preliminary.
    pub fn is_preliminary(&self) -> bool {
        self.inputs
            .iter()
            .any(|i| i.status == ResultStatus::Preliminary)
    }
}

/// Sums the present points: `(partial total, complete)`.
pub fn total(params: &[&Param]) -> (u8, bool) {
    params
        .iter()
        .fold((0u8, true), |(sum, complete), p| match p.points {
            Points::Value(v) => (sum.saturating_add(v), complete),
            Points::Missing => (sum, false),
        })
}

/// `{"name": points…}` plus `"inputs": {"name": [..]}` for the present ones.
pub(crate) fn params_json(params: &[(&str, &Param)]) -> Map<String, Value> {
    let mut m = Map::new();
    let mut inputs = Map::new();
    for (name, p) in params {
        m.insert((*name).into(), p.points.to_json());
        if !p.inputs.is_empty() {
            inputs.insert(
                (*name).into(),
                Value::Array(p.inputs.iter().map(Input::to_json).collect()),
            );
        }
    }
    m.insert("inputs".into(), Value::Object(inputs));
    m
}

/// All three scores of one patient at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Whose.
    pub patient: PatientKey,
    /// Evaluation time, UTC microseconds.
    pub at: i64,
    /// NEWS2.
    pub news2: News2Score,
    /// qSOFA.
    pub qsofa: QsofaScore,
    /// SIRS.
    pub sirs: SirsScore,
}

impl Scores {
    /// The DECISIONS.md JSON shape (plus extra keys).
    pub fn to_json(&self) -> Value {
        json!({
            "patient": self.patient.to_string(),
            "at": rfc3339(self.at),
            "news2": self.news2.to_json(),
            "qsofa": self.qsofa.to_json(),
            "sirs": self.sirs.to_json(),
        })
    }
}
