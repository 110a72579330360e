//! Where a file goes once it has been handled: `processed/` when every message in it has a
//! committed outcome, `error/` (with `<name>.reason` beside it) when it could not be ingested.
//!
//! Moves are atomic renames within one filesystem (the source refuses at start a `processed/`
//! or `error/` on another one), never overwrite (a clash adds `-1`, `-2`, …
//! before the extension), and both directories are fsynced afterwards so the move survives a
//! power cut. A crash before the move is harmless: the file is read again and the store
//! recognises every message by its origin.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Moves `file` into `dir`; returns its new path.
pub fn move_into(file: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let target = free_name(file, dir, None)?;
    std::fs::rename(file, &target)?;
    sync_parents(file, &target)?;
    Ok(target)
}

/// Writes `<name>.reason` into `dir`, then moves `file` beside it; returns the file's new path.
pub fn reject_into(file: &Path, dir: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let target = free_name(file, dir, Some("reason"))?;
    let reason_path = with_suffix(&target, "reason");
    let mut out = std::fs::File::create(&reason_path)?;
    out.write_all(reason.as_bytes())?;
    out.write_all(b"\n")?;
    out.sync_all()?;
    std::fs::rename(file, &target)?;
    sync_parents(file, &target)?;
    Ok(target)
}

/// `dir/<file name>`, or `dir/<stem>-N.<ext>` when taken (also when `<that>.<companion>` is).
fn free_name(file: &Path, dir: &Path, companion: Option<&str>) -> std::io::Result<PathBuf> {
    let name = file.file_name().unwrap_or(OsStr::new("file"));
    let taken = |p: &Path| p.exists() || companion.is_some_and(|c| with_suffix(p, c).exists());
    let plain = dir.join(name);
    if !taken(&plain) {
        return Ok(plain);
    }
    let stem = file
        .file_stem()
        .unwrap_or(name)
        .to_string_lossy()
        .into_owned();
    let ext = file.extension().map(|e| e.to_string_lossy().into_owned());
    for n in 1..10_000u32 {
        let candidate = match &ext {
            Some(ext) => dir.join(format!("{stem}-{n}.{ext}")),
            None => dir.join(format!("{stem}-{n}")),
        };
        if !taken(&candidate) {
            return Ok(candidate);
        }
    }
    Err(std::io::Error::other(format!(
        "no free name for {} in {}",
        name.to_string_lossy(),
        dir.display()
    )))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes the rename durable: the entry left one directory and appeared in another.
fn sync_parents(from: &Path, to: &Path) -> std::io::Result<()> {
    for path in [to, from] {
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_without_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("processed");
        std::fs::create_dir(&done).unwrap();
        for round in 0..3 {
            let file = dir.path().join("a.hl7");
            std::fs::write(&file, format!("round {round}")).unwrap();
            let moved = move_into(&file, &done).unwrap();
            assert!(!file.exists());
            assert_eq!(
                std::fs::read_to_string(&moved).unwrap(),
                format!("round {round}")
            );
        }
        let mut names: Vec<_> = std::fs::read_dir(&done)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["a-1.hl7", "a-2.hl7", "a.hl7"]);
    }

    #[test]
    fn rejected_files_get_a_reason_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let errors = dir.path().join("error");
        std::fs::create_dir(&errors).unwrap();
        // A stale reason alone also makes the name taken.
        std::fs::write(errors.join("b.txt.reason"), "old").unwrap();
        let file = dir.path().join("b.txt");
        std::fs::write(&file, "junk").unwrap();
        let moved = reject_into(&file, &errors, "not an HL7 v2 file").unwrap();
        assert_eq!(moved, errors.join("b-1.txt"));
        assert_eq!(
            std::fs::read_to_string(errors.join("b-1.txt.reason")).unwrap(),
            "not an HL7 v2 file\n"
        );
    }
}
