//! Scoring ↔ FHIR R4: ORU-derived observations → the vital-signs Bundle an HTTP destination
//! posts ([`vital_signs_input`]), and FHIR Observations → the same [`Observation`] records the
//! HL7 path produces ([`extract_fhir`]), so both are stored and scored alike.
//!
//! One table ([`fhir_codes`]) names each [`VitalKind`] in FHIR: its LOINC code (SNOMED CT for
//! ACVPU and air/oxygen, which have no LOINC in REFERENCE.md §2), display, category and UCUM
//! unit. Reading FHIR reuses everything the HL7 path uses: the code map (built-in LOINC/SNOMED/
//! MDC plus a channel's local codes), `value.rs`/`units.rs` (unit normalisation, plausibility)
//! and `time.rs` (minute precision at least; an offset or the default zone).
//!
//! Invariants, as for HL7: a scoring observation whose subject resolves to no patient
//! identifier makes the whole payload unscorable (`patient = None`): never a guessed patient;
//! problems hold no patient data.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use medway_fhir::{Coding, FhirObservation, VitalSign, VitalSignsInput, VitalStatus, VitalValue};

use super::codes::{CodeMap, CodeMatch};
use super::extract::{Extracted, ExtractionProblem, PatientInfo, ProblemKind};
use super::observation::{Observation, PatientKey, ResultStatus, VitalKind};
use super::settings::ScoringSettings;
use super::time::{TimeError, parse_hl7_time, rfc3339};
use super::value::value_of;

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
/// Medway's own code system for kinds no standard code names (the clinician-set SpO₂ scale).
pub const LOCAL_SYSTEM: &str = "urn:medway:scoring";

