//! `medway reprocess`: send stored messages again by adding new deliveries. History is never
//! rewritten: the old deliveries and their attempts stay as they were.

use super::deliveries::{delivery_status, time};
use super::messages::open_store;
use clap::Args;
use medway_engine::config::EngineConfig;
use medway_engine::message::DeliveryStatus;
use medway_engine::store::{DeliveryFilter, Redelivery};
use std::collections::HashSet;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["message", "channel"]))]
pub struct ReprocessArgs {
    /// One message: new deliveries to the destinations it was delivered to before.
    #[arg(long)]
    pub message: Option<i64>,
    /// Every matching delivery of this channel (with --status, --since, --destination).
    #[arg(long)]
    pub channel: Option<String>,
    /// Only this destination.
    #[arg(long)]
    pub destination: Option<String>,
    /// With --channel: deliveries in this status (default errored).
    #[arg(long)]
    pub status: Option<String>,
    /// With --channel: created since (RFC 3339 or an age such as 2h).
    #[arg(long)]
    pub since: Option<String>,
    /// Show what would be added, add nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub store: Option<String>,
}

pub async fn reprocess(config: EngineConfig, args: ReprocessArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config, args.store.clone()).await?;
    let filter = DeliveryFilter {
        message_id: args.message,
        channel: args.channel.clone(),
        destination: args.destination.clone(),
        status: if args.message.is_some() {
            delivery_status(args.status.as_deref())?
        } else {
            Some(delivery_status(args.status.as_deref())?.unwrap_or(DeliveryStatus::Errored))
        },
        since: time(args.since.as_deref())?,
        limit: 1_000_000,
        ..Default::default()
    };
    let existing = store.list_deliveries(&filter).await?;
    // One new delivery per (message, destination), however many attempts came before.
    let mut seen = HashSet::new();
    let mut wanted: Vec<Redelivery> = existing
        .iter()
        .rev()
        .filter(|d| seen.insert((d.message_id, d.destination.clone())))
        .map(|d| Redelivery {
            message_id: d.message_id,
            channel: d.channel.clone(),
            destination: d.destination.clone(),
            ordering_key: d.ordering_key.clone(),
        })
        .collect();
    if wanted.is_empty()
        && let (Some(id), Some(destination)) = (args.message, &args.destination)
    {
        // A message never delivered there (filtered, or a destination added since).
        let Some(message) = store.message(id).await? else {
            eprintln!("no message with id {id}");
            return Ok(ExitCode::from(1));
        };
        wanted.push(Redelivery {
            message_id: id,
            channel: message.summary.channel,
            destination: destination.clone(),
            ordering_key: None,
        });
    }
    if wanted.is_empty() {
        println!("nothing to reprocess");
        return Ok(ExitCode::SUCCESS);
    }
    for r in &wanted {
        println!(
            "{} message {} → {}/{}",
            if args.dry_run { "would add" } else { "adding" },
            r.message_id,
            r.channel,
            r.destination
        );
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let ids = store.add_deliveries(&wanted).await?;
    println!(
        "{} new deliveries queued (ids {}); a running engine picks them up within its poll interval",
        ids.len(),
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
