//! Extraction tests: codes (both triplets, channel maps), value types, units, plausibility,
//! statuses, times and their fallbacks, and patient attribution.

use bytes::Bytes;
use medway_hl7::Message;

use super::*;

const MSH: &str = "MSH|^~\\&|MON|ICU|MEDWAY|HOSP|20240501103000||ORU^R01^ORU_R01|C1|P|2.5.1";
const PID: &str = "PID|1||MRN1^^^HOSP^MR||DOE^JANE||19600101|F";
const OBR: &str = "OBR|1||F-9|85353-1^Vital signs panel^LN|||20240501102000";

fn msg(segments: &[&str]) -> Message {
    Message::parse(Bytes::from(segments.join("\r") + "\r")).expect("parses")
}

fn run(segments: &[&str]) -> Extracted {
    extract(
        &msg(segments),
        &CodeMap::builtin(),
        &ScoringSettings::default(),
    )
}

fn one(segments: &[&str]) -> Observation {
    let ex = run(segments);
    assert_eq!(ex.observations.len(), 1, "{:?}", ex.problems);
    ex.observations[0].clone()
}

fn problem(segments: &[&str]) -> ExtractionProblem {
    let ex = run(segments);
    assert!(ex.observations.is_empty(), "{:?}", ex.observations);
    assert_eq!(ex.problems.len(), 1, "{:?}", ex.problems);
    ex.problems[0].clone()
}

fn t(text: &str) -> i64 {
    time::parse_hl7_time(text, &jiff::tz::TimeZone::UTC).unwrap()
}

#[test]
fn basic_fields() {
    let o = one(&[
        MSH,
        PID,
        &format!("PV1|1|I|WARD7^12^A^HOSP{}V-42", "|".repeat(16)),
        OBR,
        "OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F|||20240501102500",
    ]);
    assert_eq!(o.patient, PatientKey::new("MRN1", "HOSP"));
    assert_eq!(o.kind, VitalKind::HeartRate);
    assert_eq!((o.value, o.unit.as_str()), (88.0, "/min"));
    assert_eq!(o.observed_at, t("20240501102500"));
    assert_eq!(o.status, ResultStatus::Final);
    assert_eq!(o.set_id, "F-9");
    assert_eq!(o.encounter.as_deref(), Some("V-42"));
    assert_eq!(o.source, "C1");
    let ex = run(&[MSH, PID, "PV1|1|I|WARD7^12^A^HOSP", OBR]);
    let loc = ex.location.unwrap();
    assert_eq!((loc.ward.as_str(), loc.bed.as_str()), ("WARD7", "A"));
    assert_eq!(loc.to_string(), "WARD7 / 12 / A / HOSP");
    assert_eq!(
        ex.patients[0].birth_date,
        jiff::civil::Date::new(1960, 1, 1).ok()
    );
}

#[test]
fn alternate_triplet_local_codes_and_conflicts() {
    let o = one(&[
        MSH,
        PID,
        OBR,
        "OBX|1|NM|WBC^White cells^LA01^6690-2^Leukocytes^LN||15.2|10*3/uL|||||F",
    ]);
    assert_eq!((o.kind, o.value), (VitalKind::Wbc, 15.2));
    let p = problem(&[
        MSH,
        PID,
        OBR,
        "OBX|1|NM|8867-4^HR^LN^9279-1^RR^LN||20|/min|||||F",
    ]);
    assert_eq!(p.problem, ProblemKind::CodeConflict);
    // Unknown codes are simply not scoring inputs.
    let ex = run(&[MSH, PID, OBR, "OBX|1|NM|2951-2^Sodium^LN||140|mmol/L|||||F"]);
    assert!(ex.observations.is_empty() && ex.problems.is_empty());
}

