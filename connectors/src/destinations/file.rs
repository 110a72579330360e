//! `FileWriter`: the file destination. One file per delivery, written atomically, so a reader
//! never sees half a message and a crash never leaves one. The file name comes from a template;
//! the default includes the delivery id, so a retried or re-sent delivery overwrites its own
//! file instead of duplicating it.
//!
//! Durability is per batch, not per file: `send` writes a hidden temporary file; `flush` (called
//! once per claimed batch, before anything is recorded as sent) makes every temporary file
//! durable, renames each into place, and makes the renames durable — two filesystem syncs per
//! batch instead of two fsyncs per message.

use async_trait::async_trait;
use medway_engine::config::{ConnectorSpec, SettingsError};
use medway_engine::connector::{DeliveryError, Destination, Response};
use medway_engine::message::Delivery;
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `[[destination]] kind = "file"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub directory: PathBuf,
    /// Placeholders: `{channel}`, `{destination}`, `{message_id}`, `{delivery_id}`,
    /// `{control_id}`, `{type}`.
    #[serde(default = "default_filename")]
    pub filename: String,
}

fn default_filename() -> String {
    "{channel}-{message_id}-{delivery_id}.hl7".to_string()
}

const PLACEHOLDERS: &[&str] = &[
    "channel",
    "destination",
    "message_id",
    "delivery_id",
    "control_id",
    "type",
];

impl FileSettings {
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, SettingsError> {
        let settings: Self = spec.parse()?;
        let mut rest = settings.filename.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err(SettingsError::new("unclosed `{` in filename").key("filename"));
            };
            let name = &rest[open + 1..open + close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(SettingsError::new(format!(
                    "unknown placeholder {{{name}}} in filename"
                ))
                .key("filename")
                .hint(format!("use one of: {}", PLACEHOLDERS.join(", "))));
            }
            rest = &rest[open + close + 1..];
        }
        if settings.filename.contains('/') {
            return Err(SettingsError::new("filename must not contain '/'").key("filename"));
        }
        Ok(settings)
    }
}

pub struct FileWriter {
    settings: FileSettings,
    /// Written but not yet renamed into place: (temporary path, final path).
    staged: Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl FileWriter {
    pub fn new(settings: FileSettings) -> Self {
        Self {
            settings,
            staged: Mutex::new(Vec::new()),
        }
    }

    fn file_name(&self, delivery: &Delivery) -> String {
        let control_id: String = delivery
            .control_id
            .as_deref()
            .unwrap_or("")
            .chars()
            .map(safe_char)
            .collect();
        let kind: String = delivery
            .message_type
            .as_deref()
            .unwrap_or("")
            .chars()
            .map(safe_char)
            .collect();
        self.settings
            .filename
            .replace("{channel}", &delivery.channel)
            .replace("{destination}", &delivery.destination)
            .replace("{message_id}", &delivery.message_id.to_string())
            .replace("{delivery_id}", &delivery.id.to_string())
            .replace("{control_id}", &control_id)
            .replace("{type}", &kind)
    }
}

fn safe_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
        c
    } else {
        '_'
    }
}

/// Writes `bytes` to a hidden temporary file beside `dir/name`; returns (temporary, final).
fn write_temporary(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.partial"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    Ok((temporary, dir.join(name)))
}

/// Makes the temporary files durable, renames them into place, and makes the renames durable.
fn commit_staged(dir: &Path, staged: &[(PathBuf, PathBuf)]) -> std::io::Result<()> {
    let folder = std::fs::File::open(dir)?;
    sync_filesystem(&folder, staged.iter().map(|(t, _)| t.as_path()))?;
    for (temporary, target) in staged {
        std::fs::rename(temporary, target)?;
    }
    folder.sync_all()
}

/// One `syncfs` on Linux (every file written since is durable); elsewhere, fsync each file.
#[cfg(target_os = "linux")]
fn sync_filesystem<'a>(
    folder: &std::fs::File,
    _files: impl Iterator<Item = &'a Path>,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `syncfs` only reads the descriptor, which `folder` keeps open for the call.
    if unsafe { libc::syncfs(folder.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_filesystem<'a>(
    _folder: &std::fs::File,
    files: impl Iterator<Item = &'a Path>,
) -> std::io::Result<()> {
    for file in files {
        std::fs::File::open(file)?.sync_all()?;
    }
    Ok(())
}

#[async_trait]
impl Destination for FileWriter {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let name = self.file_name(delivery);
        let dir = self.settings.directory.clone();
        let payload = delivery.payload.clone();
        let written = {
            let name = name.clone();
            tokio::task::spawn_blocking(move || write_temporary(&dir, &name, &payload)).await
        };
        match written {
            Ok(Ok(pair)) => {
                self.staged
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(pair);
                Ok(Response {
                    summary: format!("wrote {name}"),
                })
            }
            Ok(Err(error)) => Err(DeliveryError::later(format!(
                "cannot write {}: {error}",
                self.settings.directory.join(&name).display()
            ))),
            Err(error) => Err(DeliveryError::later(format!("writer task failed: {error}"))),
        }
    }

    async fn flush(&self) -> Result<(), DeliveryError> {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        if staged.is_empty() {
            return Ok(());
        }
        let dir = self.settings.directory.clone();
        match tokio::task::spawn_blocking(move || commit_staged(&dir, &staged)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(DeliveryError::later(format!(
                "cannot make files durable in {}: {error}",
                self.settings.directory.display()
            ))),
            Err(error) => Err(DeliveryError::later(format!("writer task failed: {error}"))),
        }
    }

    async fn check(&self) -> Result<(), DeliveryError> {
        std::fs::create_dir_all(&self.settings.directory).map_err(|e| {
            DeliveryError::later(format!(
                "cannot create {}: {e}",
                self.settings.directory.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            id: 7,
            message_id: 3,
            channel: "vitals".into(),
            destination: "archive".into(),
            attempts: 0,
            control_id: Some("VS/001".into()),
            message_type: Some("ORU^R01".into()),
            payload: bytes::Bytes::from_static(b"MSH|^~\\&|A\r"),
            received_at: 0,
            ordering_key: None,
        }
    }

    #[tokio::test]
    async fn writes_one_file_atomically_and_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let writer = FileWriter::new(FileSettings {
            directory: dir.path().to_path_buf(),
            filename: "{type}-{control_id}-{delivery_id}.hl7".into(),
        });
        writer.send(&delivery()).await.unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the hidden temporary"
        );
        writer.flush().await.unwrap();
        writer.send(&delivery()).await.unwrap();
        writer.flush().await.unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["ORU_R01-VS_001-7.hl7".to_string()]);
        let body = std::fs::read(dir.path().join(&names[0])).unwrap();
        assert_eq!(body, b"MSH|^~\\&|A\r");
    }

    #[test]
    fn unknown_placeholder_is_a_settings_error() {
        let mut table = toml::Table::new();
        table.insert("directory".into(), "out".into());
        table.insert("filename".into(), "{nope}.hl7".into());
        let e = FileSettings::from_spec(&ConnectorSpec::inline("file", table)).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("filename"));
    }
}
