//! Window and score tests: statuses (P→F, C, W/D, X, U), out-of-order arrivals, the set and
//! staleness windows, scale 2, oxygen rules, incomplete scores, NEWS2 skips, qSOFA rules, SIRS.

use super::*;

const BASE: i64 = 1_714_557_600_000_000; // 2024-05-01T10:00:00Z
const MIN: i64 = 60_000_000;

fn key() -> PatientKey {
    PatientKey::new("MRN1", "HOSP")
}

fn obs(kind: VitalKind, value: f64, minute: i64, status: ResultStatus) -> Observation {
    Observation {
        patient: key(),
        kind,
        value,
        text: None,
        unit: kind.canonical_unit().into(),
        original_value: value.to_string(),
        original_unit: kind.canonical_unit().into(),
        observed_at: BASE + minute * MIN,
        status,
        set_id: "S1".into(),
        encounter: None,
        source: format!("M{minute}"),
    }
}

fn f(kind: VitalKind, value: f64, minute: i64) -> Observation {
    obs(kind, value, minute, ResultStatus::Final)
}

fn acvpu(letter: &str, minute: i64) -> Observation {
    let rank = match letter {
        "A" => 0.0,
        "C" => 1.0,
        _ => 3.0,
    };
    Observation {
        text: Some(letter.into()),
        ..f(VitalKind::Acvpu, rank, minute)
    }
}

/// A complete normal NEWS2 set at `minute` (total 0).
fn normal_set(w: &mut PatientWindow, minute: i64) {
    use VitalKind as K;
    for o in [
        f(K::RespiratoryRate, 16.0, minute),
        f(K::SpO2, 97.0, minute),
        f(K::OxygenFlow, 0.0, minute),
        f(K::Systolic, 120.0, minute),
        f(K::HeartRate, 72.0, minute),
        acvpu("A", minute),
        f(K::Temperature, 37.0, minute),
    ] {
        w.add(o).unwrap();
    }
}

fn score_at(w: &PatientWindow, minute: i64) -> Scores {
    w.score(
        BASE + minute * MIN,
        &ScoringSettings::default(),
        &PatientFlags::default(),
    )
}

fn pts(p: &Param) -> Option<u8> {
    p.points.value()
}

#[test]
fn preliminary_then_final_rescores_and_final_is_not_replaced_by_a_late_preliminary() {
    let mut w = PatientWindow::new(key());
    normal_set(&mut w, 0);
    let p = obs(VitalKind::HeartRate, 135.0, 1, ResultStatus::Preliminary);
    assert_eq!(w.add(p), Ok(AddOutcome::Added));
    let s = score_at(&w, 1);
    assert_eq!((pts(&s.news2.hr), s.news2.preliminary), (Some(3), true));
    assert_eq!(s.news2.band, News2Band::LowMedium);
    assert_eq!(s.to_json()["news2"]["preliminary"], true);
    assert_eq!(
        w.add(f(VitalKind::HeartRate, 80.0, 1)),
        Ok(AddOutcome::Replaced)
    );
    let s = score_at(&w, 1);
    assert_eq!((pts(&s.news2.hr), s.news2.preliminary), (Some(0), false));
    let late_p = obs(VitalKind::HeartRate, 140.0, 1, ResultStatus::Preliminary);
    assert_eq!(w.add(late_p), Ok(AddOutcome::Ignored));
    assert_eq!(pts(&score_at(&w, 1).news2.hr), Some(0));
    // Ignore-preliminary setting: a preliminary-only value is missing.
    let mut w2 = PatientWindow::new(key());
    w2.add(obs(
        VitalKind::HeartRate,
        135.0,
        0,
        ResultStatus::Preliminary,
    ))
    .unwrap();
    let ignore = ScoringSettings {
        preliminary: Preliminary::Ignore,
        ..ScoringSettings::default()
    };
    let s = w2.score(BASE, &ignore, &PatientFlags::default());
    assert_eq!(s.news2.hr.points, Points::Missing);
    // U without a value makes it final.
    let u = obs(VitalKind::HeartRate, 0.0, 0, ResultStatus::MadeFinal);
    assert_eq!(w2.add(u.clone()), Ok(AddOutcome::MadeFinal));
    let s = w2.score(BASE, &ignore, &PatientFlags::default());
    assert_eq!(pts(&s.news2.hr), Some(3));
    assert_eq!(w2.add(u), Ok(AddOutcome::Ignored));
}