/// How a kind is written in FHIR: codes (main first), category, UCUM unit of the value.
pub fn fhir_codes(kind: VitalKind) -> (Vec<Coding>, &'static str, &'static str) {
    use VitalKind as K;
    let loinc = |code, display| vec![Coding::new(LOINC, code, display)];
    let (codes, lab, unit) = match kind {
        K::RespiratoryRate => (loinc("9279-1", "Respiratory rate"), false, "/min"),
        K::HeartRate => (loinc("8867-4", "Heart rate"), false, "/min"),
        K::SpO2 => (
            vec![
                Coding::new(
                    LOINC,
                    "59408-5",
                    "Oxygen saturation in Arterial blood by Pulse oximetry",
                ),
                Coding::new(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
            ],
            false,
            "%",
        ),
        K::OxygenFlow => (loinc("3151-8", "Inhaled oxygen flow rate"), false, "L/min"),
        K::Fio2 => (loinc("3150-0", "Inhaled oxygen concentration"), false, "%"),
        K::OnOxygen => (
            vec![Coding::new(SNOMED, "371825009", "Patient on oxygen")],
            false,
            "",
        ),
        K::Systolic => (loinc("8480-6", "Systolic blood pressure"), false, "mm[Hg]"),
        K::Acvpu => (
            vec![Coding::new(SNOMED, "1104441000000107", "ACVPU scale")],
            false,
            "",
        ),
        K::Gcs => (
            loinc("9269-2", "Glasgow coma score total"),
            false,
            "{score}",
        ),
        K::Temperature => (loinc("8310-5", "Body temperature"), false, "Cel"),
        K::Wbc => (
            loinc("6690-2", "Leukocytes [#/volume] in Blood"),
            true,
            "10*3/uL",
        ),
        K::Bands => (
            loinc("764-1", "Band form neutrophils/100 leukocytes in Blood"),
            true,
            "%",
        ),
        K::PaCO2 => (
            loinc(
                "2019-8",
                "Carbon dioxide [Partial pressure] in Arterial blood",
            ),
            true,
            "mm[Hg]",
        ),
        K::PaO2 => (
            loinc("2703-7", "Oxygen [Partial pressure] in Arterial blood"),
            true,
            "mm[Hg]",
        ),
        K::Lactate => (
            loinc("2524-7", "Lactate [Moles/volume] in Serum or Plasma"),
            true,
            "mmol/L",
        ),
        K::Creatinine => (
            loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
            true,
            "mg/dL",
        ),
        K::Bilirubin => (
            loinc("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma"),
            true,
            "mg/dL",
        ),
        K::Platelets => (
            loinc("777-3", "Platelets [#/volume] in Blood"),
            true,
            "10*3/uL",
        ),
        K::Spo2Scale => (
            vec![Coding::new(LOCAL_SYSTEM, "SPO2SCALE", "NEWS2 SpO2 scale")],
            false,
            "{score}",
        ),
    };
    (codes, if lab { "laboratory" } else { "vital-signs" }, unit)
}

/// SNOMED CT codes of the ACVPU levels (DECISIONS.md), by letter.
fn acvpu_coding(letter: &str) -> Option<Coding> {
    let (code, display) = match letter {
        "A" => ("248234008", "Alert"),
        "C" => ("130987000", "New confusion"),
        "V" => ("300202002", "Responds to voice"),
        "P" => ("450847001", "Responds to pain"),
        "U" => ("422768004", "Unresponsive"),
        _ => return None,
    };
    Some(Coding::new(SNOMED, code, display))
}

fn status_to_fhir(status: ResultStatus) -> VitalStatus {
    match status {
        ResultStatus::Final | ResultStatus::MadeFinal => VitalStatus::Final,
        ResultStatus::Corrected => VitalStatus::Amended,
        ResultStatus::Preliminary => VitalStatus::Preliminary,
        ResultStatus::Retracted => VitalStatus::EnteredInError,
        ResultStatus::NoValue => VitalStatus::Cancelled,
        ResultStatus::Other => VitalStatus::Unknown,
    }
}

/// An FHIR `Observation.status` as the HL7 status it corresponds to.
pub fn status_from_fhir(status: &str) -> ResultStatus {
    match status {
        "final" => ResultStatus::Final,
        "amended" | "corrected" => ResultStatus::Corrected,
        "preliminary" => ResultStatus::Preliminary,
        "entered-in-error" => ResultStatus::Retracted,
        "cancelled" => ResultStatus::NoValue,
        _ => ResultStatus::Other,
    }
}

/// The identifier system of an HL7 assigning authority: an OID becomes `urn:oid:…` (also the
/// universal id of an `NS&OID&ISO` HD), `systems` maps a namespace to a URI, anything else is
/// kept as sent.
pub fn authority_system(authority: &str, systems: &HashMap<String, String>) -> String {
    let namespace = authority.split('&').next().unwrap_or_default();
    if let Some(uri) = systems.get(authority).or_else(|| systems.get(namespace)) {
        return uri.clone();
    }
    let is_oid = |t: &str| {
        !t.is_empty()
            && t.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && t.contains('.')
    };
    let mut parts = authority.split('&');
    let (ns, universal, kind) = (parts.next(), parts.next(), parts.next());
    match (ns, universal, kind) {
        (_, Some(oid), Some(kind)) if kind.eq_ignore_ascii_case("ISO") && is_oid(oid) => {
            format!("urn:oid:{oid}")
        }
        (Some(ns), None, None) if is_oid(ns) => format!("urn:oid:{ns}"),
        _ => authority.to_owned(),
    }
}

/// Why an ORU cannot become a vital-signs Bundle (PHI-free text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// No PID-3 identifier: nothing may be attributed to a guessed patient.
    #[error("no patient identifier (PID-3)")]
    NoPatient,
    /// A Bundle carries one patient.
    #[error("the message has {0} patients; a vital-signs Bundle carries one")]
    SeveralPatients(usize),
    /// Nothing the scoring codes recognise.
    #[error("no vital signs the scoring codes recognise ({0} OBX value(s) not usable)")]
    NoVitals(usize),
}

