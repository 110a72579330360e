//! `FolderSource`: ingests files dropped into an inbox directory.
//!
//! ```toml
//! [source]
//! kind = "folder"
//! path = "inbox"                      # the inbox (created if missing)
//! extensions = ["hl7", "txt", "json"] # which files to take
//! processed_dir = "inbox/processed"   # default <path>/processed
//! error_dir = "inbox/error"           # default <path>/error (both on the inbox's filesystem)
//! stable_ms = 1000                    # unchanged for this long = complete (>= 100)
//! mode = "notify"                     # or "poll" (network mounts); notify also polls
//! poll_interval_ms = 1000
//! max_file_bytes = 67108864
//! max_files_per_scan = 100
//! ```
//!
//! **Completeness.** Writers should write `x.hl7.tmp` (or `.part`, `.filepart`, or a dotfile)
//! and rename it when done; those names are never read. Independently, a file is taken only
//! after its size and mtime stayed the same for `stable_ms` (see `folder/scan.rs`), and it is
//! re-checked after reading, so a file still being appended to is never ingested early.
//!
//! **Exactly once.** A file may hold one HL7 v2 message, several (or an FHS/BHS batch), or one
//! JSON document (`folder/split.rs`). Each message is submitted with
//! `origin = "file:<name>:<mtime ns>:<sha256 of the file>:<index>"`; the store keeps one message
//! per origin and channel. So a file re-read after a crash is never stored twice, while the same
//! bytes dropped again later as a new file (a deliberate resend) are stored again. The file is moved to `processed/` only after every message in it has a committed
//! outcome; when it cannot be split at all, is too big, or the channel refused a message as
//! unparseable, it goes to `error/` with `<name>.reason` (the reason never quotes the file).
//! When the store is unavailable the file stays where it is and is retried (logged once).
//!
//! **Order.** One file at a time per channel, oldest first (mtime, then name), messages in file
//! order; at most `max_files_per_scan` files per look at the inbox. Files dropped while Medway
//! was down are found by the first scan. Shutdown finishes the file in hand, then stops.
//! Logs name files, never their contents.

mod disposal;
mod scan;
mod split;

use async_trait::async_trait;
use bytes::Bytes;
use medway_engine::channel::ReplyOutcome;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{Source, SourceContext, SourceError};
use medway_engine::message::Inbound;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How new files are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FolderMode {
    /// Filesystem notifications, plus a poll every `poll_interval_ms` as a safety net.
    #[default]
    Notify,
    /// Polling only: for network mounts, where notifications do not arrive.
    Poll,
}

/// `[source] kind = "folder"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderSettings {
    /// The inbox directory.
    pub path: PathBuf,
    /// File extensions to ingest (case-insensitive, without the dot).
    #[serde(default = "default_extensions")]
    pub extensions: Vec<String>,
    /// Where ingested files go; default `<path>/processed`.
    #[serde(default)]
    pub processed_dir: Option<PathBuf>,
    /// Where files that could not be ingested go; default `<path>/error`.
    #[serde(default)]
    pub error_dir: Option<PathBuf>,
    #[serde(default = "default_stable_ms")]
    pub stable_ms: u64,
    #[serde(default)]
    pub mode: FolderMode,
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    #[serde(default = "default_max_files_per_scan")]
    pub max_files_per_scan: usize,
}