#[test]
fn corrections_retractions_and_no_value() {
    let mut w = PatientWindow::new(key());
    normal_set(&mut w, 0);
    let c = obs(VitalKind::Systolic, 88.0, 0, ResultStatus::Corrected);
    assert_eq!(w.add(c), Ok(AddOutcome::Replaced));
    let s = score_at(&w, 0);
    assert_eq!(pts(&s.news2.sbp), Some(3));
    assert_eq!(s.news2.sbp.inputs[0].status, ResultStatus::Corrected);
    assert_eq!(pts(&s.qsofa.sbp), Some(1));
    // X does not remove anything.
    let x = obs(VitalKind::Systolic, 0.0, 0, ResultStatus::NoValue);
    assert_eq!(w.add(x), Ok(AddOutcome::Ignored));
    assert_eq!(pts(&score_at(&w, 0).news2.sbp), Some(3));
    // W removes the observation with the same kind, time and set; D too.
    let other_set = Observation {
        set_id: "S2".into(),
        ..obs(VitalKind::Systolic, 0.0, 0, ResultStatus::Retracted)
    };
    assert_eq!(w.add(other_set), Ok(AddOutcome::Retracted(0)));
    let other_time = obs(VitalKind::Systolic, 0.0, 1, ResultStatus::Retracted);
    assert_eq!(w.add(other_time), Ok(AddOutcome::Retracted(0)));
    let wrong = obs(VitalKind::Systolic, 0.0, 0, ResultStatus::Retracted);
    assert_eq!(w.add(wrong), Ok(AddOutcome::Retracted(1)));
    let s = score_at(&w, 0);
    assert_eq!(s.news2.sbp.points, Points::Missing);
    assert_eq!(s.qsofa.sbp.points, Points::Missing);
    assert!(!s.news2.complete && !s.qsofa.complete);
    let d = obs(VitalKind::HeartRate, 0.0, 0, ResultStatus::Retracted);
    assert_eq!(w.add(d), Ok(AddOutcome::Retracted(1)));
    // A re-sent final after a retraction counts again (last arrival wins).
    assert_eq!(
        w.add(f(VitalKind::HeartRate, 100.0, 0)),
        Ok(AddOutcome::Added)
    );
    assert_eq!(pts(&score_at(&w, 0).news2.hr), Some(1));
    // Unknown statuses are not kept.
    assert_eq!(
        w.add(obs(VitalKind::HeartRate, 150.0, 0, ResultStatus::Other)),
        Ok(AddOutcome::Ignored)
    );
}

#[test]
fn wrong_patient_is_refused() {
    let mut w = PatientWindow::new(key());
    let same_id_other_authority = Observation {
        patient: PatientKey::new("MRN1", "OTHER"),
        ..f(VitalKind::HeartRate, 150.0, 0)
    };
    let err = w.add(same_id_other_authority).unwrap_err();
    assert!(!err.to_string().contains("MRN1"));
    assert_eq!(w.observations().count(), 0);
}

