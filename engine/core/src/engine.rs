//! Wiring: open the store, start the writer, build every channel from its file, bind every
//! listener, start the delivery workers, and shut all of it down in the right order.
//!
//! Shutdown order (one cancellation token from the binary): sources stop accepting and finish
//! their in-flight messages (each still gets its reply); then delivery workers finish the send
//! in hand within the grace period; then the last writer handle is dropped and the writer
//! commits its last batch and stops.

use crate::channel::{AckIds, ChannelHandle, ChannelRules, DestinationSlot};
use crate::config::{ChannelConfig, ConfigError, ConfigErrors, EngineConfig, load_channel_dir};
use crate::connector::{ConnectorFactory, Source, SourceContext};
use crate::delivery::{DeliveryWorker, WorkerSettings};
use crate::store::{self, Store, StoreError, StoreWriter, WriterHandle};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("{0}")]
    Bind(String),
}

/// A started engine: every listener bound, every worker running.
pub struct RunningEngine {
    pub store: Arc<dyn Store>,
    pub channels: Vec<ChannelHandle>,
    sources: Vec<JoinHandle<()>>,
    workers: TaskTracker,
    worker_stop: CancellationToken,
    writer: Option<WriterHandle>,
    writer_task: JoinHandle<()>,
    grace: Duration,
}

/// Loads and builds every enabled channel in the configured folder.
pub fn load_channels(config: &EngineConfig) -> Result<Vec<ChannelConfig>, ConfigErrors> {
    let (channels, errors) = load_channel_dir(&config.channels);
    if errors.is_empty() {
        Ok(channels.into_iter().filter(|c| c.enabled).collect())
    } else {
        Err(ConfigErrors(errors))
    }
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
        let store = store::open(&config.store.url, config.store.pool_size).await?;
        let settings = WorkerSettings::default();
        if let Err(error) = store.release_leases(&settings.owner).await {
            // Not fatal: leases also expire on their own. A read-only store fails here first.
            tracing::warn!(%error, "cannot release old delivery leases");
        }
        let (writer, writer_task) = StoreWriter::spawn(
            store.clone(),
            config.store.max_batch,
            config.store.max_batch * 4,
        );

        let mut errors: Vec<ConfigError> = Vec::new();
        let mut built: Vec<(ChannelHandle, Box<dyn Source>)> = Vec::new();
        let mut workers: Vec<DeliveryWorker> = Vec::new();
        for channel in &channels {
            let mut slots = Vec::new();
            for dest in &channel.destinations {
                match factory.destination(&channel.name, &dest.spec) {
                    Ok(destination) => {
                        let wake = Arc::new(Notify::new());
                        slots.push(DestinationSlot {
                            name: Arc::from(dest.name.as_str()),
                            wake: wake.clone(),
                        });
                        workers.push(DeliveryWorker {
                            channel: Arc::from(channel.name.as_str()),
                            name: Arc::from(dest.name.as_str()),
                            destination,
                            retry: dest.retry.clone(),
                            store: store.clone(),
                            writer: writer.clone(),
                            wake,
                            settings: settings.clone(),
                        });
                    }
                    Err(e) => errors.push(e),
                }
            }
            match factory.source(&channel.name, &channel.source) {
                Ok(source) => {
                    let handle = ChannelHandle::new(
                        &channel.name,
                        ChannelRules::from_config(channel),
                        slots,
                        writer.clone(),
                        AckIds::default(),
                    );
                    built.push((handle, source));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(EngineError::Config(ConfigErrors(errors)));
        }

        let mut bind_errors = Vec::new();
        for (handle, source) in &mut built {
            if let Err(e) = source.bind().await {
                bind_errors.push(format!("channel {}: {e}", handle.name()));
            }
        }
        if !bind_errors.is_empty() {
            return Err(EngineError::Bind(bind_errors.join("\n")));
        }

        let worker_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        for worker in workers {
            tracker.spawn(worker.run(worker_stop.clone()));
        }
        tracker.close();

        let mut sources = Vec::new();
        let mut handles = Vec::new();
        for (handle, source) in built {
            let cx = SourceContext {
                channel: handle.clone(),
                shutdown: shutdown.clone(),
                tracker: TaskTracker::new(),
            };
            let name = handle.name().to_string();
            sources.push(tokio::spawn(async move {
                if let Err(error) = source.run(cx).await {
                    tracing::error!(channel = %name, %error, "source stopped with an error");
                }
            }));
            handles.push(handle);
        }
        tracing::info!(channels = handles.len(), store = %redact_url(&config.store.url), "engine started");
        Ok(Self {
            store,
            channels: handles,
            sources,
            workers: tracker,
            worker_stop,
            writer: Some(writer),
            writer_task,
            grace: Duration::from_millis(config.shutdown_grace_ms),
        })
    }

    /// Waits for the sources to stop (after the shutdown token fires), then stops the workers
    /// within the grace period and lets the writer finish its last batch.
    pub async fn wait(mut self) {
        for source in self.sources.drain(..) {
            let _ = source.await;
        }
        self.worker_stop.cancel();
        if tokio::time::timeout(self.grace, self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.grace, "delivery workers did not finish in the grace period; their deliveries will be retried");
        }
        self.channels.clear();
        self.writer.take();
        let _ = self.writer_task.await;
        tracing::info!("engine stopped");
    }
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