fn default_extensions() -> Vec<String> {
    vec!["hl7".into(), "txt".into(), "json".into()]
}
fn default_stable_ms() -> u64 {
    1000
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_files_per_scan() -> usize {
    100
}

impl FolderSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let mut settings: Self = spec.parse()?;
        if settings.path.as_os_str().is_empty() {
            return Err(SettingsError::new("`path` must name the inbox directory")
                .key("path")
                .hint("e.g. path = \"/var/lib/medway/inbox\""));
        }
        settings.extensions = settings
            .extensions
            .iter()
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
            .collect();
        if settings.extensions.is_empty()
            || settings
                .extensions
                .iter()
                .any(|e| e.is_empty() || e.contains(['/', '.', '*']))
        {
            return Err(
                SettingsError::new("`extensions` must list plain file extensions")
                    .key("extensions")
                    .hint("e.g. extensions = [\"hl7\", \"txt\", \"json\"]"),
            );
        }
        for (key, dir) in [
            ("processed_dir", settings.processed()),
            ("error_dir", settings.errors()),
        ] {
            if dir == settings.path {
                return Err(SettingsError::new(format!(
                    "`{key}` must differ from the inbox `path`"
                ))
                .key(key)
                .hint("the default is a subfolder of the inbox"));
            }
        }
        // A writer that pauses mid-write for longer than this is read early; below 100 ms an
        // ordinary scheduling hiccup of the writer already looks like a complete file.
        if settings.stable_ms < MIN_STABLE_MS {
            return Err(SettingsError::new(format!(
                "`stable_ms` must be at least {MIN_STABLE_MS}"
            ))
            .key("stable_ms")
            .hint(
                "a file must stay unchanged this long before it is read; the default is 1000 \
                 (writers that rename a .tmp file when done are safe with any value)",
            ));
        }
        if settings.poll_interval_ms < 10 {
            return Err(SettingsError::new("`poll_interval_ms` must be at least 10")
                .key("poll_interval_ms"));
        }
        if settings.max_file_bytes == 0 || settings.max_files_per_scan == 0 {
            let key = if settings.max_file_bytes == 0 {
                "max_file_bytes"
            } else {
                "max_files_per_scan"
            };
            return Err(SettingsError::new(format!("`{key}` must be positive")).key(key));
        }
        Ok(settings)
    }

    /// The inbox as an absolute path with symlinks resolved (as far as it exists yet): two
    /// channels on one inbox would race for its files, so the registry refuses the second.
    pub fn canonical_inbox(&self) -> PathBuf {
        let absolute = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        // Resolve the longest existing ancestor (symlinks, `..`), then append the part not
        // created yet, with its `.` and `..` applied lexically (nothing there to resolve).
        let components: Vec<std::path::Component> = absolute.components().collect();
        for split in (1..=components.len()).rev() {
            let prefix: PathBuf = components[..split].iter().collect();
            if let Ok(mut real) = prefix.canonicalize() {
                for component in &components[split..] {
                    match component {
                        std::path::Component::ParentDir => {
                            real.pop();
                        }
                        std::path::Component::CurDir => {}
                        other => real.push(other.as_os_str()),
                    }
                }
                return real;
            }
        }
        absolute
    }

    pub fn processed(&self) -> PathBuf {
        self.processed_dir
            .clone()
            .unwrap_or_else(|| self.path.join("processed"))
    }

    pub fn errors(&self) -> PathBuf {
        self.error_dir
            .clone()
            .unwrap_or_else(|| self.path.join("error"))
    }
}

/// The smallest `stable_ms` accepted.
const MIN_STABLE_MS: u64 = 100;

/// How long a file that hit a possibly passing problem (unreadable, move failed) waits.
const HOLD: Duration = Duration::from_secs(30);

pub struct FolderSource {
    settings: FolderSettings,
}

impl FolderSource {
    pub fn new(settings: FolderSettings) -> Self {
        Self { settings }
    }
}

