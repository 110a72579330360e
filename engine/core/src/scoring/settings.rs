//! Per-channel scoring settings, with the defaults of DECISIONS.md.
//!
//! [`ScoringSettings::default`] is the product policy: qSOFA mentation `gcs < 15 OR ACVPU != A`,
//! oxygen assumed air when SpO₂ is charted without it, preliminary results used (and labelled),
//! NEWS2 from one 15-minute observation set, vitals within 6 h, labs within 24 h, HL7 times
//! without an offset read in UTC. [`ScoringSettingsFile`] is the serde form a channel file
//! embeds; it validates into [`ScoringSettings`]. Pure data: nothing here reads files or clocks.

use std::time::Duration;

use serde::Deserialize;

/// The qSOFA "altered mentation" rule (DECISIONS.md 1; REFERENCE.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QsofaMentation {
    /// Default: GCS < 15, or ACVPU other than A. Either one present is enough to decide.
    #[default]
    #[serde(rename = "gcs_lt_15_or_acvpu")]
    GcsLt15OrAcvpu,
    /// The MIMIC rule: GCS ≤ 13 only (ACVPU is not used; no GCS → missing).
    #[serde(rename = "gcs_le_13")]
    GcsLe13,
}

impl QsofaMentation {
    /// The rule as shown to people (alerts say which rule was applied).
    pub fn as_str(self) -> &'static str {
        match self {
            QsofaMentation::GcsLt15OrAcvpu => "gcs_lt_15_or_acvpu",
            QsofaMentation::GcsLe13 => "gcs_le_13",
        }
    }
}

/// What NEWS2 does when a set has SpO₂ but no air/oxygen observation (DECISIONS.md 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum O2WhenAbsent {
    /// Default: score air (0) and record `o2_assumed = true`.
    #[default]
    AssumeAir,
    /// Leave the O₂ parameter missing.
    Incomplete,
}

/// Whether preliminary results (OBX-11 P/R/S) are scored (DECISIONS.md 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preliminary {
    /// Default: scored, and the score is labelled preliminary.
    #[default]
    Use,
    /// Kept in the window but never scored.
    Ignore,
}

/// Everything the pure scoring core can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringSettings {
    /// qSOFA mentation rule.
    pub qsofa_mentation: QsofaMentation,
    /// NEWS2 O₂ when not charted.
    pub o2_when_absent: O2WhenAbsent,
    /// Preliminary results.
    pub preliminary: Preliminary,
    /// NEWS2 observation set: values within this span of the set's newest value (15 min).
    pub news2_set_window: Duration,
    /// qSOFA/SIRS vitals (and the newest NEWS2 set) must be within this of the evaluation time (6 h).
    pub vitals_window: Duration,
    /// WBC, bands, PaCO₂: latest within this of the evaluation time (24 h).
    pub labs_window: Duration,
    /// Zone for HL7 times without an offset (and for ages from PID-7). Default UTC.
    pub default_zone: jiff::tz::TimeZone,
    /// NEWS2 is skipped below this age in whole years (16).
    pub news2_min_age_years: u8,
    /// Which PID-3 repetition is the patient key: the one whose assigning authority (PID-3.4,
    /// or its namespace id) equals this. Default `None`: the first repetition with an id.
    pub patient_authority: Option<String>,
}

impl Default for ScoringSettings {
    fn default() -> Self {
        ScoringSettings {
            qsofa_mentation: QsofaMentation::default(),
            o2_when_absent: O2WhenAbsent::default(),
            preliminary: Preliminary::default(),
            news2_set_window: Duration::from_secs(15 * 60),
            vitals_window: Duration::from_secs(6 * 3600),
            labs_window: Duration::from_secs(24 * 3600),
            default_zone: jiff::tz::TimeZone::UTC,
            news2_min_age_years: 16,
            patient_authority: None,
        }
    }
}

/// Durations as microseconds, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The `[scoring]` table of a channel file; every key optional (defaults as above).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScoringSettingsFile {
    /// `"gcs_lt_15_or_acvpu"` (default) or `"gcs_le_13"`.
    pub qsofa_mentation: Option<QsofaMentation>,
    /// `"assume_air"` (default) or `"incomplete"`.
    pub o2_when_absent: Option<O2WhenAbsent>,
    /// `"use"` (default) or `"ignore"`.
    pub preliminary: Option<Preliminary>,
    /// Minutes (default 15).
    pub news2_set_window_minutes: Option<u32>,
    /// Hours (default 6).
    pub vitals_window_hours: Option<u32>,
    /// Hours (default 24).
    pub labs_window_hours: Option<u32>,
    /// IANA zone name, e.g. `"Europe/London"` (default `"UTC"`).
    pub default_zone: Option<String>,
    /// PID-3 assigning authority that names the patient key (default: first repetition).
    pub patient_authority: Option<String>,
}

impl ScoringSettingsFile {
    /// Validates into settings; the error names the offending key.
    pub fn into_settings(self) -> Result<ScoringSettings, String> {
        let mut s = ScoringSettings::default();
        if let Some(v) = self.qsofa_mentation {
            s.qsofa_mentation = v;
        }
        if let Some(v) = self.o2_when_absent {
            s.o2_when_absent = v;
        }
        if let Some(v) = self.preliminary {
            s.preliminary = v;
        }
        if let Some(m) = self.news2_set_window_minutes {
            if m == 0 || m > 24 * 60 {
                return Err("news2_set_window_minutes must be 1..=1440".into());
            }
            s.news2_set_window = Duration::from_secs(u64::from(m) * 60);
        }
        if let Some(h) = self.vitals_window_hours {
            if h == 0 || h > 24 * 7 {
                return Err("vitals_window_hours must be 1..=168".into());
            }
            s.vitals_window = Duration::from_secs(u64::from(h) * 3600);
        }
        if let Some(h) = self.labs_window_hours {
            if h == 0 || h > 24 * 7 {
                return Err("labs_window_hours must be 1..=168".into());
            }
            s.labs_window = Duration::from_secs(u64::from(h) * 3600);
        }
        s.patient_authority = self.patient_authority.filter(|a| !a.trim().is_empty());
        if let Some(zone) = self.default_zone {
            s.default_zone = jiff::tz::TimeZone::get(&zone)
                .map_err(|e| format!("default_zone {zone:?}: {e}"))?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_decisions() {
        let s = ScoringSettings::default();
        assert_eq!(s.qsofa_mentation, QsofaMentation::GcsLt15OrAcvpu);
        assert_eq!(s.o2_when_absent, O2WhenAbsent::AssumeAir);
        assert_eq!(s.preliminary, Preliminary::Use);
        assert_eq!(s.news2_set_window, Duration::from_secs(900));
        assert_eq!(s.vitals_window, Duration::from_secs(6 * 3600));
        assert_eq!(s.labs_window, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn file_form_validates() {
        let f: ScoringSettingsFile =
            toml::from_str("qsofa_mentation = \"gcs_le_13\"\nnews2_set_window_minutes = 10\n")
                .unwrap();
        let s = f.into_settings().unwrap();
        assert_eq!(s.qsofa_mentation, QsofaMentation::GcsLe13);
        assert_eq!(s.news2_set_window, Duration::from_secs(600));
        let bad: Result<ScoringSettingsFile, _> = toml::from_str("qsofa = 1");
        assert!(bad.is_err());
        let zero = ScoringSettingsFile {
            vitals_window_hours: Some(0),
            ..Default::default()
        };
        assert!(zero.into_settings().is_err());
    }
}
