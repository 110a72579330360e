//! The one error type of this crate. Messages name the problem and where it is, never a value
//! taken from the input: FHIR payloads carry patient data and these messages reach logs,
//! OperationOutcomes and `medway messages` output.

/// Why a payload is not an acceptable FHIR R4 resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    /// Not JSON at all (or not UTF-8, or truncated).
    #[error("not valid JSON: {reason} at line {line}, column {column}")]
    Syntax {
        /// What the JSON reader found wrong (values redacted).
        reason: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in bytes) of the problem.
        column: usize,
    },
    /// JSON, but not an R4 resource: unknown field, wrong type, unknown resource type, ...
    #[error("not a valid FHIR R4 resource: {reason} at {path} (line {line}, column {column})")]
    Invalid {
        /// What fhirbolt rejected (values redacted).
        reason: String,
        /// JSON path of the element, e.g. `$.entry[1].resource.valueQuantity`.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in bytes) of the problem.
        column: usize,
    },
    /// A valid resource, but not of a type the caller can use.
    #[error("expected {expected}, got a {found} resource")]
    UnexpectedResource {
        /// What the caller accepts.
        expected: &'static str,
        /// The `resourceType` received.
        found: String,
    },
}

impl FhirError {
    /// The JSON path of the problem, when there is one (for an OperationOutcome `expression`).
    pub fn path(&self) -> Option<&str> {
        match self {
            FhirError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}