#[test]
fn channel_map_welch_allyn_st_numeric_and_unit_alias() {
    let codes = CodeMap::from_toml_str(
        "[[code]]\nsystem = \"WAP\"\ncode = \"Heart Rate\"\nkind = \"heart_rate\"\n\
         [[code]]\nsystem = \"MDIL\"\ncode = \"0002-4182\"\nkind = \"heart_rate\"\n\
         [units]\n\"0004-0aa0\" = \"/min\"\n",
    )
    .unwrap();
    let settings = ScoringSettings::default();
    let m = msg(&[
        MSH,
        PID,
        "OBR|1",
        "OBX|1|ST|Heart Rate^Heart Rate^WAP||80|^BPM||||||||20090127093400.000-0800",
        "OBX|2|NM|0002-4182^HR^MDIL||81|0004-0aa0^bpm^MDIL|||||F|||20240501102500",
        "OBX|3|NM|0002-4182^HR^MDIL|||0004-0aa0^bpm^MDIL|||||X",
    ]);
    let ex = extract(&m, &codes, &settings);
    let got: Vec<_> = ex
        .observations
        .iter()
        .map(|o| (o.value, o.status, time::rfc3339(o.observed_at)))
        .collect();
    // OBX-11 empty on the Welch Allyn line: read as final and reported.
    assert_eq!(
        got,
        [
            (
                80.0,
                ResultStatus::Final,
                "2009-01-27T17:34:00Z".to_string()
            ),
            (
                81.0,
                ResultStatus::Final,
                "2024-05-01T10:25:00Z".to_string()
            ),
            (
                0.0,
                ResultStatus::NoValue,
                "2024-05-01T10:30:00Z".to_string()
            ),
        ]
    );
    assert_eq!(ex.problems.len(), 1);
    assert_eq!(ex.problems[0].detail, "OBX-11 empty: read as final");
}

#[test]
fn pcd01_mdc_codes_and_preliminary_r() {
    let o = one(&[
        MSH,
        PID,
        OBR,
        "OBX|11|NM|147842^MDC_ECG_HEART_RATE^MDC|1.5.1.1|80|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||20240501102500",
    ]);
    assert_eq!(
        (o.kind, o.value, o.status),
        (VitalKind::HeartRate, 80.0, ResultStatus::Preliminary)
    );
}

#[test]
fn value_types() {
    let sn = one(&[MSH, PID, OBR, "OBX|1|SN|8480-6^SBP^LN||^182|mm[Hg]|||||F"]);
    assert_eq!(sn.value, 182.0);
    let sn_eq = one(&[MSH, PID, OBR, "OBX|1|SN|8480-6^SBP^LN||=^95|mm[Hg]|||||F"]);
    assert_eq!(sn_eq.value, 95.0);
    assert_eq!(
        problem(&[MSH, PID, OBR, "OBX|1|SN|6690-2^WBC^LN||<^1.0|10*3/uL|||||F"]).problem,
        ProblemKind::InexactValue
    );
    assert_eq!(
        problem(&[
            MSH,
            PID,
            OBR,
            "OBX|1|SN|6690-2^WBC^LN||^10^-^20|10*3/uL|||||F"
        ])
        .problem,
        ProblemKind::InexactValue
    );
    assert_eq!(
        problem(&[MSH, PID, OBR, "OBX|1|NM|8867-4^HR^LN||eighty|/min|||||F"]).problem,
        ProblemKind::NotANumber
    );
    assert_eq!(
        problem(&[MSH, PID, OBR, "OBX|1|CE|8867-4^HR^LN||80^x|/min|||||F"]).problem,
        ProblemKind::NotANumber
    );
    assert_eq!(
        problem(&[MSH, PID, OBR, "OBX|1|NM|8867-4^HR^LN|||/min|||||F"]).problem,
        ProblemKind::EmptyValue
    );
    let acvpu = one(&[
        MSH,
        PID,
        OBR,
        "OBX|1|ST|1104441000000107^ACVPU^SCT||V||||||F",
    ]);
    assert_eq!((acvpu.text.as_deref(), acvpu.value), (Some("V"), 2.0));
    assert_eq!(
        problem(&[
            MSH,
            PID,
            OBR,
            "OBX|1|CWE|1104441000000107^ACVPU^SCT||999^Sleepy^SCT||||||F"
        ])
        .problem,
        ProblemKind::NotANumber
    );
    let air = one(&[
        MSH,
        PID,
        OBR,
        "OBX|1|CWE|722742002^Breathing room air^SCT||||||||F",
    ]);
    assert_eq!((air.kind, air.value), (VitalKind::OnOxygen, 0.0));
    let on = one(&[
        MSH,
        PID,
        OBR,
        "OBX|1|CWE|371825009^Patient on oxygen^SCT||||||||F",
    ]);
    assert_eq!((on.kind, on.value), (VitalKind::OnOxygen, 1.0));
    // Escapes are decoded before numbers are read.
    let esc = one(&[MSH, PID, OBR, "OBX|1|NM|8867-4^HR^LN||\\X38\\0|/min|||||F"]);
    assert_eq!(esc.value, 80.0);
}

