//! `medway alerts list|show|ack|resolve` and `medway patients set-scale`: the clinical side of
//! the store for the people who act on alerts.

use super::messages::open_store;
use clap::{Args, Subcommand};
use medway_engine::clock::{micros_to_rfc3339, now_micros, parse_time_arg};
use medway_engine::config::EngineConfig;
use medway_engine::store::{AlertFilter, AlertRow};
use serde_json::json;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first.
    List(ListArgs),
    /// Show one alert with the scores and reasons behind it.
    Show(OneArgs),
    /// Acknowledge an alert (stops repeats until the band worsens).
    Ack(ActArgs),
    /// Resolve an alert.
    Resolve(ActArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// open | acknowledged | resolved
    #[arg(long)]
    pub state: Option<String>,
    /// Patient key, e.g. MRN12345^^^HOSP.
    #[arg(long)]
    pub patient: Option<String>,
    /// RFC 3339 time or an age such as 2h.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct OneArgs {
    pub id: i64,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct ActArgs {
    pub id: i64,
    /// Who is acting (recorded with the time).
    #[arg(long = "by")]
    pub by: String,
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PatientsCommand {
    /// Show a patient's latest NEWS2, qSOFA and SIRS, with the inputs they used.
    Score {
        /// Patient key, e.g. MRN12345^^^HOSP.
        patient: String,
        /// Print the score JSON (the `medway score` shape) only.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        store: Option<String>,
    },
    /// Set the NEWS2 SpO₂ scale for a patient (2 only on a clinician's decision, e.g.
    /// hypercapnic respiratory failure with a 88–92 % target); it stays until changed.
    SetScale {
        /// Patient key, e.g. MRN12345^^^HOSP.
        patient: String,
        #[arg(value_parser = clap::value_parser!(u8).range(1..=2))]
        scale: u8,
        #[arg(long)]
        store: Option<String>,
    },
}

fn alert_json(a: &AlertRow) -> serde_json::Value {
    json!({
        "id": a.id,
        "patient": a.patient,
        "rule": a.rule,
        "severity": a.severity,
        "state": a.state,
        "title": a.title,
        "escalated_from": a.escalated_from,
        "raised_at": micros_to_rfc3339(a.raised_at),
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at.map(micros_to_rfc3339),
        "resolved_by": a.resolved_by,
        "resolved_at": a.resolved_at.map(micros_to_rfc3339),
        "dispatched_message_id": a.dispatched_message_id,
        "detail": a.detail,
    })
}

pub async fn alerts(config: EngineConfig, command: AlertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlertsCommand::List(args) => {
            let store = open_store(config, args.store.clone()).await?;
            let since = args
                .since
                .as_deref()
                .map(|t| parse_time_arg(t).ok_or_else(|| anyhow::anyhow!("bad time {t:?}")))
                .transpose()?;
            let filter = AlertFilter {
                state: args.state,
                patient: args.patient,
                since,
                limit: args.limit,
            };
            for a in store.list_alerts(&filter).await? {
                if args.json {
                    println!("{}", alert_json(&a));
                } else {
                    println!(
                        "{:>6}  {}  {:<9} {:<12} {:<6} {}",
                        a.id,
                        micros_to_rfc3339(a.raised_at),
                        a.severity,
                        a.state,
                        a.rule,
                        a.title
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Show(args) => {
            let store = open_store(config, args.store.clone()).await?;
            let Some(a) = store.alert(args.id).await? else {
                eprintln!("no alert with id {}", args.id);
                return Ok(ExitCode::from(1));
            };
            if args.json {
                println!("{}", alert_json(&a));
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "alert {}  {}  {}  ({})",
                a.id,
                a.severity.to_uppercase(),
                a.title,
                a.state
            );
            println!("patient   {}", a.patient);
            println!("observed  {}", micros_to_rfc3339(a.raised_at));
            if let Some(from) = &a.escalated_from {
                println!("escalated from {from}");
            }
            for reason in a.detail["reasons"].as_array().into_iter().flatten() {
                println!("  - {}", reason.as_str().unwrap_or_default());
            }
            if let (Some(by), Some(at)) = (&a.acknowledged_by, a.acknowledged_at) {
                println!("acknowledged by {by} at {}", micros_to_rfc3339(at));
            }
            if let (Some(by), Some(at)) = (&a.resolved_by, a.resolved_at) {
                println!("resolved by {by} at {}", micros_to_rfc3339(at));
            }
            println!("scores    {}", a.detail["scores"]);
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Ack(args) => act(config, args, "acknowledged").await,
        AlertsCommand::Resolve(args) => act(config, args, "resolved").await,
    }
}

async fn act(config: EngineConfig, args: ActArgs, state: &str) -> anyhow::Result<ExitCode> {
    if args.by.trim().is_empty() {
        eprintln!("--by must name who acts");
        return Ok(ExitCode::from(2));
    }
    let store = open_store(config, args.store.clone()).await?;
    if store.alert(args.id).await?.is_none() {
        eprintln!("no alert with id {}", args.id);
        return Ok(ExitCode::from(1));
    }
    if store
        .set_alert_state(args.id, state, &args.by, now_micros())
        .await?
    {
        println!("alert {} {state} by {}", args.id, args.by);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "alert {} was already {state} (or resolved); nothing changed",
            args.id
        );
        Ok(ExitCode::from(1))
    }
}

pub async fn patients(config: EngineConfig, command: PatientsCommand) -> anyhow::Result<ExitCode> {
    match command {
        PatientsCommand::Score {
            patient,
            json,
            store,
        } => {
            let store = open_store(config, store).await?;
            let Some(score) = store.latest_score(&patient).await? else {
                eprintln!("no score for {patient}");
                return Ok(ExitCode::from(1));
            };
            if json {
                println!("{}", score.detail);
            } else {
                println!(
                    "{patient} at {}: NEWS2 {} ({}), qSOFA {}, SIRS {}{}",
                    micros_to_rfc3339(score.at),
                    score.news2_total.map_or("-".into(), |t| t.to_string()),
                    score.news2_band.as_deref().unwrap_or("-"),
                    score.qsofa_total.map_or("-".into(), |t| t.to_string()),
                    score.sirs_total.map_or("-".into(), |t| t.to_string()),
                    if score.complete { "" } else { " (incomplete)" }
                );
                println!("{}", serde_json::to_string_pretty(&score.detail)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        PatientsCommand::SetScale {
            patient,
            scale,
            store,
        } => {
            let store = open_store(config, store).await?;
            store.set_spo2_scale(&patient, scale).await?;
            println!("NEWS2 SpO2 scale {scale} set for {patient}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