#[test]
fn out_of_order_arrivals_are_placed_by_observation_time() {
    let mut w = PatientWindow::new(key());
    // The newer set arrives first, an older sick set afterwards.
    normal_set(&mut w, 60);
    w.add(f(VitalKind::HeartRate, 140.0, 0)).unwrap();
    w.add(f(VitalKind::RespiratoryRate, 30.0, 0)).unwrap();
    let s = score_at(&w, 60);
    assert_eq!((s.news2.total, s.news2.band), (0, News2Band::Low));
    assert_eq!(pts(&s.qsofa.rr), Some(0));
    assert_eq!(s.news2.set_at, Some(BASE + 60 * MIN));
    // Evaluated before the newer set exists: the older values.
    let s = score_at(&w, 30);
    assert_eq!(pts(&s.news2.hr), Some(3));
    assert_eq!(pts(&s.news2.rr), Some(3));
    let times: Vec<i64> = w.observations().map(|o| o.observed_at).collect();
    assert!(times.windows(2).all(|p| p[0] <= p[1]));
}

#[test]
fn news2_set_is_15_minutes_inclusive_of_the_newest_value() {
    let mut w = PatientWindow::new(key());
    w.add(f(VitalKind::RespiratoryRate, 26.0, 0)).unwrap(); // 15 min before the newest: in
    w.add(f(VitalKind::HeartRate, 140.0, -1)).unwrap(); // 16 min before: stale
    w.add(f(VitalKind::Systolic, 120.0, 15)).unwrap();
    let s = score_at(&w, 15);
    assert_eq!(pts(&s.news2.rr), Some(3));
    assert_eq!(s.news2.hr.points, Points::Missing);
    assert_eq!(s.news2.band, News2Band::Incomplete);
    assert_eq!(s.news2.min_band, News2Band::LowMedium);
    // qSOFA/SIRS still see the HR (6-h window).
    assert_eq!(pts(&s.sirs.hr), Some(1));
}

#[test]
fn vitals_6h_and_labs_24h_windows_inclusive_and_future_values_unused() {
    let mut w = PatientWindow::new(key());
    w.add(f(VitalKind::HeartRate, 120.0, 0)).unwrap();
    w.add(f(VitalKind::Wbc, 15.0, 0)).unwrap();
    w.add(f(VitalKind::Temperature, 39.5, 500)).unwrap(); // after `at`
    let six_h = 360;
    let s = score_at(&w, six_h);
    assert_eq!(pts(&s.sirs.hr), Some(1));
    // NEWS2's newest set must be within the vitals window too.
    assert_eq!(pts(&s.news2.hr), Some(2));
    let s = score_at(&w, six_h + 1);
    assert_eq!(s.sirs.hr.points, Points::Missing);
    assert_eq!(s.news2.hr.points, Points::Missing);
    assert_eq!(pts(&s.sirs.wbc), Some(1));
    assert_eq!(s.sirs.temp.points, Points::Missing);
    assert_eq!(pts(&score_at(&w, 24 * 60).sirs.wbc), Some(1));
    assert_eq!(score_at(&w, 24 * 60 + 1).sirs.wbc.points, Points::Missing);
}

#[test]
fn news2_set_members_older_than_the_vitals_window_are_stale() {
    // Found by the property test: the set's newest value is 5 h 55 min old, a member 10 min
    // older than that is 6 h 05 min old — stale, not used.
    let mut w = PatientWindow::new(key());
    w.add(f(VitalKind::HeartRate, 140.0, 0)).unwrap();
    w.add(f(VitalKind::RespiratoryRate, 16.0, 10)).unwrap();
    let s = score_at(&w, 10 + 355);
    assert_eq!(s.news2.set_at, Some(BASE + 10 * MIN));
    assert_eq!(pts(&s.news2.rr), Some(0));
    assert_eq!(s.news2.hr.points, Points::Missing);
    assert_eq!(pts(&score_at(&w, 360).news2.hr), Some(3));
}

