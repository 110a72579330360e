//! `medway check`: validate settings, channel files, scripts and maps without starting
//! anything; print every problem as `file:line:col: message` (+ hint); exit 1 if any.

use clap::Args;
use medway_connectors::Registry;
use medway_engine::config::{ConfigError, EngineConfig, load_channel_dir, load_channel_file};
use medway_engine::engine::build::{ScriptSetup, build_channels};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A channel folder or one channel file (default: the configured channel folder).
    pub path: Option<PathBuf>,
}

/// The salt used where no install secret is needed (checks and channel tests).
pub const TEST_SALT: &str = "medway-test-salt";

pub fn check(
    config: Result<EngineConfig, ConfigError>,
    args: CheckArgs,
) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<ConfigError> = Vec::new();
    let mut config = match config {
        Ok(config) => config,
        Err(e) => {
            problems.push(e);
            EngineConfig::default()
        }
    };
    let path = args.path.unwrap_or_else(|| config.channels.clone());
    let (channels, mut errors) = if path.is_dir() {
        if config.maps == EngineConfig::default().maps {
            config.maps = path.join("maps");
        }
        load_channel_dir(&path)
    } else {
        match load_channel_file(&path) {
            Ok(channel) => (vec![channel], Vec::new()),
            Err(e) => (Vec::new(), vec![e]),
        }
    };
    problems.append(&mut errors);
    let count = channels.len();
    match ScriptSetup::load(&config, TEST_SALT) {
        Ok(scripts) => {
            if let Err(mut errors) =
                build_channels(&config, channels, &scripts, &Registry, &Default::default())
            {
                problems.append(&mut errors.0);
            }
        }
        Err(e) => problems.push(e),
    }
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        println!("ok: {count} channel(s) checked in {}", path.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s)", problems.len());
        Ok(ExitCode::from(1))
    }
}
