//! Watches the channel, script and map folders and says "something changed" (debounced).
//! Editors save by writing a temporary file and renaming it, so folders are watched, not files.

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps the watcher alive; dropping it stops watching.
pub struct FolderWatch {
    _debouncer: Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
}

/// Starts watching `folders` (those that exist); each debounced burst of changes sends `()`.
pub fn watch(folders: &[PathBuf]) -> anyhow::Result<(FolderWatch, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let mut debouncer = new_debouncer(
        Duration::from_millis(300),
        move |events: DebounceEventResult| {
            let relevant = match events {
                Ok(events) => events.iter().any(|e| {
                    // Ignore editor swap files and hidden temporaries.
                    e.path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| {
                            !n.starts_with('.') && !n.ends_with('~') && !n.ends_with(".swp")
                        })
                }),
                Err(error) => {
                    tracing::warn!(%error, "folder watch error");
                    false
                }
            };
            if relevant {
                // A full channel already means "reload pending": nothing is lost by dropping this.
                let _ = tx.try_send(());
            }
        },
    )?;
    for folder in folders {
        if folder.is_dir() {
            debouncer
                .watcher()
                .watch(folder, RecursiveMode::Recursive)?;
        }
    }
    Ok((
        FolderWatch {
            _debouncer: debouncer,
        },
        rx,
    ))
}
