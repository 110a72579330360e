//! One patient's recent observations, in observation-time order, with corrections and
//! retractions applied, and the selection rules of DECISIONS.md §6.
//!
//! Identity of an observation = (kind, observation time, set id). Later arrivals of the same
//! identity replace earlier ones (F after P re-scores, C corrects, a resend replaces), except that
//! a preliminary never replaces a final; W/D remove it; U without a value makes a preliminary
//! final; X and unknown statuses are not kept. Arrival order does not matter otherwise: entries
//! are placed by observation time. Invariant: a window holds exactly one patient's values —
//! [`PatientWindow::add`] refuses any other key. Scoring reads the window as of an evaluation time
//! `at` (never the wall clock) and never uses a value observed after `at`.

use jiff::civil::Date;

use super::extract::Extracted;
use super::news2;
use super::observation::{Observation, PatientKey, ResultStatus, VitalKind};
use super::qsofa;
use super::scores::Scores;
use super::settings::{Preliminary, ScoringSettings, micros};
use super::sirs;

/// A clinician's SpO₂ scale choice held outside the observations (e.g. `medway patients
/// set-scale`), with when it was set; the newer of this and an SPO2SCALE observation wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleFlag {
    /// 1 or 2.
    pub scale: u8,
    /// UTC microseconds.
    pub set_at: i64,
}

/// Per-patient facts that are not observations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PatientFlags {
    /// The SpO₂ scale flag, if set.
    pub spo2_scale: Option<ScaleFlag>,
    /// Pregnancy flagged: NEWS2 is skipped (and says so).
    pub pregnant: bool,
}

/// An observation offered to the wrong window. Its `Display` holds no identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongPatient {
    /// The window's patient.
    pub window: PatientKey,
    /// The observation's patient.
    pub observation: PatientKey,
}

impl std::fmt::Display for WrongPatient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("observation belongs to another patient: refused")
    }
}

impl std::error::Error for WrongPatient {}

/// What [`PatientWindow::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new observation.
    Added,
    /// Replaced the observation with the same identity.
    Replaced,
    /// Removed this many observations with the same identity (W/D).
    Retracted(usize),
    /// A U made the preliminary value final.
    MadeFinal,
    /// Not kept (X, unknown status, a preliminary after a final, U with nothing to finalise).
    Ignored,
}

#[derive(Debug, Clone)]
struct Entry {
    obs: Observation,
    seq: u64,
}

/// All observations of one patient.
#[derive(Debug, Clone)]
pub struct PatientWindow {
    patient: PatientKey,
    birth_date: Option<Date>,
    entries: Vec<Entry>,
    seq: u64,
}

impl PatientWindow {
    /// An empty window for `patient`.
    pub fn new(patient: PatientKey) -> PatientWindow {
        PatientWindow {
            patient,
            birth_date: None,
            entries: Vec::new(),
            seq: 0,
        }
    }

    /// Whose window this is.
    pub fn patient(&self) -> &PatientKey {
        &self.patient
    }

    /// PID-7 as last seen (for the NEWS2 age rule).
    pub fn birth_date(&self) -> Option<Date> {
        self.birth_date
    }

    /// Records PID-7 (a `None` keeps the one already known).
    pub fn set_birth_date(&mut self, birth_date: Option<Date>) {
        if birth_date.is_some() {
            self.birth_date = birth_date;
        }
    }

    /// Kept observations in observation-time order (ties: arrival order).
    pub fn observations(&self) -> impl Iterator<Item = &Observation> {
        self.entries.iter().map(|e| &e.obs)
    }

    /// The newest observation time in the window (the `medway score` evaluation time).
    pub fn newest_time(&self) -> Option<i64> {
        self.entries.last().map(|e| e.obs.observed_at)
    }

    /// Adds one observation of this patient; refuses another patient's.
    pub fn add(&mut self, obs: Observation) -> Result<AddOutcome, WrongPatient> {
        if obs.patient != self.patient {
            return Err(WrongPatient {
                window: self.patient.clone(),
                observation: obs.patient,
            });
        }
        let same = |e: &Entry| e.obs.identity() == obs.identity();
        let outcome = match obs.status {
            ResultStatus::NoValue | ResultStatus::Other => AddOutcome::Ignored,
            ResultStatus::Retracted => {
                let before = self.entries.len();
                self.entries.retain(|e| !same(e));
                AddOutcome::Retracted(before - self.entries.len())
            }
            ResultStatus::MadeFinal => {
                match self
                    .entries
                    .iter_mut()
                    .find(|e| same(e) && e.obs.status == ResultStatus::Preliminary)
                {
                    Some(e) => {
                        e.obs.status = ResultStatus::Final;
                        AddOutcome::MadeFinal
                    }
                    None => AddOutcome::Ignored,
                }
            }
            ResultStatus::Preliminary
                if self
                    .entries
                    .iter()
                    .any(|e| same(e) && e.obs.status.is_final()) =>
            {
                AddOutcome::Ignored
            }
            ResultStatus::Final | ResultStatus::Corrected | ResultStatus::Preliminary => {
                let before = self.entries.len();
                self.entries.retain(|e| !same(&e));
                let replaced = before != self.entries.len();
                self.seq += 1;
                let at = obs.observed_at;
                let pos = self.entries.partition_point(|e| e.obs.observed_at <= at);
                self.entries.insert(pos, Entry { obs, seq: self.seq });
                if replaced {
                    AddOutcome::Replaced
                } else {
                    AddOutcome::Added
                }
            }
        };
        Ok(outcome)
    }

