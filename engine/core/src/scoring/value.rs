//! One OBX-5 → a canonical value, by value type (OBX-2) and kind.
//!
//! NM, ST and TX carry plain decimal text (Welch Allyn sends numbers as ST); SN is used only
//! without a comparator or range (`^182`, `=^95`; `<^10` is not exact and is refused); CE/CWE
//! carry the codes of coded kinds (ACVPU: SNOMED codes of DECISIONS.md or the letters; air or
//! oxygen: SNOMED 722742002 / 371825009). Numbers then go through `units.rs`. Every refusal is
//! a [`ProblemKind`] with a PHI-free reason; nothing here guesses a value or logs.

use super::codes::CodeMap;
use super::extract::ProblemKind;
use super::observation::VitalKind;
use super::units::{Decimal, ValueError, normalise, resolve_unit};

const ACVPU_CODES: &[(&str, &str)] = &[
    ("248234008", "A"),
    ("130987000", "C"),
    ("300202002", "V"),
    ("450847001", "P"),
    ("422768004", "U"),
    ("A", "A"),
    ("C", "C"),
    ("V", "V"),
    ("P", "P"),
    ("U", "U"),
    ("ALERT", "A"),
    ("CONFUSED", "C"),
    ("CONFUSION", "C"),
    ("NEW CONFUSION", "C"),
    ("ACUTE CONFUSION", "C"),
    ("VOICE", "V"),
    ("PAIN", "P"),
    ("UNRESPONSIVE", "U"),
];

/// ACVPU code → (letter, 0–4).
pub fn acvpu_from_code(code: &str) -> Option<(&'static str, f64)> {
    let up = code.trim().to_ascii_uppercase();
    let letter = ACVPU_CODES.iter().find(|(c, _)| *c == up)?.1;
    let rank = match letter {
        "A" => 0.0,
        "C" => 1.0,
        "V" => 2.0,
        "P" => 3.0,
        _ => 4.0,
    };
    Some((letter, rank))
}

/// Air/oxygen code → 0 (air) or 1 (oxygen).
pub fn on_oxygen_from_code(code: &str) -> Option<f64> {
    match code.trim().to_ascii_uppercase().as_str() {
        "722742002" | "AIR" | "RA" | "ROOM AIR" | "0" | "N" | "NO" => Some(0.0),
        "371825009" | "O2" | "OXYGEN" | "ON OXYGEN" | "1" | "Y" | "YES" => Some(1.0),
        _ => None,
    }
}

/// A value, its code for coded kinds, and a note when a heuristic applied — or why not.
pub type Parsed = Result<(f64, Option<String>, Option<&'static str>), (ProblemKind, String)>;

/// Reads one OBX-5 of `kind`: `value_type` is OBX-2 (upper case), `raw` the whole OBX-5 text,
/// `component(n)` its n-th component (trimmed, `None` when empty), `unit_text` the OBX-6 unit.
pub fn value_of(
    kind: VitalKind,
    value_type: &str,
    raw: &str,
    component: impl Fn(u32) -> Option<String>,
    unit_text: &str,
    codes: &CodeMap,
) -> Parsed {
    let coded = matches!(value_type, "CE" | "CWE" | "CNE" | "CF");
    if kind.is_coded() {
        let code = if coded {
            component(1).unwrap_or_default()
        } else {
            raw.to_string()
        };
        return match kind {
            VitalKind::Acvpu => acvpu_from_code(&code)
                .map(|(letter, rank)| (rank, Some(letter.to_string()), None))
                .ok_or((ProblemKind::NotANumber, "unknown ACVPU code".into())),
            _ => on_oxygen_from_code(&code)
                .map(|v| (v, None, None))
                .ok_or((ProblemKind::NotANumber, "unknown air/oxygen code".into())),
        };
    }
    let number = match value_type {
        "NM" | "ST" | "TX" | "" => Decimal::parse(raw),
        "SN" => {
            let comparator = component(1).unwrap_or_default();
            let exact = (comparator.is_empty() || comparator == "=")
                && component(3).is_none()
                && component(4).is_none();
            if !exact {
                return Err((
                    ProblemKind::InexactValue,
                    "SN value with a comparator or range: not scored".into(),
                ));
            }
            component(2).and_then(|t| Decimal::parse(&t))
        }
        other => {
            return Err((
                ProblemKind::NotANumber,
                format!("value type {other} is not numeric"),
            ));
        }
    };
    let Some(number) = number else {
        return Err((ProblemKind::NotANumber, "value is not a number".into()));
    };
    let Some(unit) = resolve_unit(unit_text, codes.unit_aliases()) else {
        return Err((
            ProblemKind::UnknownUnit,
            format!("unknown unit {unit_text:?} for {kind}: not scored"),
        ));
    };
    match normalise(kind, number, unit) {
        Ok(n) => Ok((n.value, None, n.note)),
        Err(ValueError::UnknownUnit) => Err((
            ProblemKind::UnknownUnit,
            format!("unknown unit {unit_text:?} for {kind}: not scored"),
        )),
        Err(ValueError::NotANumber) => {
            Err((ProblemKind::NotANumber, "value is not a number".into()))
        }
        Err(ValueError::Implausible(_, lo, hi)) => Err((
            ProblemKind::Implausible,
            format!(
                "{kind} outside the plausible range {lo}–{hi} {}",
                kind.canonical_unit()
            ),
        )),
    }
}
