//! Alert rules and their life cycle: which scores raise which alerts, one alert per patient ×
//! rule per suppression window, immediate escalation when the band worsens, and the alert
//! document sent to people (email, webhook) through the alert channel.
//!
//! Defaults (DECISIONS.md §7, configurable per scoring destination): NEWS2 ≥ 7 → emergency;
//! NEWS2 ≥ 5 or any single parameter scoring 3 → urgent; qSOFA ≥ 2 → sepsis screen positive;
//! SIRS ≥ 2 with a WBC value → informational. Partial totals that already cross a threshold
//! fire (missing values can only add points). Windows are measured in observation time, so a
//! replayed or late feed behaves like the live one. Nothing here does I/O.

mod document;
pub mod operations;
mod rules;

pub use document::{AlertDocument, AlertLocation, AlertPatient, title};
pub use rules::{AlertRules, Candidate, Decision, ScoreSummary, decide};
