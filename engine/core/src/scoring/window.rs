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

use std::collections::VecDeque;

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

const KINDS: usize = VitalKind::ALL.len();

/// All observations of one patient.
#[derive(Debug, Clone)]
pub struct PatientWindow {
    patient: PatientKey,
    birth_date: Option<Date>,
    /// One list per kind (`VitalKind as usize`), each sorted by (time, arrival).
    by_kind: [VecDeque<Entry>; KINDS],
    seq: u64,
}

impl PatientWindow {
    /// An empty window for `patient`.
    pub fn new(patient: PatientKey) -> PatientWindow {
        PatientWindow {
            patient,
            birth_date: None,
            by_kind: std::array::from_fn(|_| VecDeque::new()),
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
        let mut all: Vec<&Entry> = self.by_kind.iter().flatten().collect();
        all.sort_by_key(|e| (e.obs.observed_at, e.seq));
        all.into_iter().map(|e| &e.obs)
    }

    /// How many observations are kept.
    pub fn len(&self) -> usize {
        self.by_kind.iter().map(VecDeque::len).sum()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest observation time in the window (the `medway score` evaluation time).
    pub fn newest_time(&self) -> Option<i64> {
        self.by_kind
            .iter()
            .filter_map(|v| v.back().map(|e| e.obs.observed_at))
            .max()
    }

    /// Adds one observation of this patient; refuses another patient's.
    pub fn add(&mut self, obs: Observation) -> Result<AddOutcome, WrongPatient> {
        if obs.patient != self.patient {
            return Err(WrongPatient {
                window: self.patient.clone(),
                observation: obs.patient,
            });
        }
        let entries = &mut self.by_kind[obs.kind as usize];
        // Sorted by time: the same identity can only be among equal times.
        let at = obs.observed_at;
        let (lo, hi) = if entries.back().is_none_or(|e| e.obs.observed_at < at) {
            (entries.len(), entries.len()) // the usual case: newer than everything
        } else {
            (
                entries.partition_point(|e| e.obs.observed_at < at),
                entries.partition_point(|e| e.obs.observed_at <= at),
            )
        };
        let matches: Vec<usize> = (lo..hi)
            .filter(|&i| entries[i].obs.identity() == obs.identity())
            .collect();
        let remove = |entries: &mut VecDeque<Entry>| {
            for &i in matches.iter().rev() {
                entries.remove(i);
            }
        };
        let outcome = match obs.status {
            ResultStatus::NoValue | ResultStatus::Other => AddOutcome::Ignored,
            ResultStatus::Retracted => {
                remove(entries);
                AddOutcome::Retracted(matches.len())
            }
            ResultStatus::MadeFinal => {
                match matches
                    .iter()
                    .find(|&&i| entries[i].obs.status == ResultStatus::Preliminary)
                {
                    Some(&i) => {
                        entries[i].obs.status = ResultStatus::Final;
                        AddOutcome::MadeFinal
                    }
                    None => AddOutcome::Ignored,
                }
            }
            ResultStatus::Preliminary
                if matches.iter().any(|&i| entries[i].obs.status.is_final()) =>
            {
                AddOutcome::Ignored
            }
            ResultStatus::Final | ResultStatus::Corrected | ResultStatus::Preliminary => {
                remove(entries);
                self.seq += 1;
                // After the removals the equal-time run ends at `hi - matches.len()`.
                entries.insert(hi - matches.len(), Entry { obs, seq: self.seq });
                if matches.is_empty() {
                    AddOutcome::Added
                } else {
                    AddOutcome::Replaced
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
        let mut n = 0;
        for obs in &extracted.observations {
            if obs.patient != self.patient {
                continue;
            }
            n += 1;
            // Filtered above: cannot be another patient's.
            let _ = self.add(obs.clone());
        }
        n
    }

    /// Drops observations older than `before`, keeping the newest SpO₂-scale one (the scale
    /// stays until changed). Callers prune with a margin of at least the labs window.
    pub fn prune(&mut self, before: i64) {
        for (k, entries) in self.by_kind.iter_mut().enumerate() {
            let old = entries.partition_point(|e| e.obs.observed_at < before);
            let keep_last = k == VitalKind::Spo2Scale as usize && old == entries.len();
            let cut = if keep_last {
                old.saturating_sub(1)
            } else {
                old
            };
            entries.drain(..cut);
        }
    }

    /// Whether an entry may be scored under these settings.
    fn usable(obs: &Observation, settings: &ScoringSettings) -> bool {
        match obs.status {
            ResultStatus::Final | ResultStatus::Corrected => true,
            ResultStatus::Preliminary => settings.preliminary == Preliminary::Use,
            _ => false,
        }
    }

    /// Usable observations of `kind` with `from ≤ time ≤ to`, newest first.
    fn range(
        &self,
        kind: VitalKind,
        from: i64,
        to: i64,
        settings: &ScoringSettings,
    ) -> impl Iterator<Item = &Entry> {
        let entries = &self.by_kind[kind as usize];
        let end = if entries.back().is_none_or(|e| e.obs.observed_at <= to) {
            entries.len() // the usual case: scoring at the newest time
        } else {
            entries.partition_point(|e| e.obs.observed_at <= to)
        };
        entries
            .range(..end)
            .rev()
            .take_while(move |e| e.obs.observed_at >= from)
            .filter(move |e| Self::usable(&e.obs, settings))
    }

    /// Usable observations of `kinds` with `from ≤ time ≤ to`, newest first (ties: latest
    /// arrival first).
    pub(crate) fn select(
        &self,
        kinds: &[VitalKind],
        from: i64,
        to: i64,
        settings: &ScoringSettings,
    ) -> Vec<&Observation> {
        let mut found: Vec<&Entry> = kinds
            .iter()
            .flat_map(|k| self.range(*k, from, to, settings))
            .collect();
        found.sort_by_key(|e| std::cmp::Reverse((e.obs.observed_at, e.seq)));
        found.into_iter().map(|e| &e.obs).collect()
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
        self.range(kind, from, at, settings).next().map(|e| &e.obs)
    }

    /// The SpO₂ scale in force at `at`: the newer of the flag and the newest usable
    /// SPO2SCALE observation (any age); scale 1 when neither exists.
    pub fn spo2_scale(&self, at: i64, settings: &ScoringSettings, flags: &PatientFlags) -> u8 {
        let observed = self
            .range(VitalKind::Spo2Scale, i64::MIN, at, settings)
            .next()
            .map(|e| (e.obs.observed_at, if e.obs.value == 2.0 { 2 } else { 1 }));
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
