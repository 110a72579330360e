//! `medway score FILE..`: score every patient in HL7 files and print one JSON object per
//! patient per line (JSON Lines), in the shape of `tests/clinical/DECISIONS.md`.
//!
//! Every message of every file is read in order (multi-message files and FHS/BHS batches too),
//! observations go to one window per patient key (PID-3.1 + PID-3.4), and each patient is
//! scored at the time of its newest observation (never the wall clock). An unreadable or
//! unparseable file is an error before anything is printed; a message with observations but no
//! patient identifier is reported and makes the exit status 1. Values the extraction refused
//! are listed on stderr (no patient data in those lines). Wiring only: the rules live in
//! `medway_engine::scoring`.

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use medway_engine::scoring::{
    CodeMap, PatientFlags, PatientKey, PatientWindow, ScaleFlag, ScoringSettingsFile, extract,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// HL7 v2 files (single messages, multi-message files or FHS/BHS batches).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Zone for HL7 times without an offset (IANA name).
    #[arg(long, default_value = "UTC")]
    pub zone: String,
    /// Channel code map: TOML (`[[code]]` rows, `[units]`) or CSV (`system,code,kind`).
    #[arg(long)]
    pub codes: Option<PathBuf>,
    /// qSOFA mentation rule: `gcs_lt_15_or_acvpu` (default) or `gcs_le_13`.
    #[arg(long)]
    pub qsofa_mentation: Option<String>,
    /// NEWS2 O2 when not charted: `assume_air` (default) or `incomplete`.
    #[arg(long)]
    pub o2_when_absent: Option<String>,
    /// Preliminary results: `use` (default) or `ignore`.
    #[arg(long)]
    pub preliminary: Option<String>,
    /// Use NEWS2 SpO2 scale 2 for this patient (`ID^^^AUTHORITY`; repeatable).
    #[arg(long, value_name = "PATIENT")]
    pub scale2: Vec<String>,
    /// Treat this patient as pregnant: NEWS2 is skipped (`ID^^^AUTHORITY`; repeatable).
    #[arg(long, value_name = "PATIENT")]
    pub pregnant: Vec<String>,
}

fn setting<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &Option<String>,
) -> anyhow::Result<Option<T>> {
    value
        .as_ref()
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.clone()))
                .with_context(|| format!("--{}: unknown value {v:?}", name.replace('_', "-")))
        })
        .transpose()
}

fn load_codes(path: &std::path::Path) -> anyhow::Result<CodeMap> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let map = if is_csv {
        CodeMap::from_csv_str(&text)
    } else {
        CodeMap::from_toml_str(&text)
    };
    map.with_context(|| format!("{}", path.display()))
}

pub fn score(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let settings = ScoringSettingsFile {
        qsofa_mentation: setting("qsofa_mentation", &args.qsofa_mentation)?,
        o2_when_absent: setting("o2_when_absent", &args.o2_when_absent)?,
        preliminary: setting("preliminary", &args.preliminary)?,
        default_zone: Some(args.zone.clone()),
        ..ScoringSettingsFile::default()
    }
    .into_settings()
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let codes = match &args.codes {
        Some(path) => load_codes(path)?,
        None => CodeMap::builtin(),
    };

    // Read and parse everything first: bad input fails before any output.
    let mut files = Vec::new();
    for file in &args.files {
        let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let messages = medway_hl7::parse_all(Bytes::from(raw))
            .with_context(|| format!("{}: not parseable as HL7 v2", file.display()))?;
        if messages.is_empty() {
            bail!("{}: no HL7 messages", file.display());
        }
        files.push((file, messages));
    }

    let mut order: Vec<PatientWindow> = Vec::new();
    let mut index: HashMap<PatientKey, usize> = HashMap::new();
    let mut seen_at: HashMap<PatientKey, i64> = HashMap::new();
    let mut failed = false;
    for (file, messages) in &files {
        for (n, message) in messages.iter().enumerate() {
            let where_ = format!("{} message {}", file.display(), n + 1);
            let extracted = extract(message, &codes, &settings);
            for p in &extracted.problems {
                let obx = if p.obx > 0 {
                    format!(" OBX {}", p.obx)
                } else {
                    String::new()
                };
                eprintln!("{where_}{obx}: {}", p.detail);
            }
            if extracted.patient.is_none() {
                if message.count_segments("OBX") > 0 || message.count_segments("PID") > 0 {
                    eprintln!("{where_}: no patient identifier (PID-3): nothing scored");
                    failed = true;
                }
                continue;
            }
            for info in &extracted.patients {
                let i = *index.entry(info.key.clone()).or_insert_with(|| {
                    order.push(PatientWindow::new(info.key.clone()));
                    order.len() - 1
                });
                order[i].absorb(&extracted);
                for o in extracted
                    .observations
                    .iter()
                    .filter(|o| o.patient == info.key)
                {
                    let t = seen_at.entry(info.key.clone()).or_insert(o.observed_at);
                    *t = (*t).max(o.observed_at);
                }
            }
        }
    }

    let wanted = |list: &[String], key: &PatientKey| list.iter().any(|p| *p == key.to_string());
    for window in &order {
        let key = window.patient();
        let Some(at) = window.newest_time().or_else(|| seen_at.get(key).copied()) else {
            continue;
        };
        let flags = PatientFlags {
            spo2_scale: wanted(&args.scale2, key).then_some(ScaleFlag {
                scale: 2,
                set_at: i64::MIN,
            }),
            pregnant: wanted(&args.pregnant, key),
        };
        let scores = window.score(at, &settings, &flags);
        println!("{}", serde_json::to_string(&scores.to_json())?);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
