//! Strict R4 validation with fhirbolt: the shape check every FHIR payload goes through.

use fhirbolt::model::r4::Resource;
use serde_json::Value;

use fhirbolt::FhirReleases;
use fhirbolt::element::Element;

use crate::FhirError;
use crate::path::{clean_key, position_of, redact};

/// What a valid payload is, for routing and logging (no patient data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSummary {
    /// `resourceType`, e.g. `Observation`, `Bundle`.
    pub resource_type: String,
    /// The resource's logical `id`, if it has one.
    pub id: Option<String>,
    /// Whether it is a Bundle.
    pub is_bundle: bool,
    /// The number of `entry` elements of a Bundle (0 otherwise).
    pub entries: usize,
}

/// Parses `json` as one FHIR R4 resource, strictly: an element the R4 model does not define
/// (at any depth, including Bundle entries and contained resources), an unknown
/// `resourceType`, or a primitive of the wrong JSON type is an error naming its JSON path and
/// line/column. A leading UTF-8 byte order mark is accepted.
///
/// This checks structure against fhirbolt's R4 element model, not cardinality (a missing
/// required element is accepted: real producers omit some, e.g. the Microsoft converter's
/// `Provenance.agent.who`), profiles or terminology bindings.
pub fn validate(json: &[u8]) -> Result<ResourceSummary, FhirError> {
    parse(json).map(|(summary, _)| summary)
}

/// Parses `json` into fhirbolt's typed R4 model (`fhirbolt::model::r4::Resource`), the
/// strictest check fhirbolt offers: beyond [`validate`]'s element names and JSON types, every
/// mandatory element (e.g. `Observation.status`) must be present. Too strict for incoming
/// payloads (real producers omit some), it proves that what Medway builds (the vital-signs
/// Bundle) is R4. The model itself stays private to this crate (see the crate docs). Errors
/// name the problem, never a value; their path is the whole resource.
pub fn parse_typed(json: &[u8]) -> Result<(), FhirError> {
    let json = json.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(json);
    let value: Value = serde_json::from_slice(json).map_err(|error| FhirError::Syntax {
        reason: redact(&error.to_string()),
        line: error.line(),
        column: error.column(),
    })?;
    fhirbolt::json::from_json_value::<Resource>(resource_type_first(&value), None)
        .map(drop)
        .map_err(|error| FhirError::Invalid {
            reason: redact(&error.to_string()),
            path: "$".to_owned(),
            line: 1,
            column: 1,
        })
}

type R4Element = Element<{ FhirReleases::R4 }>;

/// [`validate`], also returning the JSON tree for callers that read elements out of it.
pub(crate) fn parse(json: &[u8]) -> Result<(ResourceSummary, Value), FhirError> {
    let json = json.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(json);
    let value: Value = serde_json::from_slice(json).map_err(|error| FhirError::Syntax {
        reason: redact(&error.to_string()),
        line: error.line(),
        column: error.column(),
    })?;
    if let Err(error) = check(&value) {
        let (path, reason) = if value.is_object() {
            locate(&value, "$".to_owned())
                .unwrap_or_else(|| ("$".to_owned(), redact(&error.to_string())))
        } else {
            (
                "$".to_owned(),
                "a FHIR resource is a JSON object".to_owned(),
            )
        };
        let (line, column) = position_of(json, &path);
        return Err(FhirError::Invalid {
            reason,
            path,
            line,
            column,
        });
    }
    let resource_type = value
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let summary = ResourceSummary {
        is_bundle: resource_type == "Bundle",
        entries: value
            .get("entry")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        id: value.get("id").and_then(Value::as_str).map(str::to_owned),
        resource_type,
    };
    Ok((summary, value))
}

/// fhirbolt's strict check of one resource tree.
fn check(value: &Value) -> Result<(), serde_json::Error> {
    fhirbolt::json::from_json_value::<R4Element>(resource_type_first(value), None).map(drop)
}

/// A copy of `value` with `resourceType` moved to the front of every object that has one.
/// JSON objects are unordered and FHIR does not require `resourceType` first, but fhirbolt's
/// element model reads it before the other members: without this, a valid resource whose
/// producer wrote `resourceType` last would be refused.
fn resource_type_first(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut ordered = serde_json::Map::with_capacity(object.len());
            if let Some(resource_type) = object.get("resourceType") {
                ordered.insert("resourceType".to_owned(), resource_type.clone());
            }
            for (key, member) in object {
                if key != "resourceType" {
                    ordered.insert(key.clone(), resource_type_first(member));
                }
            }
            Value::Object(ordered)
        }
        Value::Array(items) => Value::Array(items.iter().map(resource_type_first).collect()),
        other => other.clone(),
    }
}