    /// Adds this patient's observations (and birth date) from one message; other patients'
    /// observations in the same message are skipped. Returns how many were offered.
    pub fn absorb(&mut self, extracted: &Extracted) -> usize {
        if let Some(info) = extracted.patients.iter().find(|p| p.key == self.patient) {
            self.set_birth_date(info.birth_date);
        }
        let mine: Vec<Observation> = extracted
            .observations
            .iter()
            .filter(|o| o.patient == self.patient)
            .cloned()
            .collect();
        let n = mine.len();
        for obs in mine {
            // Filtered above: cannot be another patient's.
            let _ = self.add(obs);
        }
        n
    }

    /// Drops observations older than `before`, keeping the newest SpO₂-scale one (the scale
    /// stays until changed). Callers prune with a margin of at least the labs window.
    pub fn prune(&mut self, before: i64) {
        let keep_scale = self
            .entries
            .iter()
            .filter(|e| e.obs.kind == VitalKind::Spo2Scale)
            .max_by_key(|e| (e.obs.observed_at, e.seq))
            .map(|e| e.seq);
        self.entries
            .retain(|e| e.obs.observed_at >= before || Some(e.seq) == keep_scale);
    }

    /// Whether an entry may be scored under these settings.
    fn usable(obs: &Observation, settings: &ScoringSettings) -> bool {
        match obs.status {
            ResultStatus::Final | ResultStatus::Corrected => true,
            ResultStatus::Preliminary => settings.preliminary == Preliminary::Use,
            _ => false,
        }
    }

    /// Usable observations of `kinds` with `from ≤ time ≤ to`, newest first (ties: latest
    /// arrival first; entries are kept sorted by (time, arrival)).
    pub(crate) fn select(
        &self,
        kinds: &[VitalKind],
        from: i64,
        to: i64,
        settings: &ScoringSettings,
    ) -> Vec<&Observation> {
        let end = self.entries.partition_point(|e| e.obs.observed_at <= to);
        self.entries[..end]
            .iter()
            .rev()
            .take_while(|e| e.obs.observed_at >= from)
            .filter(|e| kinds.contains(&e.obs.kind) && Self::usable(&e.obs, settings))
            .map(|e| &e.obs)
            .collect()
    }

    /// The newest usable observation of `kind` with `at − window ≤ time ≤ at`.
    pub(crate) fn latest(
        &self,
        kind: VitalKind,
        at: i64,
        window: std::time::Duration,
        settings: &ScoringSettings,
    ) -> Option<&Observation> {
        let from = at.saturating_sub(micros(window));
        let end = self.entries.partition_point(|e| e.obs.observed_at <= at);
        self.entries[..end]
            .iter()
            .rev()
            .take_while(|e| e.obs.observed_at >= from)
            .find(|e| e.obs.kind == kind && Self::usable(&e.obs, settings))
            .map(|e| &e.obs)
    }

    /// The SpO₂ scale in force at `at`: the newer of the flag and the newest usable
    /// SPO2SCALE observation (any age); scale 1 when neither exists.
    pub fn spo2_scale(&self, at: i64, settings: &ScoringSettings, flags: &PatientFlags) -> u8 {
        let kinds = [VitalKind::Spo2Scale];
        let observed = self
            .select(&kinds, i64::MIN, at, settings)
            .first()
            .map(|o| (o.observed_at, if o.value == 2.0 { 2 } else { 1 }));
        let flag = flags
            .spo2_scale
            .filter(|f| f.set_at <= at)
            .map(|f| (f.set_at, if f.scale == 2 { 2 } else { 1 }));
        match (observed, flag) {
            (Some(o), Some(f)) => {
                if o.0 > f.0 {
                    o.1
                } else {
                    f.1
                }
            }
            (Some((_, s)), None) | (None, Some((_, s))) => s,
            (None, None) => 1,
        }
    }

    /// Scores this patient as of `at` (UTC microseconds).
    pub fn score(&self, at: i64, settings: &ScoringSettings, flags: &PatientFlags) -> Scores {
        Scores {
            patient: self.patient.clone(),
            at,
            news2: news2::score(self, at, settings, flags),
            qsofa: qsofa::score(self, at, settings),
            sirs: sirs::score(self, at, settings),
        }
    }
}
