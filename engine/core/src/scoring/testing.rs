//! Test support (hidden from docs): builds the ORU^R01 of a `score-vectors.jsonl` input exactly
//! as the DECISIONS.md table says — one OBX per input, OBX-11 `F`, one OBX-14 time — so unit
//! tests, `medway score` tests and end-to-end MLLP tests send the same bytes.

use serde_json::Value;

/// How to frame a vector's ORU.
#[derive(Debug, Clone)]
pub struct OruOptions {
    /// MSH-10.
    pub control_id: String,
    /// PID-3.1.
    pub patient_id: String,
    /// PID-3.4.
    pub authority: String,
    /// OBX-14 and OBR-7 (HL7 TS).
    pub observed_at: String,
    /// MSH-7.
    pub message_time: String,
    /// OBX-11 for every OBX.
    pub status: String,
    /// PID-7 (date of birth).
    pub birth_date: String,
}

impl Default for OruOptions {
    fn default() -> Self {
        OruOptions {
            control_id: "VEC0001".into(),
            patient_id: "MRN12345".into(),
            authority: "HOSP".into(),
            observed_at: "20240501102500".into(),
            message_time: "20240501103000".into(),
            status: "F".into(),
            birth_date: "19600101".into(),
        }
    }
}

/// The vector inputs in the DECISIONS.md table order: key, OBX-2, OBX-3, OBX-6.
pub const VECTOR_INPUTS: &[(&str, &str, &str, &str)] = &[
    ("rr", "NM", "9279-1^Respiratory rate^LN", "/min"),
    (
        "spo2",
        "NM",
        "59408-5^Oxygen saturation in Arterial blood by Pulse oximetry^LN",
        "%",
    ),
    ("o2", "NM", "3151-8^Inhaled oxygen flow rate^LN", "L/min"),
    ("sbp", "NM", "8480-6^Systolic blood pressure^LN", "mm[Hg]"),
    ("hr", "NM", "8867-4^Heart rate^LN", "/min"),
    ("acvpu", "CWE", "1104441000000107^ACVPU scale^SCT", ""),
    ("gcs", "NM", "9269-2^Glasgow coma score total^LN", "{score}"),
    ("temp_c", "NM", "8310-5^Body temperature^LN", "Cel"),
    ("temp_f", "NM", "8310-5^Body temperature^LN", "[degF]"),
    (
        "wbc",
        "NM",
        "6690-2^Leukocytes [#/volume] in Blood by Automated count^LN",
        "10*3/uL",
    ),
    (
        "bands",
        "NM",
        "26508-2^Neutrophils.band form/100 leukocytes in Blood^LN",
        "%",
    ),
    (
        "paco2",
        "NM",
        "2019-8^Carbon dioxide [Partial pressure] in Arterial blood^LN",
        "mm[Hg]",
    ),
    ("scale", "NM", "SPO2SCALE^NEWS2 SpO2 scale^L", ""),
];

/// The OBX-5 of an ACVPU letter (DECISIONS.md).
pub fn acvpu_value(letter: &str) -> Option<&'static str> {
    Some(match letter {
        "A" => "248234008^Alert^SCT",
        "C" => "130987000^Acute confusion^SCT",
        "V" => "300202002^Voice^SCT",
        "P" => "450847001^Pain^SCT",
        "U" => "422768004^Unresponsive^SCT",
        _ => return None,
    })
}

/// Builds the ORU^R01 (segments joined by CR, trailing CR) for a vector's `in` object.
pub fn oru_from_vector(input: &Value, o: &OruOptions) -> Result<String, String> {
    let object = input.as_object().ok_or("vector input is not an object")?;
    for key in object.keys() {
        if !VECTOR_INPUTS.iter().any(|(k, ..)| k == key) {
            return Err(format!("unknown vector input {key:?}"));
        }
    }
    let mut segments = vec![
        format!(
            "MSH|^~\\&|VITALS|ICU|MEDWAY|HOSP|{}||ORU^R01^ORU_R01|{}|P|2.5.1|||AL|NE",
            o.message_time, o.control_id
        ),
        format!(
            "PID|1||{}^^^{}^MR||TEST^PATIENT||{}|F",
            o.patient_id, o.authority, o.birth_date
        ),
        "PV1|1|I|WARD7^12^A^HOSP".to_string(),
        format!(
            "OBR|1||{}-OBS|85353-1^Vital signs panel^LN|||{}",
            o.control_id, o.observed_at
        ),
    ];
    let mut set = 0;
    for (key, value_type, code, unit) in VECTOR_INPUTS {
        let Some(value) = object.get(*key) else {
            continue;
        };
        let text = match (*key, value) {
            ("o2", Value::Bool(on)) => if *on { "2" } else { "0" }.to_string(),
            ("acvpu", Value::String(letter)) => acvpu_value(letter)
                .ok_or_else(|| format!("bad ACVPU {letter:?}"))?
                .to_string(),
            (_, Value::Number(n)) => n.to_string(),
            _ => return Err(format!("bad value for {key}")),
        };
        set += 1;
        segments.push(format!(
            "OBX|{set}|{value_type}|{code}||{text}|{unit}|||||{}|||{}",
            o.status, o.observed_at
        ));
    }
    let mut out = segments.join("\r");
    out.push('\r');
    Ok(out)
}
