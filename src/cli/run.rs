//! `medway run`: serve every channel until SIGTERM/SIGINT, then shut down cleanly.

use super::systemd;
use anyhow::Context;
use clap::Args;
use medway_connectors::Registry;
use medway_engine::CancellationToken;
use medway_engine::config::EngineConfig;
use medway_engine::engine::{RunningEngine, load_channels};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Channel folder (default: `channels`, or `channels` in the settings file).
    #[arg(long)]
    pub channels: Option<PathBuf>,
    /// Store URL, e.g. sqlite://data/medway.db or postgres://medway@db/medway.
    #[arg(long)]
    pub store: Option<String>,
}

pub async fn run(mut config: EngineConfig, args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.channels {
        config.channels = dir;
    }
    if let Some(url) = args.store {
        config.store.url = url;
    }
    let channels = match load_channels(&config) {
        Ok(channels) => channels,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "medway: {} problem(s) in the channel files; not starting",
                errors.0.len()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let shutdown = CancellationToken::new();
    let engine = RunningEngine::start(&config, channels, &Registry, shutdown.clone())
        .await
        .context("cannot start the engine")?;
    systemd::notify("READY=1");
    let watchdog = systemd::spawn_watchdog();
    wait_for_stop_signal().await?;
    tracing::info!("stopping: finishing in-flight messages");
    systemd::notify("STOPPING=1");
    shutdown.cancel();
    engine.wait().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
