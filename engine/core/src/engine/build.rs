//! Building a channel set from its files: compile every script, build every connector, check
//! that no two channels listen on one address. Nothing is bound or started here, so `medway
//! check`, start-up and reload share it, and a bad set never touches the running one.

use crate::channel::ChannelPipeline;
use crate::config::{
    ChannelConfig, ConfigError, ConfigErrors, ConnectorSpec, DestinationConfig, EngineConfig,
    SettingsError,
};
use crate::connector::{ConnectorContext, ConnectorFactory, Destination, Source};
use crate::delivery::DestinationScripts;
use crate::script::{CodeMaps, ScriptEngine, ScriptSettings};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

/// A channel ready to start.
pub struct BuiltChannel {
    pub config: ChannelConfig,
    /// Changes whenever the channel file, one of its scripts, the script library or the code
    /// maps change: an unchanged fingerprint means the running channel is left alone on reload.
    pub fingerprint: u64,
    pub pipeline: ChannelPipeline,
    pub source: Box<dyn Source>,
    pub destinations: Vec<BuiltDestination>,
}

pub struct BuiltDestination {
    pub config: DestinationConfig,
    pub destination: Arc<dyn Destination>,
    pub scripts: Arc<DestinationScripts>,
}

/// Where scripts come from, and with what salt.
pub struct ScriptSetup {
    pub engine: ScriptEngine,
    /// Fingerprint of the script library and the code maps (shared by every channel).
    pub shared_fingerprint: u64,
}

impl ScriptSetup {
    /// Loads the code maps and builds the sandboxed engine. `salt` is the install's secret.
    pub fn load(config: &EngineConfig, salt: &str) -> Result<Self, ConfigError> {
        let maps = if config.maps.is_dir() {
            CodeMaps::load_dir(&config.maps)
                .map_err(|e| ConfigError::new(&config.maps, 0, 0, e.to_string()))?
        } else {
            CodeMaps::empty()
        };
        let mut settings = ScriptSettings::new(config.scripts.join("lib"));
        settings.maps = Arc::new(maps);
        settings.salt = Arc::from(salt);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hash_folder(&config.scripts.join("lib"), &mut hasher);
        hash_folder(&config.maps, &mut hasher);
        Ok(Self {
            engine: ScriptEngine::new(settings),
            shared_fingerprint: hasher.finish(),
        })
    }
}

/// Builds every channel, collecting all problems rather than stopping at the first.
pub fn build_channels(
    config: &EngineConfig,
    channels: Vec<ChannelConfig>,
    scripts: &ScriptSetup,
    factory: &dyn ConnectorFactory,
    cx: &ConnectorContext,
) -> Result<Vec<BuiltChannel>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut built = Vec::new();
    let mut listeners: Vec<(String, String, std::path::PathBuf)> = Vec::new();
    for channel in channels {
        if let Some((address, key)) = factory.listen_address(&channel.source) {
            if let Some((_, other, file)) =
                listeners.iter().find(|(a, _, _)| same_port(a, &address))
            {
                // A listener's port, or a folder source's inbox (key `path`).
                let (what, own) = if key == "path" {
                    ("inbox folder", "inbox folder")
                } else {
                    ("listen address", "port")
                };
                errors.push(
                    channel.source.locate(
                        SettingsError::new(format!(
                            "{address} is already the {what} of channel {other:?}"
                        ))
                        .key(key)
                        .hint(format!(
                            "each channel needs its own {own} (see {})",
                            file.display()
                        )),
                    ),
                );
                continue;
            }
            listeners.push((address, channel.name.clone(), channel.file.clone()));
        }
        match build_one(config, channel, scripts, factory, cx) {
            Ok(channel) => built.push(channel),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn build_one(
    config: &EngineConfig,
    channel: ChannelConfig,
    scripts: &ScriptSetup,
    factory: &dyn ConnectorFactory,
    cx: &ConnectorContext,
) -> Result<BuiltChannel, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let pipeline = ChannelPipeline::build(&channel, &scripts.engine, &config.scripts)
        .map_err(|e| errors.push(e))
        .ok();
    let source = factory
        .source(&channel.name, &channel.source)
        .map_err(|e| errors.push(e))
        .ok();
    let mut destinations = Vec::new();
    for dest in &channel.destinations {
        let destination = factory
            .destination(&channel.name, &dest.spec, cx)
            .map_err(|e| errors.push(e));
        let dest_scripts =
            DestinationScripts::build(&channel, dest, &scripts.engine, &config.scripts)
                .map_err(|e| errors.push(e));
        if let (Ok(destination), Ok(dest_scripts)) = (destination, dest_scripts) {
            destinations.push(BuiltDestination {
                config: dest.clone(),
                destination,
                scripts: Arc::new(dest_scripts),
            });
        }
    }
    let (Some(pipeline), Some(source), true) = (pipeline, source, errors.is_empty()) else {
        return Err(errors);
    };
    let fingerprint = fingerprint(&channel, &config.scripts, scripts.shared_fingerprint);
    Ok(BuiltChannel {
        config: channel,
        fingerprint,
        pipeline,
        source,
        destinations,
    })
}

fn fingerprint(channel: &ChannelConfig, scripts_dir: &Path, shared: u64) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    shared.hash(&mut hasher);
    channel.text.hash(&mut hasher);
    let step_scripts = channel.steps.iter().filter_map(|s| match s {
        crate::config::StepConfig::Script { script, .. } => Some(script),
        crate::config::StepConfig::Required { .. } => None,
    });
    let dest_scripts = channel.destinations.iter().flat_map(|d| d.steps.scripts());
    for script in step_scripts.chain(dest_scripts) {
        std::fs::read(scripts_dir.join(&script.path))
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    hasher.finish()
}

/// Hashes the names and contents of the files directly in `dir` (sorted); nothing if absent.
fn hash_folder(dir: &Path, hasher: &mut impl Hasher) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        file.hash(hasher);
        std::fs::read(&file).unwrap_or_default().hash(hasher);
    }
}

/// Whether two listen addresses collide: the same port on the same address, or on any address
/// when one of them is a wildcard (`0.0.0.0`, `::`).
fn same_port(a: &str, b: &str) -> bool {
    match (
        a.parse::<std::net::SocketAddr>(),
        b.parse::<std::net::SocketAddr>(),
    ) {
        (Ok(a), Ok(b)) => {
            a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        }
        _ => a == b,
    }
}

/// Whether two source specs would run the same listener.
pub fn same_source(a: &ConnectorSpec, b: &ConnectorSpec) -> bool {
    a.kind == b.kind && a.settings == b.settings
}

/// Reads the install's salt, creating it (random, owner-only) if it does not exist.
pub fn load_or_create_salt(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(salt) => Ok(salt.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let salt: String = (0..32)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            file.write_all(salt.as_bytes())?;
            file.sync_all()?;
            Ok(salt)
        }
        Err(e) => Err(e),
    }
}
