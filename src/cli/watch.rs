//! Watches the channel, script and map folders and says "something changed", debounced.
//!
//! Editors save by writing a temporary file and renaming it, so folders are watched, not files.
//! Only changes count (create, modify, remove, rename): reading a file — which every reload does
//! — must not trigger another reload. Hidden files and editor backups (`.x`, `x~`, `.swp`) are
//! ignored.

use notify::event::EventKind;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps the watcher alive; dropping it stops watching.
pub struct FolderWatch {
    _watcher: RecommendedWatcher,
}

/// Quiet time after the last change before a reload is requested.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Starts watching `folders` (those that exist); each burst of changes sends one `()`.
pub fn watch(folders: &[PathBuf]) -> anyhow::Result<(FolderWatch, mpsc::Receiver<()>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if is_change(&event.kind) && event.paths.iter().any(|p| relevant(p)) => {
                let _ = raw_tx.send(());
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "folder watch error"),
        })?;
    for folder in folders {
        if folder.is_dir() {
            watcher.watch(folder, RecursiveMode::Recursive)?;
        }
    }
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Wait until the changes stop for DEBOUNCE, then ask for one reload.
            loop {
                match tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            // A full channel already means "reload pending": nothing is lost by dropping this.
            let _ = tx.try_send(());
        }
    });
    Ok((FolderWatch { _watcher: watcher }, rx))
}

fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    )
}

fn relevant(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.') && !n.ends_with('~') && !n.ends_with(".swp"))
}