#[test]
fn oxygen_rules() {
    use VitalKind as K;
    let settings = ScoringSettings::default();
    let none = PatientFlags::default();
    // SpO₂ without O₂: assumed air, recorded.
    let mut w = PatientWindow::new(key());
    w.add(f(K::SpO2, 95.0, 0)).unwrap();
    let s = w.score(BASE, &settings, &none);
    assert_eq!((pts(&s.news2.o2), s.news2.o2_assumed), (Some(0), true));
    assert_eq!(s.to_json()["news2"]["o2_assumed"], true);
    let strict = ScoringSettings {
        o2_when_absent: O2WhenAbsent::Incomplete,
        ..ScoringSettings::default()
    };
    let s = w.score(BASE, &strict, &none);
    assert_eq!(
        (s.news2.o2.points, s.news2.o2_assumed),
        (Points::Missing, false)
    );
    // Neither SpO₂ nor O₂: missing whatever the setting.
    let mut empty = PatientWindow::new(key());
    empty.add(f(K::HeartRate, 80.0, 0)).unwrap();
    assert_eq!(
        empty.score(BASE, &settings, &none).news2.o2.points,
        Points::Missing
    );
    // FiO₂ 21 % is air, 28 % oxygen; coded "on oxygen"; flow > 0.
    for (o, on) in [
        (f(K::Fio2, 0.21, 0), false),
        (f(K::Fio2, 0.28, 0), true),
        (f(K::OnOxygen, 1.0, 0), true),
        (f(K::OxygenFlow, 2.0, 0), true),
        (f(K::OxygenFlow, 0.0, 0), false),
    ] {
        let mut w = PatientWindow::new(key());
        w.add(f(K::SpO2, 97.0, 0)).unwrap();
        w.add(o.clone()).unwrap();
        let s = w.score(BASE, &settings, &none);
        assert_eq!(pts(&s.news2.o2), Some(if on { 2 } else { 0 }), "{o:?}");
        assert!(!s.news2.o2_assumed);
    }
    // The newest O₂ observation of the set decides.
    let mut w = PatientWindow::new(key());
    w.add(f(K::OxygenFlow, 2.0, 0)).unwrap();
    w.add(f(K::OxygenFlow, 0.0, 10)).unwrap();
    assert_eq!(
        pts(&w.score(BASE + 10 * MIN, &settings, &none).news2.o2),
        Some(0)
    );
}

#[test]
fn scale_2_from_observation_or_flag_newest_wins() {
    use VitalKind as K;
    let settings = ScoringSettings::default();
    let mut w = PatientWindow::new(key());
    w.add(f(K::SpO2, 97.0, 0)).unwrap();
    w.add(f(K::OxygenFlow, 2.0, 0)).unwrap();
    let none = PatientFlags::default();
    let s = w.score(BASE, &settings, &none);
    assert_eq!((s.news2.scale, pts(&s.news2.spo2)), (1, Some(0)));
    // An SPO2SCALE observation long ago still holds (it stays until changed).
    w.add(f(K::Spo2Scale, 2.0, -3000)).unwrap();
    let s = w.score(BASE, &settings, &none);
    assert_eq!((s.news2.scale, pts(&s.news2.spo2)), (2, Some(3)));
    // A newer flag back to scale 1 wins; an older flag does not.
    let newer = PatientFlags {
        spo2_scale: Some(ScaleFlag {
            scale: 1,
            set_at: BASE - MIN,
        }),
        pregnant: false,
    };
    assert_eq!(w.score(BASE, &settings, &newer).news2.scale, 1);
    let older = PatientFlags {
        spo2_scale: Some(ScaleFlag {
            scale: 1,
            set_at: BASE - 4000 * MIN,
        }),
        pregnant: false,
    };
    assert_eq!(w.score(BASE, &settings, &older).news2.scale, 2);
    // A flag set after `at` is not in force at `at`.
    let future = PatientFlags {
        spo2_scale: Some(ScaleFlag {
            scale: 2,
            set_at: BASE + MIN,
        }),
        pregnant: false,
    };
    let mut w1 = PatientWindow::new(key());
    w1.add(f(K::SpO2, 97.0, 0)).unwrap();
    assert_eq!(w1.score(BASE, &settings, &future).news2.scale, 1);
    // Pruning keeps the scale.
    w.prune(BASE - 60 * MIN);
    assert_eq!(w.score(BASE, &settings, &none).news2.scale, 2);
    // Scale 2, SpO₂ ≥ 93 and O₂ unknown under "incomplete": SpO₂ points unknown.
    let strict = ScoringSettings {
        o2_when_absent: O2WhenAbsent::Incomplete,
        ..ScoringSettings::default()
    };
    let mut w2 = PatientWindow::new(key());
    w2.add(f(K::Spo2Scale, 2.0, 0)).unwrap();
    w2.add(f(K::SpO2, 95.0, 0)).unwrap();
    assert_eq!(
        w2.score(BASE, &strict, &none).news2.spo2.points,
        Points::Missing
    );
    assert_eq!(pts(&w2.score(BASE, &settings, &none).news2.spo2), Some(0));
}

