//! The alert document: the payload of every delivery that reaches the `email` and `webhook`
//! destinations, and what both of them share to present it (headline, subject, detail lines,
//! the per-recipient rate limit with its digests).
//!
//! The scoring engine writes it (`medway_engine::alerts::AlertDocument`, one JSON object per
//! delivery); this side only reads it, and reads it leniently: unknown fields are ignored, and
//! every field but `alert_id` and `severity` may be missing or `null`.
//!
//! ```json
//! {"alert_id": 12, "kind": "clinical", "rule": "news2", "severity": "emergency",
//!  "state": "open", "escalated_from": null,
//!  "title": "NEWS2 7 (high) — WARD7 12/A",
//!  "location": {"ward": "WARD7", "room": "12", "bed": "A", "facility": "HOSP"},
//!  "patient": {"key": "MRN12345^^^HOSP", "name": "TEST^PATIENT"},
//!  "scores": {"patient": "MRN12345^^^HOSP", "at": "2024-05-01T10:25:00Z",
//!             "news2": {"total": 7, "band": "high", "complete": true, "rr": 2, "inputs": {…}}},
//!  "reasons": ["NEWS2 total 7 ≥ 7", "respiratory rate 24/min scores 2"],
//!  "observed_at": "2024-05-01T10:25:00Z", "raised_at": "2024-05-01T10:25:02Z",
//!  "link": "http://medway.local:8080/alerts/12"}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `alert_id` | the alert's number (required) |
//! | `kind` | `clinical` (default) or `operational` |
//! | `rule` | the rule that fired (`news2`, `qsofa`, `sirs`, `news2_emergency`, …) |
//! | `severity` | `emergency`, `urgent`, `sepsis`, `info` (required; others are shown as given) |
//! | `state` | `open` (default), `escalated`, `acknowledged` or `resolved` |
//! | `escalated_from` | the previous severity when the band worsened |
//! | `title` | a line without patient name or identifier (operational alerts' subject) |
//! | `location` | `ward`, `room`, `bed`, `facility` (PV1-3); empty strings count as absent |
//! | `patient` | `key` (PID-3 with its assigning authority) and optional `name` (XPN) |
//! | `scores` | the score set: per score object (`news2`, `qsofa`, `sirs`) `total`, `band`, `complete`, each parameter's points and `inputs` (values used); members that are not objects (the engine's `patient`, `at`) are skipped |
//! | `reasons` | why the rule fired, one line each |
//! | `observed_at`, `raised_at` | RFC 3339 timestamps |
//! | `link` | the alert's page, when the engine knows its own address |
//!
//! Presentation rules shared by both destinations:
//! - **No patient name or identifier in a subject line or a chat notification text**: those are
//!   built from the severity, the state, the score and the location only ([`Alert::subject`]),
//!   never from free text for a clinical alert, and are checked once more against the patient's
//!   identifier and name parts ([`Alert::subject`] falls back to `SEVERITY: alert #id`).
//! - **`minimal`** detail = severity, state, scores, location, times, rule, alert number and
//!   link; **`full`** adds the patient (key, and name when present), the reasons and each
//!   score's inputs.

pub mod limit;
pub mod text;

pub use limit::{RateLimit, RecipientLimiter};
pub use text::{Detail, Line, html_escape};

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// The alert document as this side reads it (see the module docs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlertDocument {
    pub alert_id: i64,
    #[serde(default = "clinical", deserialize_with = "or_default_kind")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub rule: String,
    pub severity: String,
    #[serde(default = "open", deserialize_with = "or_default_state")]
    pub state: String,
    #[serde(default)]
    pub escalated_from: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    #[serde(default, deserialize_with = "null_default")]
    pub location: Location,
    #[serde(default)]
    pub patient: Option<Patient>,
    /// The score objects of the score set; its other members (the engine also puts the
    /// patient key and the evaluation time there) are skipped, never shown.
    #[serde(default, deserialize_with = "score_set")]
    pub scores: BTreeMap<String, Score>,
    #[serde(default, deserialize_with = "null_default")]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub observed_at: Option<String>,
    #[serde(default)]
    pub raised_at: Option<String>,
    #[serde(default)]
    pub link: Option<String>,
}

/// `location`: PV1-3's parts. Empty strings count as absent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Location {
    #[serde(default)]
    pub ward: Option<String>,
    #[serde(default)]
    pub room: Option<String>,
    #[serde(default)]
    pub bed: Option<String>,
    #[serde(default)]
    pub facility: Option<String>,
}

