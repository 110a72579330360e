//! Wiring: open the store, start the writer, build every channel from its files, bind every
//! listener, start the delivery workers; reload a changed set in place; shut all of it down in
//! the right order.
//!
//! Shutdown order (one cancellation token from the binary): sources stop accepting and finish
//! their in-flight messages (each still gets its reply); then delivery workers finish the send
//! in hand within the grace period; then the last writer handle is dropped and the writer
//! commits its last batch and stops.
//!
//! Reload: the new set is built completely first ([`build`]); any problem leaves the running
//! set untouched. Then only what changed is touched: an unchanged channel (same fingerprint)
//! keeps everything; a changed one gets its new definition swapped in (messages in flight finish
//! under the old one), its workers restarted, and its listener rebound only if the source
//! settings changed; removed channels stop; new ones start.

pub mod build;
mod operations;

use crate::channel::{
    AckIds, ChannelDirectory, ChannelHandle, ChannelInner, ChannelPipeline, DestinationSlot,
};
use crate::config::{ChannelConfig, ConfigErrors, ConnectorSpec, EngineConfig, load_channel_dir};
use crate::connector::{ConnectorContext, ConnectorFactory, Source, SourceContext};
use crate::delivery::{DeliveryWorker, WorkerSettings};
use crate::store::{self, ClaimOrder, Store, StoreError, StoreWriter, WriterHandle};
use build::{
    BuiltChannel, BuiltDestination, ScriptSetup, build_channels, load_or_create_salt, same_source,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the engine could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("{0}")]
    Bind(String),
    #[error("cannot use the salt file: {0}")]
    Salt(std::io::Error),
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Listeners that could not be bound (the channel runs without its source until fixed).
    pub bind_errors: Vec<String>,
}

/// Loads every enabled channel in the configured folder.
pub fn load_channels(config: &EngineConfig) -> Result<Vec<ChannelConfig>, ConfigErrors> {
    let (channels, errors) = load_channel_dir(&config.channels);
    if errors.is_empty() {
        Ok(channels.into_iter().filter(|c| c.enabled).collect())
    } else {
        Err(ConfigErrors(errors))
    }
}

struct LiveSource {
    spec: ConnectorSpec,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct LiveChannel {
    handle: ChannelHandle,
    fingerprint: u64,
    source: Option<LiveSource>,
    workers: Vec<(CancellationToken, JoinHandle<()>)>,
}

/// A started engine: every listener bound, every worker running.
pub struct RunningEngine {
    pub store: Arc<dyn Store>,
    config: EngineConfig,
    salt: String,
    channels: HashMap<String, LiveChannel>,
    directory: ChannelDirectory,
    shutdown: CancellationToken,
    worker_root: CancellationToken,
    /// Workers of changed or removed channels, finishing their last batch.
    retired: Vec<JoinHandle<()>>,
    operations: operations::OperationsState,
    settings: WorkerSettings,
    ack_ids: Arc<AckIds>,
    writer: Option<WriterHandle>,
    writer_task: JoinHandle<()>,
    grace: Duration,
}

impl RunningEngine {
    /// Starts everything. Returns only when every listener is bound (so the caller may report
    /// readiness) or with the reason it could not.
    pub async fn start(
        config: &EngineConfig,
        channels: Vec<ChannelConfig>,
        factory: &dyn ConnectorFactory,
        shutdown: CancellationToken,
    ) -> Result<Self, EngineError> {
        let salt = load_or_create_salt(&config.salt_file).map_err(EngineError::Salt)?;
        let scripts = ScriptSetup::load(config, &salt)
            .map_err(|e| EngineError::Config(ConfigErrors(vec![e])))?;
        let store = store::open(&config.store.url, config.store.pool_size).await?;
        let directory = ChannelDirectory::default();
        let cx = ConnectorContext {
            channels: directory.clone(),
            store: Some(store.clone()),
        };
        let built = build_channels(config, channels, &scripts, factory, &cx)
            .map_err(EngineError::Config)?;
        let settings = WorkerSettings {
            lease: Duration::from_secs(config.delivery.lease_secs.max(1)),
            batch: config.delivery.batch.max(1),
            send_timeout: Duration::from_secs(config.delivery.send_timeout_secs.max(1)),
            idle_poll: Duration::from_millis(config.delivery.idle_poll_ms.max(10)),
            ..WorkerSettings::default()
        };
        if let Err(error) = store.release_leases(&settings.owner).await {
            // Not fatal: leases also expire on their own. A read-only store fails here first.
            tracing::warn!(%error, "cannot release old delivery leases");
        }
        let (writer, writer_task) = StoreWriter::spawn(
            store.clone(),
            config.store.max_batch,
            config.store.max_batch * 4,
        );
        let mut engine = Self {
            store,
            config: config.clone(),
            salt,
            channels: HashMap::new(),
            directory,
            shutdown,
            worker_root: CancellationToken::new(),
            retired: Vec::new(),
            operations: Default::default(),
            settings,
            ack_ids: Arc::new(AckIds::default()),
            writer: Some(writer),
            writer_task,
            grace: Duration::from_millis(config.shutdown_grace_ms),
        };
        let mut bind_errors = Vec::new();
        for channel in built {
            let name = channel.config.name.clone();
            if let Err(e) = engine.activate(channel).await {
                bind_errors.push(format!("channel {name}: {e}"));
            }
        }
        if !bind_errors.is_empty() {
            engine.shutdown.cancel();
            engine.wait().await;
            return Err(EngineError::Bind(bind_errors.join("\n")));
        }
        tracing::info!(channels = engine.channels.len(), store = %redact_url(&config.store.url), "engine started");
        Ok(engine)
    }

