//! Runs the `[[test]]` cases of channel files: no sockets, no store, the same pipeline code the
//! running engine uses. Each case reports every mismatch as a readable expected/actual pair.

use crate::channel::{Verdict, ack_outcome};
use crate::config::{ChannelTest, Expectation, TestInput};
use crate::delivery::Prepared;
use crate::engine::build::BuiltChannel;
use bytes::Bytes;
use medway_hl7::Message;
use medway_hl7::ack::{self, Outcome};

/// The result of one test case.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub channel: String,
    pub name: String,
    pub location: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs every test of one built channel.
pub fn run_channel_tests(channel: &BuiltChannel) -> Vec<TestReport> {
    channel
        .config
        .tests
        .iter()
        .map(|test| TestReport {
            channel: channel.config.name.clone(),
            name: test.name.clone(),
            location: format!("{}:{}", channel.config.file.display(), test.line),
            failures: run_one(channel, test),
        })
        .collect()
}

fn run_one(channel: &BuiltChannel, test: &ChannelTest) -> Vec<String> {
    let mut failures = Vec::new();
    let input = match test.input.load() {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => return vec![format!("cannot read the input: {e}")],
    };
    if crate::channel::json::looks_like_json(&input) {
        return run_json_case(channel, test, &input);
    }
    let original = match Message::parse(input) {
        Ok(m) => m,
        Err(e) => {
            // An unparseable input is stored as error and answered AR.
            compare(
                &mut failures,
                "status",
                test.expect.map(Expectation::as_str),
                "error",
            );
            compare(&mut failures, "ack", test.ack.as_deref(), "AR");
            if failures.is_empty() && (!test.values.is_empty() || !test.outputs.is_empty()) {
                failures.push(format!(
                    "the input does not parse ({e}), so no values or outputs"
                ));
            }
            return failures;
        }
    };
    let processed = channel.pipeline.process(original.clone());
    let status = match &processed.verdict {
        Verdict::Accept => "accepted",
        Verdict::Filter => "filtered",
        Verdict::Invalid(_) | Verdict::Reject(_) => "error",
    };
    if let Verdict::Invalid(e) | Verdict::Reject(e) = &processed.verdict
        && test.expect != Some(Expectation::Error)
    {
        failures.push(format!("the message was refused: {}", e.text));
    }
    compare(
        &mut failures,
        "status",
        test.expect.map(Expectation::as_str),
        status,
    );
    let outcome = ack_outcome(&processed.verdict, ack::ack_mode(&original));
    let code = if ack::accept_ack_requested(&original, matches!(outcome, Outcome::Accept)) {
        let bytes = ack::build_ack(&original, &outcome, "TEST", "20000101000000");
        Message::parse(bytes)
            .ok()
            .and_then(|m| m.get("MSA-1").map(|c| c.into_owned()))
            .unwrap_or_else(|| "?".into())
    } else {
        "(no ACK requested)".into()
    };
    compare(&mut failures, "ack", test.ack.as_deref(), &code);
    for (path, expected) in &test.values {
        let actual = processed.message.get(path).map(|v| v.into_owned());
        if actual.as_deref() != Some(expected.as_str()) {
            failures.push(format!(
                "value {path}\n    expected: {expected:?}\n    actual:   {}",
                actual.map_or("(missing)".to_string(), |a| format!("{a:?}"))
            ));
        }
    }
    let routes: Vec<String> = processed.routes.iter().map(|r| r.to_string()).collect();
    if let Some(expected) = &test.destinations
        && *expected != routes
    {
        failures.push(format!(
            "destinations\n    expected: {expected:?}\n    actual:   {routes:?}"
        ));
    }
    let sent = processed.message.encode();
    for (destination, expected) in &test.outputs {
        let Some(built) = channel
            .destinations
            .iter()
            .find(|d| d.config.name == *destination)
        else {
            failures.push(format!("unknown destination {destination:?}"));
            continue;
        };
        if !routes.contains(destination) {
            failures.push(format!(
                "output {destination}: the message is not routed there"
            ));
            continue;
        }
        let expected = match expected.load() {
            Ok(bytes) => bytes,
            Err(e) => {
                failures.push(format!(
                    "output {destination}: cannot read the expected output: {e}"
                ));
                continue;
            }
        };
        let actual = match built.scripts.prepare(&sent) {
            Ok(Prepared::Send(bytes)) => bytes.to_vec(),
            Ok(Prepared::Skip(note)) => {
                failures.push(format!("output {destination}: {note}"));
                continue;
            }
            Err(reason) => {
                failures.push(format!("output {destination}: {reason}"));
                continue;
            }
        };
        if trim_end(&actual) != trim_end(&expected) {
            failures.push(format!(
                "output {destination} differs:\n{}",
                segment_diff(&expected, &actual)
            ));
        }
    }
    failures
}

