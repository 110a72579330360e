//! `medway check` on broken channel sets: every error kind of issue 3 is reported as
//! `file:line:col: message` with a `  hint: …` line, all problems are listed, exit code 1.
//! Each test writes its own `channels/` and `scripts/` into a temporary folder and runs the real
//! binary there.

mod support;

use std::path::Path;
use std::process::Output;
use support::*;

/// Writes `files` (path relative to the folder, contents) into a fresh temporary folder.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("channels")).expect("channels");
    std::fs::create_dir_all(dir.path().join("scripts")).expect("scripts");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// `medway check` (extra `args` first, e.g. `--config`) with the folder as working directory.
fn check(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.push("check");
    let out: Output = medway_in(dir, &all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "medway check panicked:\n{stderr}"
    );
    (out.status.code().expect("exit code"), stdout)
}

/// One reported problem: its `file:line:col: message` line and its hint (if any).
#[derive(Debug)]
struct Problem {
    line: String,
    hint: Option<String>,
}

/// Splits check output into problems. A hint belongs to the problem line above it (blank lines in
/// between are tolerated here; `hint_follows_its_problem_line_directly` is strict about them).
fn problems(stdout: &str) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::new();
    for line in stdout.lines() {
        if let Some(hint) = line.strip_prefix("  hint: ") {
            let last = out.last_mut().expect("a hint follows a problem");
            assert!(last.hint.is_none(), "two hints for one problem:\n{stdout}");
            last.hint = Some(hint.to_string());
        } else if line.trim().is_empty() || line.ends_with(" problem(s)") {
            continue;
        } else {
            out.push(Problem {
                line: line.to_string(),
                hint: None,
            });
        }
    }
    out
}

/// The one problem reported at `location` (`file:line:col: `); checks its message and hint.
fn assert_problem(stdout: &str, location: &str, message: &str, hint: Option<&str>) {
    let found: Vec<Problem> = problems(stdout)
        .into_iter()
        .filter(|p| p.line.starts_with(location))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one problem at {location:?}; output:\n{stdout}"
    );
    let problem = &found[0];
    assert!(
        problem.line.contains(message),
        "problem at {location:?} should say {message:?}; got {:?}\noutput:\n{stdout}",
        problem.line
    );
    assert_eq!(
        problem.hint.as_deref(),
        hint,
        "hint of the problem at {location:?}; output:\n{stdout}"
    );
}

/// Exit code 1 and the `N problem(s)` count line.
fn assert_fails_with(code: i32, stdout: &str, count: usize) {
    assert_eq!(code, 1, "medway check should fail; output:\n{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some(format!("{count} problem(s)").as_str()),
        "count line; output:\n{stdout}"
    );
    assert_eq!(problems(stdout).len(), count, "problems listed:\n{stdout}");
}

/// A well-formed channel on `port` with whatever extra tables are given.
fn channel(port: u16, extra: &str) -> String {
    format!(
        "description = \"test\"\n\n[source]\nkind = \"mllp\"\nlisten = \"127.0.0.1:{port}\"\n{extra}"
    )
}

const FILE_DESTINATION: &str = "
[[destination]]
name = \"out\"
kind = \"file\"
directory = \"out\"
";

#[test]
fn repo_channels_pass_check() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let (code, stdout) = check(Path::new(repo), &[]);
    assert_eq!(code, 0, "the shipped channels must pass; output:\n{stdout}");
    assert!(
        stdout.starts_with("ok: 8 channel(s) checked in channels"),
        "{stdout}"
    );
}

