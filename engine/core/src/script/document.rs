//! JSON documents in scripts: a webhook body or a FHIR resource seen as a Rhai map (`res`).
//!
//! A JSON run gives the script the document as plain Rhai values (object → map, array → array,
//! number → `INT` when it is an integer that fits, else `FLOAT`, `null` → `()`) and turns
//! whatever `res` holds after the steps back into JSON. The conversion is written out here
//! rather than going through serde: the workspace builds `serde_json` with
//! `arbitrary_precision` (fhirbolt needs it), under which a `Number` serialises as a map. `msg` then holds [`NotHl7`], a value
//! with no functions: any HL7 message call on it fails, and [`ScriptEngine::run`] rewrites that
//! failure into an error that says to use `res`.
//!
//! Invariants: a document is checked against the run's size limits *before* it is handed to
//! Rhai, counting exactly as Rhai does (array elements, map entries and string bytes, summed
//! over the nesting), so a document Rhai would refuse mid-script is refused up front with a
//! reason; nothing here panics on input; errors never quote document content (sizes and type
//! names only).
//!
//! [`ScriptEngine::run`]: super::ScriptEngine::run

use rhai::Dynamic;
use serde_json::Value;

use super::sandbox::ScriptLimits;

/// The type name `msg` shows in a JSON run; errors naming it are HL7 calls on a JSON document.
pub(crate) const NOT_HL7_TYPE: &str = "NotHl7";

/// The member that makes a JSON object a FHIR resource.
const RESOURCE_TYPE: &str = "resourceType";

/// What `msg` holds while a script runs on a JSON document: no HL7 message. No function is
/// registered for it, so every message call on it is a "function not found" naming this type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotHl7;

/// Registers [`NotHl7`] under [`NOT_HL7_TYPE`] so errors can be recognised.
pub(crate) fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<NotHl7>(NOT_HL7_TYPE);
}

/// Why a JSON document cannot go into, or come out of, a script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The document is bigger than scripts may hold (the same limits as any script value).
    #[error(
        "JSON document too large for scripts: {size} {what} in all (the script limit is {limit})"
    )]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    /// A step left `res` holding something JSON cannot express (a message handle, a function…).
    #[error("`res` holds a value JSON cannot express ({0})")]
    NotJson(String),
}

/// Converts a JSON document into the value a script sees as `res`, refusing one over `limits`.
pub(crate) fn to_script(document: &Value, limits: &ScriptLimits) -> Result<Dynamic, DocumentError> {
    let sizes = sizes(document);
    for (what, size, limit) in [
        ("array elements", sizes.arrays, limits.max_array_size),
        ("object members", sizes.maps, limits.max_map_size),
        ("bytes of strings", sizes.strings, limits.max_string_size),
    ] {
        // Rhai reads 0 as "no limit".
        if limit != 0 && size > limit {
            return Err(DocumentError::TooLarge { what, size, limit });
        }
    }
    Ok(to_dynamic(document))
}

fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            // Fractions, exponents and integers beyond i64 (Rhai has no bigger integer).
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(members) => Dynamic::from_map(
            members
                .iter()
                .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
                .collect(),
        ),
    }
}

/// Converts what a script left in `res` back into JSON.
pub(crate) fn from_script(value: &Dynamic) -> Result<Value, DocumentError> {
    // A value captured by a closure is shared: read through the lock.
    let value = value.flatten_clone();
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| DocumentError::NotJson(format!("the number {f}")));
    }
    if value.is_string() || value.is_char() {
        return Ok(Value::String(value.to_string()));
    }
    if value.is_array() {
        let items = value.cast::<rhai::Array>();
        return items
            .iter()
            .map(from_script)
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if value.is_map() {
        let members = value.cast::<rhai::Map>();
        // `resourceType` first: FHIR readers (fhirbolt among them) look for it there, and a
        // script's map comes sorted by key.
        let first = members.get_key_value(RESOURCE_TYPE);
        return first
            .into_iter()
            .chain(members.iter().filter(|(k, _)| k.as_str() != RESOURCE_TYPE))
            .map(|(k, v)| Ok((k.to_string(), from_script(v)?)))
            .collect::<Result<_, _>>()
            .map(Value::Object);
    }
    Err(DocumentError::NotJson(format!(
        "a value of type {}",
        value.type_name()
    )))
}