#[test]
fn units_problems_and_plausibility() {
    let f = one(&[
        MSH,
        PID,
        OBR,
        "OBX|1|NM|8310-5^Temp^LN||100.4|[degF]^^UCUM|||||F",
    ]);
    assert_eq!(
        (f.value, f.unit.as_str(), f.original_unit.as_str()),
        (38.0, "Cel", "[degF]")
    );
    let p = problem(&[MSH, PID, OBR, "OBX|1|NM|8310-5^Temp^LN||37.2||||||F"]);
    assert_eq!(
        (p.problem, p.kind),
        (ProblemKind::UnknownUnit, Some(VitalKind::Temperature))
    );
    assert!(p.detail.contains("unknown unit"), "{}", p.detail);
    let p = problem(&[MSH, PID, OBR, "OBX|1|NM|8310-5^Temp^LN||310|K|||||F"]);
    assert_eq!(p.problem, ProblemKind::UnknownUnit);
    assert_eq!(p.value.as_deref(), Some("310"));
    assert!(!p.detail.contains("310"), "no values in loggable text");
    let p = problem(&[MSH, PID, OBR, "OBX|1|NM|8867-4^HR^LN||350|/min|||||F"]);
    assert_eq!(p.problem, ProblemKind::Implausible);
    let p = problem(&[MSH, PID, OBR, "OBX|1|NM|8310-5^Temp^LN||24.9|Cel|||||F"]);
    assert_eq!(p.problem, ProblemKind::Implausible);
    let kpa = one(&[MSH, PID, OBR, "OBX|1|NM|2019-8^PaCO2^LN||4.0|kPa|||||F"]);
    assert_eq!(kpa.value, 30.0);
    let ex = run(&[MSH, PID, OBR, "OBX|1|NM|6690-2^WBC^LN||15200|10*3/uL|||||F"]);
    assert_eq!(ex.observations[0].value, 15.2);
    assert_eq!(ex.problems[0].problem, ProblemKind::Normalised);
    let fio2 = one(&[MSH, PID, OBR, "OBX|1|NM|3150-0^FiO2^LN||40|%|||||F"]);
    assert_eq!((fio2.kind, fio2.value), (VitalKind::Fio2, 0.4));
}

#[test]
fn statuses_without_values_still_travel() {
    for (code, status) in [
        ("W", ResultStatus::Retracted),
        ("D", ResultStatus::Retracted),
        ("X", ResultStatus::NoValue),
        ("U", ResultStatus::MadeFinal),
    ] {
        let line = format!("OBX|1|NM|8867-4^HR^LN|||/min|||||{code}|||20240501102500");
        let ex = run(&[MSH, PID, OBR, &line]);
        assert!(ex.problems.is_empty(), "{code}: {:?}", ex.problems);
        assert_eq!(ex.observations[0].status, status, "{code}");
    }
    // A U that carries a value is a final value.
    let u = one(&[MSH, PID, OBR, "OBX|1|NM|8867-4^HR^LN||70|/min|||||U"]);
    assert_eq!(u.status, ResultStatus::Final);
    // An unknown-unit retraction still retracts.
    let w = one(&[MSH, PID, OBR, "OBX|1|NM|8867-4^HR^LN||70|furlongs|||||W"]);
    assert_eq!(w.status, ResultStatus::Retracted);
}

