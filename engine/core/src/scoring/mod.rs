//! The pure scoring core: ORU observations → per-patient windows → NEWS2, qSOFA and SIRS.
//!
//! No I/O, no store, no async, no clock: callers pass messages, settings and the evaluation
//! time. The flow is [`extract`] (one message → normalised [`Observation`]s, each tied to its
//! PID's [`PatientKey`], plus the problems that kept values out), then one [`PatientWindow`] per
//! patient (corrections, retractions, out-of-order arrivals), then [`PatientWindow::score`] →
//! [`Scores`] with the JSON shape of `tests/clinical/DECISIONS.md` ([`Scores::to_json`]).
//!
//! The rules are REFERENCE.md §1 and DECISIONS.md exactly; the band tables live in one file per
//! score (`news2.rs`, `qsofa.rs`, `sirs.rs`) as ordered `≤` checks. Invariants: a value is
//! scored only for the patient whose PID it came under; a window refuses another patient's
//! observation; missing values are `Points::Missing` and make a score incomplete, never zero;
//! nothing here logs (problems are returned, with PHI-free text).

pub mod codes;
pub mod extract;
pub mod fhir;
pub mod news2;
pub mod observation;
pub mod qsofa;
pub mod scores;
pub mod settings;
pub mod sirs;
#[doc(hidden)]
pub mod testing;
pub mod time;
pub mod units;
pub mod value;
pub mod window;

#[cfg(test)]
mod tests_extract;
#[cfg(test)]
mod tests_fhir;
#[cfg(test)]
mod tests_property;
#[cfg(test)]
mod tests_window;

pub use codes::{CodeMap, CodeMapError, CodeMatch};
pub use extract::{Extracted, ExtractionProblem, PatientInfo, ProblemKind, extract};
pub use news2::{News2Band, News2Score, News2Skip};
pub use observation::{Location, Observation, PatientKey, ResultStatus, VitalKind};
pub use qsofa::QsofaScore;
pub use scores::{Input, Param, Points, Scores};
pub use settings::{
    O2WhenAbsent, Preliminary, QsofaMentation, ScoringSettings, ScoringSettingsFile,
};
pub use sirs::SirsScore;
pub use window::{AddOutcome, PatientFlags, PatientWindow, ScaleFlag, WrongPatient};
