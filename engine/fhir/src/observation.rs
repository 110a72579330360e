//! Reading Observations (alone or in a Bundle) into flat records a scorer can use.

use std::collections::HashMap;

use serde_json::Value;

use crate::FhirError;
use crate::validate::parse;

/// Whose observation it is: the reference as sent and the patient identifiers it resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// `subject.reference`, e.g. `Patient/123` or `urn:uuid:…`.
    pub reference: Option<String>,
    /// `(system, value)` pairs: `subject.identifier` (a logical reference), else the
    /// identifiers of the Patient the reference resolves to inside the same Bundle (by
    /// `fullUrl` or `Patient/id`) or among `contained` resources (`#id`). `system` is "" when
    /// absent. Empty when nothing resolves: the caller must not guess a patient.
    pub identifiers: Vec<(String, String)>,
}

/// One measured value: an Observation, or one `component` of it (a blood-pressure panel's
/// systolic, a pulse oximetry's inspired-oxygen flow). Components inherit the Observation's
/// status, time, subject and id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FhirObservation {
    /// The Observation's logical id (shared by its components).
    pub id: Option<String>,
    /// `code.coding` as `(system, code)`; system "" when absent.
    pub codes: Vec<(String, String)>,
    /// `valueQuantity.value` (or `valueInteger`; `valueBoolean` as 1/0).
    pub value: Option<f64>,
    /// The UCUM code of `valueQuantity` (`code`, else its human `unit`).
    pub unit: Option<String>,
    /// `valueCodeableConcept.coding` as `(system, code)` (ACVPU, air/oxygen).
    pub value_codes: Vec<(String, String)>,
    /// `effectiveDateTime`, `effectiveInstant` or `effectivePeriod.start`, as sent.
    pub effective: Option<String>,
    /// `status` (`final`, `amended`, `corrected`, `preliminary`, `entered-in-error`, ...).
    pub status: String,
    /// Whose it is.
    pub subject: Option<Subject>,
}

/// Every Observation of `json` (an Observation, or a Bundle whose entries hold Observations
/// among other resources), with one record per component after the Observation's own.
/// The payload is [`crate::validate`]d first; an Observation without a value and without
/// components (e.g. a panel of `hasMember` references) yields its own record with no value.
pub fn observations(json: &[u8]) -> Result<Vec<FhirObservation>, FhirError> {
    let (summary, value) = parse(json)?;
    let mut out = Vec::new();
    match summary.resource_type.as_str() {
        "Observation" => {
            let patients = patients_in(&value, None);
            read(&value, &patients, &mut out);
        }
        "Bundle" => {
            let entries = value.get("entry").and_then(Value::as_array);
            let patients = patients_in(&value, entries);
            for entry in entries.into_iter().flatten() {
                let Some(resource) = entry.get("resource") else {
                    continue;
                };
                if resource.get("resourceType").and_then(Value::as_str) == Some("Observation") {
                    let mut local = patients.clone();
                    local.extend(contained_patients(resource));
                    read(resource, &local, &mut out);
                }
            }
        }
        other => {
            return Err(FhirError::UnexpectedResource {
                expected: "an Observation or a Bundle",
                found: other.to_owned(),
            });
        }
    }
    Ok(out)
}

type Patients = HashMap<String, Vec<(String, String)>>;

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

fn pairs(codings: Option<&Value>, value_key: &str) -> Vec<(String, String)> {
    codings
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let value = c.get(value_key)?.as_str()?.to_owned();
            Some((text(c.get("system")).unwrap_or_default(), value))
        })
        .collect()
}

fn identifiers(patient: &Value) -> Vec<(String, String)> {
    pairs(patient.get("identifier"), "value")
}