/// The Bundle input for one extracted ORU: one entry per extracted observation, in order.
/// `source` seeds the Bundle's ids (pass the message id); `systems` maps assigning authorities
/// to identifier system URIs ([`authority_system`]).
pub fn vital_signs_input(
    extracted: &Extracted,
    source: &str,
    systems: &HashMap<String, String>,
) -> Result<VitalSignsInput, BundleError> {
    let patient = extracted.patient.as_ref().ok_or(BundleError::NoPatient)?;
    if extracted.patients.len() > 1 {
        return Err(BundleError::SeveralPatients(extracted.patients.len()));
    }
    if extracted.observations.is_empty() {
        return Err(BundleError::NoVitals(extracted.problems.len()));
    }
    let vitals = extracted
        .observations
        .iter()
        .map(|o| {
            let (codes, category, unit) = fhir_codes(o.kind);
            let absent = matches!(o.status, ResultStatus::Retracted | ResultStatus::NoValue)
                || (o.status == ResultStatus::MadeFinal && o.original_value.is_empty());
            let value = match o.kind {
                _ if absent => None,
                VitalKind::Acvpu => o
                    .text
                    .as_deref()
                    .and_then(acvpu_coding)
                    .map(VitalValue::Coded),
                VitalKind::OnOxygen => Some(VitalValue::Boolean(o.value > 0.5)),
                // Canonical FiO₂ is a fraction; FHIR senders use % (3150-0 in US Core).
                VitalKind::Fio2 => Some(VitalValue::Quantity {
                    value: (o.value * 1000.0).round() / 10.0,
                    unit: unit.to_owned(),
                }),
                _ => Some(VitalValue::Quantity {
                    value: o.value,
                    unit: unit.to_owned(),
                }),
            };
            VitalSign {
                codes,
                category,
                value,
                effective: rfc3339(o.observed_at),
                status: status_to_fhir(o.status),
            }
        })
        .collect();
    Ok(VitalSignsInput {
        source: source.to_owned(),
        patient_system: authority_system(&patient.authority, systems),
        patient_value: patient.id.clone(),
        vitals,
    })
}

/// A FHIR `dateTime`/`instant` → UTC microseconds, with the HL7 path's rules (at least minute
/// precision; without an offset, the default zone).
pub fn parse_fhir_time(text: &str, zone: &TimeZone) -> Result<i64, TimeError> {
    let (date, rest) = text.trim().split_once('T').unwrap_or((text.trim(), ""));
    let (time, offset) = match rest.find(['Z', '+', '-']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let offset = if offset == "Z" {
        "+0000".to_owned()
    } else {
        offset.replace(':', "")
    };
    if date.contains(['+', 'Z']) || !date.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(TimeError("not a FHIR dateTime"));
    }
    let hl7 = format!("{}{}{offset}", date.replace('-', ""), time.replace(':', ""));
    parse_hl7_time(&hl7, zone)
}

/// The patient key of a FHIR subject: the identifier whose system `systems` maps (to the
/// authority), else the first; authority = the mapped name, else the system URI itself. With
/// `ScoringSettings::patient_authority`, only an identifier with that authority counts.
fn patient_key(
    found: &FhirObservation,
    systems: &HashMap<String, String>,
    wanted: Option<&str>,
) -> Option<PatientKey> {
    let identifiers = &found.subject.as_ref()?.identifiers;
    let keyed = |(system, value): &(String, String)| {
        let authority = systems
            .get(system)
            .cloned()
            .unwrap_or_else(|| system.clone());
        (!value.trim().is_empty()).then(|| PatientKey::new(value.trim(), authority))
    };
    let mut keys = identifiers.iter().filter_map(|i| keyed(i).map(|k| (i, k)));
    match wanted {
        Some(wanted) => keys.find(|(_, k)| k.authority == wanted).map(|(_, k)| k),
        None => {
            let all: Vec<_> = keys.collect();
            all.iter()
                .find(|((system, _), _)| systems.contains_key(system))
                .or_else(|| all.first())
                .map(|(_, k)| k.clone())
        }
    }
}