#[test]
fn time_fallbacks_and_zones() {
    let no_obx14 = one(&[MSH, PID, OBR, "OBX|1|NM|8867-4^HR^LN||80|/min|||||F"]);
    assert_eq!(no_obx14.observed_at, t("20240501102000"));
    let no_obr7 = one(&[
        MSH,
        PID,
        "OBR|1||F-9",
        "OBX|1|NM|8867-4^HR^LN||80|/min|||||F",
    ]);
    assert_eq!(no_obr7.observed_at, t("20240501103000"));
    let no_obr = one(&[MSH, PID, "OBX|1|NM|8867-4^HR^LN||80|/min|||||F"]);
    assert_eq!(
        (no_obr.observed_at, no_obr.set_id.as_str()),
        (t("20240501103000"), "")
    );
    let offset = one(&[
        MSH,
        PID,
        OBR,
        "OBX|1|NM|8867-4^HR^LN||80|/min|||||F|||202405011225+0200",
    ]);
    assert_eq!(offset.observed_at, t("202405011025"));
    let p = problem(&[
        MSH,
        PID,
        OBR,
        "OBX|1|NM|8867-4^HR^LN||80|/min|||||F|||20240501",
    ]);
    assert_eq!(p.problem, ProblemKind::BadTime);
    let p = problem(&[
        "MSH|^~\\&|MON|ICU|MEDWAY|HOSP|||ORU^R01|C1|P|2.5.1",
        PID,
        "OBX|1|NM|8867-4^HR^LN||80|/min|||||F",
    ]);
    assert_eq!(p.problem, ProblemKind::BadTime);
    let london = ScoringSettings {
        default_zone: jiff::tz::TimeZone::get("Europe/London").unwrap(),
        ..ScoringSettings::default()
    };
    let m = msg(&[
        MSH,
        PID,
        OBR,
        "OBX|1|NM|8867-4^HR^LN||80|/min|||||F|||202405011125",
    ]);
    let ex = extract(&m, &CodeMap::builtin(), &london);
    assert_eq!(ex.observations[0].observed_at, t("202405011025"));
}

#[test]
fn no_patient_no_observations() {
    let hr = "OBX|1|NM|8867-4^HR^LN||80|/min|||||F";
    for segments in [
        vec![MSH, OBR, hr],
        vec![MSH, "PID|1||^^^HOSP^MR||DOE^JANE", OBR, hr],
        vec![MSH, "PID|1||||DOE^JANE", "PV1|1|I|WARD7^12^A", OBR, hr],
        vec![MSH, OBR, hr, PID, hr],
        vec![MSH, PID, OBR, hr, "PID|1||||DOE^JOHN", OBR, hr],
    ] {
        let ex = run(&segments);
        assert_eq!(ex.patient, None, "{segments:?}");
        assert!(
            ex.observations.is_empty() && ex.patients.is_empty(),
            "{segments:?}"
        );
        assert_eq!(ex.problems[0].problem, ProblemKind::MissingPatient);
        assert!(!ex.problems[0].detail.contains("DOE"));
    }
}

#[test]
fn several_patients_in_one_message_keep_their_own_values() {
    let ex = run(&[
        MSH,
        PID,
        "PV1|1|I|WARD7^12^A",
        OBR,
        "OBX|1|NM|8867-4^HR^LN||80|/min|||||F",
        "PID|2||MRN1^^^OTHER^MR||DOE^JOHN",
        "PV1|1|I|WARD9^1^B",
        OBR,
        "OBX|1|NM|8867-4^HR^LN||130|/min|||||F",
    ]);
    assert_eq!(ex.patient, Some(PatientKey::new("MRN1", "HOSP")));
    assert_eq!(ex.patients.len(), 2);
    assert_eq!(ex.patients[1].key, PatientKey::new("MRN1", "OTHER"));
    assert_eq!(ex.patients[1].location.as_ref().unwrap().ward, "WARD9");
    let by: Vec<_> = ex
        .observations
        .iter()
        .map(|o| (o.patient.authority.as_str(), o.value))
        .collect();
    assert_eq!(by, [("HOSP", 80.0), ("OTHER", 130.0)]);
}

#[test]
fn pid3_repetition_by_authority() {
    let pid = "PID|1||943^^^NHS^NH~MRN7^^^HOSP&1.2.3&ISO^MR||DOE^JANE";
    let first = run(&[MSH, pid, OBR, "OBX|1|NM|8867-4^HR^LN||80|/min|||||F"]);
    assert_eq!(first.patient, Some(PatientKey::new("943", "NHS")));
    let settings = ScoringSettings {
        patient_authority: Some("HOSP".into()),
        ..ScoringSettings::default()
    };
    let m = msg(&[MSH, pid, OBR, "OBX|1|NM|8867-4^HR^LN||80|/min|||||F"]);
    let ex = extract(&m, &CodeMap::builtin(), &settings);
    let key = ex.patient.unwrap();
    assert_eq!(key, PatientKey::new("MRN7", "HOSP&1.2.3&ISO"));
    assert_eq!(key.to_string(), "MRN7^^^HOSP&1.2.3&ISO");
    let none = ScoringSettings {
        patient_authority: Some("ELSEWHERE".into()),
        ..ScoringSettings::default()
    };
    assert_eq!(extract(&m, &CodeMap::builtin(), &none).patient, None);
}
