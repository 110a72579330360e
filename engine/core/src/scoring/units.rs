//! Numbers and units: OBX-5 text → an exact decimal, OBX-6 → a known unit, and the conversion
//! of each [`VitalKind`] to its canonical unit, followed by the plausibility check.
//!
//! Invariants (REFERENCE.md §1.7, §2): °F becomes °C by exact decimal arithmetic rounded half
//! away from zero to 0.1 °C *before* anyone bands it (100.4 °F is exactly 38.0 °C, never
//! 38.00000000000001); kPa → mmHg rounded to 0.1; µmol/L → mg/dL (creatinine ÷ 88.4, bilirubin
//! ÷ 17.1); lactate mg/dL × 0.111; WBC per µL → 10³/µL (also a "10³" WBC above 500, which is
//! per µL in practice); FiO₂ in % → a fraction. A unit this module does not know is an error
//! (the value is not scored), never a guess; an empty unit is accepted only where no other
//! unit is possible (rates, GCS). Values outside the plausibility range are errors. This
//! module never sees patients and never logs.

use std::collections::HashMap;

use super::observation::VitalKind;

/// A unit this module understands (after alias resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// No unit sent.
    Empty,
    /// Per minute (`/min`, `{beats}/min`, `bpm`, MDC 264864 …).
    PerMin,
    /// Percent.
    Percent,
    /// Litres per minute.
    LitresPerMin,
    /// A dimensionless fraction (`1`, `{fraction}`).
    Fraction,
    /// mm[Hg].
    MmHg,
    /// kPa.
    KPa,
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
    /// A score (`{score}`).
    Score,
    /// 10³ per µL (≡ 10⁹/L, K/µL).
    ThousandPerUl,
    /// Per µL (≡ per mm³).
    PerUl,
    /// mmol/L.
    MmolPerL,
    /// mg/dL.
    MgPerDl,
    /// µmol/L.
    UmolPerL,
}

/// Lower-cases, folds µ/μ to u, drops spaces: the form aliases are compared in.
pub fn unit_key(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            'µ' | 'μ' => 'u',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The built-in unit vocabulary (UCUM plus strings seen in real OBX-6, REFERENCE.md §2).
pub fn builtin_unit(key: &str) -> Option<Unit> {
    Some(match key {
        "" => Unit::Empty,
        "/min"
        | "1/min"
        | "min-1"
        | "/mn"
        | "{breaths}/min"
        | "{beats}/min"
        | "{beat}/min"
        | "{breath}/min"
        | "breaths/min"
        | "beats/min"
        | "bpm"
        | "br/min"
        | "rpm"
        | "264864"
        | "mdc_dim_beat_per_min"
        | "mdc_dim_resp_per_min" => Unit::PerMin,
        "%" | "percent" | "%{saturation}" | "%{o2}" | "%{oxygen}" | "262688"
        | "mdc_dim_percent" => Unit::Percent,
        "l/min" | "lpm" | "l/mn" | "mdc_dim_l_per_min" => Unit::LitresPerMin,
        "1" | "{fraction}" | "fraction" | "{ratio}" => Unit::Fraction,
        "mm[hg]" | "mmhg" | "266016" | "mdc_dim_mmhg" => Unit::MmHg,
        "kpa" | "mdc_dim_kilo_pascal" => Unit::KPa,
        "cel" | "°c" | "degc" | "c" | "celsius" | "[degc]" | "mdc_dim_degc" => Unit::Celsius,
        "[degf]" | "°f" | "degf" | "f" | "fahrenheit" | "mdc_dim_fahr" => Unit::Fahrenheit,
        "{score}" | "score" | "{points}" | "{total}" => Unit::Score,
        "10*3/ul" | "10^3/ul" | "10*9/l" | "10^9/l" | "k/ul" | "x10e3/ul" | "10e3/ul"
        | "x10^3/ul" | "x10*3/ul" | "x10^9/l" | "x10*9/l" | "x10e9/l" | "10e9/l" | "thou/ul"
        | "k/mm3" | "10*3/mm3" => Unit::ThousandPerUl,
        "/ul" | "/mm3" | "cells/ul" | "{cells}/ul" | "/cumm" | "/mm^3" => Unit::PerUl,
        "mmol/l" => Unit::MmolPerL,
        "mg/dl" => Unit::MgPerDl,
        "umol/l" => Unit::UmolPerL,
        _ => return None,
    })
}

/// Resolves a sent unit: the channel's alias table first (alias → a built-in unit string),
/// then the built-in vocabulary.
pub fn resolve_unit(text: &str, aliases: &HashMap<String, String>) -> Option<Unit> {
    let key = unit_key(text);
    if let Some(target) = aliases.get(&key) {
        return builtin_unit(&unit_key(target));
    }
    builtin_unit(&key)
}

/// An exact decimal `mantissa / 10^scale` as written in OBX-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    /// The digits with the sign.
    pub mantissa: i128,
    /// How many of them are after the point.
    pub scale: u32,
}

