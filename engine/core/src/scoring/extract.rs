//! ORU (or any message with PID/OBR/OBX) → normalised [`Observation`]s, each tied to the PID it
//! follows.
//!
//! Walks the segments once. A PID starts a patient group: the key is PID-3.1 with PID-3.4
//! (the first repetition, or the one whose authority is `ScoringSettings::patient_authority`);
//! PV1-3 gives the location, PV1-19 the encounter, PID-7 the birth date. An OBR gives the set id
//! (OBR-3.1, else OBR-2.1) and the fallback time OBR-7. Each OBX whose OBX-3 (either triplet) is
//! a scoring code becomes one observation: value by OBX-2 (NM/ST/TX numeric text, SN without
//! comparator, CE/CWE codes for ACVPU and air/oxygen), unit from OBX-6, status OBX-11, time
//! OBX-14 else OBR-7 else MSH-7.
//!
//! Invariants: a value that cannot be trusted (unknown unit, not a number, implausible, code
//! conflict, unusable time) is never an observation — it is an [`ExtractionProblem`]. If any
//! PID lacks an identifier, or an OBX comes before any PID, the whole message yields no
//! observations and `patient = None` (the caller answers AE): nothing is ever attributed to a
//! guessed patient. Problem `detail` text holds no patient data (no ids, names or values), so
//! it may be logged; `value` may not.

use std::borrow::Cow;

use jiff::civil::Date;
use medway_hl7::{Message, Path};

use super::codes::{CodeMap, CodeMatch};
use super::observation::{Location, Observation, PatientKey, ResultStatus, VitalKind};
use super::settings::ScoringSettings;
use super::time::{parse_birth_date, parse_hl7_time};
use super::value::{Parsed, on_oxygen_from_code, value_of};

/// What kind of problem an OBX (or the message) had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// No PID, an empty PID-3, or an OBX before any PID: nothing in the message is scored.
    MissingPatient,
    /// OBX-6 is not a unit the kind can be in.
    UnknownUnit,
    /// Outside the plausibility range.
    Implausible,
    /// OBX-5 is not a usable number (or an unknown code for a coded kind).
    NotANumber,
    /// OBX-5 empty on a result that should carry one.
    EmptyValue,
    /// SN with a comparator or a range (`<^10`, `^10^-^20`): not exact, not scored.
    InexactValue,
    /// OBX-14 / OBR-7 / MSH-7 unusable or absent.
    BadTime,
    /// The two OBX-3 triplets name different kinds.
    CodeConflict,
    /// The value was scored, but a heuristic was applied (e.g. WBC per µL, empty OBX-11).
    Normalised,
}

/// One thing the extraction refused or adjusted; surfaced to the caller, never silent.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractionProblem {
    /// Which OBX (1-based occurrence in the message), or 0 for the message / a PID.
    pub obx: usize,
    /// The kind, when the code was recognised.
    pub kind: Option<VitalKind>,
    /// What went wrong.
    pub problem: ProblemKind,
    /// A short reason without patient data (safe to log).
    pub detail: String,
    /// OBX-5 as sent, for a clinician's screen (may be PHI: do not log).
    pub value: Option<String>,
}

/// Demographics and place of one PID group.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientInfo {
    /// The key.
    pub key: PatientKey,
    /// PV1-3, if a PV1 followed.
    pub location: Option<Location>,
    /// PV1-19.1.
    pub encounter: Option<String>,
    /// PID-7.
    pub birth_date: Option<Date>,
}

/// Everything extracted from one message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extracted {
    /// The message's (first) patient; `None` when the message must be refused (AE).
    pub patient: Option<PatientKey>,
    /// The first patient's PV1-3.
    pub location: Option<Location>,
    /// Every PID group in order (a PATIENT_RESULT may repeat); empty when `patient` is None.
    pub patients: Vec<PatientInfo>,
    /// Usable observations; each carries its own patient key.
    pub observations: Vec<Observation>,
    /// What was not scored, and why.
    pub problems: Vec<ExtractionProblem>,
}

fn path(segment: [u8; 3], occurrence: usize, field: u32, component: Option<u32>) -> Path {
    Path {
        segment,
        occurrence: u32::try_from(occurrence).unwrap_or(u32::MAX),
        field,
        repetition: 1,
        component,
        subcomponent: None,
    }
}

struct Seg<'m> {
    msg: &'m Message,
    name: [u8; 3],
    occurrence: usize,
}

impl<'m> Seg<'m> {
    fn get(&self, field: u32, component: Option<u32>) -> Option<Cow<'m, str>> {
        self.msg
            .get_path(&path(self.name, self.occurrence, field, component))
    }
    /// Trimmed text, `None` when missing or empty.
    fn text(&self, field: u32, component: Option<u32>) -> Option<String> {
        let v = self.get(field, component)?;
        let t = v.trim();
        (!t.is_empty()).then(|| t.to_string())
    }
    fn text_rep(&self, field: u32, repetition: u32, component: u32) -> Option<String> {
        let mut p = path(self.name, self.occurrence, field, Some(component));
        p.repetition = repetition;
        let v = self.msg.get_path(&p)?;
        let t = v.trim();
        (!t.is_empty()).then(|| t.to_string())
    }
}

