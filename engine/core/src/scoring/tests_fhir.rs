//! FHIR ↔ scoring: the US Core vital-sign examples read into the same observations the HL7
//! path produces, and every corpus ORU with vitals becomes a valid vital-signs Bundle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use medway_hl7::Message;
use serde_json::{Value, json};

use super::extract::ProblemKind;
use super::fhir::{
    BundleError, authority_system, extract_fhir, parse_fhir_time, status_from_fhir,
    vital_signs_input,
};
use super::{CodeMap, Extracted, PatientKey, ResultStatus, ScoringSettings, VitalKind, extract};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

fn fhir_file(name: &str) -> Value {
    let bytes = std::fs::read(corpus_dir().join("fhir").join(name)).expect("corpus file");
    serde_json::from_slice(&bytes).expect("json")
}

/// A collection Bundle of the US Core Patient example and `observations`, so subjects
/// (`Patient/example`) resolve to its identifier.
fn with_patient(observations: Vec<Value>) -> Vec<u8> {
    let mut entries = vec![json!({
        "fullUrl": "http://example.org/fhir/Patient/example",
        "resource": fhir_file("uscore_patient-example.json"),
    })];
    entries.extend(observations.into_iter().map(|o| json!({ "resource": o })));
    serde_json::to_vec(&json!({ "resourceType": "Bundle", "type": "collection", "entry": entries }))
        .expect("serialise")
}

fn read(json: &[u8], systems: &HashMap<String, String>) -> Extracted {
    let found = medway_fhir::observations(json).expect("valid FHIR");
    extract_fhir(
        &found,
        &CodeMap::builtin(),
        &ScoringSettings::default(),
        systems,
        "FHIR1",
    )
}

const US_CORE_PATIENT: &str = "http://example.org/patient/identifiers";

#[test]
fn us_core_vitals_map_to_kinds_units_and_the_patient() {
    let timed = |name: &str| {
        let mut o = fhir_file(name);
        o["effectiveDateTime"] = json!("2024-05-01T10:25:00+01:00");
        o
    };
    let systems = HashMap::from([(US_CORE_PATIENT.to_owned(), "EXAMPLE".to_owned())]);
    let extracted = read(
        &with_patient(vec![
            timed("uscore_observation-heart-rate.json"),
            timed("uscore_observation-respiratory-rate.json"),
            timed("uscore_observation-body-temperature.json"),
            timed("uscore_observation-oxygen-saturation.json"),
            timed("uscore_observation-blood-pressure-panel.json"),
            timed("uscore_observation-body-weight.json"),
            fhir_file("uscore_observation-spo2-with-fio2-component.json"),
        ]),
        &systems,
    );
    let key = PatientKey::new("1032702", "EXAMPLE");
    assert_eq!(extracted.patient, Some(key.clone()));
    let at = parse_fhir_time("2024-05-01T09:25:00Z", &jiff::tz::TimeZone::UTC).unwrap();
    let got: Vec<(VitalKind, f64, i64)> = extracted
        .observations
        .iter()
        .map(|o| (o.kind, o.value, o.observed_at))
        .collect();
    let at2 = parse_fhir_time("2014-12-05T08:30:10Z", &jiff::tz::TimeZone::UTC).unwrap();
    assert_eq!(
        got,
        vec![
            (VitalKind::HeartRate, 44.0, at),
            (VitalKind::RespiratoryRate, 26.0, at),
            // 36.55556 Cel: the HL7 path keeps Celsius as sent.
            (VitalKind::Temperature, 36.55556, at),
            (VitalKind::SpO2, 99.0, at),
            // The panel's systolic component (diastolic and weight are not scoring inputs).
            (VitalKind::Systolic, 109.0, at),
            (VitalKind::SpO2, 95.0, at2),
            (VitalKind::OxygenFlow, 6.0, at2),
        ]
    );
    for o in &extracted.observations {
        assert_eq!(o.patient, key);
        assert_eq!(o.status, ResultStatus::Final);
        assert_eq!(o.unit, o.kind.canonical_unit());
        assert_eq!(o.source, "FHIR1");
    }
    assert!(extracted.problems.is_empty(), "{:?}", extracted.problems);
}