/// A case whose input is a JSON document (`input = "samples/x.json"`): FHIR validation and the
/// steps as `submit` runs them. `values` keys are JSON pointers (`/status`,
/// `/code/coding/0/code`) into the document after the steps; a string member compares as its
/// text, anything else as its JSON. There is no ACK: a case that names one fails.
fn run_json_case(channel: &BuiltChannel, test: &ChannelTest, input: &[u8]) -> Vec<String> {
    let mut failures = Vec::new();
    let processed = crate::channel::json::process(&channel.pipeline, input);
    let status = match &processed.verdict {
        Verdict::Accept => "accepted",
        Verdict::Filter => "filtered",
        Verdict::Invalid(_) | Verdict::Reject(_) => "error",
    };
    if let Verdict::Invalid(e) | Verdict::Reject(e) = &processed.verdict
        && test.expect != Some(Expectation::Error)
    {
        failures.push(format!("the document was refused: {}", e.text));
    }
    compare(
        &mut failures,
        "status",
        test.expect.map(Expectation::as_str),
        status,
    );
    if let Some(ack) = &test.ack {
        failures.push(format!(
            "ack {ack}: a JSON document gets no HL7 acknowledgement"
        ));
    }
    let document = processed.document.unwrap_or_default();
    for (pointer, expected) in &test.values {
        let actual = document.pointer(pointer).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        if actual.as_deref() != Some(expected.as_str()) {
            failures.push(format!(
                "value {pointer}\n    expected: {expected:?}\n    actual:   {}",
                actual.map_or("(missing)".to_string(), |a| format!("{a:?}"))
            ));
        }
    }
    let routes: Vec<String> = processed.routes.iter().map(|r| r.to_string()).collect();
    if let Some(expected) = &test.destinations
        && *expected != routes
    {
        failures.push(format!(
            "destinations\n    expected: {expected:?}\n    actual:   {routes:?}"
        ));
    }
    let sent = processed
        .transformed
        .unwrap_or_else(|| Bytes::copy_from_slice(input));
    for (destination, expected) in &test.outputs {
        let Some(built) = channel
            .destinations
            .iter()
            .find(|d| d.config.name == *destination)
        else {
            failures.push(format!("unknown destination {destination:?}"));
            continue;
        };
        if !routes.contains(destination) {
            failures.push(format!(
                "output {destination}: the document is not routed there"
            ));
            continue;
        }
        let expected = match expected.load() {
            Ok(bytes) => bytes,
            Err(e) => {
                failures.push(format!(
                    "output {destination}: cannot read the expected output: {e}"
                ));
                continue;
            }
        };
        let actual = match built.scripts.prepare(&sent) {
            Ok(Prepared::Send(bytes)) => bytes,
            Ok(Prepared::Skip(note)) => {
                failures.push(format!("output {destination}: {note}"));
                continue;
            }
            Err(reason) => {
                failures.push(format!("output {destination}: {reason}"));
                continue;
            }
        };
        // Compared as JSON: member order and spacing do not matter.
        let parsed = |b: &[u8]| crate::channel::json::parse(b).ok();
        if parsed(&actual).is_none() || parsed(&actual) != parsed(&expected) {
            failures.push(format!(
                "output {destination} differs:\n    expected: {}\n    actual:   {}",
                String::from_utf8_lossy(trim_end(&expected)),
                String::from_utf8_lossy(trim_end(&actual))
            ));
        }
    }
    failures
}

fn compare(failures: &mut Vec<String>, what: &str, expected: Option<&str>, actual: &str) {
    if let Some(expected) = expected
        && expected != actual
    {
        failures.push(format!(
            "{what}\n    expected: {expected}\n    actual:   {actual}"
        ));
    }
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(0, |p| p + 1);
    &bytes[..end]
}

/// A segment-by-segment diff: `-` expected only, `+` actual only, unchanged lines omitted.
fn segment_diff(expected: &[u8], actual: &[u8]) -> String {
    let split = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .split(['\r', '\n'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (expected, actual) = (split(expected), split(actual));
    let mut out = Vec::new();
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) if e == a => {}
            (e, a) => {
                if let Some(e) = e {
                    out.push(format!("    - {e}"));
                }
                if let Some(a) = a {
                    out.push(format!("    + {a}"));
                }
            }
        }
    }
    out.join("\n")
}

/// Loads a test input for display (used by `medway test-channel --verbose`).
pub fn describe_input(input: &TestInput) -> String {
    match input {
        TestInput::Inline(_) => "inline message".into(),
        TestInput::File(path) => path.display().to_string(),
    }
}
