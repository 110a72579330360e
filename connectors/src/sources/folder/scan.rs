//! Finding complete files in the inbox.
//!
//! A file is a candidate when it is a regular file directly in the inbox, its name is not
//! hidden (`.x`) nor an in-progress name (`*.tmp`, `*.part`, `*.filepart`: writers write there
//! and rename when done), and its extension is one of the configured ones. A candidate is
//! **ready** once its size and modification time were seen unchanged for `stable` (a writer that
//! appends in place keeps moving one or the other). Ready files come out oldest first (mtime,
//! then name), so files are ingested in the order they arrived.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Names writers use while a file is still being written.
const IN_PROGRESS: &[&str] = &[".tmp", ".part", ".filepart"];

/// One file seen in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: OsString,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

/// True when a file with this name may be ingested (see the module docs).
pub fn wanted(name: &str, extensions: &[String]) -> bool {
    if name.starts_with('.') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if IN_PROGRESS.iter().any(|suffix| lower.ends_with(suffix)) {
        return false;
    }
    match lower.rsplit_once('.') {
        Some((stem, ext)) => !stem.is_empty() && extensions.iter().any(|e| *e == ext),
        None => false,
    }
}

/// Lists the candidates in `dir` (not recursive), oldest first. Blocking: run it off the
/// async workers.
pub fn list(dir: &Path, extensions: &[String]) -> std::io::Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !wanted(&name.to_string_lossy(), extensions) {
            continue;
        }
        // A file moved away between read_dir and stat is simply gone.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.push(Candidate {
            path: entry.path(),
            name,
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    out.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

#[derive(Debug)]
struct Seen {
    size: u64,
    modified: SystemTime,
    /// When this size and mtime were first seen.
    since: Instant,
    /// Do not retry before this (after a failure that may clear up by itself).
    hold_until: Option<Instant>,
}

/// Remembers what each candidate looked like, to tell complete files from growing ones.
#[derive(Debug)]
pub struct Stability {
    stable: Duration,
    seen: HashMap<OsString, Seen>,
}

/// The result of one look at the inbox.
#[derive(Debug, Default)]
pub struct Observation {
    /// Complete files, oldest first.
    pub ready: Vec<Candidate>,
    /// When the next file that is not ready yet may become ready.
    pub next_check: Option<Instant>,
}

impl Stability {
    pub fn new(stable: Duration) -> Self {
        Self {
            stable,
            seen: HashMap::new(),
        }
    }

    /// Records a fresh listing (files no longer listed are forgotten) and says which are ready.
    pub fn observe(&mut self, listing: Vec<Candidate>, now: Instant) -> Observation {
        let mut next = HashMap::with_capacity(listing.len());
        let mut observation = Observation::default();
        let mut later = |at: Instant| {
            observation.next_check = Some(observation.next_check.map_or(at, |n| n.min(at)));
        };
        let mut ready = Vec::new();
        for c in listing {
            let seen = match self.seen.remove(&c.name) {
                Some(s) if s.size == c.size && s.modified == c.modified => s,
                _ => Seen {
                    size: c.size,
                    modified: c.modified,
                    since: now,
                    hold_until: None,
                },
            };
            let stable_at = seen.since + self.stable;
            match seen.hold_until {
                Some(until) if until > now => later(until),
                _ if stable_at > now => later(stable_at),
                _ => ready.push(c.clone()),
            }
            next.insert(c.name, seen);
        }
        self.seen = next;
        observation.ready = ready;
        observation
    }

    /// Forgets a file (it was moved away, or changed and must be watched again from scratch).
    pub fn forget(&mut self, name: &OsString) {
        self.seen.remove(name);
    }

    /// Keeps a file out of the ready list until `until`.
    pub fn hold(&mut self, name: &OsString, until: Instant) {
        if let Some(seen) = self.seen.get_mut(name) {
            seen.hold_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exts() -> Vec<String> {
        vec!["hl7".into(), "txt".into(), "json".into()]
    }

    #[test]
    fn in_progress_hidden_and_foreign_names_are_skipped() {
        let e = exts();
        assert!(wanted("a.hl7", &e));
        assert!(wanted("A.HL7", &e));
        assert!(wanted("x.y.json", &e));
        for name in [
            ".a.hl7",
            "a.hl7.tmp",
            "a.hl7.part",
            "a.hl7.filepart",
            "a.HL7.TMP",
            "a.csv",
            "hl7",
            ".hl7",
            "a.reason",
        ] {
            assert!(!wanted(name, &e), "{name}");
        }
    }

    fn candidate(name: &str, size: u64, modified_secs: u64) -> Candidate {
        Candidate {
            name: name.into(),
            path: PathBuf::from(name),
            size,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(modified_secs),
        }
    }

    #[test]
    fn a_file_is_ready_only_after_it_stayed_the_same_for_the_stable_time() {
        let mut s = Stability::new(Duration::from_millis(500));
        let t0 = Instant::now();
        let first = s.observe(vec![candidate("a.hl7", 10, 1)], t0);
        assert!(first.ready.is_empty());
        assert_eq!(first.next_check, Some(t0 + Duration::from_millis(500)));
        // It grew: the clock starts again.
        let t1 = t0 + Duration::from_millis(400);
        assert!(
            s.observe(vec![candidate("a.hl7", 20, 2)], t1)
                .ready
                .is_empty()
        );
        let t2 = t0 + Duration::from_millis(800);
        assert!(
            s.observe(vec![candidate("a.hl7", 20, 2)], t2)
                .ready
                .is_empty()
        );
        let t3 = t1 + Duration::from_millis(500);
        let ready = s.observe(vec![candidate("a.hl7", 20, 2)], t3).ready;
        assert_eq!(ready.len(), 1);
    }

    #[test]
    fn held_files_wait_and_vanished_files_are_forgotten() {
        let mut s = Stability::new(Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(s.observe(vec![candidate("a.hl7", 1, 1)], t0).ready.len(), 1);
        s.hold(&"a.hl7".into(), t0 + Duration::from_secs(5));
        let held = s.observe(vec![candidate("a.hl7", 1, 1)], t0);
        assert!(held.ready.is_empty());
        assert_eq!(held.next_check, Some(t0 + Duration::from_secs(5)));
        s.observe(Vec::new(), t0);
        assert_eq!(s.observe(vec![candidate("a.hl7", 1, 1)], t0).ready.len(), 1);
    }

    #[test]
    fn listing_is_oldest_first_then_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let base = SystemTime::now();
        for (name, age) in [
            ("b.hl7", 30),
            ("a.hl7", 30),
            ("c.hl7", 60),
            ("skip.tmp", 90),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"MSH").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(base - Duration::from_secs(age)).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.hl7")).unwrap();
        let names: Vec<_> = list(dir.path(), &exts())
            .unwrap()
            .into_iter()
            .map(|c| c.name.into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["c.hl7", "a.hl7", "b.hl7"]);
    }
}