#[test]
fn incomplete_scores_keep_partial_totals_and_definitive_bands() {
    use VitalKind as K;
    let mut w = PatientWindow::new(key());
    w.add(f(K::RespiratoryRate, 26.0, 0)).unwrap();
    w.add(f(K::HeartRate, 135.0, 0)).unwrap();
    w.add(f(K::Systolic, 88.0, 0)).unwrap();
    let s = score_at(&w, 0);
    assert_eq!((s.news2.total, s.news2.complete), (9, false));
    assert_eq!(s.news2.band, News2Band::High, "≥ 7 is already definitive");
    let j = s.to_json();
    assert_eq!(j["news2"]["temp"], "missing");
    assert_eq!(j["news2"]["total"], 9);
    assert_eq!(j["news2"]["complete"], false);
    assert_eq!(j["qsofa"]["ment"], "missing");
    assert_eq!(
        (j["qsofa"]["total"].clone(), j["qsofa"]["positive"].clone()),
        (2.into(), true.into())
    );
    assert_eq!(j["sirs"]["wbc"], "missing");
    let mut w = PatientWindow::new(key());
    w.add(f(K::RespiratoryRate, 22.0, 0)).unwrap();
    w.add(f(K::HeartRate, 115.0, 0)).unwrap();
    w.add(f(K::Temperature, 38.5, 0)).unwrap();
    let s = score_at(&w, 0);
    assert_eq!(
        (s.news2.total, s.news2.band, s.news2.min_band),
        (5, News2Band::Incomplete, News2Band::Medium)
    );
    assert_eq!(s.to_json()["news2"]["band"], "incomplete");
}

#[test]
fn news2_skipped_under_16_and_in_pregnancy() {
    let mut w = PatientWindow::new(key());
    normal_set(&mut w, 0);
    w.set_birth_date(jiff::civil::Date::new(2008, 5, 2).ok());
    let s = score_at(&w, 0);
    assert_eq!(
        (s.news2.band, s.news2.skipped),
        (News2Band::NotApplicable, Some(News2Skip::AgeUnder16))
    );
    assert_eq!(s.news2.rr.points, Points::Missing);
    let j = s.to_json();
    assert_eq!(j["news2"]["band"], "not-applicable");
    assert!(j["news2"]["skipped"].as_str().unwrap().contains("16"));
    assert_eq!(j["qsofa"]["complete"], true, "qSOFA is still computed");
    w.set_birth_date(jiff::civil::Date::new(2008, 5, 1).ok());
    assert_eq!(score_at(&w, 0).news2.skipped, None, "16th birthday");
    w.set_birth_date(None);
    assert_eq!(w.birth_date(), jiff::civil::Date::new(2008, 5, 1).ok());
    let pregnant = PatientFlags {
        pregnant: true,
        ..PatientFlags::default()
    };
    let s = w.score(BASE, &ScoringSettings::default(), &pregnant);
    assert_eq!(s.news2.skipped, Some(News2Skip::Pregnancy));
}

