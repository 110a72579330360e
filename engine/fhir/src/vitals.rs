//! Building the vital-signs Bundle an HTTP destination posts for an ORU.
//!
//! **A `transaction` Bundle**, not a `collection`: POSTed to a FHIR server's base URL it is
//! processed (a collection would only be stored as a document). The Patient entry is a
//! conditional create (`ifNoneExist: identifier=system|value`) so an existing patient is
//! reused and never duplicated; each Observation is a plain create whose `subject` is the
//! Patient entry's `urn:uuid`, which the server rewrites to the real id. The Patient carries
//! the identifier only (no name or other demographics). Entry ids are derived from
//! [`VitalSignsInput::source`], so the same message always gives the same Bundle (a retried
//! delivery sends identical bytes).

use serde_json::{Value, json};

const UCUM: &str = "http://unitsofmeasure.org";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const ABSENT: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

/// A code with its system and display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coding {
    /// e.g. `http://loinc.org`.
    pub system: String,
    /// e.g. `8867-4`.
    pub code: String,
    /// e.g. `Heart rate`.
    pub display: String,
}

impl Coding {
    /// A coding from its parts.
    pub fn new(system: &str, code: &str, display: &str) -> Coding {
        Coding {
            system: system.to_owned(),
            code: code.to_owned(),
            display: display.to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        json!({ "system": self.system, "code": self.code, "display": self.display })
    }
}

/// `Observation.status`, from HL7 OBX-11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VitalStatus {
    /// F (and U with a value).
    Final,
    /// P, R, S.
    Preliminary,
    /// C, A: a later value replaces an earlier one.
    Amended,
    /// X: the result could not be obtained.
    Cancelled,
    /// W, D: the earlier value was wrong (e.g. wrong patient).
    EnteredInError,
    /// Anything else.
    Unknown,
}

impl VitalStatus {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            VitalStatus::Final => "final",
            VitalStatus::Preliminary => "preliminary",
            VitalStatus::Amended => "amended",
            VitalStatus::Cancelled => "cancelled",
            VitalStatus::EnteredInError => "entered-in-error",
            VitalStatus::Unknown => "unknown",
        }
    }
}

/// An observation's value.
#[derive(Debug, Clone, PartialEq)]
pub enum VitalValue {
    /// `valueQuantity` with a UCUM code (`/min`, `mm[Hg]`, `Cel`, `%`, `{score}`, `L/min`).
    Quantity {
        /// The number.
        value: f64,
        /// The UCUM code (also used as the human unit).
        unit: String,
    },
    /// `valueCodeableConcept` (ACVPU as its SNOMED CT code).
    Coded(Coding),
    /// `valueBoolean` (on supplemental oxygen or not).
    Boolean(bool),
}

/// One vital sign (or lab value) to put in the Bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalSign {
    /// `Observation.code.coding`: the first is the main code (LOINC where there is one).
    pub codes: Vec<Coding>,
    /// `vital-signs`, or `laboratory` for lab results.
    pub category: &'static str,
    /// `None` for a retraction or a result that could not be obtained
    /// (`dataAbsentReason` is then set).
    pub value: Option<VitalValue>,
    /// `effectiveDateTime` in FHIR form with an offset, e.g. `2024-05-01T10:25:00Z`.
    pub effective: String,
    /// The status.
    pub status: VitalStatus,
}

/// Everything one Bundle is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalSignsInput {
    /// A stable identifier of the source message (e.g. its store id or MSH-10): entry uuids
    /// are derived from it.
    pub source: String,
    /// The patient identifier's system (a URI; "" when unknown).
    pub patient_system: String,
    /// The patient identifier's value.
    pub patient_value: String,
    /// One Observation each, in order.
    pub vitals: Vec<VitalSign>,
}

/// The FHIR R4 transaction Bundle for `input` (see the module doc for its shape).
pub fn vital_signs_bundle(input: &VitalSignsInput) -> Value {
    let patient_url = format!("urn:uuid:{}", uuid(&input.source, 0));
    let mut identifier = json!({ "value": input.patient_value });
    let mut search = format!("identifier={}", query_escape(&input.patient_value));
    if !input.patient_system.is_empty() {
        identifier["system"] = json!(input.patient_system);
        search = format!(
            "identifier={}|{}",
            query_escape(&input.patient_system),
            query_escape(&input.patient_value)
        );
    }
    let mut entries = vec![json!({
        "fullUrl": patient_url,
        "resource": { "resourceType": "Patient", "identifier": [identifier] },
        "request": { "method": "POST", "url": "Patient", "ifNoneExist": search },
    })];
    for (index, vital) in input.vitals.iter().enumerate() {
        let display = vital
            .codes
            .first()
            .map(|c| c.display.clone())
            .unwrap_or_default();
        let mut observation = json!({
            "resourceType": "Observation",
            "status": vital.status.as_str(),
            "category": [{
                "coding": [{
                    "system": CATEGORY,
                    "code": vital.category,
                    "display": if vital.category == "vital-signs" { "Vital Signs" } else { "Laboratory" },
                }],
            }],
            "code": {
                "coding": vital.codes.iter().map(Coding::to_json).collect::<Vec<_>>(),
                "text": display,
            },
            "subject": { "reference": patient_url },
            "effectiveDateTime": vital.effective,
        });
        match &vital.value {
            Some(VitalValue::Quantity { value, unit }) => {
                observation["valueQuantity"] =
                    json!({ "value": value, "unit": unit, "system": UCUM, "code": unit });
            }
            Some(VitalValue::Coded(coding)) => {
                observation["valueCodeableConcept"] =
                    json!({ "coding": [coding.to_json()], "text": coding.display });
            }
            Some(VitalValue::Boolean(flag)) => observation["valueBoolean"] = json!(flag),
            None => {
                observation["dataAbsentReason"] = json!({
                    "coding": [{ "system": ABSENT, "code": "unknown", "display": "Unknown" }],
                });
            }
        }
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", uuid(&input.source, index + 1)),
            "resource": observation,
            "request": { "method": "POST", "url": "Observation" },
        }));
    }
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": entries,
    })
}

