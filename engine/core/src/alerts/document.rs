//! The alert document: the JSON payload handed to the alert channel, read by the email and
//! webhook destinations. The title never carries a patient name or identifier (it ends up in
//! e-mail subjects and chat previews): severity, score and location only.

use serde::{Deserialize, Serialize};

/// Where the patient is (PV1-3), for the alert text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertLocation {
    pub ward: String,
    pub room: String,
    pub bed: String,
    pub facility: String,
}

impl AlertLocation {
    /// `WARD7 12/A`, or `unknown location`.
    pub fn label(&self) -> String {
        let place = match (self.room.is_empty(), self.bed.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!(" {}", self.room),
            (true, false) => format!(" bed {}", self.bed),
            (false, false) => format!(" {}/{}", self.room, self.bed),
        };
        if self.ward.is_empty() && place.is_empty() {
            "unknown location".to_string()
        } else {
            format!("{}{}", self.ward, place).trim().to_string()
        }
    }
}

/// The patient as the full-detail alert shows it (minimal alerts leave it out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertPatient {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

/// See the module docs; the field names are a contract with the alert destinations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDocument {
    pub alert_id: i64,
    /// `clinical` (from scores) or `operational`.
    pub kind: String,
    pub rule: String,
    pub severity: String,
    /// `open`, `escalated` or `resolved`.
    pub state: String,
    pub escalated_from: Option<String>,
    pub title: String,
    pub location: AlertLocation,
    pub patient: AlertPatient,
    /// The score set, as `medway score` prints it.
    pub scores: serde_json::Value,
    pub reasons: Vec<String>,
    pub observed_at: String,
    pub raised_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link: Option<String>,
}

/// `NEWS2 7 (high) — WARD7 12/A`, `qSOFA 2 (sepsis screen positive) — WARD7 12/A`.
pub fn title(
    rule: &str,
    severity: &str,
    scores: &serde_json::Value,
    location: &AlertLocation,
) -> String {
    let total = |name: &str| {
        scores[name]["total"]
            .as_i64()
            .map_or("?".to_string(), |t| t.to_string())
    };
    let what = match rule {
        "news2" => format!(
            "NEWS2 {} ({})",
            total("news2"),
            scores["news2"]["band"].as_str().unwrap_or(severity)
        ),
        "qsofa" => format!("qSOFA {} (sepsis screen positive)", total("qsofa")),
        "sirs" => format!("SIRS {}", total("sirs")),
        other => other.to_string(),
    };
    format!("{what} — {}", location.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_carry_scores_and_places_only() {
        let location = AlertLocation {
            ward: "WARD7".into(),
            room: "12".into(),
            bed: "A".into(),
            facility: "HOSP".into(),
        };
        let scores =
            serde_json::json!({"news2": {"total": 7, "band": "high"}, "qsofa": {"total": 2}});
        assert_eq!(
            title("news2", "emergency", &scores, &location),
            "NEWS2 7 (high) — WARD7 12/A"
        );
        assert_eq!(
            title("qsofa", "sepsis", &scores, &location),
            "qSOFA 2 (sepsis screen positive) — WARD7 12/A"
        );
        assert_eq!(AlertLocation::default().label(), "unknown location");
    }
}
