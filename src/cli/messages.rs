//! `medway messages list|show`: what the store holds, for people (`--json` for tools).

use clap::{Args, Subcommand};
use medway_engine::clock::{micros_to_rfc3339, parse_time_arg};
use medway_engine::config::EngineConfig;
use medway_engine::message::MessageStatus;
use medway_engine::store::{self, DeliveryView, MessageFilter, MessageSummary};
use serde_json::json;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List messages, newest first.
    List(ListArgs),
    /// Show one message with its deliveries and body.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub channel: Option<String>,
    /// accepted | filtered | error
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub control_id: Option<String>,
    /// RFC 3339 time or an age such as 15m, 2h, 3d.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Store URL (overrides the settings file).
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

pub async fn messages(config: EngineConfig, command: MessagesCommand) -> anyhow::Result<ExitCode> {
    let store_override = match &command {
        MessagesCommand::List(a) => a.store.clone(),
        MessagesCommand::Show(a) => a.store.clone(),
    };
    let store = open_store(config, store_override).await?;
    match command {
        MessagesCommand::List(args) => {
            let status = match args.status.as_deref() {
                None => None,
                Some(s) => Some(MessageStatus::parse(s).ok_or_else(|| {
                    anyhow::anyhow!("unknown status {s:?} (accepted, filtered, error)")
                })?),
            };
            let time = |arg: &Option<String>| -> anyhow::Result<Option<i64>> {
                arg.as_deref()
                    .map(|t| parse_time_arg(t).ok_or_else(|| anyhow::anyhow!("bad time {t:?}")))
                    .transpose()
            };
            let filter = MessageFilter {
                channel: args.channel,
                status,
                control_id: args.control_id,
                since: time(&args.since)?,
                until: time(&args.until)?,
                limit: args.limit,
            };
            let messages = store.list_messages(&filter).await?;
            let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
            let deliveries = store.deliveries_of(&ids).await?;
            for m in &messages {
                let mine: Vec<&DeliveryView> =
                    deliveries.iter().filter(|d| d.message_id == m.id).collect();
                if args.json {
                    println!("{}", summary_json(m, &mine));
                } else {
                    let dests = mine
                        .iter()
                        .map(|d| format!("{}={}", d.destination, d.status))
                        .collect::<Vec<_>>()
                        .join(" ");
                    println!(
                        "{:>8}  {}  {:<16} {:<10} {:<9} {:<20} {}{}",
                        m.id,
                        micros_to_rfc3339(m.received_at),
                        m.channel,
                        m.message_type.as_deref().unwrap_or("-"),
                        m.status,
                        m.control_id.as_deref().unwrap_or("-"),
                        dests,
                        m.error
                            .as_deref()
                            .map(|e| format!("  ({e})"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MessagesCommand::Show(args) => {
            let Some(detail) = store.message(args.id).await? else {
                eprintln!("no message with id {}", args.id);
                return Ok(ExitCode::from(1));
            };
            let deliveries = store.deliveries_of(&[args.id]).await?;
            let mine: Vec<&DeliveryView> = deliveries.iter().collect();
            if args.json {
                let mut value = summary_json(&detail.summary, &mine);
                value["peer"] = json!(detail.peer);
                value["origin"] = json!(detail.origin);
                value["children"] = json!(store.children(detail.summary.id).await?);
                value["patient_key"] = json!(detail.patient_key);
                value["raw"] = json!(String::from_utf8_lossy(&detail.raw));
                value["transformed"] =
                    json!(detail.transformed.as_deref().map(String::from_utf8_lossy));
                println!("{value}");
            } else {
                let m = &detail.summary;
                println!(
                    "message {}  channel {}  status {}",
                    m.id, m.channel, m.status
                );
                println!("received   {}", micros_to_rfc3339(m.received_at));
                println!("control id {}", m.control_id.as_deref().unwrap_or("-"));
                println!("type       {}", m.message_type.as_deref().unwrap_or("-"));
                println!("peer       {}", detail.peer.as_deref().unwrap_or("-"));
                if let Some(origin) = &detail.origin {
                    println!("origin     {origin}");
                }
                if let Some(e) = &m.error {
                    println!("error      {e}");
                }
                if let Some(parent) = m.parent_id {
                    println!("parent     message {parent}");
                }
                let children = store.children(m.id).await?;
                if !children.is_empty() {
                    let list: Vec<String> = children.iter().map(|c| c.to_string()).collect();
                    println!("children   message {}", list.join(", "));
                }
                for d in &mine {
                    println!(
                        "delivery {} → {}: {} after {} attempt(s){}",
                        d.id,
                        d.destination,
                        d.status,
                        d.attempts,
                        d.last_error
                            .as_deref()
                            .map(|e| format!(" — {e}"))
                            .unwrap_or_default()
                    );
                }
                println!("--- raw");
                println!(
                    "{}",
                    String::from_utf8_lossy(&detail.raw)
                        .replace('\r', "\n")
                        .trim_end()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Opens the configured store (or the one given with `--store`) for a command-line query.
pub async fn open_store(
    mut config: EngineConfig,
    store_override: Option<String>,
) -> anyhow::Result<std::sync::Arc<dyn medway_engine::store::Store>> {
    if let Some(url) = store_override {
        config.store.url = url;
    }
    Ok(store::open(&config.store.url, 2).await?)
}

fn summary_json(m: &MessageSummary, deliveries: &[&DeliveryView]) -> serde_json::Value {
    json!({
        "id": m.id,
        "channel": m.channel,
        "parent_id": m.parent_id,
        "control_id": m.control_id,
        "message_type": m.message_type,
        "status": m.status,
        "error": m.error,
        "received_at": micros_to_rfc3339(m.received_at),
        "deliveries": deliveries.iter().map(|d| json!({
            "id": d.id,
            "destination": d.destination,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
        })).collect::<Vec<_>>(),
    })
}
