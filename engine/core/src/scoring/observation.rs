//! The scoring vocabulary: what one observation is, whose it is, and how final it is.
//!
//! An [`Observation`] is one OBX reduced to a canonical value: a [`VitalKind`], a value in the
//! kind's canonical unit ([`VitalKind::canonical_unit`]), the observation time as UTC
//! microseconds, the OBX-11 [`ResultStatus`] and the [`PatientKey`] it belongs to. Invariants:
//! every observation carries the key of the PID it was found under (never a name, bed or
//! encounter alone); `value` is only meaningful when `status` is not
//! [`ResultStatus::Retracted`] or [`ResultStatus::NoValue`]. Nothing here does I/O or logs.

use std::fmt;
use std::str::FromStr;

/// What an observation measures. The stable snake_case names ([`VitalKind::as_str`]) are the
/// ones used in code-map files and store columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VitalKind {
    /// Respiratory rate, `/min`.
    RespiratoryRate,
    /// Peripheral oxygen saturation, `%`.
    SpO2,
    /// Inhaled oxygen flow rate, `L/min` (> 0 means on oxygen).
    OxygenFlow,
    /// Inhaled oxygen concentration as a fraction 0.21–1.0 (> 0.21 means on oxygen).
    Fio2,
    /// Coded air/oxygen: 0 = breathing room air, 1 = on supplemental oxygen.
    OnOxygen,
    /// Systolic blood pressure, `mm[Hg]`.
    Systolic,
    /// Heart (pulse) rate, `/min`.
    HeartRate,
    /// ACVPU: `text` is `A`, `C` (new confusion), `V`, `P` or `U`; value 0–4 in that order.
    Acvpu,
    /// Glasgow coma score total, 3–15.
    Gcs,
    /// Body temperature, `Cel` (°F converted and rounded to 0.1 °C).
    Temperature,
    /// White cell count, `10*3/uL`.
    Wbc,
    /// Band neutrophils, `%` of leukocytes.
    Bands,
    /// Arterial PaCO₂, `mm[Hg]`.
    PaCO2,
    /// Arterial PaO₂, `mm[Hg]` (stored, not scored yet).
    PaO2,
    /// Lactate, `mmol/L` (stored, not scored yet).
    Lactate,
    /// Creatinine, `mg/dL` (stored, not scored yet).
    Creatinine,
    /// Total bilirubin, `mg/dL` (stored, not scored yet).
    Bilirubin,
    /// Platelets, `10*3/uL` (stored, not scored yet).
    Platelets,
    /// NEWS2 SpO₂ scale chosen by a clinician: 1 or 2. Never windowed: it stays until changed.
    Spo2Scale,
}

impl VitalKind {
    /// Every kind, in declaration order.
    pub const ALL: [VitalKind; 19] = [
        VitalKind::RespiratoryRate,
        VitalKind::SpO2,
        VitalKind::OxygenFlow,
        VitalKind::Fio2,
        VitalKind::OnOxygen,
        VitalKind::Systolic,
        VitalKind::HeartRate,
        VitalKind::Acvpu,
        VitalKind::Gcs,
        VitalKind::Temperature,
        VitalKind::Wbc,
        VitalKind::Bands,
        VitalKind::PaCO2,
        VitalKind::PaO2,
        VitalKind::Lactate,
        VitalKind::Creatinine,
        VitalKind::Bilirubin,
        VitalKind::Platelets,
        VitalKind::Spo2Scale,
    ];