#[test]
fn date_only_times_are_not_scored_as_in_hl7() {
    // The US Core examples are dated 1999-07-02: a day cannot place a value in a NEWS2 set.
    let extracted = read(
        &with_patient(vec![fhir_file("uscore_observation-heart-rate.json")]),
        &HashMap::new(),
    );
    assert!(extracted.observations.is_empty());
    assert_eq!(extracted.problems.len(), 1);
    assert_eq!(extracted.problems[0].problem, ProblemKind::BadTime);
    assert_eq!(extracted.problems[0].kind, Some(VitalKind::HeartRate));
}

#[test]
fn without_a_patient_identifier_nothing_is_scored() {
    let mut o = fhir_file("uscore_observation-spo2-with-fio2-component.json");
    o["effectiveDateTime"] = json!("2024-05-01T10:25:00Z");
    let alone = serde_json::to_vec(&o).unwrap();
    let extracted = read(&alone, &HashMap::new());
    assert_eq!(extracted.patient, None);
    assert!(extracted.observations.is_empty());
    assert!(
        extracted
            .problems
            .iter()
            .any(|p| p.problem == ProblemKind::MissingPatient)
    );
    // Unmapped system: the authority is the system URI itself.
    let extracted = read(&with_patient(vec![o]), &HashMap::new());
    assert_eq!(
        extracted.patient,
        Some(PatientKey::new("1032702", US_CORE_PATIENT))
    );
}

#[test]
fn statuses_units_and_coded_values() {
    let observation = |code: Value, status: &str, value: (&str, Value)| {
        let mut o = json!({
            "resourceType": "Observation", "status": status,
            "code": { "coding": [code] },
            "subject": { "identifier": { "system": "urn:oid:1.2.3", "value": "MRN9" } },
            "effectiveDateTime": "2024-05-01T10:25:00Z",
        });
        o[value.0] = value.1;
        o
    };
    let loinc = |c: &str| json!({ "system": "http://loinc.org", "code": c });
    let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": [
        { "resource": observation(loinc("8310-5"), "amended",
            ("valueQuantity", json!({ "value": 100.4, "code": "[degF]" }))) },
        { "resource": observation(loinc("3150-0"), "preliminary",
            ("valueQuantity", json!({ "value": 28, "code": "%" }))) },
        { "resource": observation(json!({ "system": "http://snomed.info/sct", "code": "1104441000000107" }),
            "final", ("valueCodeableConcept", json!({ "coding": [{ "system": "http://snomed.info/sct", "code": "300202002" }] }))) },
        { "resource": observation(loinc("8867-4"), "entered-in-error", ("valueQuantity", json!({ "value": 80, "code": "/min" }))) },
        { "resource": observation(loinc("9279-1"), "final", ("valueQuantity", json!({ "value": 18, "code": "kg" }))) },
    ]});
    let systems = HashMap::from([("urn:oid:1.2.3".to_owned(), "HOSP".to_owned())]);
    let extracted = read(&serde_json::to_vec(&bundle).unwrap(), &systems);
    assert_eq!(extracted.patient, Some(PatientKey::new("MRN9", "HOSP")));
    let o = &extracted.observations;
    assert_eq!(o.len(), 4, "{:?}", extracted.problems);
    assert_eq!(
        (o[0].kind, o[0].value, o[0].status),
        (VitalKind::Temperature, 38.0, ResultStatus::Corrected)
    );
    assert_eq!(
        (o[1].kind, o[1].value, o[1].status),
        (VitalKind::Fio2, 0.28, ResultStatus::Preliminary)
    );
    assert_eq!(
        (o[2].kind, o[2].text.as_deref()),
        (VitalKind::Acvpu, Some("V"))
    );
    assert_eq!(o[3].status, ResultStatus::Retracted);
    assert_eq!(extracted.problems.len(), 1);
    assert_eq!(extracted.problems[0].problem, ProblemKind::UnknownUnit);
    assert_eq!(status_from_fhir("cancelled"), ResultStatus::NoValue);
    assert_eq!(status_from_fhir("corrected"), ResultStatus::Corrected);
    assert_eq!(status_from_fhir("registered"), ResultStatus::Other);
}