    /// Names of the running channels.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.channels.keys().cloned().collect();
        names.sort();
        names
    }

    /// The handle of a running channel (tests, the admin API).
    pub fn channel(&self, name: &str) -> Option<ChannelHandle> {
        self.channels.get(name).map(|c| c.handle.clone())
    }

    fn inner_for(
        &self,
        config: &ChannelConfig,
        destinations: &[BuiltDestination],
        pipeline: ChannelPipeline,
    ) -> (ChannelInner, Vec<DeliveryWorker>) {
        let writer = self
            .writer
            .clone()
            .expect("writer lives as long as the engine runs");
        let mut slots = Vec::new();
        let mut workers = Vec::new();
        for dest in destinations {
            let wake = Arc::new(Notify::new());
            let name: Arc<str> = Arc::from(dest.config.name.as_str());
            slots.push(DestinationSlot {
                name: name.clone(),
                wake: wake.clone(),
                ordering_key: dest.config.ordering_key.clone(),
            });
            workers.push(DeliveryWorker {
                channel: Arc::from(config.name.as_str()),
                name,
                destination: dest.destination.clone(),
                scripts: dest.scripts.clone(),
                retry: dest.config.retry.clone(),
                order: match (&dest.config.ordering_key, dest.config.ordered) {
                    (Some(_), _) => ClaimOrder::ByKey,
                    (None, true) => ClaimOrder::Fifo,
                    (None, false) => ClaimOrder::Unordered,
                },
                max_in_flight: dest.config.max_in_flight as usize,
                store: self.store.clone(),
                writer: writer.clone(),
                wake,
                settings: self.settings.clone(),
            });
        }
        let inner = ChannelInner {
            name: Arc::from(config.name.as_str()),
            pipeline,
            destinations: slots,
            writer,
            ack_ids: self.ack_ids.clone(),
        };
        (inner, workers)
    }

    fn spawn_workers(
        &self,
        workers: Vec<DeliveryWorker>,
    ) -> Vec<(CancellationToken, JoinHandle<()>)> {
        workers
            .into_iter()
            .map(|worker| {
                let stop = self.worker_root.child_token();
                let task = tokio::spawn(worker.run(stop.clone()));
                (stop, task)
            })
            .collect()
    }

    async fn start_source(
        &self,
        handle: &ChannelHandle,
        spec: ConnectorSpec,
        mut source: Box<dyn Source>,
    ) -> Result<LiveSource, String> {
        source.bind().await.map_err(|e| e.to_string())?;
        let stop = self.shutdown.child_token();
        let cx = SourceContext {
            channel: handle.clone(),
            shutdown: stop.clone(),
            tracker: tokio_util::task::TaskTracker::new(),
        };
        let name = handle.name().to_string();
        let task = tokio::spawn(async move {
            if let Err(error) = source.run(cx).await {
                tracing::error!(channel = %name, %error, "source stopped with an error");
            }
        });
        Ok(LiveSource { spec, stop, task })
    }

    /// Starts a channel that is not running yet.
    async fn activate(&mut self, built: BuiltChannel) -> Result<(), String> {
        let BuiltChannel {
            config,
            fingerprint,
            pipeline,
            source,
            destinations,
        } = built;
        let (inner, workers) = self.inner_for(&config, &destinations, pipeline);
        let handle = ChannelHandle::new(inner);
        self.directory.insert(handle.clone());
        let live_source = self
            .start_source(&handle, config.source.clone(), source)
            .await?;
        let workers = self.spawn_workers(workers);
        self.channels.insert(
            config.name.clone(),
            LiveChannel {
                handle,
                fingerprint,
                source: Some(live_source),
                workers,
            },
        );
        Ok(())
    }

