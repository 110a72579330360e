//! Which OBX-3 codes are scoring inputs: the built-in LOINC/SNOMED/MDC table of REFERENCE.md
//! §2 plus a channel's own local codes and unit aliases.
//!
//! Both OBX-3 triplets are consulted (3.1–3.3 and the alternate 3.4–3.6). A channel's own
//! entries win over the built-ins for the same (system, code). If the two triplets name
//! *different* kinds the observation is a conflict and is not scored (never a guess). Coding
//! systems are compared after folding the usual spellings (`LN`, `LOINC`, `http://loinc.org`,
//! the OID) into one; an empty system matches the channel's own empty-system entries, and
//! LOINC-shaped built-in codes. Loading reports the line of a bad row. No I/O here: callers
//! pass the file text.

use std::collections::HashMap;

use serde::Deserialize;

use super::observation::VitalKind;
use super::units::{builtin_unit, unit_key};

/// The result of looking up an OBX-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMatch {
    /// Not a scoring input (most OBX are not): ignored.
    NotScored,
    /// A scoring input of this kind.
    Kind(VitalKind),
    /// The two triplets name different kinds: reported, not scored.
    Conflict(VitalKind, VitalKind),
}

/// Local code → kind, plus unit aliases, over the built-in defaults.
#[derive(Debug, Clone, Default)]
pub struct CodeMap {
    local: HashMap<(String, String), VitalKind>,
    builtin: HashMap<(String, String), VitalKind>,
    units: HashMap<String, String>,
}

/// A bad code-map file: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeMapError {
    /// 1-based line (0 when unknown, e.g. a TOML structure error).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for CodeMapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for CodeMapError {}

/// Folds the spellings of a coding system into one key.
pub fn system_key(system: &str) -> String {
    let s = system.trim().to_ascii_uppercase();
    match s.as_str() {
        "LN" | "LOINC" | "HTTP://LOINC.ORG" | "2.16.840.1.113883.6.1" => "LN".into(),
        "SCT"
        | "SNOMED"
        | "SNOMEDCT"
        | "SNOMED-CT"
        | "SNOMED CT"
        | "HTTP://SNOMED.INFO/SCT"
        | "2.16.840.1.113883.6.96" => "SCT".into(),
        "MDC" | "URN:ISO:STD:ISO:11073:10101" | "2.16.840.1.113883.6.24" => "MDC".into(),
        _ => s,
    }
}