#[test]
fn qsofa_mentation_rules() {
    use VitalKind as K;
    let le13 = ScoringSettings {
        qsofa_mentation: QsofaMentation::GcsLe13,
        ..ScoringSettings::default()
    };
    let none = PatientFlags::default();
    let default = ScoringSettings::default();
    let with = |items: Vec<Observation>| {
        let mut w = PatientWindow::new(key());
        for o in items {
            w.add(o).unwrap();
        }
        (
            w.score(BASE, &default, &none).qsofa,
            w.score(BASE, &le13, &none).qsofa,
        )
    };
    let (d, m) = with(vec![f(K::Gcs, 14.0, 0)]);
    assert_eq!((pts(&d.ment), pts(&m.ment)), (Some(1), Some(0)));
    let (d, m) = with(vec![f(K::Gcs, 13.0, 0)]);
    assert_eq!((pts(&d.ment), pts(&m.ment)), (Some(1), Some(1)));
    let (d, m) = with(vec![f(K::Gcs, 15.0, 0), acvpu("A", 0)]);
    assert_eq!((pts(&d.ment), pts(&m.ment)), (Some(0), Some(0)));
    let (d, m) = with(vec![acvpu("C", 0)]);
    assert_eq!((pts(&d.ment), m.ment.points), (Some(1), Points::Missing));
    let (d, _) = with(vec![f(K::Gcs, 15.0, 0), acvpu("V", 0)]);
    assert_eq!(pts(&d.ment), Some(1));
    assert_eq!(d.ment.inputs.len(), 2);
    assert_eq!(m.rule, QsofaMentation::GcsLe13);
    let (d, _) = with(vec![
        f(K::RespiratoryRate, 22.0, 0),
        f(K::Systolic, 100.0, 0),
    ]);
    assert_eq!(
        (pts(&d.rr), pts(&d.sbp), d.total, d.complete),
        (Some(1), Some(1), 2, false)
    );
    let (d, _) = with(vec![
        f(K::RespiratoryRate, 21.9, 0),
        f(K::Systolic, 100.1, 0),
    ]);
    assert_eq!((pts(&d.rr), pts(&d.sbp)), (Some(0), Some(0)));
}

#[test]
fn sirs_criteria_are_strict_and_either_input_counts() {
    use VitalKind as K;
    let with = |items: Vec<Observation>| {
        let mut w = PatientWindow::new(key());
        for o in items {
            w.add(o).unwrap();
        }
        score_at(&w, 0).sirs
    };
    let s = with(vec![f(K::PaCO2, 31.9, 0)]);
    assert_eq!((pts(&s.resp), s.resp.inputs.len()), (Some(1), 1));
    let s = with(vec![f(K::PaCO2, 32.0, 0), f(K::RespiratoryRate, 20.0, 0)]);
    assert_eq!((pts(&s.resp), s.resp.inputs.len()), (Some(0), 2));
    let s = with(vec![f(K::Bands, 11.0, 0)]);
    assert_eq!(pts(&s.wbc), Some(1));
    let s = with(vec![f(K::Bands, 10.0, 0), f(K::Wbc, 4.0, 0)]);
    assert_eq!(pts(&s.wbc), Some(0));
    let s = with(vec![f(K::Wbc, 3.9, 0)]);
    assert_eq!(pts(&s.wbc), Some(1));
    let s = with(vec![f(K::Temperature, 35.9, 0), f(K::HeartRate, 90.0, 0)]);
    assert_eq!(
        (pts(&s.temp), pts(&s.hr), s.total, s.complete),
        (Some(1), Some(0), 1, false)
    );
    let s = with(vec![f(K::Temperature, 36.0, 0)]);
    assert_eq!(pts(&s.temp), Some(0));
    assert_eq!(with(vec![]).total, 0);
    assert!(!with(vec![]).complete);
}