#[async_trait]
impl Source for FolderSource {
    /// Creates the inbox and its two subfolders, so a bad path is reported at start, and
    /// checks the subfolders are on the inbox's filesystem: files leave the inbox by an atomic
    /// rename, which fails (EXDEV) across filesystems, so such a setup would hold every file.
    async fn bind(&mut self) -> Result<(), SourceError> {
        let inbox = self.settings.path.clone();
        for dir in [
            inbox.clone(),
            self.settings.processed(),
            self.settings.errors(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| {
                SourceError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot create folder {}: {e}", dir.display()),
                ))
            })?;
        }
        for (key, dir) in [
            ("processed_dir", self.settings.processed()),
            ("error_dir", self.settings.errors()),
        ] {
            if !same_filesystem(&inbox, &dir)? {
                return Err(SourceError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "`{key}` {} is on another filesystem than the inbox {}; files are \
                         moved by rename, which only works within one filesystem",
                        dir.display(),
                        inbox.display()
                    ),
                )));
            }
        }
        Ok(())
    }

    async fn run(mut self: Box<Self>, cx: SourceContext) -> Result<(), SourceError> {
        self.bind().await?;
        let channel = cx.channel.name().to_string();
        let settings = Arc::new(self.settings);
        let wake = Arc::new(Notify::new());
        // Dropped (and so stopped) when this function returns.
        let _watcher = match settings.mode {
            FolderMode::Notify => watch(&settings.path, wake.clone())
                .inspect_err(|error| {
                    tracing::warn!(channel, path = %settings.path.display(), %error,
                        "cannot watch the inbox; polling only");
                })
                .ok(),
            FolderMode::Poll => None,
        };
        tracing::info!(channel, path = %settings.path.display(), mode = ?settings.mode, "folder source ready");
        let mut ingest = Ingest {
            cx: &cx,
            channel: &channel,
            settings: &settings,
            store_down: false,
        };
        let mut stability = scan::Stability::new(Duration::from_millis(settings.stable_ms));
        let poll = Duration::from_millis(settings.poll_interval_ms);
        let mut listing_failed = false;
        while !cx.shutdown.is_cancelled() {
            let listing = {
                let (dir, exts) = (settings.path.clone(), settings.extensions.clone());
                tokio::task::spawn_blocking(move || scan::list(&dir, &exts)).await
            };
            let listing = match listing {
                Ok(Ok(listing)) => {
                    listing_failed = false;
                    listing
                }
                Ok(Err(error)) => {
                    if !listing_failed {
                        tracing::error!(channel, path = %settings.path.display(), %error, "cannot list the inbox; retrying");
                    }
                    listing_failed = true;
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            let now = Instant::now();
            let seen = stability.observe(listing, now);
            let mut more = seen.ready.len() > settings.max_files_per_scan;
            let mut next_check = seen.next_check;
            for file in seen.ready.into_iter().take(settings.max_files_per_scan) {
                if cx.shutdown.is_cancelled() {
                    break;
                }
                match ingest.file(&file).await {
                    Handled::Done | Handled::Changed => stability.forget(&file.name),
                    Handled::Hold(wait) => {
                        // This file's own problem: the files after it go on.
                        let until = Instant::now() + wait;
                        stability.hold(&file.name, until);
                        next_check = Some(next_check.map_or(until, |n| n.min(until)));
                    }
                    Handled::StoreDown => {
                        // Every file waits, this one first: files are ingested in order.
                        next_check = Some(Instant::now() + poll);
                        more = false;
                        break;
                    }
                }
            }
            let wait = if more {
                Duration::ZERO
            } else {
                next_check
                    .map(|at| at.saturating_duration_since(Instant::now()))
                    .unwrap_or(poll)
                    .min(poll)
            };
            tokio::select! {
                _ = cx.shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!(channel, "folder source stopped");
        Ok(())
    }
}

/// Whether two existing directories are on one filesystem (device).
#[cfg(unix)]
fn same_filesystem(a: &Path, b: &Path) -> Result<bool, SourceError> {
    use std::os::unix::fs::MetadataExt;
    let device = |p: &Path| {
        std::fs::metadata(p).map(|m| m.dev()).map_err(|e| {
            SourceError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot inspect folder {}: {e}", p.display()),
            ))
        })
    };
    Ok(device(a)? == device(b)?)
}

/// Elsewhere a failed rename is logged and retried.
#[cfg(not(unix))]
fn same_filesystem(_: &Path, _: &Path) -> Result<bool, SourceError> {
    Ok(true)
}

/// Watches the inbox (not recursively); any event triggers a scan.
fn watch(path: &Path, wake: Arc<Notify>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            wake.notify_one();
        }
    })?;
    watcher.watch(path, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// What became of one file.
enum Handled {
    /// Moved to `processed/` or `error/`.
    Done,
    /// It changed while being read: watch it again from scratch.
    Changed,
    /// Left in place; try it again after this long (unreadable, move failed).
    Hold(Duration),
    /// Left in place: the store is unavailable. Retried first, before any later file.
    StoreDown,
}

/// Ingests one file at a time for one channel.
struct Ingest<'a> {
    cx: &'a SourceContext,
    channel: &'a str,
    settings: &'a FolderSettings,
    /// The store was unavailable last time (logged once, until it is back).
    store_down: bool,
}

