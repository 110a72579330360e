//! The command line: one module per subcommand.

mod alerts;
mod api_key;
mod check;
mod deliveries;
mod inspect;
mod load;
mod messages;
mod reprocess;
mod run;
mod score;
mod send;
mod systemd;
pub mod telemetry;
mod test_channel;
mod watch;

use clap::{Parser, Subcommand};
use medway_engine::config::EngineConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// Medway: an HL7 v2 integration engine. Receives over MLLP, stores durably before it
/// acknowledges, and delivers to destinations with retries.
#[derive(Debug, Parser)]
#[command(name = "medway", version, about, long_about = None)]
pub struct Cli {
    /// Engine settings file (default: built-in settings; `MEDWAY_STORE_URL` overrides the store).
    #[arg(long, short, global = true, env = "MEDWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = telemetry::LogFormat::Text)]
    pub log_format: telemetry::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score NEWS2, qSOFA and SIRS per patient from HL7 files (JSON Lines on stdout).
    Score(score::ScoreArgs),
    /// Run the engine: serve every channel in the channel folder until SIGTERM/SIGINT.
    Run(run::RunArgs),
    /// Send HL7 files to an MLLP listener and print each ACK, or generate load (--count).
    Send(send::SendArgs),
    /// Work with HL7 v2 files.
    #[command(subcommand)]
    Hl7(Hl7Command),
    /// List and show stored messages.
    #[command(subcommand)]
    Messages(messages::MessagesCommand),
    /// List and show deliveries and their attempts.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// List, show, acknowledge and resolve clinical alerts.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// A patient's latest scores, and per-patient clinical settings (NEWS2 SpO2 scale).
    #[command(subcommand)]
    Patients(alerts::PatientsCommand),
    /// Send stored messages again (new deliveries; history is kept).
    Reprocess(reprocess::ReprocessArgs),
    /// Validate settings, channel files, scripts and maps; list every problem (exit 1 if any).
    Check(check::CheckArgs),
    /// Run the [[test]] cases of channel files (no sockets, no store).
    TestChannel(test_channel::TestChannelArgs),
    /// Make API keys for the HTTP source (the channel file keeps only their hashes).
    #[command(subcommand)]
    ApiKey(api_key::ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum Hl7Command {
    /// Parse files (batches and multi-message files too) and show their structure.
    Inspect(inspect::InspectArgs),
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let load_config = || -> anyhow::Result<EngineConfig> {
        EngineConfig::load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))
    };
    match cli.command {
        Command::Score(args) => score::score(args),
        Command::Run(args) => run::run(load_config()?, args).await,
        Command::Send(args) => send::send(args).await,
        Command::Hl7(Hl7Command::Inspect(args)) => inspect::inspect(args),
        Command::Messages(command) => messages::messages(load_config()?, command).await,
        Command::Deliveries(command) => deliveries::deliveries(load_config()?, command).await,
        Command::Alerts(command) => alerts::alerts(load_config()?, command).await,
        Command::Patients(command) => alerts::patients(load_config()?, command).await,
        Command::Reprocess(args) => reprocess::reprocess(load_config()?, args).await,
        Command::Check(args) => check::check(EngineConfig::load(cli.config.as_deref()), args),
        Command::TestChannel(args) => test_channel::test_channel(load_config()?, args),
        Command::ApiKey(command) => api_key::api_key(command),
    }
}