    /// The stable name used in code maps, JSON and store columns.
    pub fn as_str(self) -> &'static str {
        match self {
            VitalKind::RespiratoryRate => "respiratory_rate",
            VitalKind::SpO2 => "spo2",
            VitalKind::OxygenFlow => "oxygen_flow",
            VitalKind::Fio2 => "fio2",
            VitalKind::OnOxygen => "on_oxygen",
            VitalKind::Systolic => "systolic",
            VitalKind::HeartRate => "heart_rate",
            VitalKind::Acvpu => "acvpu",
            VitalKind::Gcs => "gcs",
            VitalKind::Temperature => "temperature",
            VitalKind::Wbc => "wbc",
            VitalKind::Bands => "bands",
            VitalKind::PaCO2 => "paco2",
            VitalKind::PaO2 => "pao2",
            VitalKind::Lactate => "lactate",
            VitalKind::Creatinine => "creatinine",
            VitalKind::Bilirubin => "bilirubin",
            VitalKind::Platelets => "platelets",
            VitalKind::Spo2Scale => "spo2_scale",
        }
    }

    /// The canonical unit every value of this kind is stored and scored in.
    pub fn canonical_unit(self) -> &'static str {
        match self {
            VitalKind::RespiratoryRate | VitalKind::HeartRate => "/min",
            VitalKind::SpO2 | VitalKind::Bands => "%",
            VitalKind::OxygenFlow => "L/min",
            VitalKind::Fio2 => "1",
            VitalKind::OnOxygen | VitalKind::Acvpu | VitalKind::Spo2Scale => "",
            VitalKind::Systolic | VitalKind::PaCO2 | VitalKind::PaO2 => "mm[Hg]",
            VitalKind::Gcs => "{score}",
            VitalKind::Temperature => "Cel",
            VitalKind::Wbc | VitalKind::Platelets => "10*3/uL",
            VitalKind::Lactate => "mmol/L",
            VitalKind::Creatinine | VitalKind::Bilirubin => "mg/dL",
        }
    }

    /// True for kinds whose OBX-5 is a code rather than a number.
    pub fn is_coded(self) -> bool {
        matches!(self, VitalKind::Acvpu | VitalKind::OnOxygen)
    }
}

impl fmt::Display for VitalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VitalKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The snake_case name; the Rust variant name (`RespiratoryRate`) is accepted too.
        let fold = |t: &str| -> String {
            t.trim()
                .chars()
                .filter(|c| *c != '_')
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        let wanted = fold(s);
        VitalKind::ALL
            .into_iter()
            .find(|k| fold(k.as_str()) == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = VitalKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// OBX-11 (HL7 table 0085) reduced to what scoring needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultStatus {
    /// F, V (verified), U with a value: final.
    Final,
    /// C (correction) and A (amended): replaces the same observation.
    Corrected,
    /// P, R (not verified), S (partial): used or ignored per `ScoringSettings::preliminary`;
    /// never replaces a final value of the same observation.
    Preliminary,
    /// W (wrong, e.g. wrong patient) and D (delete): removes the same observation.
    Retracted,
    /// X: the result cannot be obtained; nothing to score.
    NoValue,
    /// U without a value: the preliminary value of the same observation is now final.
    MadeFinal,
    /// Anything else (I, N, O, unknown): stored, never scored. (`extract` reads an empty
    /// OBX-11 on a valued OBX as final, and reports it.)
    Other,
}

impl ResultStatus {
    /// Maps an OBX-11 code.
    pub fn from_obx11(code: &str) -> ResultStatus {
        match code.trim().to_ascii_uppercase().as_str() {
            "F" | "V" => ResultStatus::Final,
            "C" | "A" => ResultStatus::Corrected,
            "P" | "R" | "S" => ResultStatus::Preliminary,
            "W" | "D" => ResultStatus::Retracted,
            "X" => ResultStatus::NoValue,
            "U" => ResultStatus::MadeFinal,
            _ => ResultStatus::Other,
        }
    }

    /// A stable lower-case name for JSON and store columns.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Final => "final",
            ResultStatus::Corrected => "corrected",
            ResultStatus::Preliminary => "preliminary",
            ResultStatus::Retracted => "retracted",
            ResultStatus::NoValue => "no_value",
            ResultStatus::MadeFinal => "made_final",
            ResultStatus::Other => "other",
        }
    }

    /// Every status, for parsing stored names.
    pub const ALL: [ResultStatus; 7] = [
        ResultStatus::Final,
        ResultStatus::Corrected,
        ResultStatus::Preliminary,
        ResultStatus::Retracted,
        ResultStatus::NoValue,
        ResultStatus::MadeFinal,
        ResultStatus::Other,
    ];

    /// The status named by [`ResultStatus::as_str`] (for rows read back from a store).
    pub fn from_name(name: &str) -> Option<ResultStatus> {
        ResultStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Final or corrected: a value a clinician signed off.
    pub fn is_final(self) -> bool {
        matches!(self, ResultStatus::Final | ResultStatus::Corrected)
    }
}

/// The patient key: PID-3.1 with its assigning authority PID-3.4 (kept verbatim, so an HD
/// with subcomponents stays `NS&OID&ISO`). Displayed as `ID^^^AUTH` (DECISIONS.md). Never a
/// name, bed or encounter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatientKey {
    /// PID-3.1, the identifier.
    pub id: String,
    /// PID-3.4, the assigning authority ("" when the sender leaves it empty).
    pub authority: String,
}

