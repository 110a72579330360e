//! FHIR R4 for Medway: strict validation of incoming resources, reading vital-sign
//! Observations out of them, and building the vital-signs Bundle an HTTP destination posts.
//!
//! **Why a crate of its own, and why only non-generic functions:** fhirbolt's R4 model is
//! generated code for ~150 resources; every generic instantiation of its deserializer in a
//! downstream crate would be compiled again there. Everything public here is a plain function
//! over bytes or `serde_json::Value`, so fhirbolt is monomorphised exactly once, inside this
//! crate, and the engine, connectors and binary only link it.
//!
//! R4 (4.0.1) only. Errors never quote values from the input (they may be patient data): they
//! name the problem, the JSON path and the line/column.

mod error;
mod observation;
mod outcome;
mod path;
mod validate;
mod vitals;

pub use error::FhirError;
pub use observation::{FhirObservation, Subject, observations};
pub use outcome::operation_outcome;
pub use validate::{ResourceSummary, parse_typed, validate};
pub use vitals::{Coding, VitalSign, VitalSignsInput, VitalStatus, VitalValue, vital_signs_bundle};
