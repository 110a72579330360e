//! OperationOutcome: how a FHIR endpoint answers a rejected (or accepted) request.

use serde_json::{Value, json};

/// A valid R4 OperationOutcome with one issue.
///
/// `severity` is `fatal` | `error` | `warning` | `information`; `code` is an IssueType code
/// (`invalid`, `structure`, `required`, `value`, `processing`, `exception`, `security`,
/// `throttled`, ...); `diagnostics` is the human text (pass a [`crate::FhirError`]'s message,
/// which never carries patient data); `expression` is the element path, if known.
pub fn operation_outcome(
    severity: &str,
    code: &str,
    diagnostics: &str,
    expression: Option<&str>,
) -> Value {
    let mut issue = json!({
        "severity": severity,
        "code": code,
        "diagnostics": diagnostics,
    });
    if let Some(expression) = expression {
        issue["expression"] = json!([expression]);
    }
    json!({
        "resourceType": "OperationOutcome",
        "issue": [issue],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;

    #[test]
    fn fhirbolt_parses_what_it_builds() {
        for expression in [None, Some("$.entry[0].resource.status")] {
            let outcome = operation_outcome("error", "invalid", "unknown field `x`", expression);
            let bytes = serde_json::to_vec(&outcome).expect("serialise");
            let summary = validate(&bytes).expect("a valid OperationOutcome");
            assert_eq!(summary.resource_type, "OperationOutcome");
            assert!(!summary.is_bundle);
            let typed: fhirbolt::model::r4::Resource =
                fhirbolt::json::from_slice(&bytes, None).expect("fhirbolt parses it");
            let fhirbolt::model::r4::Resource::OperationOutcome(typed) = typed else {
                panic!("not an OperationOutcome");
            };
            assert_eq!(typed.issue.len(), 1);
            assert_eq!(typed.issue[0].severity.value.as_deref(), Some("error"));
            assert_eq!(
                typed.issue[0].expression.len(),
                usize::from(expression.is_some())
            );
        }
    }
}
