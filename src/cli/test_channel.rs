//! `medway test-channel`: run the `[[test]]` cases of channel files, with no sockets and no
//! store, and show a readable expected/actual diff for every failure.

use super::check::TEST_SALT;
use clap::Args;
use medway_connectors::Registry;
use medway_engine::channel_tests::run_channel_tests;
use medway_engine::config::{EngineConfig, load_channel_dir, load_channel_file};
use medway_engine::engine::build::{ScriptSetup, build_channels};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct TestChannelArgs {
    /// Channel names or channel files (default: every channel in the channel folder).
    pub channels: Vec<String>,
    /// Print passing tests too.
    #[arg(long, short)]
    pub verbose: bool,
}

pub fn test_channel(mut config: EngineConfig, args: TestChannelArgs) -> anyhow::Result<ExitCode> {
    let (mut channels, errors) = load_channel_dir(&config.channels);
    for name in &args.channels {
        let path = PathBuf::from(name);
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            channels.retain(|c| c.file != path);
            match load_channel_file(&path) {
                Ok(channel) => channels.push(channel),
                Err(e) => {
                    println!("{e}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    if !errors.is_empty() && args.channels.is_empty() {
        for e in &errors {
            println!("{e}");
        }
        return Ok(ExitCode::from(1));
    }
    let wanted = |name: &str, file: &std::path::Path| {
        args.channels.is_empty()
            || args
                .channels
                .iter()
                .any(|a| a == name || std::path::Path::new(a) == file)
    };
    channels.retain(|c| wanted(&c.name, &c.file));
    if channels.is_empty() {
        println!("no matching channels");
        return Ok(ExitCode::from(1));
    }
    if config.maps == EngineConfig::default().maps {
        config.maps = config.channels.join("maps");
    }
    let scripts = match ScriptSetup::load(&config, TEST_SALT) {
        Ok(scripts) => scripts,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let built = match build_channels(&config, channels, &scripts, &Registry, &Default::default()) {
        Ok(built) => built,
        Err(errors) => {
            println!("{errors}");
            return Ok(ExitCode::from(1));
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for channel in &built {
        for report in run_channel_tests(channel) {
            if report.passed() {
                passed += 1;
                if args.verbose {
                    println!("PASS {}: {}", report.channel, report.name);
                }
            } else {
                failed += 1;
                println!(
                    "FAIL {}: {} ({})",
                    report.channel, report.name, report.location
                );
                for failure in &report.failures {
                    println!("  {failure}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
