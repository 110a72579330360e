//! `medway test-channel`: the shipped example channels pass their `[[test]]` cases, and changing
//! one expectation makes the run fail with a readable expected/actual diff and exit code 1.

mod support;

use std::path::Path;
use support::*;

/// Copies a folder tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A temporary folder holding copies of the repo's `channels/` and `scripts/`.
fn repo_copy() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo.join("channels"), &dir.path().join("channels"));
    copy_dir(&repo.join("scripts"), &dir.path().join("scripts"));
    dir
}

/// Replaces exactly one occurrence of `from` in the file.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read");
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} should occur once in {}",
        file.display()
    );
    std::fs::write(file, text.replacen(from, to, 1)).expect("write");
}

/// Runs `medway test-channel ARGS` in `dir`: (exit code, stdout).
fn test_channel(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["test-channel"];
    all.extend_from_slice(args);
    let out = medway_in(dir, &all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `(passed, failed)` from the final `N passed, M failed` line.
fn totals(stdout: &str) -> (usize, usize) {
    let last = stdout.lines().last().expect("a summary line");
    let (passed, failed) = last
        .strip_suffix(" failed")
        .and_then(|s| s.split_once(" passed, "))
        .unwrap_or_else(|| panic!("summary line {last:?}; output:\n{stdout}"));
    (
        passed.parse().expect("passed"),
        failed.parse().expect("failed"),
    )
}

/// The lines of the report of the failing test `header` (up to the next `FAIL` or the summary).
fn failure_block<'a>(stdout: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = stdout.lines().skip_while(|l| *l != header);
    assert_eq!(
        lines.next(),
        Some(header),
        "expected the line {header:?}; output:\n{stdout}"
    );
    lines.take_while(|l| l.starts_with("  ")).collect()
}

/// The report header of a failing test: `FAIL channel: name (channels/channel.toml:LINE)`, where
/// LINE is the test's `[[test]]` line, looked up in the channel file under `dir`.
fn fail_header(dir: &Path, channel: &str, test: &str) -> String {
    let file = format!("channels/{channel}.toml");
    let text = std::fs::read_to_string(dir.join(&file)).expect("channel file");
    let lines: Vec<&str> = text.lines().collect();
    let name = format!("name = {test:?}");
    let at = lines
        .windows(2)
        .position(|w| w[0] == "[[test]]" && w[1] == name)
        .unwrap_or_else(|| panic!("no [[test]] named {test:?} in {file}"));
    format!("FAIL {channel}: {test} ({file}:{})", at + 1)
}

fn adt_test(dir: &Path) -> String {
    fail_header(
        dir,
        "adt-normalize",
        "names, identifiers and sex are normalised",
    )
}

#[test]
fn repo_example_channels_pass() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, stdout) = test_channel(repo, &["--verbose"]);
    assert_eq!(code, 0, "{stdout}");
    let (passed, failed) = totals(&stdout);
    assert!(passed >= 8, "at least 8 example tests; output:\n{stdout}");
    assert_eq!(failed, 0, "{stdout}");
    for channel in [
        "adt-normalize",
        "lab-results",
        "oru-vitals",
        "research-feed",
    ] {
        assert!(
            stdout.contains(&format!("PASS {channel}: ")),
            "{channel} has tests; output:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn one_channel_can_be_selected() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, stdout) = test_channel(repo, &["adt-normalize"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(totals(&stdout), (2, 0), "{stdout}");
    let (code, stdout) = test_channel(repo, &["no-such-channel"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no matching channels"), "{stdout}");
}

#[test]
fn changed_value_fails_with_expected_and_actual() {
    let dir = repo_copy();
    let (code, stdout) = test_channel(dir.path(), &[]);
    assert_eq!(code, 0, "the unchanged copy passes:\n{stdout}");
    let (all, _) = totals(&stdout);

    edit(
        &dir.path().join("channels/adt-normalize.toml"),
        "\"PID-5.2\" = \"Mary Ann\"",
        "\"PID-5.2\" = \"Mary Anne\"",
    );
    let (code, stdout) = test_channel(dir.path(), &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(totals(&stdout), (all - 1, 1), "{stdout}");
    assert_eq!(
        failure_block(&stdout, &adt_test(dir.path())),
        [
            "  value PID-5.2",
            "    expected: \"Mary Anne\"",
            "    actual:   \"Mary Ann\"",
        ],
        "output:\n{stdout}"
    );
    // No sockets, no store: nothing was created next to the channels.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn changed_output_file_fails_with_a_segment_diff() {
    let dir = repo_copy();
    let (_, stdout) = test_channel(dir.path(), &[]);
    let (all, _) = totals(&stdout);
    edit(
        &dir.path().join("channels/samples/adt-a01-normalized.hl7"),
        "O'Brien-Jones^Mary Ann^^^^^L",
        "O'Brien-Jones^Marianne^^^^^L",
    );
    let (code, stdout) = test_channel(dir.path(), &["adt-normalize"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(totals(&stdout), (1, 1), "{stdout}");
    let block = failure_block(&stdout, &adt_test(dir.path()));
    assert_eq!(block[0], "  output downstream differs:", "{stdout}");
    let pid = "PID|1||00123456^^^HOSP^MR~NHS9990001^^^NHS^NH||O'Brien-Jones^";
    let rest = "^^^^^L||19710304|F|||1 High Street^^Leeds^^LS1 1AA^GBR||0113 496 0000";
    assert!(
        block.contains(&format!("    - {pid}Marianne{rest}").as_str()),
        "expected segment with `- `; output:\n{stdout}"
    );
    assert!(
        block.contains(&format!("    + {pid}Mary Ann{rest}").as_str()),
        "actual segment with `+ `; output:\n{stdout}"
    );
    // Only the differing segment is shown.
    assert!(
        !block
            .iter()
            .any(|l| l.contains("MSH|") || l.contains("PV1|")),
        "{stdout}"
    );

    // All channels: the same single failure.
    let (code, stdout) = test_channel(dir.path(), &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(totals(&stdout), (all - 1, 1), "{stdout}");
}

#[test]
fn changed_outcome_ack_and_destinations_fail_with_a_diff() {
    let dir = repo_copy();
    let lab = dir.path().join("channels/lab-results.toml");
    edit(&lab, "expect = \"filtered\"", "expect = \"accepted\"");
    edit(&lab, "destinations = []", "destinations = [\"results\"]");
    let vitals = dir.path().join("channels/oru-vitals.toml");
    edit(
        &vitals,
        "expect = \"accepted\"\nack = \"AA\"",
        "expect = \"accepted\"\nack = \"CA\"",
    );
    let (code, stdout) = test_channel(dir.path(), &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(totals(&stdout).1, 2, "{stdout}");
    assert_eq!(
        failure_block(
            &stdout,
            &fail_header(
                dir.path(),
                "lab-results",
                "test messages are filtered but still acknowledged",
            ),
        ),
        [
            "  status",
            "    expected: accepted",
            "    actual:   filtered",
            "  destinations",
            "    expected: [\"results\"]",
            "    actual:   []",
        ],
        "output:\n{stdout}"
    );
    assert_eq!(
        failure_block(
            &stdout,
            &fail_header(
                dir.path(),
                "oru-vitals",
                "vitals are accepted and archived unchanged",
            ),
        ),
        ["  ack", "    expected: CA", "    actual:   AA"],
        "output:\n{stdout}"
    );
}

#[test]
fn changed_script_behaviour_is_caught() {
    // The expectation stays, the script changes: the test catches the regression.
    let dir = repo_copy();
    edit(
        &dir.path().join("scripts/adt-normalize/normalize.rhai"),
        "msg[`PID-3[${repetition}].4`] = \"HOSP\";",
        "msg[`PID-3[${repetition}].4`] = \"HOSPX\";",
    );
    let (code, stdout) = test_channel(dir.path(), &["adt-normalize"]);
    assert_eq!(code, 1, "{stdout}");
    let block = failure_block(&stdout, &adt_test(dir.path()));
    let at = block
        .iter()
        .position(|l| *l == "  value PID-3[1].4")
        .unwrap_or_else(|| panic!("PID-3[1].4 reported; output:\n{stdout}"));
    assert_eq!(
        block[at + 1..at + 3],
        ["    expected: \"HOSP\"", "    actual:   \"HOSPX\""],
        "output:\n{stdout}"
    );
}