/// Narrows a failing resource down to the element at fault: nested resources (Bundle entries,
/// contained) first, then each top-level element on its own (fhirbolt's element model checks no
/// cardinality, so a resource with one element is checked for that element alone), then each
/// item of a repeating element. Returns the path and fhirbolt's (redacted) reason.
fn locate(resource: &Value, path: String) -> Option<(String, String)> {
    let object = resource.as_object()?;
    let resource_type = object.get("resourceType").cloned().unwrap_or(Value::Null);
    let alone = |key: &str, element: Value| {
        let mut single = serde_json::Map::new();
        single.insert("resourceType".to_owned(), resource_type.clone());
        single.insert(key.to_owned(), element);
        check(&Value::Object(single)).err()
    };
    if !resource_type.is_string() {
        return Some((
            format!("{path}.resourceType"),
            "missing or non-string resourceType".to_owned(),
        ));
    }
    if is_unknown_resource_type(&resource_type) {
        return Some((
            format!("{path}.resourceType"),
            "unknown resourceType".to_owned(),
        ));
    }
    for (key, nested) in [("entry", Some("resource")), ("contained", None)] {
        let Some(items) = object.get(key).and_then(Value::as_array) else {
            continue;
        };
        for (index, item) in items.iter().enumerate() {
            let (inner, inner_path) = match nested {
                Some(field) => (item.get(field), format!("{path}.{key}[{index}].{field}")),
                None => (Some(item), format!("{path}.{key}[{index}]")),
            };
            if let Some(inner) = inner
                && check(inner).is_err()
            {
                return locate(inner, inner_path);
            }
        }
    }
    for (key, element) in object {
        if key == "resourceType" {
            continue;
        }
        let Some(error) = alone(key, element.clone()) else {
            continue;
        };
        let key_path = format!("{path}.{}", clean_key(key));
        // An unknown element fails even when empty: then the key itself is at fault.
        let unknown = alone(key, Value::Array(Vec::new())).is_some();
        if let Some(items) = element.as_array().filter(|_| !unknown) {
            for (index, item) in items.iter().enumerate() {
                if let Some(error) = alone(key, Value::Array(vec![item.clone()])) {
                    return Some((format!("{key_path}[{index}]"), redact(&error.to_string())));
                }
            }
        }
        return Some((key_path, redact(&error.to_string())));
    }
    None
}