impl Decimal {
    /// Parses `[+-]digits[.digits]` (or `.digits`), surrounding spaces allowed; no exponent,
    /// no thousands separators, at most 30 digits.
    pub fn parse(text: &str) -> Option<Decimal> {
        let t = text.trim();
        let (negative, body) = match t.as_bytes().first()? {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || !all_digits(frac) || int.len() + frac.len() > 30 {
            return None;
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa * 10 + i128::from(b - b'0');
        }
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: u32::try_from(frac.len()).ok()?,
        })
    }

    /// The nearest `f64`.
    pub fn to_f64(self) -> f64 {
        // Parsing the canonical text gives the correctly rounded double.
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        let sign = if self.mantissa < 0 { "-" } else { "" };
        format!("{sign}{int}.{frac}0").parse().unwrap_or(f64::NAN)
    }
}

/// Rounds `num / den` (den > 0) half away from zero.
fn div_round(num: i128, den: i128) -> i128 {
    if num >= 0 {
        (2 * num + den) / (2 * den)
    } else {
        -((-2 * num + den) / (2 * den))
    }
}

/// °F → °C in tenths, exactly: `round((F − 32) × 5/9, 0.1)`, half away from zero.
pub fn fahrenheit_to_celsius_tenths(f: Decimal) -> i128 {
    let pow = 10i128.pow(f.scale);
    div_round((f.mantissa - 32 * pow) * 50, 9 * pow)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Why a value was not usable.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueError {
    /// OBX-5 is not a plain decimal number.
    NotANumber,
    /// OBX-6 is not a unit this kind can be in.
    UnknownUnit,
    /// Outside the plausibility range for the kind (canonical value, range).
    Implausible(f64, f64, f64),
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueError::NotANumber => f.write_str("value is not a number"),
            ValueError::UnknownUnit => f.write_str("unknown unit"),
            ValueError::Implausible(_, lo, hi) => {
                write!(f, "value outside the plausible range {lo}–{hi}")
            }
        }
    }
}

/// The plausible range of a kind in its canonical unit (REFERENCE.md §1.7 rule 4, ⚙ others).
pub fn plausible_range(kind: VitalKind) -> (f64, f64) {
    match kind {
        VitalKind::RespiratoryRate => (0.0, 70.0),
        VitalKind::SpO2 => (0.0, 100.0),
        VitalKind::HeartRate => (0.0, 300.0),
        VitalKind::Systolic => (0.0, 400.0),
        VitalKind::Temperature => (25.0, 45.0),
        VitalKind::Gcs => (3.0, 15.0),
        VitalKind::Wbc => (0.0, 500.0),
        VitalKind::Bands => (0.0, 100.0),
        VitalKind::PaCO2 => (0.0, 200.0),
        VitalKind::PaO2 => (0.0, 800.0),
        VitalKind::Fio2 => (0.21, 1.0),
        VitalKind::OxygenFlow => (0.0, 70.0),
        VitalKind::Lactate => (0.0, 50.0),
        VitalKind::Creatinine => (0.0, 40.0),
        VitalKind::Bilirubin => (0.0, 80.0),
        VitalKind::Platelets => (0.0, 5000.0),
        VitalKind::Spo2Scale => (1.0, 2.0),
        VitalKind::OnOxygen => (0.0, 1.0),
        VitalKind::Acvpu => (0.0, 4.0),
    }
}

/// A value in its kind's canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalised {
    /// The canonical value.
    pub value: f64,
    /// A note when a heuristic was applied (e.g. WBC per µL), for the problem list.
    pub note: Option<&'static str>,
}

