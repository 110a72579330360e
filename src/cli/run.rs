//! `medway run`: serve every channel until SIGTERM/SIGINT, reloading the channel set on SIGHUP
//! and when the channel, script or map folders change; then shut down cleanly.

use super::{systemd, watch};
use anyhow::Context;
use clap::Args;
use medway_connectors::Registry;
use medway_engine::CancellationToken;
use medway_engine::config::EngineConfig;
use medway_engine::engine::{RunningEngine, load_channels};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Channel folder (default: `channels`, or `channels` in the settings file).
    #[arg(long)]
    pub channels: Option<PathBuf>,
    /// Store URL, e.g. sqlite://data/medway.db or postgres://medway@db/medway.
    #[arg(long)]
    pub store: Option<String>,
    /// Do not watch the folders for changes (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch: bool,
}

pub async fn run(mut config: EngineConfig, args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.channels {
        if config.maps == EngineConfig::default().maps {
            config.maps = dir.join("maps");
        }
        config.channels = dir;
    }
    if let Some(url) = args.store {
        config.store.url = url;
    }
    if args.no_watch {
        config.watch = false;
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
    let mut engine =
        match RunningEngine::start(&config, channels, &Registry, shutdown.clone()).await {
            Ok(engine) => engine,
            Err(medway_engine::engine::EngineError::Config(errors)) => {
                eprintln!("{errors}");
                eprintln!(
                    "medway: {} problem(s) in the channel set; not starting",
                    errors.0.len()
                );
                return Ok(ExitCode::from(2));
            }
            Err(e) => return Err(e).context("cannot start the engine"),
        };
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let (_watch, mut changes) = if config.watch {
        let folders = [
            config.channels.clone(),
            config.scripts.clone(),
            config.maps.clone(),
        ];
        match watch::watch(&folders) {
            Ok((watch, changes)) => (Some(watch), Some(changes)),
            Err(error) => {
                tracing::warn!(%error, "cannot watch the channel folders; reload with SIGHUP");
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    systemd::notify("READY=1");
    let watchdog = systemd::spawn_watchdog();
    let operations = config.operations.alert_channel.is_some();
    let mut checks = tokio::time::interval(std::time::Duration::from_secs(
        config.operations.check_secs.max(1),
    ));
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = checks.tick(), if operations => {
                if let Err(error) = engine.check_operations().await {
                    tracing::warn!(%error, "operational check failed");
                }
                continue;
            }
            _ = hup.recv() => "SIGHUP",
            Some(()) = async { match changes.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => "file change",
        };
        systemd::notify("RELOADING=1");
        match engine.reload(&Registry).await {
            Ok(report)
                if report.added.is_empty()
                    && report.changed.is_empty()
                    && report.removed.is_empty() =>
            {
                tracing::debug!(
                    trigger = why,
                    unchanged = report.unchanged,
                    "reload: nothing changed"
                );
            }
            Ok(report) => {
                tracing::info!(trigger = why, added = ?report.added, changed = ?report.changed,
                    removed = ?report.removed, unchanged = report.unchanged, "channels reloaded");
                for error in &report.bind_errors {
                    tracing::error!(%error, "listener not started after reload");
                }
            }
            Err(errors) => {
                for error in &errors.0 {
                    tracing::error!(%error, "reload refused; the running channels are unchanged");
                }
            }
        }
        systemd::notify("READY=1");
    }
    tracing::info!("stopping: finishing in-flight messages");
    systemd::notify("STOPPING=1");
    shutdown.cancel();
    engine.wait().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    Ok(ExitCode::SUCCESS)
}