/// Patients a reference may point to: Bundle entries by `fullUrl` and `Patient/id`, and the
/// resource's own contained Patients by `#id`.
fn patients_in(resource: &Value, entries: Option<&Vec<Value>>) -> Patients {
    let mut patients = contained_patients(resource);
    for entry in entries.into_iter().flatten() {
        let Some(patient) = entry
            .get("resource")
            .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        else {
            continue;
        };
        let ids = identifiers(patient);
        if let Some(url) = text(entry.get("fullUrl")) {
            // A fullUrl ending in Patient/id also answers the relative reference.
            if let Some(at) = url.rfind("Patient/") {
                patients.insert(url[at..].to_owned(), ids.clone());
            }
            patients.insert(url, ids.clone());
        }
        if let Some(id) = text(patient.get("id")) {
            patients.insert(format!("Patient/{id}"), ids);
        }
    }
    patients
}

fn contained_patients(resource: &Value) -> Patients {
    resource
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        .filter_map(|p| Some((format!("#{}", text(p.get("id"))?), identifiers(p))))
        .collect()
}

fn subject(observation: &Value, patients: &Patients) -> Option<Subject> {
    let subject = observation.get("subject")?;
    let reference = text(subject.get("reference"));
    let mut identifiers: Vec<(String, String)> = subject
        .get("identifier")
        .and_then(|i| {
            let value = i.get("value")?.as_str()?.to_owned();
            Some((text(i.get("system")).unwrap_or_default(), value))
        })
        .into_iter()
        .collect();
    if identifiers.is_empty()
        && let Some(found) = reference.as_ref().and_then(|r| patients.get(r))
    {
        identifiers = found.clone();
    }
    Some(Subject {
        reference,
        identifiers,
    })
}

/// Fills the value fields of `record` from an element holding `value[x]`.
fn value_of(element: &Value, record: &mut FhirObservation) {
    if let Some(quantity) = element.get("valueQuantity") {
        record.value = quantity.get("value").and_then(Value::as_f64);
        record.unit = text(quantity.get("code")).or_else(|| text(quantity.get("unit")));
    } else if let Some(integer) = element.get("valueInteger").and_then(Value::as_f64) {
        record.value = Some(integer);
    } else if let Some(flag) = element.get("valueBoolean").and_then(Value::as_bool) {
        record.value = Some(if flag { 1.0 } else { 0.0 });
    } else if let Some(concept) = element.get("valueCodeableConcept") {
        record.value_codes = pairs(concept.get("coding"), "code");
    }
}

