//! The script sandbox end to end: a running engine whose transform misbehaves for some messages
//! (infinite loop, slow loop, exponential string growth, deep recursion, huge array and map,
//! file access, `eval`, `import` out of `scripts/lib`). Each bad message is answered `AE` with a
//! readable reason and stored as `error`; the next message on the same connection gets `AA`; the
//! engine never panics. Static imports out of `scripts/lib` are refused when the set is loaded.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Misbehaves according to PID-3.1; every other message gets a harmless edit.
const SCRIPT: &str = r#"
fn deep(n) { deep(n + 1) }

let id = msg["PID-3.1"];
if id == "LOOP" { loop {} }
if id == "SLOW" {
    // Few operations, each slow: only the wall clock stops this.
    let s = "";
    s.pad(900000, "a");
    let n = 0;
    while n < 100000 { s.index_of("b"); n += 1; }
}
if id == "GROW" { let s = "x"; loop { s += s; } }
if id == "RECURSE" { deep(0); }
if id == "ARRAY" { let a = []; loop { a.push(1); } }
if id == "BIGARRAY" { let a = []; a.pad(1000000, 0); }
// The map limit is checked when the map is used (here `len`), see the ignored test below.
if id == "MAP" { let m = #{}; for i in 0..20000 { m[`k${i}`] = i; } let n = m.len(); }
if id == "MAPSET" { let m = #{}; for i in 0..20000 { m[`k${i}`] = i; } }
if id == "MAPBLOAT" {
    // 50 distinct 1 MB strings: 50 times the string limit, in one map.
    let s = "";
    s.pad(1000000, "a");
    let m = #{};
    for i in 0..50 { m[`k${i}`] = s + i; }
}
if id == "READ" { let text = open_file("/etc/passwd"); }
if id == "EVAL" { let f = Fn("eval"); f.call("40 + 2"); }
if id == "IMPORT" { let p = "../" + "secret"; import p as s; }
if id == "ABSOLUTE" { let p = "/etc/passwd"; import p as s; }
if id == "SYMLINK" { let p = "escape"; import p as s; }
msg["PID-5.1"] = "CHECKED";
"#;

/// A library file outside `scripts/lib`, reachable through `scripts/lib/escape.rhai`.
const SECRET: &str = "fn secret() { \"do not read\" }\n";

const STEP: &str = "
[[step]]
kind = \"transform\"
script = \"sb/misbehave.rhai\"
";

fn start(dir: &Path) -> Engine {
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(scripts.join("sb")).expect("mkdir");
    std::fs::create_dir_all(scripts.join("lib")).expect("mkdir");
    std::fs::write(scripts.join("sb/misbehave.rhai"), SCRIPT).expect("script");
    std::fs::write(dir.join("secret.rhai"), SECRET).expect("secret");
    std::os::unix::fs::symlink(dir.join("secret.rhai"), scripts.join("lib/escape.rhai"))
        .expect("symlink");
    let port = free_port();
    let store = format!("sqlite://{}", dir.join("medway.db").display());
    Engine::start(dir, &channel_toml(port, STEP), port, &store)
}

const GOOD_PID: &str = "MRN1^^^HOSP^MR";

/// (PID-3.1, what the AE and the stored error must say).
const MISBEHAVIOURS: &[(&str, &str)] = &[
    ("LOOP", "too many operations (operation limit reached)"),
    ("SLOW", "time limit of 1000 ms exceeded"),
    ("GROW", "Length of string too large (size limit reached)"),
    ("RECURSE", "call stack too deep (call level limit reached)"),
    ("ARRAY", "Size of array/BLOB too large (size limit reached)"),
    (
        "BIGARRAY",
        "Size of array/BLOB too large (size limit reached)",
    ),
    ("MAP", "Size of object map too large (size limit reached)"),
    ("READ", "Function not found: open_file"),
    ("EVAL", "'eval' is a reserved keyword"),
    (
        "IMPORT",
        "import denied: \"../secret\": '..' is not allowed; name a file in scripts/lib",
    ),
    ("ABSOLUTE", "import denied: \"/etc/passwd\": absolute paths"),
    (
        "SYMLINK",
        "import denied: \"escape\" resolves outside the library folder",
    ),
];

#[test]
fn each_misbehaving_message_fails_alone_and_the_next_flows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let mut conn = engine.connect();
    for (i, (pid, reason)) in MISBEHAVIOURS.iter().enumerate() {
        let bad_id = format!("BAD{i}");
        let started = Instant::now();
        let ack = conn.exchange(&oru(&bad_id, "2.5.1", "", "", pid));
        let took = started.elapsed();
        let segs = segments(&ack);
        let prefix = format!("MSA|AE|{bad_id}|script error: scripts/sb/misbehave.rhai:");
        assert!(
            segs[1].starts_with(&prefix),
            "{pid}: AE naming the script, got {segs:?}"
        );
        // HL7 escapes `&` and `|` in the text: compare the unescaped form.
        let text = segs[1].replace("\\T\\", "&").replace("\\F\\", "|");
        assert!(text.contains(reason), "{pid}: {reason:?} in {segs:?}");
        assert!(
            segs.iter().any(|s| s.starts_with("ERR|")),
            "{pid}: an ERR segment, got {segs:?}"
        );
        eprintln!("{pid}: AE after {took:?}");

        let good_id = format!("GOOD{i}");
        let ack = conn.exchange(&oru(&good_id, "2.5.1", "", "", GOOD_PID));
        assert_eq!(
            segments(&ack)[1],
            format!("MSA|AA|{good_id}"),
            "the message after {pid} on the same connection"
        );
    }

    let messages = engine.messages();
    let find = |id: &str| {
        messages
            .iter()
            .find(|m| m["control_id"] == id)
            .unwrap_or_else(|| panic!("{id} stored; messages: {messages:?}"))
    };
    for (i, (pid, reason)) in MISBEHAVIOURS.iter().enumerate() {
        let bad = find(&format!("BAD{i}"));
        assert_eq!(bad["status"], "error", "{pid}: {bad}");
        let error = bad["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{pid}: stored error {error:?}");
        assert_eq!(bad["deliveries"], serde_json::json!([]), "{pid}: {bad}");
        assert_eq!(find(&format!("GOOD{i}"))["status"], "accepted");
    }
    assert_eq!(messages.len(), 2 * MISBEHAVIOURS.len());

    // The good ones are delivered, with the script's edit.
    eventually(20, "every good message delivered", || {
        delivered_files(&dir.path().join("out")).len() == MISBEHAVIOURS.len()
    });
    for path in delivered_files(&dir.path().join("out")) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("|CHECKED^PATIENT|"), "{text:?}");
    }

    let log = engine.log();
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        log.matches("script failed; message stored as error")
            .count(),
        MISBEHAVIOURS.len(),
        "one warning per bad message:\n{log}"
    );
    assert!(!log.contains("do not read"), "{log}");
    assert!(
        !log.contains("PATIENT"),
        "no message body in the log:\n{log}"
    );
}

