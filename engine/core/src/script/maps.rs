//! Code maps: the translation tables scripts read with `lookup(map, code)`.
//!
//! A channel set has one folder of maps (`channels/maps/`). Each `NAME.csv` or `NAME.toml`
//! file is one map called `NAME` (the file stem). CSV: a header row, then one entry per line,
//! the first column the key and the second the value (further columns are ignored; fields may
//! be double-quoted with `""` for a quote; unquoted fields are trimmed; blank lines and lines
//! starting with `#` are skipped). TOML: one flat table of `key = "value"` strings. Keys match
//! exactly (case-sensitive).
//!
//! Invariants: maps are loaded once per channel set and read-only afterwards (shared through
//! an `Arc`); every load problem names `file:line`; a duplicate key or a second file with the
//! same map name is an error, never a silent overwrite. A missing folder is an empty set. This
//! module never panics on file content.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in one code-map file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeMapError {
    /// The map file.
    pub file: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CodeMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for CodeMapError {}

/// Every code map of a channel set, by name.
#[derive(Debug, Clone, Default)]
pub struct CodeMaps {
    maps: HashMap<String, HashMap<String, String>>,
}

impl CodeMaps {
    /// No maps at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads every `*.csv` and `*.toml` file of `dir` (not recursive; other files ignored).
    pub fn load_dir(dir: &Path) -> Result<CodeMaps, CodeMapError> {
        let dir_error = |message: String| CodeMapError {
            file: dir.to_path_buf(),
            line: None,
            message,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::empty()),
            Err(e) => return Err(dir_error(format!("cannot read the maps folder: {e}"))),
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| dir_error(format!("cannot list the maps folder: {e}")))?;
            let path = entry.path();
            let is_map = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("csv" | "toml")
            );
            if is_map && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut maps = CodeMaps::empty();
        let mut origin: HashMap<String, PathBuf> = HashMap::new();
        for file in files {
            let Some(name) = file.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            if let Some(first) = origin.get(&name) {
                return Err(CodeMapError {
                    file,
                    line: None,
                    message: format!("map {name:?} is already defined by {}", first.display()),
                });
            }
            let entries = load_file(&file)?;
            origin.insert(name.clone(), file);
            maps.maps.insert(name, entries);
        }
        Ok(maps)
    }

    /// Loads one map file (`.csv` or `.toml`) under the name `name`, replacing a map of that
    /// name. Useful for tests and tools.
    pub fn load_file(&mut self, name: &str, file: &Path) -> Result<(), CodeMapError> {
        let entries = load_file(file)?;
        self.maps.insert(name.to_owned(), entries);
        Ok(())
    }

    /// The value for `key` in map `map`.
    pub fn get(&self, map: &str, key: &str) -> Option<&str> {
        self.maps.get(map)?.get(key).map(String::as_str)
    }

    /// Whether a map of this name exists.
    pub fn contains_map(&self, map: &str) -> bool {
        self.maps.contains_key(map)
    }

    /// The map names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.maps.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

fn load_file(file: &Path) -> Result<HashMap<String, String>, CodeMapError> {
    let error = |line: Option<usize>, message: String| CodeMapError {
        file: file.to_path_buf(),
        line,
        message,
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| error(None, format!("cannot read: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let parsed = if file.extension().and_then(|e| e.to_str()) == Some("toml") {
        parse_toml(text)
    } else {
        parse_csv(text)
    };
    parsed.map_err(|(line, message)| error(line, message))
}

type LoadResult = Result<HashMap<String, String>, (Option<usize>, String)>;

fn insert_unique(
    entries: &mut HashMap<String, String>,
    lines: &mut HashMap<String, usize>,
    key: String,
    value: String,
    line: usize,
) -> Result<(), (Option<usize>, String)> {
    if let Some(first) = lines.get(&key) {
        return Err((
            Some(line),
            format!("duplicate key {key:?} (first on line {first})"),
        ));
    }
    lines.insert(key.clone(), line);
    entries.insert(key, value);
    Ok(())
}

fn parse_csv(text: &str) -> LoadResult {
    let mut entries = HashMap::new();
    let mut lines = HashMap::new();
    let mut header_seen = false;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv_line(line).map_err(|m| (Some(line_no), m))?;
        if !header_seen {
            header_seen = true;
            if fields.len() < 2 {
                return Err((
                    Some(line_no),
                    "the header row needs two columns (key,value)".into(),
                ));
            }
            continue;
        }
        let mut fields = fields.into_iter();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            return Err((Some(line_no), "expected two columns: key,value".into()));
        };
        insert_unique(&mut entries, &mut lines, key, value, line_no)?;
    }
    Ok(entries)
}

/// Splits one CSV line into fields (RFC 4180 quoting, no line breaks inside quotes).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("unexpected text after a quoted field".into()),
            }
        } else {
            let mut ended = true;
            for c in chars.by_ref() {
                if c == ',' {
                    ended = false;
                    break;
                }
                field.push(c);
            }
            fields.push(field.trim().to_owned());
            if ended {
                return Ok(fields);
            }
        }
    }
}

fn parse_toml(text: &str) -> LoadResult {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table: BTreeMap<String, toml::Spanned<toml::Value>> = toml::from_str(text)
        .map_err(|e| (e.span().map(|s| line_of(s.start)), e.message().to_owned()))?;
    let mut entries = HashMap::new();
    for (key, value) in table {
        let line = line_of(value.span().start);
        match value.into_inner() {
            toml::Value::String(s) => {
                entries.insert(key, s);
            }
            other => {
                return Err((
                    Some(line),
                    format!(
                        "value of {key:?} is a {}; a code map holds only strings (key = \"value\")",
                        other.type_str()
                    ),
                ));
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_trimming() {
        let map = parse_csv(
            "code,label\n 1 , one \n\"2,x\",\"say \"\"hi\"\"\"\n# note\n\n3,three,extra\n",
        )
        .unwrap();
        assert_eq!(map["1"], "one");
        assert_eq!(map["2,x"], "say \"hi\"");
        assert_eq!(map["3"], "three");
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert_eq!(parse_csv("k,v\na,1\na,2\n").unwrap_err().0, Some(3));
        assert_eq!(parse_csv("k,v\nonly\n").unwrap_err().0, Some(2));
        assert_eq!(parse_csv("k,v\n\"open,1\n").unwrap_err().0, Some(2));
    }

    #[test]
    fn toml_flat_strings_only() {
        let map = parse_toml("a = \"1\"\n\"b c\" = \"2\"\n").unwrap();
        assert_eq!(map["b c"], "2");
        let (line, message) = parse_toml("a = \"1\"\nb = 2\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(message.contains("integer"), "{message}");
        assert_eq!(parse_toml("a = \"1\"\nb = \n").unwrap_err().0, Some(2));
    }
}