impl Ingest<'_> {
    async fn file(&mut self, file: &scan::Candidate) -> Handled {
        let channel = self.channel;
        let name = file.name.to_string_lossy().into_owned();
        if file.size > self.settings.max_file_bytes {
            let reason = format!(
                "the file is {} bytes, more than max_file_bytes = {}",
                file.size, self.settings.max_file_bytes
            );
            return self.reject(file, &name, reason).await;
        }
        let read = {
            let path = file.path.clone();
            let expected = file.clone();
            tokio::task::spawn_blocking(move || read_unchanged(&path, &expected)).await
        };
        let prepared = match read {
            Ok(Ok(Some(bytes))) => tokio::task::spawn_blocking(move || split::prepare(bytes)).await,
            Ok(Ok(None)) => {
                tracing::debug!(channel, file = %name, "file changed while being read; waiting for it to settle");
                return Handled::Changed;
            }
            Ok(Err(error)) => {
                tracing::warn!(channel, file = %name, %error, "cannot read the file; will retry");
                return Handled::Hold(HOLD);
            }
            Err(error) => return Self::worker_failed(channel, &name, &error),
        };
        let prepared = match prepared {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(unreadable)) => return self.reject(file, &name, unreadable.0).await,
            Err(error) => return Self::worker_failed(channel, &name, &error),
        };
        let total = prepared.messages.len();
        let mut refused = Vec::new();
        for (index, message) in prepared.messages.iter().enumerate() {
            let reply = self
                .cx
                .channel
                .submit(Inbound {
                    origin: Some(prepared.origin(&name, file.modified, index)),
                    ..Inbound::new(message.clone())
                })
                .await;
            match reply.outcome {
                ReplyOutcome::Unavailable(_) => {
                    if !self.store_down {
                        tracing::error!(channel, file = %name, message = index + 1, total,
                            "store unavailable; the file stays in the inbox and is retried");
                    }
                    self.store_down = true;
                    return Handled::StoreDown;
                }
                ReplyOutcome::Rejected(_) => refused.push((index, reply.message_id)),
                ReplyOutcome::Accepted | ReplyOutcome::Filtered | ReplyOutcome::Invalid(_) => {}
            }
        }
        if self.store_down {
            tracing::info!(channel, "store available again; ingesting");
            self.store_down = false;
        }
        if !refused.is_empty() {
            let which: Vec<String> = refused
                .iter()
                .map(|(index, id)| match id {
                    Some(id) => format!("message {} (stored as message {id})", index + 1),
                    None => format!("message {}", index + 1),
                })
                .collect();
            let reason = format!(
                "the channel refused {} of {total} messages in this file: {}; \
                 see `medway messages show <id>` (the others were stored)",
                refused.len(),
                which.join(", ")
            );
            return self.reject(file, &name, reason).await;
        }
        let path = file.path.clone();
        let processed = self.settings.processed();
        match tokio::task::spawn_blocking(move || disposal::move_into(&path, &processed)).await {
            Ok(Ok(to)) => {
                tracing::info!(channel, file = %name, messages = total, moved_to = %to.display(), "file ingested");
                Handled::Done
            }
            Ok(Err(error)) => {
                tracing::error!(channel, file = %name, %error, "file ingested but cannot be moved to the processed folder; will retry (no duplicates)");
                Handled::Hold(HOLD)
            }
            Err(error) => Self::worker_failed(channel, &name, &error),
        }
    }

    /// A blocking file task panicked or was cancelled: say so, keep the file, retry later.
    fn worker_failed(channel: &str, name: &str, error: &tokio::task::JoinError) -> Handled {
        tracing::error!(channel, file = %name, %error, "file task failed; will retry");
        Handled::Hold(HOLD)
    }

    async fn reject(&self, file: &scan::Candidate, name: &str, reason: String) -> Handled {
        let channel = self.channel;
        tracing::warn!(channel, file = %name, %reason, "file not ingested; moving it to the error folder");
        let path = file.path.clone();
        let errors = self.settings.errors();
        match tokio::task::spawn_blocking(move || disposal::reject_into(&path, &errors, &reason))
            .await
        {
            Ok(Ok(_)) => Handled::Done,
            Ok(Err(error)) => {
                tracing::error!(channel, file = %name, %error, "cannot move the file to the error folder; will retry");
                Handled::Hold(HOLD)
            }
            Err(error) => Self::worker_failed(channel, name, &error),
        }
    }
}