#[test]
fn a_bad_message_does_not_close_the_connection_or_leak_into_the_next() {
    // Bad and good alternate many times on one connection; the frame state stays clean.
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let mut conn = engine.connect();
    for round in 0..20 {
        let ack = conn.exchange(&oru(&format!("B{round}"), "2.5.1", "", "", "RECURSE"));
        assert!(segments(&ack)[1].starts_with(&format!("MSA|AE|B{round}|")));
        let ack = conn.exchange(&oru(&format!("G{round}"), "2.5.1", "", "", GOOD_PID));
        assert_eq!(segments(&ack)[1], format!("MSA|AA|G{round}"));
    }
    assert!(!engine.log().contains("panicked"));
}

#[test]
fn slow_scripts_do_not_stall_other_connections() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let port = engine.port;
    let slow: Vec<_> = (0..2 * workers)
        .map(|i| {
            std::thread::spawn(move || {
                let mut conn = Mllp::connect(port);
                let ack = conn.exchange(&oru(&format!("SLOW{i}"), "2.5.1", "", "", "SLOW"));
                (Instant::now(), segments(&ack)[1].clone())
            })
        })
        .collect();
    // Let the slow messages reach their scripts.
    std::thread::sleep(Duration::from_millis(200));
    let mut conn = engine.connect();
    let good_started = Instant::now();
    let mut good_done = Instant::now();
    for i in 0..5 {
        let ack = conn.exchange(&oru(&format!("G{i}"), "2.5.1", "", "", GOOD_PID));
        assert_eq!(segments(&ack)[1], format!("MSA|AA|G{i}"));
        good_done = Instant::now();
    }
    let slow: Vec<(Instant, String)> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    for (_, msa) in &slow {
        assert!(msa.contains("time limit of 1000 ms exceeded"), "{msa}");
    }
    let first_slow = slow.iter().map(|(t, _)| *t).min().unwrap();
    assert!(
        good_done < first_slow,
        "the good messages waited for the slow scripts: 5 good messages took {:?}, the last \
         ACKed {:?} after the first slow ACK",
        good_done - good_started,
        good_done - first_slow
    );
}