/// Percent-encodes what would end or split a query value.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A version-8 (custom) UUID from `source` and `index`: two FNV-1a 64-bit hashes. Not secret,
/// only stable and distinct within a Bundle.
fn uuid(source: &str, index: usize) -> String {
    let hash = |seed: u64| {
        let mut h = seed;
        for byte in source.bytes().chain(index.to_le_bytes()) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hash(0xcbf2_9ce4_8422_2325).to_be_bytes());
    bytes[8..].copy_from_slice(&hash(0x84222325_cbf29ce4).to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{observations, validate};
    use fhirbolt::model::r4::Resource;

    const LOINC: &str = "http://loinc.org";

    fn input() -> VitalSignsInput {
        let quantity = |code: &str, display: &str, value: f64, unit: &str| VitalSign {
            codes: vec![Coding::new(LOINC, code, display)],
            category: "vital-signs",
            value: Some(VitalValue::Quantity {
                value,
                unit: unit.into(),
            }),
            effective: "2024-05-01T10:25:00Z".into(),
            status: VitalStatus::Final,
        };
        VitalSignsInput {
            source: "MSG0001".into(),
            patient_system: "urn:oid:1.2.3|x".into(),
            patient_value: "MRN 1".into(),
            vitals: vec![
                quantity("9279-1", "Respiratory rate", 22.0, "/min"),
                quantity("8480-6", "Systolic blood pressure", 95.0, "mm[Hg]"),
                quantity("8310-5", "Body temperature", 38.5, "Cel"),
                VitalSign {
                    codes: vec![Coding::new(
                        "http://snomed.info/sct",
                        "1104441000000107",
                        "ACVPU scale",
                    )],
                    category: "vital-signs",
                    value: Some(VitalValue::Coded(Coding::new(
                        "http://snomed.info/sct",
                        "300202002",
                        "Responds to voice",
                    ))),
                    effective: "2024-05-01T11:25:00+01:00".into(),
                    status: VitalStatus::Preliminary,
                },
                VitalSign {
                    value: None,
                    status: VitalStatus::EnteredInError,
                    ..quantity("8867-4", "Heart rate", 0.0, "/min")
                },
                VitalSign {
                    value: Some(VitalValue::Boolean(true)),
                    ..quantity("3150-0", "On oxygen", 0.0, "")
                },
            ],
        }
    }

    #[test]
    fn the_bundle_is_valid_r4_and_reads_back() {
        let bundle = vital_signs_bundle(&input());
        let bytes = serde_json::to_vec(&bundle).unwrap();
        let summary = validate(&bytes).expect("valid");
        assert_eq!(summary.entries, 7);
        let Resource::Bundle(typed) = fhirbolt::json::from_slice::<Resource>(&bytes, None)
            .expect("fhirbolt's typed model parses it (required elements present)")
        else {
            panic!("not a Bundle");
        };
        assert_eq!(typed.r#type.value.as_deref(), Some("transaction"));
        let found = observations(&bytes).unwrap();
        assert_eq!(found.len(), 6);
        let patient = &found[0].subject.as_ref().unwrap().identifiers;
        assert_eq!(
            patient,
            &vec![("urn:oid:1.2.3|x".to_owned(), "MRN 1".to_owned())]
        );
        assert_eq!(
            (found[2].value, found[2].unit.as_deref()),
            (Some(38.5), Some("Cel"))
        );
        assert_eq!(found[3].status, "preliminary");
        assert_eq!(found[3].value_codes[0].1, "300202002");
        assert_eq!(
            (found[4].status.as_str(), found[4].value),
            ("entered-in-error", None)
        );
        assert_eq!(found[5].value, Some(1.0));
        let request = &bundle["entry"][0]["request"];
        assert_eq!(
            request["ifNoneExist"],
            "identifier=urn:oid:1.2.3%7Cx|MRN%201"
        );
        assert!(bundle["entry"][0]["resource"].get("name").is_none());
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = vital_signs_bundle(&input());
        assert_eq!(a, vital_signs_bundle(&input()));
        let urls: std::collections::HashSet<_> = a["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(urls.len(), 7);
        let other = vital_signs_bundle(&VitalSignsInput {
            source: "MSG0002".into(),
            ..input()
        });
        assert_ne!(a["entry"][0]["fullUrl"], other["entry"][0]["fullUrl"]);
        let url = a["entry"][1]["fullUrl"].as_str().unwrap();
        assert_eq!(url.len(), "urn:uuid:".len() + 36);
        assert_eq!(&url[23..24], "8", "version nibble");
    }
}