impl PatientKey {
    /// A key from its parts.
    pub fn new(id: impl Into<String>, authority: impl Into<String>) -> PatientKey {
        PatientKey {
            id: id.into(),
            authority: authority.into(),
        }
    }
}

impl fmt::Display for PatientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}^^^{}", self.id, self.authority)
    }
}

/// Where the patient is (PV1-3), for alert text only: never part of the patient key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// PV1-3.1 point of care (ward).
    pub ward: String,
    /// PV1-3.2 room.
    pub room: String,
    /// PV1-3.3 bed.
    pub bed: String,
    /// PV1-3.4 facility.
    pub facility: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [&self.ward, &self.room, &self.bed, &self.facility]
            .into_iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        f.write_str(&parts.join(" / "))
    }
}

/// One scoring-relevant OBX, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The patient of the PID this OBX follows.
    pub patient: PatientKey,
    /// What was measured.
    pub kind: VitalKind,
    /// The value in the canonical unit (ACVPU: 0 = A … 4 = U; on-oxygen: 0/1). Meaningless
    /// (0.0) for [`ResultStatus::Retracted`] / [`ResultStatus::NoValue`] /
    /// [`ResultStatus::MadeFinal`] without a value.
    pub value: f64,
    /// The code for coded kinds (`A`/`C`/`V`/`P`/`U` for ACVPU), else `None`.
    pub text: Option<String>,
    /// The canonical unit ([`VitalKind::canonical_unit`]).
    pub unit: String,
    /// OBX-5 as sent (unescaped; for coded values the code).
    pub original_value: String,
    /// The OBX-6 unit as sent (component 1, or component 2 when 1 is empty).
    pub original_unit: String,
    /// UTC microseconds: OBX-14, else OBR-7, else MSH-7.
    pub observed_at: i64,
    /// OBX-11.
    pub status: ResultStatus,
    /// The observation set this belongs to: OBR-3.1 (filler order number), else OBR-2.1
    /// (placer), else empty. Together with kind and time it identifies the observation that
    /// a correction or retraction refers to.
    pub set_id: String,
    /// PV1-19.1, the visit number, when sent.
    pub encounter: Option<String>,
    /// MSH-10 of the message it came from ("" when empty); the caller may replace it with a
    /// store id.
    pub source: String,
}

impl Observation {
    /// The identity a correction (C) or retraction (W/D) refers to: kind, time and set.
    pub fn identity(&self) -> (VitalKind, i64, &str) {
        (self.kind, self.observed_at, self.set_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in VitalKind::ALL {
            assert_eq!(kind.as_str().parse::<VitalKind>(), Ok(kind));
        }
        assert!("pulse".parse::<VitalKind>().is_err());
        assert_eq!("RespiratoryRate".parse(), Ok(VitalKind::RespiratoryRate));
        assert_eq!("SpO2".parse(), Ok(VitalKind::SpO2));
        for status in ResultStatus::ALL {
            assert_eq!(ResultStatus::from_name(status.as_str()), Some(status));
        }
        assert_eq!(ResultStatus::from_name("F"), None);
    }

    #[test]
    fn statuses_map_table_0085() {
        assert_eq!(ResultStatus::from_obx11("F"), ResultStatus::Final);
        assert_eq!(ResultStatus::from_obx11("c"), ResultStatus::Corrected);
        assert_eq!(ResultStatus::from_obx11("P"), ResultStatus::Preliminary);
        assert_eq!(ResultStatus::from_obx11("R"), ResultStatus::Preliminary);
        assert_eq!(ResultStatus::from_obx11("W"), ResultStatus::Retracted);
        assert_eq!(ResultStatus::from_obx11("D"), ResultStatus::Retracted);
        assert_eq!(ResultStatus::from_obx11("X"), ResultStatus::NoValue);
        assert_eq!(ResultStatus::from_obx11(""), ResultStatus::Other);
        assert_eq!(ResultStatus::from_obx11("I"), ResultStatus::Other);
    }

    #[test]
    fn key_display_is_cx_form() {
        assert_eq!(PatientKey::new("MRN1", "HOSP").to_string(), "MRN1^^^HOSP");
        assert_eq!(PatientKey::new("MRN1", "").to_string(), "MRN1^^^");
    }
}
