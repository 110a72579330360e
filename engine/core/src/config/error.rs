//! Configuration errors that point at the exact place in the exact file.

use std::fmt;
use std::path::{Path, PathBuf};

/// One configuration problem: `file:line:col: message` plus an optional hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(file: &Path, line: usize, col: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
            hint: None,
        }
    }

    /// An error at byte `offset` of `text` (the file's contents).
    pub fn at_offset(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, col) = line_col(text, offset);
        Self::new(file, line, col, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found while loading a set of files (loading does not stop at the first).
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A connector's complaint about its own settings, before it is located in the file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    pub message: String,
    /// The offending key, when known, so the loader can point at its line.
    pub key: Option<String>,
    pub hint: Option<String>,
}

impl SettingsError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            key: None,
            hint: None,
        }
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Converts a serde error from a connector's `deny_unknown_fields` settings struct, extracting
    /// the unknown key and suggesting the closest valid one.
    pub fn from_serde(error: &impl fmt::Display) -> Self {
        let message = error.to_string().trim().to_string();
        let mut out = Self::new(message.clone());
        if let Some((key, hint)) = unknown_field_hint(&message) {
            out.key = Some(key);
            out.hint = hint;
        } else if let Some(rest) = message.strip_prefix("missing field `")
            && let Some((key, _)) = rest.split_once('`')
        {
            out.hint = Some(format!("add `{key} = …` to this table"));
        }
        out
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the key, and a `did you mean`
/// hint naming the closest expected key (or `fallback` candidates when none are listed).
pub fn unknown_field_hint(message: &str) -> Option<(String, Option<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let hint = closest(key, &candidates).map(|best| format!("did you mean `{best}`?"));
    Some((key.to_string(), hint))
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
    }

    #[test]
    fn unknown_field_gets_a_suggestion() {
        let e = SettingsError::from_serde(
            &"unknown field `listn`, expected one of `listen`, `max_connections`",
        );
        assert_eq!(e.key.as_deref(), Some("listn"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `listen`?"));
    }

    #[test]
    fn closest_ignores_far_words() {
        assert_eq!(closest("zzzzzz", &["listen"]), None);
    }
}