/// `patient`: only ever shown in `full` bodies.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Patient {
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// One score of `scores`: the total and band, plus whatever else the engine adds (each
/// parameter's points, `inputs` with the values used), shown in `full` bodies only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    pub total: Option<f64>,
    pub band: Option<String>,
    pub complete: Option<bool>,
    pub inputs: BTreeMap<String, serde_json::Value>,
}

/// `scores`: each member that is an object is a score, read leniently (a field of an
/// unexpected type is left out); other members are skipped.
fn score_set<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Score>, D::Error> {
    let Some(map) =
        Option::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)?
    else {
        return Ok(BTreeMap::new());
    };
    Ok(map
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::Object(mut fields) => {
                let total = fields.remove("total").and_then(|v| v.as_f64());
                let band = fields
                    .remove("band")
                    .and_then(|v| v.as_str().map(str::to_string));
                let complete = fields.remove("complete").and_then(|v| v.as_bool());
                Some((
                    key,
                    Score {
                        total,
                        band,
                        complete,
                        inputs: fields.into_iter().collect(),
                    },
                ))
            }
            _ => None,
        })
        .collect())
}

fn clinical() -> String {
    "clinical".to_string()
}

fn open() -> String {
    "open".to_string()
}

/// `null` (or a missing field) → the type's default.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn or_default_kind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(clinical))
}

fn or_default_state<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(open))
}

/// Why a payload is not an alert document, without quoting any of it (it carries PHI).
pub fn parse(payload: &[u8]) -> Result<AlertDocument, String> {
    serde_json::from_slice::<AlertDocument>(payload).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Data => "JSON of the wrong shape",
        };
        format!(
            "the payload is not an alert document: {what} at line {} column {}",
            e.line(),
            e.column()
        )
    })
}

/// An alert ready to present: the document, and the payload it was read from (kept for the
/// JSON webhook, which forwards the document with its unknown fields).
#[derive(Debug, Clone)]
pub struct Alert {
    pub doc: AlertDocument,
    pub payload: Option<bytes::Bytes>,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Keeps printable characters only (no line breaks or controls in a header or a chat line).
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// `7`, or `7.5` when not a whole number.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// One input the engine used: `24 /min (2024-05-01 10:25:00 UTC)`; as sent when it differs:
/// `37.8 Cel (100 [degF], …)`.
fn input_text(input: &serde_json::Value, zone: &jiff::tz::TimeZone) -> String {
    let text = |key: &str| match &input[key] {
        serde_json::Value::String(s) => one_line(s),
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        _ => String::new(),
    };
    let mut out = [text("value"), text("unit")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if out.is_empty() {
        out = one_line(&input.to_string());
    }
    let mut notes = Vec::new();
    let (original, original_unit) = (text("original_value"), text("original_unit"));
    if !original.is_empty() && (original != text("value") || original_unit != text("unit")) {
        notes.push(
            format!("sent as {original} {original_unit}")
                .trim()
                .to_string(),
        );
    }
    let at = text("at");
    if !at.is_empty() {
        notes.push(text::format_time(&at, zone));
    }
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join(", ")));
    }
    out
}

/// Display name of a score key.
fn score_name(key: &str) -> String {
    match key.to_ascii_lowercase().as_str() {
        "news2" => "NEWS2".to_string(),
        "qsofa" => "qSOFA".to_string(),
        "sirs" => "SIRS".to_string(),
        _ => one_line(key).to_ascii_uppercase(),
    }
}

impl Alert {
    pub fn new(doc: AlertDocument) -> Self {
        Self { doc, payload: None }
    }

    /// Reads a delivery's payload; the error never quotes it.
    pub fn from_payload(payload: &bytes::Bytes) -> Result<Self, String> {
        Ok(Self {
            doc: parse(payload)?,
            payload: Some(payload.clone()),
        })
    }

    pub fn id(&self) -> i64 {
        self.doc.alert_id
    }

    pub fn is_clinical(&self) -> bool {
        !self.doc.kind.eq_ignore_ascii_case("operational")
    }

    /// `EMERGENCY`, `URGENT`, `SEPSIS`, `INFO`, …
    pub fn severity(&self) -> String {
        let severity = one_line(&self.doc.severity).to_ascii_uppercase();
        if severity.is_empty() {
            "ALERT".to_string()
        } else {
            severity
        }
    }

