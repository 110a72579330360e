//! `medway deliveries list|show`: where each message went, every attempt, and why it failed.

use super::messages::open_store;
use clap::{Args, Subcommand};
use medway_engine::clock::{micros_to_rfc3339, parse_time_arg};
use medway_engine::config::EngineConfig;
use medway_engine::message::DeliveryStatus;
use medway_engine::store::{DeliveryFilter, DeliveryView};
use serde_json::json;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first.
    List(ListArgs),
    /// Show one delivery with every attempt.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub channel: Option<String>,
    #[arg(long)]
    pub destination: Option<String>,
    /// queued | retrying | sent | errored
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub message: Option<i64>,
    /// Created since: RFC 3339 or an age such as 15m, 2h, 3d.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub id: i64,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub store: Option<String>,
}

/// Parses a `--status` for deliveries.
pub fn delivery_status(text: Option<&str>) -> anyhow::Result<Option<DeliveryStatus>> {
    text.map(|s| {
        DeliveryStatus::parse(s).ok_or_else(|| {
            anyhow::anyhow!("unknown status {s:?} (queued, retrying, sent, errored)")
        })
    })
    .transpose()
}

/// Parses `--since`/`--until`.
pub fn time(arg: Option<&str>) -> anyhow::Result<Option<i64>> {
    arg.map(|t| parse_time_arg(t).ok_or_else(|| anyhow::anyhow!("bad time {t:?}")))
        .transpose()
}

pub fn view_json(d: &DeliveryView) -> serde_json::Value {
    json!({
        "id": d.id,
        "message_id": d.message_id,
        "channel": d.channel,
        "destination": d.destination,
        "ordering_key": d.ordering_key,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": micros_to_rfc3339(d.next_attempt_at),
        "last_error": d.last_error,
        "created_at": micros_to_rfc3339(d.created_at),
        "updated_at": micros_to_rfc3339(d.updated_at),
    })
}

pub async fn deliveries(
    config: EngineConfig,
    command: DeliveriesCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        DeliveriesCommand::List(args) => {
            let store = open_store(config, args.store.clone()).await?;
            let filter = DeliveryFilter {
                id: None,
                channel: args.channel,
                destination: args.destination,
                status: delivery_status(args.status.as_deref())?,
                message_id: args.message,
                since: time(args.since.as_deref())?,
                until: time(args.until.as_deref())?,
                limit: args.limit,
            };
            for d in store.list_deliveries(&filter).await? {
                if args.json {
                    println!("{}", view_json(&d));
                } else {
                    println!(
                        "{:>8}  msg {:<8} {:<16} {:<12} {:<9} {:>3} attempt(s){}",
                        d.id,
                        d.message_id,
                        d.channel,
                        d.destination,
                        d.status,
                        d.attempts,
                        d.last_error
                            .as_deref()
                            .map(|e| format!("  ({e})"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Show(args) => {
            let store = open_store(config, args.store.clone()).await?;
            let found = store
                .list_deliveries(&DeliveryFilter {
                    id: Some(args.id),
                    limit: 1,
                    ..Default::default()
                })
                .await?
                .into_iter()
                .next();
            let Some(d) = found else {
                eprintln!("no delivery with id {}", args.id);
                return Ok(ExitCode::from(1));
            };
            let attempts = store.attempts(d.id).await?;
            if args.json {
                let mut value = view_json(&d);
                value["attempt_log"] = json!(
                    attempts
                        .iter()
                        .map(|a| json!({
                            "attempt": a.attempt,
                            "started_at": micros_to_rfc3339(a.started_at),
                            "duration_ms": a.duration_us as f64 / 1000.0,
                            "outcome": a.outcome,
                            "detail": a.detail,
                        }))
                        .collect::<Vec<_>>()
                );
                println!("{value}");
            } else {
                println!(
                    "delivery {} of message {} → {}/{}: {}",
                    d.id, d.message_id, d.channel, d.destination, d.status
                );
                if let Some(key) = &d.ordering_key {
                    println!("ordering key {key}");
                }
                for a in &attempts {
                    println!(
                        "  #{} {}  {:>8.1} ms  {}  {}",
                        a.attempt,
                        micros_to_rfc3339(a.started_at),
                        a.duration_us as f64 / 1000.0,
                        a.outcome,
                        a.detail.as_deref().unwrap_or("")
                    );
                }
                if matches!(d.status, DeliveryStatus::Queued | DeliveryStatus::Retrying) {
                    println!("next attempt {}", micros_to_rfc3339(d.next_attempt_at));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