/// fhirbolt's typed model names an unknown `resourceType` as such (the element model only
/// says the type has no fields).
fn is_unknown_resource_type(resource_type: &Value) -> bool {
    let bare = serde_json::json!({ "resourceType": resource_type });
    fhirbolt::json::from_json_value::<Resource>(bare, None)
        .err()
        .is_some_and(|error| error.to_string().contains("valid resourceType"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<(String, Vec<u8>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/fhir");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("tests/corpus/fhir")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| {
                let bytes = std::fs::read(&path).expect("read");
                (path.display().to_string(), bytes)
            })
            .collect();
        files.sort();
        files
    }

    /// Two shared-corpus files are not R4 resources, and must be rejected: the Microsoft
    /// converter's custom input `ExamplePatient.json` (no `resourceType` at all), and its
    /// `ObservationBundle.json`, whose entries hold resources directly instead of in
    /// `entry.resource`.
    const NOT_R4: &[(&str, &str)] = &[
        ("msfc_patient-minimal.json", "$.resourceType"),
        (
            "msfc_bundle-batch-response-patient-observations.json",
            "$.entry[1]",
        ),
    ];

    #[test]
    fn every_corpus_file_validates() {
        let files = corpus();
        assert!(files.len() >= 17, "corpus copied: {}", files.len());
        let mut failures = Vec::new();
        for (name, bytes) in files {
            if let Some((_, path)) = NOT_R4.iter().find(|(file, _)| name.ends_with(file)) {
                let error = validate(&bytes).expect_err(&name);
                assert_eq!(error.path(), Some(*path), "{name}: {error}");
                continue;
            }
            let summary = match validate(&bytes) {
                Ok(summary) => summary,
                Err(error) => {
                    failures.push(format!("{name}: {error}"));
                    continue;
                }
            };
            assert!(!summary.resource_type.is_empty(), "{name}");
            assert_eq!(summary.is_bundle, name.contains("bundle"), "{name}");
            if summary.is_bundle {
                assert!(summary.entries > 0, "{name}");
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn resource_type_need_not_come_first() {
        let late = br#"{"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
            "contained":[{"id":"p","resourceType":"Patient"}],"resourceType":"Observation"}"#;
        let summary = validate(late).expect("member order does not matter in JSON");
        assert_eq!(summary.resource_type, "Observation");
        let bundle = br#"{"type":"collection","entry":[{"resource":{"status":"final",
            "code":{"text":"x"},"resourceType":"Observation"}}],"resourceType":"Bundle"}"#;
        assert_eq!(validate(bundle).expect("nested too").entries, 1);
        let broken = br#"{"colour":"red","resourceType":"Observation"}"#;
        let error = validate(broken).expect_err("an unknown element is still refused");
        assert!(error.to_string().contains("colour"), "{error}");
    }

    #[test]
    fn typed_parse_accepts_r4_and_refuses_bad_primitives_without_echoing_them() {
        let ok = br#"{"status":"final","code":{"text":"x"},"resourceType":"Observation",
            "effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{"value":72.5}}"#;
        parse_typed(ok).expect("a valid Observation, resourceType last");
        let error = parse_typed(br#"{"resourceType":"Patient","active":"Jane"}"#)
            .expect_err("not a boolean");
        assert!(!error.to_string().contains("Jane"), "{error}");
        // Unlike `validate`, the typed model requires the mandatory elements.
        let no_status = br#"{"resourceType":"Observation","code":{"text":"x"}}"#;
        validate(no_status).expect("the element model checks no cardinality");
        let error = parse_typed(no_status).expect_err("Observation.status is 1..1");
        assert!(error.to_string().contains("status"), "{error}");
        assert!(matches!(
            parse_typed(br#"{"resourceType":"Patientt"}"#),
            Err(FhirError::Invalid { .. })
        ));
        assert!(matches!(parse_typed(b"{"), Err(FhirError::Syntax { .. })));
    }

    #[test]
    fn bom_is_accepted_and_summary_filled() {
        let json = b"\xEF\xBB\xBF{\"resourceType\":\"Patient\",\"id\":\"p1\"}";
        let summary = validate(json).expect("valid");
        assert_eq!(
            summary,
            ResourceSummary {
                resource_type: "Patient".into(),
                id: Some("p1".into()),
                is_bundle: false,
                entries: 0
            }
        );
    }

    #[test]
    fn unknown_field_names_path_and_position() {
        let json = b"{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"collection\",\n  \"entry\": [\n    {\"resource\": {\"resourceType\": \"Patient\", \"nmae\": [{\"family\": \"Secretname\"}]}}\n  ]\n}";
        let error = validate(json).expect_err("unknown field");
        let FhirError::Invalid {
            path,
            line,
            column,
            reason,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!((*line, *column), (5, 46));
        assert_eq!(path, "$.entry[0].resource.nmae");
        assert!(reason.contains("unknown field `nmae`"), "{reason}");
        assert!(!error.to_string().contains("Secretname"));
    }

    #[test]
    fn wrong_type_never_echoes_the_value() {
        let json = br#"{"resourceType":"Patient","active":"Jane Doe 1970-01-01"}"#;
        let error = validate(json).expect_err("wrong type");
        let message = error.to_string();
        assert!(message.contains("$.active"), "{message}");
        assert!(!message.contains("Jane"), "{message}");
        let json = br#"{"resourceType":"Patientt","id":"x"}"#;
        let error = validate(json).expect_err("unknown type");
        assert_eq!(error.path(), Some("$.resourceType"));
        assert!(!error.to_string().contains("Patientt"), "{error}");
        let json = b"{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{},\n \"contained\":[{\"resourceType\":\"Patient\"},{\"resourceType\":\"Patient\",\"birthDate\":true}]}";
        let error = validate(json).expect_err("bad contained");
        assert_eq!(error.path(), Some("$.contained[1].birthDate"), "{error}");
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn syntax_errors_and_empty_input() {
        assert!(matches!(validate(b""), Err(FhirError::Syntax { .. })));
        assert!(matches!(
            validate(b"{\"resourceType\": "),
            Err(FhirError::Syntax { .. })
        ));
        assert!(validate(b"[]").is_err());
        assert!(validate(b"MSH|^~\\&|").is_err());
    }
}