    /// Loads the channel folder again and applies what changed. On any configuration problem
    /// the running set is left exactly as it was and the problems are returned.
    pub async fn reload(
        &mut self,
        factory: &dyn ConnectorFactory,
    ) -> Result<ReloadReport, ConfigErrors> {
        let channels = load_channels(&self.config)?;
        let scripts =
            ScriptSetup::load(&self.config, &self.salt).map_err(|e| ConfigErrors(vec![e]))?;
        let cx = ConnectorContext {
            channels: self.directory.clone(),
            store: Some(self.store.clone()),
        };
        let built = build_channels(&self.config, channels, &scripts, factory, &cx)?;
        let mut report = ReloadReport::default();
        let keep: Vec<String> = built.iter().map(|b| b.config.name.clone()).collect();

        // Stop what goes away first, so its port is free for whoever takes it over.
        let gone: Vec<String> = self
            .channels
            .keys()
            .filter(|n| !keep.contains(n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(channel) = self.channels.remove(&name) {
                self.directory.remove(&name);
                let workers = stop_channel(channel).await;
                self.retired.extend(workers);
                report.removed.push(name);
            }
        }
        let mut pending_sources = Vec::new();
        let mut fresh = Vec::new();
        for built in built {
            let name = built.config.name.clone();
            let Some(live) = self.channels.get(&name) else {
                fresh.push(built);
                continue;
            };
            if live.fingerprint == built.fingerprint {
                report.unchanged += 1;
                continue;
            }
            let BuiltChannel {
                config,
                fingerprint,
                pipeline,
                source,
                destinations,
            } = built;
            let (inner, workers) = self.inner_for(&config, &destinations, pipeline);
            let spawned = self.spawn_workers(workers);
            let Some(live) = self.channels.get_mut(&name) else {
                continue;
            };
            // Old workers finish their batch and stop; leases keep the new ones from passing them.
            let old = std::mem::replace(&mut live.workers, spawned);
            for (stop, task) in old {
                stop.cancel();
                self.retired.push(task);
            }
            self.retired.retain(|t| !t.is_finished());
            let Some(live) = self.channels.get_mut(&name) else {
                continue;
            };
            live.handle.replace(inner);
            live.fingerprint = fingerprint;
            let rebind = live
                .source
                .as_ref()
                .is_none_or(|s| !same_source(&s.spec, &config.source));
            if rebind {
                if let Some(old) = live.source.take() {
                    old.stop.cancel();
                    let _ = old.task.await;
                }
                pending_sources.push((name.clone(), config.source.clone(), source));
            }
            report.changed.push(name);
        }
        for (name, spec, source) in pending_sources {
            let Some(handle) = self.channels.get(&name).map(|c| c.handle.clone()) else {
                continue;
            };
            match self.start_source(&handle, spec, source).await {
                Ok(live_source) => {
                    if let Some(live) = self.channels.get_mut(&name) {
                        live.source = Some(live_source);
                    }
                }
                Err(e) => report.bind_errors.push(format!("channel {name}: {e}")),
            }
        }
        for built in fresh {
            let name = built.config.name.clone();
            match self.activate(built).await {
                Ok(()) => report.added.push(name),
                Err(e) => report.bind_errors.push(format!("channel {name}: {e}")),
            }
        }
        Ok(report)
    }

    /// Waits for the sources to stop (after the shutdown token fires), then stops the workers
    /// within the grace period and lets the writer finish its last batch.
    pub async fn wait(mut self) {
        self.shutdown.cancel();
        let mut workers = Vec::new();
        for (_, channel) in self.channels.drain() {
            if let Some(source) = channel.source {
                let _ = source.task.await;
            }
            workers.extend(channel.workers.into_iter().map(|(_, task)| task));
        }
        workers.append(&mut self.retired);
        self.worker_root.cancel();
        let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
        let all = futures::future::join_all(workers);
        if tokio::time::timeout(self.grace, all).await.is_err() {
            tracing::warn!(grace = ?self.grace, "delivery workers did not finish in the grace period; their deliveries will be retried");
            // A send still in progress is abandoned: its delivery is not recorded as sent, so
            // it is sent again after the restart (at least once).
            for abort in aborts {
                abort.abort();
            }
        }
        // The last handles to the writer live in the channels: drop them so it can finish.
        self.directory.clear();
        self.writer.take();
        let _ = self.writer_task.await;
        tracing::info!("engine stopped");
    }
}

/// Stops a channel's source (waiting for its in-flight messages) and signals its workers;
/// returns the workers' tasks, which finish their current batch.
async fn stop_channel(channel: LiveChannel) -> Vec<JoinHandle<()>> {
    if let Some(source) = channel.source {
        source.stop.cancel();
        let _ = source.task.await;
    }
    channel
        .workers
        .into_iter()
        .map(|(stop, task)| {
            stop.cancel();
            task
        })
        .collect()
}

/// Hides a password in a store URL before it is logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://medway:secret@db/medway"),
            "postgres://medway:***@db/medway"
        );
        assert_eq!(
            redact_url("sqlite://data/medway.db"),
            "sqlite://data/medway.db"
        );
    }
}