#[test]
fn unknown_channel_key_suggests_the_closest() {
    let text = "descripton = \"x\"\n\n[source]\nkind = \"mllp\"\nlisten = \"127.0.0.1:3001\"\n";
    let dir = folder(&[("channels/a.toml", text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/a.toml:1:1: ",
        "unknown field `descripton`",
        Some("did you mean `description`?"),
    );
}

#[test]
fn unknown_source_key_suggests_the_closest() {
    let text = "description = \"b\"\n\n[source]\nkind = \"mllp\"\nlistn = \"127.0.0.1:3002\"\n";
    let dir = folder(&[("channels/b.toml", text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/b.toml:5:1: ",
        "unknown field `listn`",
        Some("did you mean `listen`?"),
    );
}

#[test]
fn unknown_destination_key_suggests_the_closest() {
    let text = channel(
        3003,
        "\n[[destination]]\nname = \"out\"\nkind = \"file\"\ndirectory = \"out\"\nfilname = \"x.hl7\"\n",
    );
    let dir = folder(&[("channels/c.toml", &text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/c.toml:11:1: ",
        "unknown field `filname`",
        Some("did you mean `filename`?"),
    );
}

#[test]
fn missing_script_points_at_the_script_line_and_says_where_it_looked() {
    // Line 9 is `script = …`.
    let text = channel(
        3004,
        "\n[[step]]\nkind = \"transform\"\nscript = \"t/missing.rhai\"\n",
    );
    let dir = folder(&[("channels/c.toml", &text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/c.toml:9:1: ",
        "script \"t/missing.rhai\" not found (looked for scripts/t/missing.rhai)",
        Some("script paths are relative to the scripts folder (scripts)"),
    );
}

#[test]
fn missing_destination_script_points_at_its_key() {
    // Line 11 is `transform = …` inside the destination.
    let text = channel(
        3005,
        "\n[[destination]]\nname = \"out\"\nkind = \"file\"\ndirectory = \"out\"\ntransform = \"t/gone.rhai\"\n",
    );
    let dir = folder(&[("channels/c.toml", &text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/c.toml:11:1: ",
        "script \"t/gone.rhai\" not found (looked for scripts/t/gone.rhai)",
        Some("script paths are relative to the scripts folder (scripts)"),
    );
}

#[test]
fn script_syntax_error_points_into_the_script() {
    let script = "// normalise\nlet x = 1;\nlet y = (x + ;\n";
    let text = channel(
        3006,
        "\n[[step]]\nkind = \"transform\"\nscript = \"t/bad.rhai\"\n",
    );
    let dir = folder(&[("channels/d.toml", &text), ("scripts/t/bad.rhai", script)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    // Line 3, column 14 is the `;` after `+`.
    assert_problem(
        &stdout,
        "scripts/t/bad.rhai:3:14: ",
        "syntax error: Unexpected ';'",
        Some("used by channels/d.toml:9"),
    );
}

#[test]
fn misspelt_variable_is_a_compile_error_in_the_script() {
    let script = "// x\nlet name = msg[\"PID-5.1\"];\nmsg[\"PID-5.2\"] = nmae;\n";
    let text = channel(
        3007,
        "\n[[step]]\nkind = \"transform\"\nscript = \"t/undef.rhai\"\n",
    );
    let dir = folder(&[("channels/u.toml", &text), ("scripts/t/undef.rhai", script)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "scripts/t/undef.rhai:3:18: ",
        "Undefined variable: nmae",
        Some("used by channels/u.toml:9"),
    );
}

#[test]
fn missing_library_is_a_compile_error() {
    let script = "// x\nimport \"nosuchlib\" as n;\n";
    let text = channel(
        3008,
        "\n[[step]]\nkind = \"transform\"\nscript = \"t/nolib.rhai\"\n",
    );
    let dir = folder(&[("channels/n.toml", &text), ("scripts/t/nolib.rhai", script)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "scripts/t/nolib.rhai:2:1: ",
        "library \"nosuchlib\" not found in the scripts library folder",
        Some("used by channels/n.toml:9"),
    );
}

#[test]
fn two_channels_on_one_port_names_the_other_channel() {
    let dir = folder(&[
        ("channels/e1.toml", &channel(3009, "")),
        ("channels/e2.toml", &channel(3009, "")),
    ]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/e2.toml:5:1: ",
        "127.0.0.1:3009 is already the listen address of channel \"e1\"",
        Some("each channel needs its own port (see channels/e1.toml)"),
    );
}

#[test]
fn wildcard_and_loopback_on_one_port_conflict() {
    let wildcard = channel(3010, "").replace("127.0.0.1:3010", "0.0.0.0:3010");
    let dir = folder(&[
        ("channels/e1.toml", &wildcard),
        ("channels/e2.toml", &channel(3010, "")),
    ]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    let problems = problems(&stdout);
    assert!(
        problems[0].line.starts_with("channels/e2.toml:5:1: ") && problems[0].line.contains("e1"),
        "{stdout}"
    );
}

#[test]
fn bad_listen_addresses_point_at_listen() {
    let dir = folder(&[
        (
            "channels/f.toml",
            &channel(1, "").replace("127.0.0.1:1", "localhost:99999"),
        ),
        (
            "channels/g.toml",
            &channel(1, "").replace("127.0.0.1:1", "not-an-address"),
        ),
    ]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 2);
    let hint = Some("e.g. listen = \"127.0.0.1:2575\" or \"0.0.0.0:2575\"");
    assert_problem(
        &stdout,
        "channels/f.toml:5:1: ",
        "`listen` must be host:port with a numeric address, got \"localhost:99999\"",
        hint,
    );
    assert_problem(
        &stdout,
        "channels/g.toml:5:1: ",
        "`listen` must be host:port with a numeric address, got \"not-an-address\"",
        hint,
    );
}

#[test]
fn unknown_destination_kind_suggests_file() {
    // Line 9 is `kind = "fiel"` of the destination.
    let text = channel(
        3011,
        "\n[[destination]]\nname = \"out\"\nkind = \"fiel\"\ndirectory = \"out\"\n",
    );
    let dir = folder(&[("channels/h.toml", &text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/h.toml:9:1: ",
        "unknown destination kind \"fiel\"",
        Some("did you mean \"file\"?"),
    );
}

#[test]
fn unknown_step_kind_suggests_the_closest() {
    // Line 7 is the `[[step]]` header of the step with the bad kind.
    let text = channel(
        3012,
        "\n[[step]]\nkind = \"transfrom\"\nscript = \"t/x.rhai\"\n",
    );
    let dir = folder(&[("channels/i.toml", &text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert_problem(
        &stdout,
        "channels/i.toml:7:1: ",
        "unknown step kind \"transfrom\"",
        Some("did you mean \"transform\"?"),
    );
}

#[test]
fn bad_test_blocks_point_at_their_test() {
    // In each file the `[[test]]` header is line 12.
    let test = |body: &str| {
        channel(
            3013,
            &format!(
                "{FILE_DESTINATION}\n[[test]]\nname = \"t1\"\nmessage = \"MSH|^~\\\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\"\n{body}"
            ),
        )
    };
    let dir = folder(&[
        ("channels/j1.toml", &test("expect = \"acepted\"\n")),
        ("channels/j2.toml", &test("ack = \"OK\"\n")),
        ("channels/j3.toml", &test("destinations = [\"archive\"]\n")),
        ("channels/j4.toml", &test("values = { \"PID5\" = \"x\" }\n")),
        (
            "channels/j5.toml",
            &test("input = \"samples/x.hl7\"\n"), // both `input` and `message`
        ),
    ]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 5);
    assert_problem(
        &stdout,
        "channels/j1.toml:12:1: ",
        "unknown expectation \"acepted\"",
        Some("expect = \"accepted\", \"filtered\" or \"error\""),
    );
    assert_problem(
        &stdout,
        "channels/j2.toml:12:1: ",
        "unknown ACK code \"OK\"",
        Some("AA, AE, AR, CA, CE or CR"),
    );
    assert_problem(
        &stdout,
        "channels/j3.toml:12:1: ",
        "test \"t1\" names unknown destination \"archive\"",
        None,
    );
    assert_problem(
        &stdout,
        "channels/j4.toml:12:1: ",
        "bad HL7 path \"PID5\" in `values`",
        Some("an HL7 path (PID-5.1), or a JSON pointer (/status) for JSON input"),
    );
    assert_problem(
        &stdout,
        "channels/j5.toml:12:1: ",
        "test \"t1\" needs exactly one of `input` (a file) or `message` (inline)",
        None,
    );
}

#[test]
fn missing_test_input_file_is_reported() {
    let text = channel(
        3014,
        &format!(
            "{FILE_DESTINATION}\n[[test]]\nname = \"t1\"\ninput = \"samples/nope.hl7\"\nexpect = \"accepted\"\n"
        ),
    );
    let dir = folder(&[("channels/l.toml", &text)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 1);
    assert!(stdout.contains("samples/nope.hl7"), "{stdout}");
}

#[test]
fn unknown_step_and_test_keys_suggest_the_closest() {
    let step = channel(
        3015,
        "\n[[step]]\nkind = \"validate\"\nscrpt = \"t/x.rhai\"\n",
    );
    let test = channel(
        3016,
        &format!(
            "{FILE_DESTINATION}\n[[test]]\nname = \"t1\"\ninput = \"x.hl7\"\nexpct = \"accepted\"\n"
        ),
    );
    let dir = folder(&[("channels/k.toml", &step), ("channels/l.toml", &test)]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 2);
    assert_problem(
        &stdout,
        "channels/k.toml:9:1: ",
        "unknown field `scrpt`",
        Some("did you mean `script`?"),
    );
    assert_problem(
        &stdout,
        "channels/l.toml:15:1: ",
        "unknown field `expct`",
        Some("did you mean `expect`?"),
    );
}

#[test]
fn unknown_settings_key_points_into_medway_toml() {
    let dir = folder(&[
        ("medway.toml", "watch = false\nchanels = \"x\"\n"),
        ("channels/ok.toml", &channel(3017, FILE_DESTINATION)),
    ]);
    let (code, stdout) = check(dir.path(), &["--config", "medway.toml"]);
    assert_fails_with(code, &stdout, 1);
    let problems = problems(&stdout);
    assert!(
        problems[0]
            .line
            .starts_with("medway.toml:2:1: unknown field `chanels`"),
        "{stdout}"
    );
}

#[test]
fn unknown_settings_key_suggests_the_closest() {
    let dir = folder(&[("medway.toml", "watch = false\nchanels = \"x\"\n")]);
    let (code, stdout) = check(dir.path(), &["--config", "medway.toml"]);
    assert_eq!(code, 1, "{stdout}");
    assert_problem(
        &stdout,
        "medway.toml:2:1: ",
        "unknown field `chanels`",
        Some("did you mean `channels`?"),
    );
}

#[test]
fn hint_follows_its_problem_line_directly() {
    let text = "description = \"b\"\n\n[source]\nkind = \"mllp\"\nlistn = \"127.0.0.1:3002\"\n";
    let dir = folder(&[("channels/b.toml", text)]);
    let (_, stdout) = check(dir.path(), &[]);
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("channels/b.toml:5:1: "))
        .expect("problem line");
    assert_eq!(
        lines.get(at + 1).copied(),
        Some("  hint: did you mean `listen`?"),
        "{stdout:?}"
    );
    assert!(!stdout.contains("\n\n"), "no blank lines: {stdout:?}");
}

#[test]
fn several_broken_files_are_all_listed() {
    let dir = folder(&[
        (
            "channels/a.toml",
            "descripton = \"x\"\n\n[source]\nkind = \"mllp\"\nlisten = \"127.0.0.1:3021\"\n",
        ),
        (
            "channels/b.toml",
            &channel(3022, "").replace("listen =", "listn ="),
        ),
        (
            "channels/c.toml",
            &channel(
                3023,
                "\n[[step]]\nkind = \"transform\"\nscript = \"t/missing.rhai\"\n",
            ),
        ),
        (
            "channels/d.toml",
            &channel(
                3024,
                "\n[[step]]\nkind = \"transform\"\nscript = \"t/bad.rhai\"\n",
            ),
        ),
        ("scripts/t/bad.rhai", "let y = (1 + ;\n"),
        ("channels/e.toml", &channel(3024, FILE_DESTINATION)),
        (
            "channels/f.toml",
            &channel(1, "").replace("127.0.0.1:1", "not-an-address"),
        ),
        (
            "channels/h.toml",
            &channel(3026, FILE_DESTINATION).replace("\"file\"", "\"fiel\""),
        ),
        (
            "channels/i.toml",
            &channel(
                3027,
                "\n[[step]]\nkind = \"transfrom\"\nscript = \"t/x.rhai\"\n",
            ),
        ),
        // A good channel among the broken ones is not reported.
        ("channels/ok.toml", &channel(3028, FILE_DESTINATION)),
    ]);
    let (code, stdout) = check(dir.path(), &[]);
    assert_fails_with(code, &stdout, 8);
    for location in [
        "channels/a.toml:1:1: ",
        "channels/b.toml:5:1: ",
        "channels/c.toml:9:1: ",
        "scripts/t/bad.rhai:1:14: ",
        "channels/e.toml:5:1: ",
        "channels/f.toml:5:1: ",
        "channels/h.toml:9:1: ",
        "channels/i.toml:7:1: ",
    ] {
        let hinted = problems(&stdout)
            .into_iter()
            .any(|p| p.line.starts_with(location) && p.hint.is_some());
        assert!(hinted, "{location} with a hint; output:\n{stdout}");
    }
    assert!(!stdout.contains("ok.toml"), "{stdout}");
}

#[test]
fn check_of_one_file_reports_only_that_file() {
    let dir = folder(&[
        (
            "channels/a.toml",
            "descripton = \"x\"\n\n[source]\nkind = \"mllp\"\nlisten = \"127.0.0.1:3031\"\n",
        ),
        ("channels/ok.toml", &channel(3032, FILE_DESTINATION)),
    ]);
    let out = medway_in(dir.path(), &["check", "channels/a.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_fails_with(out.status.code().expect("code"), &stdout, 1);
    let out = medway_in(dir.path(), &["check", "channels/ok.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("ok: 1 channel(s) checked"), "{stdout}");
}