    /// Higher is more serious; unknown severities rank with `info`.
    pub fn rank(&self) -> u8 {
        match self.doc.severity.to_ascii_lowercase().as_str() {
            "emergency" => 4,
            "sepsis" => 3,
            "urgent" => 2,
            _ => 1,
        }
    }

    pub fn is_resolved(&self) -> bool {
        self.doc.state.eq_ignore_ascii_case("resolved")
    }

    /// `EMERGENCY`, `EMERGENCY (escalated from URGENT)`, `RESOLVED EMERGENCY`.
    pub fn status(&self) -> String {
        let severity = self.severity();
        let state = self.doc.state.to_ascii_lowercase();
        if state == "resolved" {
            format!("RESOLVED {severity}")
        } else if state == "acknowledged" {
            format!("{severity} (acknowledged)")
        } else if let Some(from) = present(&self.doc.escalated_from) {
            format!(
                "{severity} (escalated from {})",
                one_line(from).to_ascii_uppercase()
            )
        } else if state == "escalated" {
            format!("{severity} (escalated)")
        } else {
            severity
        }
    }

    /// The key of the score the rule is about: the score named by the rule (`news2`,
    /// `news2_emergency`, `qsofa_positive`), else the first of NEWS2, qSOFA, SIRS present.
    fn primary_score(&self) -> Option<(&str, &Score)> {
        let rule = self.doc.rule.to_ascii_lowercase();
        let by_rule = self.doc.scores.iter().find(|(key, _)| {
            let key = key.to_ascii_lowercase();
            rule == key
                || rule
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with('_'))
        });
        by_rule
            .or_else(|| {
                ["news2", "qsofa", "sirs"]
                    .iter()
                    .find_map(|name| self.doc.scores.get_key_value(*name))
            })
            .map(|(key, score)| (key.as_str(), score))
    }

    /// `NEWS2 7 (high)`, `qSOFA 2`, `NEWS2 5 (high, incomplete)`.
    fn score_text(key: &str, score: &Score) -> String {
        let mut text = score_name(key);
        if let Some(total) = score.total {
            text.push(' ');
            text.push_str(&number(total));
        }
        let mut notes = Vec::new();
        if let Some(band) = score
            .band
            .as_deref()
            .map(one_line)
            .filter(|b| !b.is_empty())
        {
            notes.push(band);
        }
        if score.complete == Some(false) {
            notes.push("incomplete".to_string());
        }
        if !notes.is_empty() {
            text.push_str(&format!(" ({})", notes.join(", ")));
        }
        text
    }

    /// The main score, e.g. `NEWS2 7 (high)`; `None` when the alert has no score.
    pub fn score(&self) -> Option<String> {
        self.primary_score()
            .map(|(key, score)| Self::score_text(key, score))
    }

    /// Every score on one line each, the main one first: `NEWS2 7 (high)`, `qSOFA 1`.
    pub fn scores(&self) -> Vec<String> {
        let primary = self.primary_score().map(|(key, _)| key.to_string());
        let mut out: Vec<String> = primary
            .iter()
            .filter_map(|key| self.doc.scores.get(key).map(|s| Self::score_text(key, s)))
            .collect();
        for (key, score) in &self.doc.scores {
            if Some(key) != primary.as_ref() {
                out.push(Self::score_text(key, score));
            }
        }
        out
    }

    /// Each score's details (`full` only), two lines per score at most:
    /// `NEWS2 points: rr 2, spo2 3, sbp missing, …` and
    /// `NEWS2 inputs: rr 24 /min (2024-05-01 10:25:00 UTC); spo2 91 % (…)`.
    pub fn score_inputs(&self, zone: &jiff::tz::TimeZone) -> Vec<String> {
        let mut out = Vec::new();
        for (key, score) in &self.doc.scores {
            let name = score_name(key);
            let mut points = Vec::new();
            let mut used = Vec::new();
            for (field, value) in &score.inputs {
                let field = one_line(field);
                match value {
                    serde_json::Value::String(text) => {
                        points.push(format!("{field} {}", one_line(text)));
                    }
                    serde_json::Value::Number(n) => points.push(format!("{field} {n}")),
                    serde_json::Value::Bool(b) => {
                        points.push(format!("{field} {}", if *b { "yes" } else { "no" }));
                    }
                    serde_json::Value::Object(inputs) if field == "inputs" => {
                        for (parameter, list) in inputs {
                            for input in list.as_array().into_iter().flatten() {
                                used.push(format!(
                                    "{} {}",
                                    one_line(parameter),
                                    input_text(input, zone)
                                ));
                            }
                        }
                    }
                    serde_json::Value::Null => {}
                    other => points.push(format!("{field} {}", one_line(&other.to_string()))),
                }
            }
            if !points.is_empty() {
                out.push(format!("{name} points: {}", points.join(", ")));
            }
            if !used.is_empty() {
                out.push(format!("{name} inputs: {}", used.join("; ")));
            }
        }
        out
    }

    /// `WARD7 12/A`; `WARD7 12`; `WARD7 bed A`; `unknown location` (as the engine's title).
    pub fn location(&self) -> String {
        let location = &self.doc.location;
        let ward = present(&location.ward).map(one_line);
        let place = match (present(&location.room), present(&location.bed)) {
            (None, None) => None,
            (Some(room), None) => Some(one_line(room)),
            (None, Some(bed)) => Some(format!("bed {}", one_line(bed))),
            (Some(room), Some(bed)) => Some(format!("{}/{}", one_line(room), one_line(bed))),
        };
        match (ward, place) {
            (None, None) => "unknown location".to_string(),
            (Some(ward), None) => ward,
            (None, Some(place)) => place,
            (Some(ward), Some(place)) => format!("{ward} {place}"),
        }
    }

    pub fn ward(&self) -> Option<&str> {
        present(&self.doc.location.ward)
    }

    pub fn facility(&self) -> Option<String> {
        present(&self.doc.location.facility).map(one_line)
    }

    /// What the alert is about, without PHI: `NEWS2 7 (high) — WARD7 12/A`. An operational
    /// alert (no patient) uses its title.
    pub fn headline(&self) -> String {
        if !self.is_clinical() && self.patient().is_none() {
            let title = one_line(&self.doc.title);
            if !title.is_empty() {
                return title;
            }
        }
        let what = self
            .score()
            .unwrap_or_else(|| match one_line(&self.doc.rule) {
                rule if rule.is_empty() => format!("alert #{}", self.id()),
                rule => rule,
            });
        if self.is_clinical() {
            format!("{what} — {}", self.location())
        } else {
            what
        }
    }

    /// The subject / notification line: `[Medway] EMERGENCY: NEWS2 7 (high) — WARD7 12/A`.
    /// Never carries the patient's identifier or a part of their name: if the headline would
    /// (a ward named like the patient), it falls back to `[Medway] EMERGENCY: alert #12`.
    pub fn subject(&self, prefix: &str) -> String {
        let prefix = one_line(prefix);
        let lead = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix} ")
        };
        let subject = format!("{lead}{}: {}", self.status(), self.headline());
        if self.mentions_patient(&subject) {
            format!("{lead}{}: alert #{}", self.status(), self.id())
        } else {
            subject
        }
    }

    /// The patient, when the document names one.
    pub fn patient(&self) -> Option<&Patient> {
        self.doc
            .patient
            .as_ref()
            .filter(|p| !p.key.trim().is_empty() || present(&p.name).is_some())
    }

    /// `MRN12345 (HOSP)` from `MRN12345^^^HOSP`.
    pub fn patient_key(&self) -> Option<String> {
        let patient = self.patient()?;
        let parts: Vec<&str> = patient.key.split('^').collect();
        let id = parts.first().map(|s| s.trim()).unwrap_or("");
        if id.is_empty() {
            return None;
        }
        let authority = parts
            .get(3)
            .and_then(|a| a.split('&').find(|s| !s.trim().is_empty()))
            .map(str::trim);
        Some(match authority {
            Some(authority) => format!("{} ({})", one_line(id), one_line(authority)),
            None => one_line(id),
        })
    }

    /// `TEST, PATIENT` from the XPN `TEST^PATIENT` (family, given middle).
    pub fn patient_name(&self) -> Option<String> {
        let name = present(&self.patient()?.name)?;
        let parts: Vec<&str> = name
            .split('^')
            .map(|p| p.split('&').next().unwrap_or("").trim())
            .collect();
        let family = parts.first().copied().unwrap_or("");
        let given: Vec<&str> = parts
            .iter()
            .skip(1)
            .take(2)
            .copied()
            .filter(|p| !p.is_empty())
            .collect();
        let text = match (family.is_empty(), given.is_empty()) {
            (_, true) => family.to_string(),
            (true, false) => given.join(" "),
            (false, false) => format!("{family}, {}", given.join(" ")),
        };
        let text = one_line(&text);
        (!text.is_empty()).then_some(text)
    }

    /// Whether `text` contains the patient's identifier or any part of their name (as a word,
    /// case-insensitive).
    pub fn mentions_patient(&self, text: &str) -> bool {
        let Some(patient) = self.patient() else {
            return false;
        };
        let mut needles: Vec<String> = Vec::new();
        let id = patient.key.split('^').next().unwrap_or("").trim();
        if !id.is_empty() {
            needles.push(id.to_lowercase());
        }
        if let Some(name) = present(&patient.name) {
            needles.extend(
                name.split(|c: char| !c.is_alphanumeric())
                    .filter(|part| part.chars().count() >= 2)
                    .map(str::to_lowercase),
            );
        }
        let haystack = text.to_lowercase();
        let words: Vec<&str> = haystack
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        needles.iter().any(|needle| {
            if needle.chars().all(char::is_alphanumeric) {
                words.iter().any(|w| w == needle)
            } else {
                haystack.contains(needle.as_str())
            }
        })
    }

    pub fn link(&self) -> Option<String> {
        present(&self.doc.link).map(one_line)
    }

    pub fn rule(&self) -> Option<String> {
        Some(one_line(&self.doc.rule)).filter(|r| !r.is_empty())
    }

    pub fn reasons(&self) -> Vec<String> {
        self.doc
            .reasons
            .iter()
            .map(|r| one_line(r))
            .filter(|r| !r.is_empty())
            .collect()
    }

    pub fn observed_at(&self) -> Option<&str> {
        present(&self.doc.observed_at)
    }

    pub fn raised_at(&self) -> Option<&str> {
        present(&self.doc.raised_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"{"alert_id": 12, "kind": "clinical", "rule": "news2_emergency",
        "severity": "emergency", "state": "open", "escalated_from": null,
        "title": "NEWS2 7 (high) — WARD7 12/A",
        "location": {"ward": "WARD7", "room": "12", "bed": "A", "facility": "HOSP"},
        "patient": {"key": "MRN12345^^^HOSP", "name": "TEST^PATIENT"},
        "scores": {"news2": {"total": 7, "band": "high", "complete": true, "rr": 2},
                   "qsofa": {"total": 1, "band": null}, "sirs": {"total": 2}},
        "reasons": ["NEWS2 total 7 ≥ 7", "respiratory rate 24/min scores 2"],
        "observed_at": "2024-05-01T10:25:00Z", "raised_at": "2024-05-01T10:25:02Z",
        "link": "http://medway.local:8080/alerts/12", "something_new": {"x": 1}}"#;

    fn sample() -> Alert {
        Alert::new(parse(SAMPLE.as_bytes()).unwrap())
    }

    #[test]
    fn the_sample_parses_and_unknown_fields_are_ignored() {
        let alert = sample();
        assert_eq!(alert.id(), 12);
        assert_eq!(alert.doc.scores["news2"].inputs["rr"], 2);
        assert_eq!(alert.location(), "WARD7 12/A");
        assert_eq!(alert.score().as_deref(), Some("NEWS2 7 (high)"));
        assert_eq!(alert.patient_key().as_deref(), Some("MRN12345 (HOSP)"));
        assert_eq!(alert.patient_name().as_deref(), Some("TEST, PATIENT"));
        assert_eq!(alert.scores(), ["NEWS2 7 (high)", "qSOFA 1", "SIRS 2"]);
    }

    #[test]
    fn a_minimal_document_parses_with_nulls() {
        let doc = parse(
            br#"{"alert_id": 3, "severity": "urgent", "kind": null, "state": null,
                 "location": null, "patient": null, "scores": null, "reasons": null}"#,
        )
        .unwrap();
        let alert = Alert::new(doc);
        assert_eq!(alert.doc.kind, "clinical");
        assert_eq!(alert.doc.state, "open");
        assert_eq!(alert.location(), "unknown location");
        assert_eq!(
            alert.subject("[Medway]"),
            "[Medway] URGENT: alert #3 — unknown location"
        );
    }

    #[test]
    fn the_engines_document_parses() {
        let location = medway_engine::alerts::AlertLocation {
            ward: "WARD7".into(),
            room: "12".into(),
            bed: String::new(),
            facility: "HOSP".into(),
        };
        // The score set as the engine writes it (DECISIONS.md shape plus extra keys): the
        // patient key and the time sit beside the score objects.
        let scores = serde_json::json!({
            "patient": "MRN777^^^HOSP", "at": "2024-05-01T10:25:00Z",
            "news2": {"rr": 3, "spo2": "missing", "total": 5, "complete": false, "band": "medium",
                      "min_band": "medium", "scale": 1, "o2_assumed": false, "preliminary": false,
                      "inputs": {"rr": [{"kind": "rr", "value": 26.0, "unit": "/min",
                                         "original_value": "26", "original_unit": "/min",
                                         "at": "2024-05-01T10:25:00Z", "status": "F",
                                         "source": "MSG1"}]}},
            "qsofa": {"rr": 1, "sbp": "missing", "ment": 0, "total": 1, "complete": false,
                      "inputs": {}},
            "sirs": {"temp": 1, "hr": 0, "resp": 1, "wbc": "missing", "total": 2,
                     "complete": false, "inputs": {}}
        });
        let doc = medway_engine::alerts::AlertDocument {
            alert_id: 9,
            kind: "clinical".into(),
            rule: "news2".into(),
            severity: "urgent".into(),
            state: "escalated".into(),
            escalated_from: Some("info".into()),
            title: medway_engine::alerts::title("news2", "urgent", &scores, &location),
            location,
            patient: Default::default(),
            scores,
            reasons: vec!["x".into()],
            observed_at: "2024-05-01T10:25:00Z".into(),
            raised_at: "2024-05-01T10:25:02Z".into(),
            link: None,
        };
        let json = serde_json::to_vec(&doc).unwrap();
        let alert = Alert::new(parse(&json).unwrap());
        assert!(alert.patient().is_none(), "an empty key is no patient");
        assert_eq!(
            alert.scores(),
            [
                "NEWS2 5 (medium, incomplete)",
                "qSOFA 1 (incomplete)",
                "SIRS 2 (incomplete)"
            ]
        );
        let details = alert.score_inputs(&jiff::tz::TimeZone::UTC).join("\n");
        assert!(
            details.contains("NEWS2 points: min_band medium, o2_assumed no"),
            "{details}"
        );
        assert!(
            details.contains("rr 3") && details.contains("spo2 missing"),
            "{details}"
        );
        assert!(
            details.contains("NEWS2 inputs: rr 26 /min (2024-05-01 10:25:00 UTC)"),
            "{details}"
        );
        assert!(
            !details.contains("MRN777"),
            "the score set's patient is never shown"
        );
        assert_eq!(
            alert.subject("[Medway]"),
            "[Medway] URGENT (escalated from INFO): NEWS2 5 (medium, incomplete) — WARD7 12"
        );
        assert_eq!(
            alert.headline(),
            doc.title.replace(" (medium)", " (medium, incomplete)")
        );
    }

    #[test]
    fn subjects_carry_no_patient_identifier_or_name() {
        let alert = sample();
        let subject = alert.subject("[Medway]");
        assert_eq!(subject, "[Medway] EMERGENCY: NEWS2 7 (high) — WARD7 12/A");
        assert!(!alert.mentions_patient(&subject));
        // A ward named like the patient: the location is dropped, not the rule.
        let mut doc = alert.doc.clone();
        doc.location.ward = Some("Patient".into());
        let alert = Alert::new(doc);
        assert_eq!(alert.subject("[Medway]"), "[Medway] EMERGENCY: alert #12");
    }

    #[test]
    fn operational_alerts_use_their_title() {
        let doc = parse(
            br#"{"alert_id": 40, "kind": "operational", "rule": "delivery_errored",
                 "severity": "urgent", "state": "resolved",
                 "title": "delivery errored: lab \u2192 archive\r\nBcc: x"}"#,
        )
        .unwrap();
        let alert = Alert::new(doc);
        assert_eq!(
            alert.subject("[Medway]"),
            "[Medway] RESOLVED URGENT: delivery errored: lab → archive Bcc: x"
        );
    }

    #[test]
    fn parse_errors_do_not_quote_the_payload() {
        let error = parse(br#"{"alert_id": "MRN12345", "severity": "x"}"#).unwrap_err();
        assert!(!error.contains("MRN12345"), "{error}");
        assert!(error.contains("wrong shape"), "{error}");
        assert!(parse(b"HL7|MSH").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn the_rule_picks_the_score() {
        let mut doc = sample().doc;
        doc.rule = "qsofa".into();
        assert_eq!(Alert::new(doc.clone()).score().as_deref(), Some("qSOFA 1"));
        doc.rule = "something_else".into();
        assert_eq!(Alert::new(doc).score().as_deref(), Some("NEWS2 7 (high)"));
    }
}