fn patient_key(pid: &Seg<'_>, settings: &ScoringSettings) -> Option<PatientKey> {
    for rep in 1..=64u32 {
        let mut p = path(*b"PID", pid.occurrence, 3, None);
        p.repetition = rep;
        pid.msg.get_path(&p)?;
        let Some(id) = pid.text_rep(3, rep, 1) else {
            continue;
        };
        let authority = pid.text_rep(3, rep, 4).unwrap_or_default();
        if let Some(wanted) = &settings.patient_authority {
            let namespace = authority.split('&').next().unwrap_or_default();
            if namespace != wanted && authority != *wanted {
                continue;
            }
        }
        return Some(PatientKey { id, authority });
    }
    None
}

struct Group {
    key: Option<PatientKey>,
    info: Option<PatientInfo>,
}

/// Extracts every scoring observation of one message. Never fails: what cannot be used is in
/// `problems`.
pub fn extract(message: &Message, codes: &CodeMap, settings: &ScoringSettings) -> Extracted {
    let mut out = Extracted::default();
    let mut missing_patient = false;
    let mut group: Option<Group> = None;
    let mut groups: Vec<PatientInfo> = Vec::new();
    let zone = &settings.default_zone;
    let source = message
        .control_id()
        .map(Cow::into_owned)
        .unwrap_or_default();
    let msh = Seg {
        msg: message,
        name: *b"MSH",
        occurrence: 1,
    };
    let msh_time = msh.text(7, None).map(|t| parse_hl7_time(&t, zone));
    let mut obr_time: Option<Result<i64, _>> = None;
    let mut set_id = String::new();
    let mut counts = std::collections::HashMap::<[u8; 3], usize>::new();

    let names: Vec<[u8; 3]> = message
        .segment_names()
        .map(|n| {
            let b = n.as_bytes();
            [
                *b.first().unwrap_or(&b'?'),
                *b.get(1).unwrap_or(&b'?'),
                *b.get(2).unwrap_or(&b'?'),
            ]
        })
        .collect();
    for name in names {
        let occurrence = {
            let c = counts.entry(name).or_insert(0);
            *c += 1;
            *c
        };
        let seg = Seg {
            msg: message,
            name,
            occurrence,
        };
        match &name {
            b"PID" => {
                if let Some(Group {
                    info: Some(info), ..
                }) = group.take()
                {
                    groups.push(info);
                }
                let key = patient_key(&seg, settings);
                if key.is_none() {
                    missing_patient = true;
                    out.problems.push(ExtractionProblem {
                        obx: 0,
                        kind: None,
                        problem: ProblemKind::MissingPatient,
                        detail: "PID-3 has no usable patient identifier".into(),
                        value: None,
                    });
                }
                let info = key.clone().map(|key| PatientInfo {
                    key,
                    location: None,
                    encounter: None,
                    birth_date: seg.text(7, None).and_then(|t| parse_birth_date(&t)),
                });
                group = Some(Group { key, info });
                obr_time = None;
                set_id.clear();
            }
            b"PV1" => {
                if let Some(Group {
                    info: Some(info), ..
                }) = group.as_mut()
                {
                    let c = |n| seg.text(3, Some(n)).unwrap_or_default();
                    let location = Location {
                        ward: c(1),
                        room: c(2),
                        bed: c(3),
                        facility: c(4),
                    };
                    info.location = (location != Location::default()).then_some(location);
                    info.encounter = seg.text(19, Some(1));
                }
            }
            b"OBR" => {
                obr_time = seg.text(7, None).map(|t| parse_hl7_time(&t, zone));
                set_id = seg
                    .text(3, Some(1))
                    .or_else(|| seg.text(2, Some(1)))
                    .unwrap_or_default();
            }
            b"OBX" => {
                let key = match &group {
                    Some(Group { key: Some(k), info }) => (k, info.as_ref()),
                    Some(Group { key: None, .. }) => continue,
                    None => {
                        if !missing_patient {
                            out.problems.push(ExtractionProblem {
                                obx: occurrence,
                                kind: None,
                                problem: ProblemKind::MissingPatient,
                                detail: "OBX before any PID".into(),
                                value: None,
                            });
                        }
                        missing_patient = true;
                        continue;
                    }
                };
                let ctx = ObxContext {
                    source: &source,
                    set_id: &set_id,
                    obr_time: obr_time.as_ref(),
                    msh_time: msh_time.as_ref(),
                    patient: key.0,
                    encounter: key.1.and_then(|i| i.encounter.clone()),
                };
                obx(&seg, &ctx, codes, settings, &mut out);
            }
            _ => {}
        }
    }
    if let Some(Group {
        info: Some(info), ..
    }) = group.take()
    {
        groups.push(info);
    }
    if groups.is_empty() && !missing_patient {
        missing_patient = true;
        out.problems.push(ExtractionProblem {
            obx: 0,
            kind: None,
            problem: ProblemKind::MissingPatient,
            detail: "no PID segment".into(),
            value: None,
        });
    }
    if missing_patient {
        out.observations.clear();
        return out;
    }
    out.patient = groups.first().map(|g| g.key.clone());
    out.location = groups.first().and_then(|g| g.location.clone());
    out.patients = groups;
    out
}