fn looks_like_loinc(code: &str) -> bool {
    match code.split_once('-') {
        Some((num, check)) => {
            (1..=7).contains(&num.len())
                && num.bytes().all(|b| b.is_ascii_digit())
                && check.len() == 1
                && check.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The built-in table: (system, code, kind). REFERENCE.md §2 and DECISIONS.md.
pub const BUILTIN_CODES: &[(&str, &str, VitalKind)] = {
    use VitalKind as K;
    &[
        ("LN", "9279-1", K::RespiratoryRate),
        ("LN", "8867-4", K::HeartRate),
        ("LN", "59408-5", K::SpO2),
        ("LN", "2708-6", K::SpO2),
        ("LN", "3151-8", K::OxygenFlow),
        ("LN", "3150-0", K::Fio2),
        ("LN", "8480-6", K::Systolic),
        ("LN", "9269-2", K::Gcs),
        ("LN", "8310-5", K::Temperature),
        ("LN", "8331-1", K::Temperature),
        ("LN", "8328-7", K::Temperature),
        ("LN", "8332-9", K::Temperature),
        ("LN", "8329-5", K::Temperature),
        ("LN", "6690-2", K::Wbc),
        ("LN", "26464-8", K::Wbc),
        ("LN", "26508-2", K::Bands),
        ("LN", "764-1", K::Bands),
        ("LN", "2019-8", K::PaCO2),
        ("LN", "2703-7", K::PaO2),
        ("LN", "2524-7", K::Lactate),
        ("LN", "32693-4", K::Lactate),
        ("LN", "2519-7", K::Lactate),
        ("LN", "59032-3", K::Lactate),
        ("LN", "2160-0", K::Creatinine),
        ("LN", "38483-4", K::Creatinine),
        ("LN", "21232-4", K::Creatinine),
        ("LN", "14682-9", K::Creatinine),
        ("LN", "1975-2", K::Bilirubin),
        ("LN", "14631-6", K::Bilirubin),
        ("LN", "77137-8", K::Bilirubin),
        ("LN", "777-3", K::Platelets),
        ("LN", "26515-7", K::Platelets),
        ("SCT", "1104441000000107", K::Acvpu),
        ("SCT", "722742002", K::OnOxygen),
        ("SCT", "371825009", K::OnOxygen),
        ("MDC", "147842", K::HeartRate),
        ("MDC", "149514", K::HeartRate),
        ("MDC", "149522", K::HeartRate),
        ("MDC", "151562", K::RespiratoryRate),
        ("MDC", "150033", K::Systolic),
        ("MDC", "150456", K::SpO2),
        ("L", "SPO2SCALE", K::Spo2Scale),
    ]
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    code: Vec<TomlCode>,
    #[serde(default)]
    units: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlCode {
    #[serde(default)]
    system: String,
    code: String,
    kind: String,
}

impl CodeMap {
    /// The built-in defaults only.
    pub fn builtin() -> CodeMap {
        let builtin = BUILTIN_CODES
            .iter()
            .map(|(s, c, k)| ((system_key(s), (*c).to_string()), *k))
            .collect();
        CodeMap {
            builtin,
            ..CodeMap::default()
        }
    }

    /// Adds (or replaces) a channel code; it wins over a built-in one.
    pub fn insert(&mut self, system: &str, code: &str, kind: VitalKind) {
        self.local
            .insert((system_key(system), code.trim().to_string()), kind);
    }

    /// Adds a unit alias: `alias` (as sent in OBX-6) means the built-in unit `target`.
    pub fn add_unit_alias(&mut self, alias: &str, target: &str) -> Result<(), String> {
        if builtin_unit(&unit_key(target)).is_none() {
            return Err(format!(
                "unit alias {alias:?}: {target:?} is not a known unit"
            ));
        }
        self.units.insert(unit_key(alias), target.to_string());
        Ok(())
    }

    /// The alias table (keys in [`unit_key`] form).
    pub fn unit_aliases(&self) -> &HashMap<String, String> {
        &self.units
    }

    /// The built-ins plus the `[[code]]` rows and `[units]` table of a TOML file:
    ///
    /// ```toml
    /// [[code]]
    /// system = "MDIL"        # OBX-3.3 or 3.6 ("" = no system)
    /// code = "0002-4182"
    /// kind = "heart_rate"    # a VitalKind name
    /// [units]
    /// "bpm" = "/min"
    /// ```
    pub fn from_toml_str(text: &str) -> Result<CodeMap, CodeMapError> {
        let file: TomlFile = toml::from_str(text).map_err(|e| CodeMapError {
            line: 0,
            message: e.to_string(),
        })?;
        let mut map = CodeMap::builtin();
        for (i, row) in file.code.iter().enumerate() {
            let kind = row
                .kind
                .parse::<VitalKind>()
                .map_err(|message| CodeMapError {
                    line: 0,
                    message: format!("[[code]] #{}: {message}", i + 1),
                })?;
            if row.code.trim().is_empty() {
                return Err(CodeMapError {
                    line: 0,
                    message: format!("[[code]] #{}: empty code", i + 1),
                });
            }
            map.insert(&row.system, &row.code, kind);
        }
        for (alias, target) in &file.units {
            map.add_unit_alias(alias, target)
                .map_err(|message| CodeMapError { line: 0, message })?;
        }
        Ok(map)
    }

    /// The built-ins plus `system,code,kind` rows (a header row `system,code,kind`, blank
    /// lines and `#` comments allowed).
    pub fn from_csv_str(text: &str) -> Result<CodeMap, CodeMapError> {
        let mut map = CodeMap::builtin();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let err = |message: String| CodeMapError {
                line: i + 1,
                message,
            };
            let [system, code, kind] = cols[..] else {
                return Err(err("expected 3 columns: system,code,kind".into()));
            };
            if i == 0 && system.eq_ignore_ascii_case("system") {
                continue;
            }
            if code.is_empty() {
                return Err(err("empty code".into()));
            }
            map.insert(system, code, kind.parse().map_err(err)?);
        }
        Ok(map)
    }

    fn lookup_one(&self, code: &str, system: &str) -> Option<VitalKind> {
        let code = code.trim();
        if code.is_empty() {
            return None;
        }
        let key = (system_key(system), code.to_string());
        if let Some(kind) = self.local.get(&key).or_else(|| self.builtin.get(&key)) {
            return Some(*kind);
        }
        if key.0.is_empty() && looks_like_loinc(code) {
            return self.builtin.get(&("LN".to_string(), key.1)).copied();
        }
        None
    }

    /// Classifies an OBX-3 from its two triplets' (code, system).
    pub fn classify(&self, primary: (&str, &str), alternate: (&str, &str)) -> CodeMatch {
        let a = self.lookup_one(primary.0, primary.1);
        let b = self.lookup_one(alternate.0, alternate.1);
        match (a, b) {
            (Some(x), Some(y)) if x != y => CodeMatch::Conflict(x, y),
            (Some(x), _) | (None, Some(x)) => CodeMatch::Kind(x),
            (None, None) => CodeMatch::NotScored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_match_both_triplets_and_system_spellings() {
        let map = CodeMap::builtin();
        let k = |c: &str, s: &str| map.classify((c, s), ("", ""));
        assert_eq!(
            k("9279-1", "LN"),
            CodeMatch::Kind(VitalKind::RespiratoryRate)
        );
        assert_eq!(
            k("9279-1", "http://loinc.org"),
            CodeMatch::Kind(VitalKind::RespiratoryRate)
        );
        assert_eq!(k("9279-1", ""), CodeMatch::Kind(VitalKind::RespiratoryRate));
        assert_eq!(k("9279-1", "L"), CodeMatch::NotScored);
        assert_eq!(
            k("1104441000000107", "SCT"),
            CodeMatch::Kind(VitalKind::Acvpu)
        );
        assert_eq!(k("147842", "MDC"), CodeMatch::Kind(VitalKind::HeartRate));
        assert_eq!(k("147842", ""), CodeMatch::NotScored);
        assert_eq!(k("SPO2SCALE", "L"), CodeMatch::Kind(VitalKind::Spo2Scale));
        assert_eq!(k("2951-2", "LN"), CodeMatch::NotScored);
        // Local code first, LOINC in the alternate triplet (Elation style).
        assert_eq!(
            map.classify(("WBC", "LA01"), ("6690-2", "LN")),
            CodeMatch::Kind(VitalKind::Wbc)
        );
        assert_eq!(
            map.classify(("8867-4", "LN"), ("9279-1", "LN")),
            CodeMatch::Conflict(VitalKind::HeartRate, VitalKind::RespiratoryRate)
        );
    }

    #[test]
    fn channel_codes_and_units_load() {
        let map = CodeMap::from_toml_str(
            "[[code]]\nsystem = \"MDIL\"\ncode = \"0002-4182\"\nkind = \"heart_rate\"\n\
             [[code]]\nsystem = \"\"\ncode = \"Heart Rate\"\nkind = \"heart_rate\"\n\
             [units]\n\"Schläge/min\" = \"/min\"\n",
        )
        .unwrap();
        assert_eq!(
            map.classify(("0002-4182", "mdil"), ("", "")),
            CodeMatch::Kind(VitalKind::HeartRate)
        );
        assert_eq!(
            map.classify(("Heart Rate", ""), ("", "")),
            CodeMatch::Kind(VitalKind::HeartRate)
        );
        assert!(map.unit_aliases().contains_key("schläge/min"));
        assert!(CodeMap::from_toml_str("[[code]]\ncode = \"X\"\nkind = \"pulse\"\n").is_err());
        assert!(CodeMap::from_toml_str("[units]\n\"x\" = \"furlongs\"\n").is_err());
        assert!(CodeMap::from_toml_str("[[codes]]\n").is_err());

        let csv = CodeMap::from_csv_str("system,code,kind\n# monitor\nWAP,Heart Rate,heart_rate\n")
            .unwrap();
        assert_eq!(
            csv.classify(("Heart Rate", "WAP"), ("", "")),
            CodeMatch::Kind(VitalKind::HeartRate)
        );
        let bad = CodeMap::from_csv_str("WAP,HR\n").unwrap_err();
        assert_eq!(bad.line, 1);
        let bad = CodeMap::from_csv_str("\nWAP,HR,pulse\n").unwrap_err();
        assert_eq!(bad.line, 2);
    }

    #[test]
    fn channel_code_overrides_builtin() {
        let mut map = CodeMap::builtin();
        map.insert("LN", "8867-4", VitalKind::RespiratoryRate);
        assert_eq!(
            map.classify(("8867-4", "LN"), ("", "")),
            CodeMatch::Kind(VitalKind::RespiratoryRate)
        );
    }
}