/// Converts a numeric OBX-5 in `unit` to `kind`'s canonical unit and checks plausibility.
pub fn normalise(kind: VitalKind, value: Decimal, unit: Unit) -> Result<Normalised, ValueError> {
    use Unit as U;
    use VitalKind as K;
    let v = value.to_f64();
    let mut note = None;
    let canonical = match (kind, unit) {
        (K::RespiratoryRate | K::HeartRate, U::PerMin | U::Empty) => v,
        (K::SpO2 | K::Bands, U::Percent) => v,
        (K::OxygenFlow, U::LitresPerMin) => v,
        (K::Fio2, U::Percent | U::Fraction | U::Empty) => {
            if v > 1.0 {
                v / 100.0
            } else {
                v
            }
        }
        (K::Systolic | K::PaCO2 | K::PaO2, U::MmHg) => v,
        (K::Systolic | K::PaCO2 | K::PaO2, U::KPa) => round1(v * 7.500_617),
        (K::Temperature, U::Celsius) => v,
        (K::Temperature, U::Fahrenheit) => {
            let tenths = fahrenheit_to_celsius_tenths(value);
            let tenths = i32::try_from(tenths).map_err(|_| ValueError::NotANumber)?;
            f64::from(tenths) / 10.0
        }
        (K::Gcs, U::Score | U::Empty) => {
            if v.fract() != 0.0 {
                return Err(ValueError::Implausible(v, 3.0, 15.0));
            }
            v
        }
        (K::Spo2Scale, U::Empty | U::Score) => {
            if v != 1.0 && v != 2.0 {
                return Err(ValueError::Implausible(v, 1.0, 2.0));
            }
            v
        }
        (K::Wbc, U::ThousandPerUl) if v > 500.0 => {
            note = Some("WBC above 500 read as per µL and divided by 1000");
            v / 1000.0
        }
        (K::Wbc | K::Platelets, U::ThousandPerUl) => v,
        (K::Wbc | K::Platelets, U::PerUl) => v / 1000.0,
        (K::Lactate, U::MmolPerL) => v,
        (K::Lactate, U::MgPerDl) => v * 0.111,
        (K::Creatinine | K::Bilirubin, U::MgPerDl) => v,
        (K::Creatinine, U::UmolPerL) => v / 88.4,
        (K::Bilirubin, U::UmolPerL) => v / 17.1,
        _ => return Err(ValueError::UnknownUnit),
    };
    let (lo, hi) = plausible_range(kind);
    if !(lo..=hi).contains(&canonical) {
        return Err(ValueError::Implausible(canonical, lo, hi));
    }
    Ok(Normalised {
        value: canonical,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    fn norm(kind: VitalKind, value: &str, unit: &str) -> Result<f64, ValueError> {
        let unit = resolve_unit(unit, &HashMap::new()).ok_or(ValueError::UnknownUnit)?;
        normalise(kind, d(value), unit).map(|n| n.value)
    }

    #[test]
    fn decimals() {
        assert_eq!(d("37.0").to_f64(), 37.0);
        assert_eq!(d(" 101.1 ").to_f64(), 101.1);
        assert_eq!(d("-0.5").to_f64(), -0.5);
        assert_eq!(d(".5").to_f64(), 0.5);
        assert_eq!(d("5.").to_f64(), 5.0);
        assert_eq!(d("0.007").to_f64(), 0.007);
        for bad in [
            "", "-", ".", "1e3", "1,5", "12 3", "abc", "1.2.3", "NaN", "inf",
        ] {
            assert_eq!(Decimal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fahrenheit_rounds_exactly_before_banding() {
        // REFERENCE §1.7 rule 2 and TV12–TV15, W9.
        for (f, c) in [
            ("100.4", 38.0),
            ("96.8", 36.0),
            ("95.0", 35.0),
            ("102.4", 39.1),
            ("101.1", 38.4),
            ("98.6", 37.0),
            ("32", 0.0),
            ("-40", -40.0),
        ] {
            let tenths = fahrenheit_to_celsius_tenths(d(f));
            assert_eq!(tenths as f64 / 10.0, c, "{f} °F");
        }
        // Exactly half a tenth rounds away from zero: 100.49 °F = 38.05 °C → 38.1.
        assert_eq!(fahrenheit_to_celsius_tenths(d("100.49")), 381);
        assert_eq!(norm(VitalKind::Temperature, "100.4", "[degF]"), Ok(38.0));
        assert!(norm(VitalKind::Temperature, "100.4", "[degF]").unwrap() <= 38.0);
    }

    #[test]
    fn conversions() {
        use VitalKind as K;
        assert_eq!(norm(K::PaCO2, "4.3", "kPa"), Ok(32.3));
        assert_eq!(norm(K::Systolic, "13.3", "kPa"), Ok(99.8));
        assert_eq!(norm(K::Creatinine, "88.4", "µmol/L"), Ok(1.0));
        assert_eq!(norm(K::Creatinine, "88.4", "μmol/L"), Ok(1.0));
        assert_eq!(norm(K::Bilirubin, "17.1", "umol/L"), Ok(1.0));
        assert_eq!(norm(K::Wbc, "15200", "/uL"), Ok(15.2));
        assert_eq!(norm(K::Wbc, "15200", "10*3/uL"), Ok(15.2));
        assert_eq!(norm(K::Wbc, "15200", ""), Err(ValueError::UnknownUnit));
        assert_eq!(norm(K::Wbc, "15.2", ""), Err(ValueError::UnknownUnit));
        assert_eq!(norm(K::Wbc, "15.2", "10*9/L"), Ok(15.2));
        assert_eq!(norm(K::Fio2, "40", "%"), Ok(0.4));
        assert_eq!(norm(K::Fio2, "0.4", ""), Ok(0.4));
        assert_eq!(norm(K::Temperature, "37.2", "Cel"), Ok(37.2));
        assert_eq!(
            norm(K::HeartRate, "80", "^BPM"),
            Err(ValueError::UnknownUnit)
        );
        assert_eq!(norm(K::HeartRate, "80", "BPM"), Ok(80.0));
        assert_eq!(norm(K::HeartRate, "80", ""), Ok(80.0));
        assert_eq!(norm(K::Systolic, "120", "266016"), Ok(120.0));
    }

    #[test]
    fn unknown_units_and_empty_where_ambiguous_are_refused() {
        use VitalKind as K;
        assert_eq!(norm(K::Temperature, "37", ""), Err(ValueError::UnknownUnit));
        assert_eq!(
            norm(K::Temperature, "37", "K"),
            Err(ValueError::UnknownUnit)
        );
        assert_eq!(norm(K::SpO2, "97", ""), Err(ValueError::UnknownUnit));
        assert_eq!(norm(K::Systolic, "120", ""), Err(ValueError::UnknownUnit));
        assert_eq!(
            norm(K::HeartRate, "80", "mm[Hg]"),
            Err(ValueError::UnknownUnit)
        );
    }

    #[test]
    fn plausibility_edges_are_inclusive() {
        use VitalKind as K;
        assert!(norm(K::HeartRate, "300", "/min").is_ok());
        assert!(matches!(
            norm(K::HeartRate, "301", "/min"),
            Err(ValueError::Implausible(..))
        ));
        assert!(matches!(
            norm(K::HeartRate, "-1", "/min"),
            Err(ValueError::Implausible(..))
        ));
        assert!(norm(K::Systolic, "400", "mm[Hg]").is_ok());
        assert!(norm(K::Systolic, "401", "mm[Hg]").is_err());
        assert!(norm(K::RespiratoryRate, "70", "/min").is_ok());
        assert!(norm(K::RespiratoryRate, "71", "/min").is_err());
        assert!(norm(K::SpO2, "100", "%").is_ok());
        assert!(norm(K::SpO2, "100.1", "%").is_err());
        assert!(norm(K::Temperature, "25", "Cel").is_ok());
        assert!(norm(K::Temperature, "24.9", "Cel").is_err());
        assert!(norm(K::Temperature, "45", "Cel").is_ok());
        assert!(norm(K::Temperature, "45.1", "Cel").is_err());
        assert!(norm(K::Temperature, "200", "[degF]").is_err());
        assert!(norm(K::Gcs, "14.5", "{score}").is_err());
        assert!(norm(K::Gcs, "2", "{score}").is_err());
        assert!(norm(K::Spo2Scale, "3", "").is_err());
    }
}