fn read(observation: &Value, patients: &Patients, out: &mut Vec<FhirObservation>) {
    let effective = text(observation.get("effectiveDateTime"))
        .or_else(|| text(observation.get("effectiveInstant")))
        .or_else(|| {
            text(
                observation
                    .get("effectivePeriod")
                    .and_then(|p| p.get("start")),
            )
        });
    let base = FhirObservation {
        id: text(observation.get("id")),
        effective,
        status: text(observation.get("status")).unwrap_or_default(),
        subject: subject(observation, patients),
        ..FhirObservation::default()
    };
    let mut own = FhirObservation {
        codes: pairs(
            observation.get("code").and_then(|c| c.get("coding")),
            "code",
        ),
        ..base.clone()
    };
    value_of(observation, &mut own);
    out.push(own);
    for component in observation
        .get("component")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut record = FhirObservation {
            codes: pairs(component.get("code").and_then(|c| c.get("coding")), "code"),
            ..base.clone()
        };
        value_of(component, &mut record);
        out.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/corpus/fhir/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const LOINC: &str = "http://loinc.org";

    #[test]
    fn blood_pressure_panel_gives_its_components() {
        let found = observations(&corpus("uscore_observation-blood-pressure-panel.json")).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].codes, vec![(LOINC.into(), "85354-9".into())]);
        assert_eq!(found[0].value, None);
        assert_eq!(found[1].codes, vec![(LOINC.into(), "8480-6".into())]);
        assert_eq!(
            (found[1].value, found[1].unit.as_deref()),
            (Some(109.0), Some("mm[Hg]"))
        );
        assert_eq!(found[2].codes, vec![(LOINC.into(), "8462-4".into())]);
        assert_eq!(found[2].value, Some(44.0));
        for record in &found {
            assert_eq!(record.status, "final");
            assert_eq!(record.effective.as_deref(), Some("1999-07-02"));
            let subject = record.subject.as_ref().unwrap();
            assert_eq!(subject.reference.as_deref(), Some("Patient/example"));
            assert!(subject.identifiers.is_empty(), "nothing to resolve it to");
        }
    }

    #[test]
    fn spo2_with_fio2_components() {
        let found =
            observations(&corpus("uscore_observation-spo2-with-fio2-component.json")).unwrap();
        assert_eq!(found[0].codes.len(), 3);
        assert_eq!(
            (found[0].value, found[0].unit.as_deref()),
            (Some(95.0), Some("%"))
        );
        assert_eq!(
            found[0].effective.as_deref(),
            Some("2014-12-05T09:30:10+01:00")
        );
        let flow = found
            .iter()
            .find(|o| o.codes.contains(&(LOINC.into(), "3151-8".into())))
            .unwrap();
        assert_eq!(
            (flow.value, flow.unit.as_deref()),
            (Some(6.0), Some("L/min"))
        );
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn every_us_core_vital_reads() {
        for (file, code, value, unit) in [
            ("uscore_observation-heart-rate.json", "8867-4", 44.0, "/min"),
            (
                "uscore_observation-respiratory-rate.json",
                "9279-1",
                26.0,
                "/min",
            ),
            (
                "uscore_observation-body-temperature.json",
                "8310-5",
                36.55556,
                "Cel",
            ),
            (
                "uscore_observation-oxygen-saturation.json",
                "2708-6",
                99.0,
                "%",
            ),
        ] {
            let found = observations(&corpus(file)).unwrap();
            assert!(
                found[0].codes.contains(&(LOINC.into(), code.into())),
                "{file}"
            );
            assert_eq!(found[0].value, Some(value), "{file}");
            assert_eq!(found[0].unit.as_deref(), Some(unit), "{file}");
        }
    }

    #[test]
    fn bundle_subjects_resolve_to_patient_identifiers() {
        let json = br#"{"resourceType":"Bundle","type":"collection","entry":[
          {"fullUrl":"urn:uuid:0f0e6b0e-0000-4000-8000-000000000001","resource":{"resourceType":"Patient",
            "identifier":[{"system":"urn:oid:1.2.3","value":"MRN1"}]}},
          {"fullUrl":"http://h/fhir/Patient/p2","resource":{"resourceType":"Patient","id":"p2",
            "identifier":[{"value":"MRN2"}]}},
          {"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
            "subject":{"reference":"urn:uuid:0f0e6b0e-0000-4000-8000-000000000001"},"valueQuantity":{"value":88,"code":"/min"}}},
          {"resource":{"resourceType":"Observation","status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},
            "subject":{"reference":"Patient/p2"},"valueInteger":18}},
          {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
            "subject":{"identifier":{"system":"urn:oid:9","value":"LOGICAL"}},"valueBoolean":true}},
          {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
            "subject":{"reference":"Patient/unknown"},
            "valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"248234008"}]}}}
        ]}"#;
        let found = observations(json).unwrap();
        assert_eq!(found.len(), 4);
        let ids = |i: usize| found[i].subject.clone().unwrap().identifiers;
        assert_eq!(ids(0), vec![("urn:oid:1.2.3".into(), "MRN1".into())]);
        assert_eq!(ids(1), vec![(String::new(), "MRN2".into())]);
        assert_eq!(found[1].value, Some(18.0));
        assert_eq!(found[1].status, "amended");
        assert_eq!(ids(2), vec![("urn:oid:9".into(), "LOGICAL".into())]);
        assert_eq!(found[2].value, Some(1.0));
        assert!(ids(3).is_empty());
        assert_eq!(
            found[3].value_codes,
            vec![("http://snomed.info/sct".into(), "248234008".into())]
        );
    }

    #[test]
    fn other_resources_are_refused() {
        let error = observations(&corpus("uscore_patient-example.json")).unwrap_err();
        assert!(
            matches!(error, FhirError::UnexpectedResource { .. }),
            "{error}"
        );
        assert!(observations(b"{\"resourceType\":\"Observation\",\"bogus\":1}").is_err());
    }
}