struct ObxContext<'a> {
    source: &'a str,
    set_id: &'a str,
    obr_time: Option<&'a Result<i64, super::time::TimeError>>,
    msh_time: Option<&'a Result<i64, super::time::TimeError>>,
    patient: &'a PatientKey,
    encounter: Option<String>,
}

fn obx(
    seg: &Seg<'_>,
    ctx: &ObxContext<'_>,
    codes: &CodeMap,
    settings: &ScoringSettings,
    out: &mut Extracted,
) {
    let n = seg.occurrence;
    let t = |c| seg.text(3, Some(c)).unwrap_or_default();
    let (code1, code2) = (t(1), t(4));
    let kind = match codes.classify((&code1, &t(3)), (&code2, &t(6))) {
        CodeMatch::NotScored => return,
        CodeMatch::Kind(kind) => kind,
        CodeMatch::Conflict(a, b) => {
            out.problems.push(ExtractionProblem {
                obx: n,
                kind: None,
                problem: ProblemKind::CodeConflict,
                detail: format!("OBX-3 triplets name {a} and {b}: not scored"),
                value: None,
            });
            return;
        }
    };
    let mut problem = |problem, detail: String, value: Option<String>| {
        out.problems.push(ExtractionProblem {
            obx: n,
            kind: Some(kind),
            problem,
            detail,
            value,
        });
    };
    // OBX-11 is required; an empty one on a valued OBX is read as final (tolerant input, as in
    // the REFERENCE.md §3 example's ACVPU line) and surfaced.
    let mut status = match seg.text(11, None) {
        Some(code) => ResultStatus::from_obx11(&code),
        None => {
            problem(
                ProblemKind::Normalised,
                "OBX-11 empty: read as final".into(),
                None,
            );
            ResultStatus::Final
        }
    };
    let value_type = seg.text(2, None).unwrap_or_default().to_ascii_uppercase();
    let raw_value = seg.text(5, None);
    let unit_text = seg
        .text(6, Some(1))
        .or_else(|| seg.text(6, Some(2)))
        .unwrap_or_default();

    // Time: OBX-14, else OBR-7, else MSH-7; a present but bad time is not replaced by a fallback.
    let observed_at = match seg.text(14, None) {
        Some(text) => parse_hl7_time(&text, &settings.default_zone),
        None => match (ctx.obr_time, ctx.msh_time) {
            (Some(r), _) | (None, Some(r)) => r.clone(),
            (None, None) => Err(super::time::TimeError("no OBX-14, OBR-7 or MSH-7")),
        },
    };
    let observed_at = match observed_at {
        Ok(at) => at,
        Err(e) => {
            problem(ProblemKind::BadTime, format!("observation time: {e}"), None);
            return;
        }
    };

    let without_value = matches!(
        status,
        ResultStatus::Retracted | ResultStatus::NoValue | ResultStatus::MadeFinal
    );
    if status == ResultStatus::MadeFinal && raw_value.is_some() {
        status = ResultStatus::Final;
    }
    let parsed: Parsed = match &raw_value {
        None if kind == VitalKind::OnOxygen && on_oxygen_from_code(&code1).is_some() => {
            Ok((on_oxygen_from_code(&code1).unwrap_or(0.0), None, None))
        }
        None => Err((ProblemKind::EmptyValue, "OBX-5 is empty".into())),
        Some(raw) => value_of(
            kind,
            &value_type,
            raw,
            |c| seg.text(5, Some(c)),
            &unit_text,
            codes,
        ),
    };
    let (value, text, note) = match parsed {
        Ok(v) => v,
        Err(_) if without_value => (0.0, None, None),
        Err((kind_of_problem, detail)) => {
            problem(kind_of_problem, detail, raw_value.clone());
            return;
        }
    };
    if let Some(note) = note {
        problem(ProblemKind::Normalised, note.into(), raw_value.clone());
    }
    out.observations.push(Observation {
        patient: ctx.patient.clone(),
        kind,
        value,
        text,
        unit: kind.canonical_unit().to_string(),
        original_value: raw_value.unwrap_or_default(),
        original_unit: unit_text,
        observed_at,
        status,
        set_id: ctx.set_id.to_string(),
        encounter: ctx.encounter.clone(),
        source: ctx.source.to_string(),
    });
}