/// Reads a file and checks it is still the one that was judged complete (same size and mtime
/// before and after reading). `None` when it changed.
fn read_unchanged(path: &Path, expected: &scan::Candidate) -> std::io::Result<Option<Bytes>> {
    let bytes = std::fs::read(path)?;
    let meta = std::fs::metadata(path)?;
    let same = bytes.len() as u64 == expected.size
        && meta.len() == expected.size
        && meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH) == expected.modified;
    Ok(same.then(|| Bytes::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<FolderSettings, SettingsError> {
        let table: toml::Table = toml::from_str(text).unwrap();
        FolderSettings::from_spec(&ConnectorSpec::inline("folder", table))
    }

    #[test]
    fn defaults_put_processed_and_error_inside_the_inbox() {
        let s = settings("path = \"in\"").unwrap();
        assert_eq!(s.extensions, ["hl7", "txt", "json"]);
        assert_eq!(s.processed(), Path::new("in/processed"));
        assert_eq!(s.errors(), Path::new("in/error"));
        assert_eq!((s.stable_ms, s.poll_interval_ms), (1000, 1000));
        assert_eq!(s.mode, FolderMode::Notify);
        assert_eq!(s.max_file_bytes, 64 * 1024 * 1024);
        let s = settings("path = \"in\"\nextensions = [\".HL7\"]\nmode = \"poll\"").unwrap();
        assert_eq!(s.extensions, ["hl7"]);
        assert_eq!(s.mode, FolderMode::Poll);
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (text, key) in [
            ("path = \"\"", "path"),
            ("path = \"in\"\nextensions = []", "extensions"),
            ("path = \"in\"\nextensions = [\"*.hl7\"]", "extensions"),
            ("path = \"in\"\nprocessed_dir = \"in\"", "processed_dir"),
            ("path = \"in\"\nerror_dir = \"in\"", "error_dir"),
            ("path = \"in\"\npoll_interval_ms = 0", "poll_interval_ms"),
            ("path = \"in\"\nstable_ms = 0", "stable_ms"),
            ("path = \"in\"\nstable_ms = 99", "stable_ms"),
            ("path = \"in\"\nmax_file_bytes = 0", "max_file_bytes"),
            (
                "path = \"in\"\nmax_files_per_scan = 0",
                "max_files_per_scan",
            ),
        ] {
            let error = settings(text).unwrap_err();
            assert_eq!(error.key.as_deref(), Some(key), "{text}: {}", error.message);
        }
        assert!(settings("path = \"in\"\nmode = \"inotify\"").is_err());
    }

    #[tokio::test]
    async fn bind_refuses_a_processed_dir_on_another_filesystem() {
        use std::os::unix::fs::MetadataExt;
        let here = tempfile::tempdir().unwrap();
        let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("skipped: no /dev/shm");
            return;
        };
        let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
        if dev(here.path()) == dev(shm.path()) {
            eprintln!("skipped: /dev/shm and the temp dir share a filesystem");
            return;
        }
        let inbox = here.path().join("in");
        let elsewhere = shm.path().join("done");
        for key in ["processed_dir", "error_dir"] {
            let text = format!(
                "path = {:?}\n{key} = {:?}",
                inbox.display().to_string(),
                elsewhere.display().to_string()
            );
            let mut source = FolderSource::new(settings(&text).unwrap());
            let error = source.bind().await.unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("`{key}` {}", elsewhere.display()))
                    && error.contains("another filesystem"),
                "{error}"
            );
        }
        // The same layout on one filesystem binds.
        let text = format!(
            "path = {:?}\nprocessed_dir = {:?}",
            inbox.display().to_string(),
            here.path().join("done").display().to_string()
        );
        FolderSource::new(settings(&text).unwrap())
            .bind()
            .await
            .unwrap();
    }

    #[test]
    fn the_canonical_inbox_resolves_links_and_missing_parts() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let canonical = |p: PathBuf| {
            let text = format!("path = {:?}", p.display().to_string());
            settings(&text).unwrap().canonical_inbox()
        };
        let base = real.canonicalize().unwrap();
        assert_eq!(canonical(dir.path().join("link")), base);
        assert_eq!(canonical(real.join("../real/.")), base);
        assert_eq!(
            canonical(dir.path().join("link/not/yet")),
            base.join("not/yet")
        );
        // `..` and `.` inside the part that does not exist yet.
        assert_eq!(
            canonical(dir.path().join("link/not/../yet/./")),
            base.join("yet")
        );
        assert_eq!(canonical(dir.path().join("link/not/..")), base);
    }
}