#[test]
#[ignore = "bug: an object map grown by index assignment (`m[key] = v`) escapes the map size \
            and string size limits: 20,000 entries, or 50 MB of strings, are accepted (AA); \
            500 x 1 MB took the engine to 500 MB RSS"]
fn map_limits_hold_for_index_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let mut conn = engine.connect();
    let mut wrong = Vec::new();
    for (pid, reason) in [
        (
            "MAPSET",
            "Size of object map too large (size limit reached)",
        ),
        ("MAPBLOAT", "too large (size limit reached)"),
    ] {
        let ack = conn.exchange(&oru(pid, "2.5.1", "", "", pid));
        let msa = segments(&ack)[1].clone();
        if !(msa.starts_with(&format!("MSA|AE|{pid}|")) && msa.contains(reason)) {
            wrong.push(format!("{pid}: expected AE with {reason:?}, got {msa:?}"));
        }
        let ack = conn.exchange(&oru("GOOD", "2.5.1", "", "", GOOD_PID));
        assert_eq!(segments(&ack)[1], "MSA|AA|GOOD");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A folder with one channel whose script statically imports `import_line`'s library.
fn folder_with_import(import_line: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    std::fs::create_dir_all(dir.path().join("scripts/t")).unwrap();
    std::fs::create_dir_all(dir.path().join("scripts/lib")).unwrap();
    std::fs::write(dir.path().join("scripts/secret.rhai"), SECRET).unwrap();
    std::fs::write(
        dir.path().join("scripts/t/imp.rhai"),
        format!("// imports\n{import_line}\nmsg[\"PID-5.1\"] = \"x\";\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("channels/imp.toml"),
        channel_toml(
            free_port(),
            "[[step]]\nkind = \"transform\"\nscript = \"t/imp.rhai\"\n",
        ),
    )
    .unwrap();
    dir
}

#[test]
fn static_import_outside_the_library_is_refused_at_load() {
    for (line, reason) in [
        (
            "import \"../secret\" as s;",
            "import denied: \"../secret\": '..' is not allowed; name a file in scripts/lib",
        ),
        (
            "import \"/etc/passwd\" as p;",
            "import denied: \"/etc/passwd\": absolute paths are not allowed",
        ),
        (
            "import \"secret.rhai\" as s;",
            "import denied: \"secret.rhai\": name the library without its .rhai extension",
        ),
    ] {
        let dir = folder_with_import(line);
        let out = medway_in(dir.path(), &["check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{line}: {stdout}");
        let expected = format!("scripts/t/imp.rhai:2:1: {reason}");
        assert!(
            stdout.lines().any(|l| l.starts_with(&expected)),
            "{line}: expected {expected:?} in:\n{stdout}"
        );
        assert!(
            stdout.contains("  hint: used by channels/imp.toml:"),
            "{stdout}"
        );

        // `medway run` refuses the set too, rather than starting with a hole in the sandbox.
        let mut child = Command::new(BIN)
            .args(["run", "--no-watch"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{line}: medway run started with a refused import");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{line}: {stderr}");
        assert!(stderr.contains(reason), "{line}: {stderr}");
    }
}
