//! Micro-benchmark of the scoring cost per ORU: parse + extract + window add + score (the
//! issue's aim: ≤ 50 µs). Ignored by default; run in release:
//! `cargo test --release -p medway-engine --test score_bench -- --ignored --nocapture`.
//!
//! Traffic: 200 patients, each sending a full vitals set (8–9 OBX, every score vector in turn)
//! every 5 minutes for 24 hours of observation time, windows pruned to 25 hours — so windows
//! hold about a day of values, as in a ward.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use medway_engine::scoring::testing::{OruOptions, oru_from_vector};
use medway_engine::scoring::{
    CodeMap, PatientFlags, PatientKey, PatientWindow, ScoringSettings, extract,
};
use serde_json::Value;

const VECTORS: &str = include_str!("../../../tests/clinical/score-vectors.jsonl");

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn scoring_cost_per_oru() {
    let vectors: Vec<Value> = VECTORS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let patients = 200usize;
    let rounds = 24 * 12usize; // every 5 minutes for a day
    let start = jiff::civil::datetime(2024, 5, 1, 0, 0, 0, 0)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .unwrap();
    let mut messages: Vec<Bytes> = Vec::with_capacity(patients * rounds);
    for r in 0..rounds {
        let at = start
            .checked_add(jiff::SignedDuration::from_mins(5 * r as i64))
            .unwrap()
            .strftime("%Y%m%d%H%M%S")
            .to_string();
        for p in 0..patients {
            let v = &vectors[(r + p) % vectors.len()];
            let oru = oru_from_vector(
                &v["in"],
                &OruOptions {
                    control_id: format!("B{r}-{p}"),
                    patient_id: format!("MRN{p:05}"),
                    observed_at: at.clone(),
                    message_time: at.clone(),
                    ..OruOptions::default()
                },
            )
            .unwrap();
            messages.push(Bytes::from(oru));
        }
    }
    let codes = CodeMap::builtin();
    let settings = ScoringSettings::default();
    let flags = PatientFlags::default();
    let keep = 25 * 3600 * 1_000_000i64;

    let run = |record: bool| -> (Vec<u64>, [u64; 4], u64) {
        let mut windows: HashMap<PatientKey, PatientWindow> = HashMap::new();
        let mut samples = Vec::with_capacity(messages.len());
        let mut stages = [0u64; 4];
        let mut checksum = 0u64;
        for raw in &messages {
            let t0 = Instant::now();
            let msg = medway_hl7::Message::parse(raw.clone()).unwrap();
            let t1 = Instant::now();
            let ex = extract(&msg, &codes, &settings);
            let t2 = Instant::now();
            let key = ex.patient.clone().unwrap();
            let window = windows
                .entry(key.clone())
                .or_insert_with(|| PatientWindow::new(key));
            window.absorb(&ex);
            let at = window.newest_time().unwrap();
            window.prune(at - keep);
            let t3 = Instant::now();
            let s = window.score(at, &settings, &flags);
            let t4 = Instant::now();
            checksum += u64::from(s.news2.total) + u64::from(s.qsofa.total);
            if record {
                samples.push((t4 - t0).as_nanos() as u64);
                for (i, d) in [t1 - t0, t2 - t1, t3 - t2, t4 - t3].iter().enumerate() {
                    stages[i] += d.as_nanos() as u64;
                }
            }
        }
        (samples, stages, checksum)
    };
    run(false); // warm-up
    let wall = Instant::now();
    let (mut samples, stages, checksum) = run(true);
    let total = wall.elapsed();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    let obx: usize = 9;
    println!(
        "scoring cost per ORU (~{obx} OBX; parse + extract + window add + prune + score), {} ORUs, \
         {} patients: mean {mean:.2} µs, p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs; \
         {:.0} ORU/s on one core (checksum {checksum})",
        samples.len(),
        patients,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        samples.len() as f64 / total.as_secs_f64(),
    );
    let per = |i: usize| stages[i] as f64 / samples.len() as f64 / 1000.0;
    println!(
        "  stages (mean µs): parse {:.2}, extract {:.2}, window add + prune {:.2}, score {:.2}",
        per(0),
        per(1),
        per(2),
        per(3)
    );
    assert!(pct(0.5) < 50.0, "median above the 50 µs aim");
}