/// Rhai maps are sorted by key; a document that went through a script comes back sorted. This
/// puts the members back in the order `original` had them (new members after, in key order), so
/// a transformed FHIR resource still starts with `resourceType` and diffs stay readable.
pub fn restore_order(original: &Value, changed: Value) -> Value {
    match (original, changed) {
        (Value::Object(before), Value::Object(mut after)) => {
            let mut ordered = serde_json::Map::with_capacity(after.len());
            for (key, old) in before {
                if let Some(value) = after.remove(key) {
                    ordered.insert(key.clone(), restore_order(old, value));
                }
            }
            ordered.extend(after);
            Value::Object(ordered)
        }
        (Value::Array(before), Value::Array(after)) => Value::Array(
            after
                .into_iter()
                .enumerate()
                .map(|(i, value)| match before.get(i) {
                    Some(old) => restore_order(old, value),
                    None => value,
                })
                .collect(),
        ),
        (_, changed) => changed,
    }
}

/// Sizes as Rhai counts them (`calc_data_sizes`): every array element, every map entry (keys
/// are not counted as strings) and every string value's bytes, summed through the nesting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    arrays: usize,
    maps: usize,
    strings: usize,
}

fn sizes(value: &Value) -> Sizes {
    let mut total = Sizes::default();
    add_sizes(value, &mut total);
    total
}

fn add_sizes(value: &Value, total: &mut Sizes) {
    match value {
        Value::Array(items) => {
            total.arrays += items.len();
            items.iter().for_each(|v| add_sizes(v, total));
        }
        Value::Object(members) => {
            total.maps += members.len();
            members.values().for_each(|v| add_sizes(v, total));
        }
        Value::String(s) => total.strings += s.len(),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_numbers_and_nulls() {
        let doc = json!({"a": 1, "b": 2.5, "c": null, "d": [true, "x"], "e": {"f": -3},
            "g": 1.0e300, "h": 18446744073709551615u64});
        let dynamic = to_script(&doc, &ScriptLimits::default()).unwrap();
        assert!(dynamic.is_map());
        let map = dynamic.clone().cast::<rhai::Map>();
        assert_eq!(map["a"].as_int(), Ok(1));
        assert_eq!(map["b"].as_float(), Ok(2.5));
        assert!(map["c"].is_unit());
        let back = from_script(&dynamic).unwrap();
        assert_eq!(back["a"], 1);
        assert_eq!(back["b"], 2.5);
        assert_eq!(back["e"]["f"], -3);
        assert_eq!(back["d"], json!([true, "x"]));
        assert!(back["c"].is_null());
        assert_eq!(back["g"].as_f64(), Some(1.0e300));
        // Beyond i64: kept as a float (Rhai has no larger integer).
        assert_eq!(back["h"].as_f64(), Some(18446744073709551615u64 as f64));
    }

    #[test]
    fn sizes_count_like_rhai() {
        let doc = json!({"a": [1, 2, [3, 4]], "b": {"c": "xyz"}});
        assert_eq!(
            sizes(&doc),
            Sizes {
                arrays: 5,
                maps: 3,
                strings: 3
            }
        );
    }

    #[test]
    fn over_the_limit_is_refused_with_sizes() {
        let limits = ScriptLimits {
            max_map_size: 2,
            ..ScriptLimits::default()
        };
        let err = to_script(&json!({"a": {"b": 1}, "c": 2}), &limits).unwrap_err();
        assert_eq!(
            err,
            DocumentError::TooLarge {
                what: "object members",
                size: 3,
                limit: 2
            }
        );
    }

    #[test]
    fn custom_values_are_not_json() {
        let err = from_script(&Dynamic::from(NotHl7)).unwrap_err();
        assert!(matches!(err, DocumentError::NotJson(_)), "{err}");
    }

    #[test]
    fn resource_type_comes_first() {
        let dynamic = to_script(
            &json!({"code": 1, "resourceType": "Observation", "a": {"z": 1, "resourceType": "Patient"}}),
            &ScriptLimits::default(),
        )
        .unwrap();
        let text = serde_json::to_string(&from_script(&dynamic).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"resourceType":"Observation","a":{"resourceType":"Patient","z":1},"code":1}"#
        );
    }

    #[test]
    fn order_is_restored() {
        let original = json!({"resourceType": "Observation", "status": "final", "id": "1"});
        let changed =
            json!({"id": "1", "note": "n", "resourceType": "Observation", "status": "amended"});
        let restored = restore_order(&original, changed);
        let keys: Vec<_> = restored.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["resourceType", "status", "id", "note"]);
        assert_eq!(restored["status"], "amended");
    }
}