/// FHIR Observations (from [`medway_fhir::observations`]) → the records ORUs give, for
/// storing and scoring. `source` names the payload (its control id). Never fails: what
/// cannot be used is in `problems`; if a scoring observation has no patient identifier,
/// nothing is returned and `patient` is `None`.
pub fn extract_fhir(
    found: &[FhirObservation],
    codes: &CodeMap,
    settings: &ScoringSettings,
    systems: &HashMap<String, String>,
    source: &str,
) -> Extracted {
    let mut out = Extracted::default();
    let mut missing_patient = false;
    for (index, record) in found.iter().enumerate() {
        let n = index + 1;
        let mut kinds = record
            .codes
            .iter()
            .filter_map(
                |(system, code)| match codes.classify((code, system), ("", "")) {
                    CodeMatch::Kind(kind) => Some(kind),
                    _ => None,
                },
            )
            .collect::<Vec<_>>();
        kinds.sort();
        kinds.dedup();
        let kind = match kinds.as_slice() {
            [] => continue,
            [kind] => *kind,
            [a, b, ..] => {
                out.problems.push(ExtractionProblem {
                    obx: n,
                    kind: None,
                    problem: ProblemKind::CodeConflict,
                    detail: format!("Observation codes name {a} and {b}: not scored"),
                    value: None,
                });
                continue;
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
        let Some(patient) = patient_key(record, systems, settings.patient_authority.as_deref())
        else {
            missing_patient = true;
            problem(
                ProblemKind::MissingPatient,
                "the Observation's subject resolves to no patient identifier".into(),
                None,
            );
            continue;
        };
        let status = status_from_fhir(&record.status);
        let observed_at = match record.effective.as_deref() {
            Some(text) => parse_fhir_time(text, &settings.default_zone),
            None => Err(TimeError("no effective time")),
        };
        let observed_at = match observed_at {
            Ok(at) => at,
            Err(e) => {
                problem(ProblemKind::BadTime, format!("observation time: {e}"), None);
                continue;
            }
        };
        let unit = record.unit.clone().unwrap_or_default();
        let raw: Vec<String> = match (record.value, kind.is_coded()) {
            (Some(number), _) => vec![number.to_string()],
            (None, true) => record.value_codes.iter().map(|(_, c)| c.clone()).collect(),
            (None, false) => Vec::new(),
        };
        let without_value = matches!(status, ResultStatus::Retracted | ResultStatus::NoValue);
        let mut parsed = Err((
            ProblemKind::EmptyValue,
            "the Observation has no value".into(),
        ));
        for text in &raw {
            parsed = value_of(kind, "NM", text, |_| None, &unit, codes);
            if parsed.is_ok() {
                break;
            }
        }
        let original_value = raw.first().cloned().unwrap_or_default();
        let (value, text, note) = match parsed {
            Ok(v) => v,
            Err(_) if without_value => (0.0, None, None),
            Err((kind_of_problem, detail)) => {
                problem(kind_of_problem, detail, raw.first().cloned());
                continue;
            }
        };
        if let Some(note) = note {
            problem(ProblemKind::Normalised, note.into(), raw.first().cloned());
        }
        if !out.patients.iter().any(|p| p.key == patient) {
            out.patients.push(PatientInfo {
                key: patient.clone(),
                location: None,
                encounter: None,
                birth_date: None,
            });
        }
        out.observations.push(Observation {
            patient,
            kind,
            value,
            text,
            unit: kind.canonical_unit().to_owned(),
            original_value,
            original_unit: unit,
            observed_at,
            status,
            set_id: String::new(),
            encounter: None,
            source: source.to_owned(),
        });
    }
    if missing_patient {
        out.observations.clear();
        out.patients.clear();
        return out;
    }
    out.patient = out.patients.first().map(|p| p.key.clone());
    out
}

/// Why a FHIR payload could not be read (re-exported so connectors need not name the crate).
pub use medway_fhir::FhirError;

/// [`vital_signs_input`] serialised: the body an HTTP destination posts
/// (`application/fhir+json`).
pub fn vital_signs_bundle(
    extracted: &Extracted,
    source: &str,
    systems: &HashMap<String, String>,
) -> Result<Vec<u8>, BundleError> {
    let input = vital_signs_input(extracted, source, systems)?;
    Ok(medway_fhir::vital_signs_bundle(&input)
        .to_string()
        .into_bytes())
}

/// A FHIR JSON payload (an Observation, or a Bundle of them) → [`extract_fhir`]'s records;
/// the payload is validated as R4 first.
pub fn extract_fhir_json(
    json: &[u8],
    codes: &CodeMap,
    settings: &ScoringSettings,
    systems: &HashMap<String, String>,
    source: &str,
) -> Result<Extracted, FhirError> {
    let found = medway_fhir::observations(json)?;
    Ok(extract_fhir(&found, codes, settings, systems, source))
}
