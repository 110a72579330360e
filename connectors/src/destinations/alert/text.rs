//! How much of an alert a message shows (`minimal` / `full`), its labelled lines, times in the
//! configured time zone, and the one-line form used in digests.

use super::Alert;
use jiff::tz::TimeZone;
use medway_engine::config::SettingsError;
use serde::Deserialize;

/// `body = "minimal" | "full"` (email), `detail = "minimal" | "full"` (webhook).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// Severity, state, scores, location, times, rule, alert number and link. No patient.
    #[default]
    Minimal,
    /// Minimal plus the patient (key and name), the reasons and each score's inputs.
    Full,
}

/// One labelled line of a message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub label: &'static str,
    pub value: String,
}

/// `time_zone = "Europe/London"` → the zone; `None` → UTC.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, SettingsError> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|e| {
            SettingsError::new(format!("unknown time zone {name:?}: {e}"))
                .key("time_zone")
                .hint("an IANA name such as \"Europe/London\", or leave it out for UTC")
        }),
    }
}

/// `2024-05-01 11:25:00 BST`; a value that is not RFC 3339 is shown as given.
pub fn format_time(value: &str, zone: &TimeZone) -> String {
    match value.parse::<jiff::Timestamp>() {
        Ok(at) => at
            .to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => super::one_line(value),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Alert {
    /// The labelled lines of a message body, in order. Patient lines only with `Full`.
    pub fn lines(&self, detail: Detail, zone: &TimeZone) -> Vec<Line> {
        let mut lines = Vec::new();
        let mut put = |label: &'static str, value: String| lines.push(Line { label, value });
        put("Status", self.status());
        let scores = self.scores();
        if !scores.is_empty() {
            put("Score", scores.join(", "));
        }
        if self.is_clinical() || self.ward().is_some() {
            let location = match self.facility() {
                Some(facility) => format!("{} ({facility})", self.location()),
                None => self.location(),
            };
            put("Location", location);
        }
        if !self.is_clinical() {
            let title = super::one_line(&self.doc.title);
            if !title.is_empty() {
                put("What", title);
            }
        }
        if detail == Detail::Full {
            if let Some(key) = self.patient_key() {
                put("Patient", key);
            }
            if let Some(name) = self.patient_name() {
                put("Name", name);
            }
        }
        if let Some(at) = self.observed_at() {
            put("Observed", format_time(at, zone));
        }
        if let Some(at) = self.raised_at() {
            put("Raised", format_time(at, zone));
        }
        if let Some(rule) = self.rule() {
            put("Rule", rule);
        }
        put("Alert number", format!("#{}", self.id()));
        if let Some(link) = self.link() {
            put("Link", link);
        }
        lines
    }

    /// The reasons and score details shown by `Full` (empty for `Minimal`).
    pub fn details(&self, detail: Detail, zone: &TimeZone) -> (Vec<String>, Vec<String>) {
        match detail {
            Detail::Minimal => (Vec::new(), Vec::new()),
            Detail::Full => (self.reasons(), self.score_inputs(zone)),
        }
    }

    /// One line for a digest: `#12 EMERGENCY: NEWS2 7 (high) — WARD7 12/A, observed …` (plus
    /// the patient with `Full`).
    pub fn digest_line(&self, detail: Detail, zone: &TimeZone) -> String {
        let mut line = format!("#{} {}: {}", self.id(), self.status(), self.headline());
        if let Some(at) = self.observed_at() {
            line.push_str(&format!(", observed {}", format_time(at, zone)));
        }
        if detail == Detail::Full {
            match (self.patient_key(), self.patient_name()) {
                (Some(key), Some(name)) => line.push_str(&format!(" — patient {key}, {name}")),
                (Some(key), None) => line.push_str(&format!(" — patient {key}")),
                (None, Some(name)) => line.push_str(&format!(" — patient {name}")),
                (None, None) => {}
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::alert::parse;

    fn sample() -> Alert {
        Alert::new(parse(super::super::tests::SAMPLE.as_bytes()).unwrap())
    }

    #[test]
    fn minimal_lines_have_no_patient_and_full_lines_do() {
        let alert = sample();
        let minimal = alert.lines(Detail::Minimal, &TimeZone::UTC);
        let text: Vec<String> = minimal
            .iter()
            .map(|l| format!("{}: {}", l.label, l.value))
            .collect();
        let text = text.join("\n");
        assert!(
            !text.contains("MRN12345") && !text.contains("PATIENT"),
            "{text}"
        );
        assert!(text.contains("Location: WARD7 12/A (HOSP)"), "{text}");
        assert!(text.contains("Observed: 2024-05-01 10:25:00 UTC"), "{text}");
        assert!(text.contains("Alert number: #12"), "{text}");
        let full = alert.lines(Detail::Full, &TimeZone::UTC);
        assert!(full.iter().any(|l| l.value == "MRN12345 (HOSP)"));
        assert!(full.iter().any(|l| l.value == "TEST, PATIENT"));
        let (reasons, inputs) = alert.details(Detail::Full, &TimeZone::UTC);
        assert_eq!(reasons.len(), 2);
        assert_eq!(inputs, ["NEWS2 points: rr 2"]);
        assert_eq!(
            alert.details(Detail::Minimal, &TimeZone::UTC),
            (Vec::new(), Vec::new())
        );
    }

    #[test]
    fn times_follow_the_time_zone() {
        let zone = time_zone(Some("Europe/London")).unwrap();
        assert_eq!(
            format_time("2024-05-01T10:25:00Z", &zone),
            "2024-05-01 11:25:00 BST"
        );
        assert_eq!(format_time("yesterday\n", &zone), "yesterday");
        assert_eq!(
            time_zone(Some("Mars/Olympus")).unwrap_err().key.as_deref(),
            Some("time_zone")
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html_escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn digest_lines() {
        let alert = sample();
        assert_eq!(
            alert.digest_line(Detail::Minimal, &TimeZone::UTC),
            "#12 EMERGENCY: NEWS2 7 (high) — WARD7 12/A, observed 2024-05-01 10:25:00 UTC"
        );
        assert!(
            alert
                .digest_line(Detail::Full, &TimeZone::UTC)
                .ends_with(" — patient MRN12345 (HOSP), TEST, PATIENT")
        );
    }
}
