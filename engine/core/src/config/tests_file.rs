//! `[[test]]` cases in a channel file, run by `medway test-channel` without sockets or a store.
//!
//! ```toml
//! [[test]]
//! name = "drops training messages"
//! input = "samples/adt-a01-training.hl7"   # relative to the channel file; or `message = """…"""`
//! expect = "filtered"                       # accepted | filtered | error
//! ack = "AA"                                # the ACK code the sender would get
//! values = { "PID-5.1" = "SMITH" }          # values after the channel's steps
//!                                           # (JSON input: JSON pointers, `"/status" = "final"`)
//! destinations = ["archive"]                # destinations chosen
//! output = { archive = """MSH|…""" }        # exact output per destination (or output_file)
//! ```
//! Inline messages may use line breaks between segments; they become CR.

use super::error::{ConfigError, line_col};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The status a test expects the message to be stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    Accepted,
    Filtered,
    Error,
}

impl Expectation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Filtered => "filtered",
            Self::Error => "error",
        }
    }
}

/// A message given inline or by file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestInput {
    Inline(String),
    File(PathBuf),
}

impl TestInput {
    /// The bytes of the message; inline text has its line breaks turned into CR.
    pub fn load(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Inline(text) => Ok(text
                .trim_matches('\n')
                .replace("\r\n", "\r")
                .replace('\n', "\r")
                .into_bytes()),
            Self::File(path) => std::fs::read(path),
        }
    }
}

/// One test case, checked and with file paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelTest {
    pub name: String,
    pub input: TestInput,
    pub expect: Option<Expectation>,
    pub ack: Option<String>,
    pub values: Vec<(String, String)>,
    pub destinations: Option<Vec<String>>,
    pub outputs: Vec<(String, TestInput)>,
    /// Where the `[[test]]` table starts, for reports.
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestFile {
    name: String,
    input: Option<String>,
    message: Option<String>,
    expect: Option<String>,
    ack: Option<String>,
    #[serde(default)]
    values: BTreeMap<String, String>,
    destinations: Option<Vec<String>>,
    #[serde(default)]
    output: BTreeMap<String, String>,
    #[serde(default)]
    output_file: BTreeMap<String, String>,
}

impl TestFile {
    pub(super) fn check(
        self,
        file: &Path,
        text: &str,
        offset: usize,
    ) -> Result<ChannelTest, ConfigError> {
        let at = |message: String| ConfigError::at_offset(file, text, offset, message);
        let base = file.parent().unwrap_or(Path::new("."));
        let input = match (self.input, self.message) {
            (Some(path), None) => TestInput::File(base.join(path)),
            (None, Some(message)) => TestInput::Inline(message),
            _ => {
                return Err(at(format!(
                    "test {:?} needs exactly one of `input` (a file) or `message` (inline)",
                    self.name
                )));
            }
        };
        if let TestInput::File(path) = &input
            && !path.is_file()
        {
            return Err(at(format!(
                "test {:?}: input file {} not found",
                self.name,
                path.display()
            ))
            .with_hint("`input` is relative to the channel file's folder"));
        }
        let expect = match self.expect.as_deref() {
            None => None,
            Some("accepted") => Some(Expectation::Accepted),
            Some("filtered") => Some(Expectation::Filtered),
            Some("error") => Some(Expectation::Error),
            Some(other) => {
                return Err(at(format!("unknown expectation {other:?}"))
                    .with_hint("expect = \"accepted\", \"filtered\" or \"error\""));
            }
        };
        if let Some(ack) = &self.ack
            && !["AA", "AE", "AR", "CA", "CE", "CR"].contains(&ack.as_str())
        {
            return Err(
                at(format!("unknown ACK code {ack:?}")).with_hint("AA, AE, AR, CA, CE or CR")
            );
        }
        // `/a/b/0` is a JSON pointer, for a JSON input.
        if let Some(path) = self
            .values
            .keys()
            .find(|p| !p.starts_with('/') && !super::looks_like_path(p))
        {
            return Err(at(format!("bad HL7 path {path:?} in `values`"))
                .with_hint("an HL7 path (PID-5.1), or a JSON pointer (/status) for JSON input"));
        }
        let mut outputs: Vec<(String, TestInput)> = self
            .output
            .into_iter()
            .map(|(d, text)| (d, TestInput::Inline(text)))
            .collect();
        for (destination, path) in self.output_file {
            if outputs.iter().any(|(d, _)| *d == destination) {
                return Err(at(format!(
                    "destination {destination:?} has both `output` and `output_file`"
                )));
            }
            let path = base.join(path);
            if !path.is_file() {
                return Err(at(format!(
                    "test {:?}: expected output file {} not found",
                    self.name,
                    path.display()
                ))
                .with_hint("`output_file` paths are relative to the channel file's folder"));
            }
            outputs.push((destination, TestInput::File(path)));
        }
        Ok(ChannelTest {
            name: self.name,
            input,
            expect,
            ack: self.ack,
            values: self.values.into_iter().collect(),
            destinations: self.destinations,
            outputs,
            line: line_col(text, offset).0,
        })
    }
}