#[test]
fn authorities_become_identifier_systems() {
    let none = HashMap::new();
    assert_eq!(authority_system("1.2.840.1", &none), "urn:oid:1.2.840.1");
    assert_eq!(authority_system("HOSP&1.2.3&ISO", &none), "urn:oid:1.2.3");
    assert_eq!(authority_system("HOSP", &none), "HOSP");
    let map = HashMap::from([("HOSP".to_owned(), "https://hosp.example/mrn".to_owned())]);
    assert_eq!(authority_system("HOSP", &map), "https://hosp.example/mrn");
    assert_eq!(
        authority_system("HOSP&1.2.3&ISO", &map),
        "https://hosp.example/mrn"
    );
}

fn hl7_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("corpus dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            hl7_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "hl7" || e == "txt" || e == "er7")
        {
            out.push(path);
        }
    }
}

/// The corpus ORUs with vitals for more than one patient (no Bundle: it carries one patient),
/// as `<path under tests/corpus>#<message index in the file>`. None today: every corpus ORU
/// with vitals must become a Bundle, and a new multi-patient one must be listed here.
const MULTI_PATIENT_ORUS: &[&str] = &[];

#[test]
fn every_corpus_oru_with_vitals_becomes_a_valid_bundle() {
    let mut files = Vec::new();
    hl7_files(&corpus_dir().join("hl7"), &mut files);
    files.sort();
    let (codes, settings) = (CodeMap::builtin(), ScoringSettings::default());
    let mut bundles = 0;
    let mut several = Vec::new();
    for file in &files {
        let raw = Bytes::from(std::fs::read(file).expect("read"));
        let Ok(batch) = medway_hl7::batch::split(&raw) else {
            continue;
        };
        for (index, bytes) in batch.messages.into_iter().enumerate() {
            let Ok(message) = Message::parse(bytes) else {
                continue;
            };
            let extracted = extract(&message, &codes, &settings);
            if extracted.observations.is_empty() {
                continue;
            }
            let name = format!("{}#{index}", file.display());
            let input = match vital_signs_input(&extracted, &name, &HashMap::new()) {
                Ok(input) => input,
                Err(BundleError::SeveralPatients(_)) => {
                    let relative = file.strip_prefix(corpus_dir()).unwrap_or(file);
                    several.push(format!("{}#{index}", relative.display()));
                    continue;
                }
                Err(e) => panic!("{name}: {e}"),
            };
            let bundle = serde_json::to_vec(&medway_fhir::vital_signs_bundle(&input)).unwrap();
            let summary = medway_fhir::validate(&bundle).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Parsed back with fhirbolt's typed R4 model too (mandatory elements present).
            medway_fhir::parse_typed(&bundle).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(summary.entries, extracted.observations.len() + 1, "{name}");
            let back = medway_fhir::observations(&bundle).unwrap();
            assert_eq!(back.len(), extracted.observations.len(), "{name}");
            // And it reads back into the same observations (kind, value, time, status).
            let again = extract_fhir(&back, &codes, &settings, &HashMap::new(), "x");
            let shape = |e: &Extracted| -> Vec<_> {
                e.observations
                    .iter()
                    .map(|o| {
                        (
                            o.kind,
                            (o.value * 1000.0).round(),
                            o.observed_at,
                            o.status,
                            o.text.clone(),
                        )
                    })
                    .collect()
            };
            let normalise = |mut v: Vec<(VitalKind, f64, i64, ResultStatus, Option<String>)>| {
                for o in &mut v {
                    if o.3 == ResultStatus::MadeFinal {
                        o.3 = ResultStatus::Final;
                    }
                    if matches!(o.3, ResultStatus::Retracted | ResultStatus::NoValue) {
                        o.1 = 0.0;
                    }
                }
                v
            };
            assert_eq!(
                normalise(shape(&again)),
                normalise(shape(&extracted)),
                "{name}"
            );
            bundles += 1;
        }
    }
    assert!(
        bundles >= 3,
        "ORUs with vitals in the corpus: {bundles} (+{} multi-patient)",
        several.len()
    );
    // Only these are skipped: a Bundle carries one patient.
    assert_eq!(several, MULTI_PATIENT_ORUS, "the multi-patient ORUs");
    eprintln!(
        "{bundles} corpus ORUs became Bundles; {} had several patients",
        several.len()
    );
}
