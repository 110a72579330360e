//! The folder source end to end, through the real `medway` binary: files dropped while the
//! engine is down, half-written files, batches, garbage, and a SIGKILL in the middle of a big
//! file (every message stored exactly once, on SQLite and on PostgreSQL).

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const STABLE: &str = "stable_ms = 400\npoll_interval_ms = 100\n";

/// The corpus batch: FHS, two batches, three ADT^A04 messages, FTS.
const BATCH: &str = "tests/corpus/hl7/multi/pyhl7_fhs-bhs_v25_file-2-batches-3-messages.hl7";

/// A folder channel `test` reading `inbox/`, plus an MLLP channel `ping` on `port`: the support
/// module knows a started engine by its listening port.
/// `extra` must set `stable_ms` and `poll_interval_ms`.
fn start(dir: &Path, port: u16, store: &str, extra: &str) -> Engine {
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    // The ping port may open before the folder source has created its inbox.
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    std::fs::write(dir.join("channels/ping.toml"), channel_toml(port, "")).unwrap();
    let folder = format!(
        r#"
[source]
kind = "folder"
path = "inbox"
{extra}
[[destination]]
name = "archive"
kind = "file"
directory = "out"
filename = "{{message_id}}-{{delivery_id}}.hl7"
"#
    );
    Engine::start(dir, &folder, port, store)
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("medway.db").display())
}

/// The `test` channel's stored messages, oldest first.
fn stored(engine: &Engine) -> Vec<serde_json::Value> {
    let mut all: Vec<_> = engine
        .messages()
        .into_iter()
        .filter(|m| m["channel"] == "test")
        .collect();
    all.reverse();
    all
}

fn show(engine: &Engine, id: &serde_json::Value) -> serde_json::Value {
    let out = engine.medway(&[
        "messages",
        "show",
        &id.to_string(),
        "--json",
        "--store",
        &engine.store,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("show --json")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn adt(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|REG|HOSP|MEDWAY|HOSP|20240501103000||ADT^A01|{control_id}|P|2.5.1\r\
         PID|1||MRN{control_id}^^^HOSP||TEST^PATIENT||19600101|F\r\
         PV1|1|I|WARD7^12^A^HOSP\r"
    )
}

#[test]
fn files_dropped_while_down_are_ingested_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let single = adt("DOWN-1");
    std::fs::write(inbox.join("a.hl7"), &single).unwrap();
    let batch = std::fs::read(BATCH).expect("corpus batch");
    std::fs::write(inbox.join("b.hl7"), &batch).unwrap();
    // Never read: an in-progress name, a hidden file, an extension not listed.
    std::fs::write(inbox.join("c.hl7.tmp"), adt("TMP")).unwrap();
    std::fs::write(inbox.join(".d.hl7"), adt("HIDDEN")).unwrap();
    std::fs::write(inbox.join("e.csv"), adt("CSV")).unwrap();

    let port = free_port();
    let engine = start(dir.path(), port, &sqlite(dir.path()), STABLE);
    eventually(20, "both files moved to processed/", || {
        names(&inbox.join("processed")) == ["a.hl7", "b.hl7"]
    });
    let messages = stored(&engine);
    assert_eq!(messages.len(), 4, "1 + the batch's 3: {messages:?}");
    assert_eq!(messages[0]["control_id"], "DOWN-1");
    assert!(messages.iter().all(|m| m["status"] == "accepted"));
    // Batch messages are split like `medway hl7 inspect` does; the corpus file reuses a control
    // id in its second batch, and both are stored (origins differ by index).
    let batch_ids: Vec<_> = messages[1..]
        .iter()
        .map(|m| m["control_id"].clone())
        .collect();
    assert_eq!(
        batch_ids,
        ["12334456778890", "12334456778891", "12334456778890"]
    );
    // The stored message is the file, byte for byte, with its origin.
    let first = show(&engine, &messages[0]["id"]);
    assert_eq!(first["raw"], single);
    let origin = first["origin"].as_str().expect("origin shown");
    let parts: Vec<&str> = origin.split(':').collect();
    assert_eq!(
        parts.len(),
        5,
        "file:<name>:<mtime ns>:<sha256>:<index>: {origin}"
    );
    assert_eq!((parts[0], parts[4]), ("file", "0"), "{origin}");
    assert!(
        parts[1].ends_with(".hl7") && parts[2].parse::<u128>().is_ok(),
        "{origin}"
    );
    let hex = parts[3];
    assert_eq!(hex.len(), 64, "{origin}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let last = show(&engine, &messages[3]["id"]);
    assert!(last["origin"].as_str().unwrap().ends_with(":2"));
    // Skipped names are left alone; nothing went to error/.
    assert_eq!(names(&inbox), [".d.hl7", "c.hl7.tmp", "e.csv"]);
    assert!(names(&inbox.join("error")).is_empty());
}

#[test]
fn a_half_written_file_is_never_read_early() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let engine = start(dir.path(), port, &sqlite(dir.path()), STABLE);
    let inbox = dir.path().join("inbox");

    // A writer appending in place, pausing less than stable_ms between chunks.
    let appended = adt("SLOW-APPEND");
    let appender = {
        let path = inbox.join("slow.hl7");
        let bytes = appended.clone().into_bytes();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&path).unwrap();
            for chunk in bytes.chunks(12) {
                file.write_all(chunk).unwrap();
                file.flush().unwrap();
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    // A writer following the rename convention, pausing longer than stable_ms.
    let renamed = adt("TMP-THEN-RENAME");
    let tmp = inbox.join("renamed.hl7.tmp");
    let mut file = std::fs::File::create(&tmp).unwrap();
    let (head, tail) = renamed.as_bytes().split_at(40);
    file.write_all(head).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(stored(&engine).is_empty(), "nothing read while in progress");
    file.write_all(tail).unwrap();
    drop(file);
    std::fs::rename(&tmp, inbox.join("renamed.hl7")).unwrap();
    appender.join().unwrap();

    eventually(20, "both files processed", || {
        names(&inbox.join("processed")) == ["renamed.hl7", "slow.hl7"]
    });
    let messages = stored(&engine);
    assert_eq!(messages.len(), 2, "{messages:?}");
    for m in &messages {
        let raw = show(&engine, &m["id"])["raw"].clone();
        let expected = match m["control_id"].as_str() {
            Some("SLOW-APPEND") => &appended,
            Some("TMP-THEN-RENAME") => &renamed,
            other => panic!("unexpected message {other:?}"),
        };
        assert_eq!(raw, expected.as_str(), "the whole file was stored");
    }
    assert!(names(&inbox.join("error")).is_empty());
}

#[test]
fn unreadable_files_go_to_error_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("garbage.txt"),
        "Dear Dr Smith, patient SECRET-42\n",
    )
    .unwrap();
    std::fs::write(inbox.join("broken.json"), "{\"name\": \"SECRET-43\", ").unwrap();
    std::fs::write(inbox.join("huge.hl7"), adt("HUGE").repeat(20)).unwrap();
    // A good file beside them is still ingested.
    std::fs::write(inbox.join("good.hl7"), adt("GOOD")).unwrap();
    let engine = start(
        dir.path(),
        port,
        &sqlite(dir.path()),
        "stable_ms = 400\npoll_interval_ms = 100\nmax_file_bytes = 2048\n",
    );
    let errors = inbox.join("error");
    eventually(20, "three files in error/, one processed", || {
        names(&errors).len() == 6 && names(&inbox.join("processed")) == ["good.hl7"]
    });
    assert_eq!(
        names(&errors),
        [
            "broken.json",
            "broken.json.reason",
            "garbage.txt",
            "garbage.txt.reason",
            "huge.hl7",
            "huge.hl7.reason"
        ]
    );
    let reason = |name: &str| std::fs::read_to_string(errors.join(name)).unwrap();
    assert!(
        reason("garbage.txt.reason").starts_with("not an HL7 v2 file"),
        "{}",
        reason("garbage.txt.reason")
    );
    assert!(reason("broken.json.reason").starts_with("not a valid JSON document"));
    assert!(reason("huge.hl7.reason").contains("max_file_bytes = 2048"));
    for name in ["garbage.txt.reason", "broken.json.reason"] {
        assert!(
            !reason(name).contains("SECRET"),
            "reasons never quote the file"
        );
    }
    assert!(
        !engine.log().contains("SECRET"),
        "logs never quote the file"
    );
    let messages = stored(&engine);
    assert_eq!(
        messages.len(),
        1,
        "only the good file is stored: {messages:?}"
    );
    assert_eq!(messages[0]["control_id"], "GOOD");
}

#[test]
fn a_file_with_a_refused_message_goes_to_error_and_the_others_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // The second message has a version the channel does not accept: refused (AR).
    let refused = adt("REFUSED").replace("|P|2.5.1\r", "|P|9.9\r");
    let file = format!("{}{refused}{}", adt("KEEP-1"), adt("KEEP-3"));
    std::fs::write(inbox.join("mixed.hl7"), &file).unwrap();
    let engine = start(dir.path(), port, &sqlite(dir.path()), STABLE);
    let errors = inbox.join("error");
    eventually(20, "the file moved to error/", || {
        names(&errors) == ["mixed.hl7", "mixed.hl7.reason"]
    });
    assert!(names(&inbox.join("processed")).is_empty());
    assert_eq!(
        std::fs::read_to_string(errors.join("mixed.hl7")).unwrap(),
        file
    );
    let messages = stored(&engine);
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0]["control_id"], "KEEP-1");
    assert_eq!(messages[2]["control_id"], "KEEP-3");
    assert_eq!(
        messages[1]["status"], "error",
        "the refused one is stored as error"
    );
    let reason = std::fs::read_to_string(errors.join("mixed.hl7.reason")).unwrap();
    let expected = format!(
        "the channel refused 1 of 3 messages in this file: message 2 (stored as message {})",
        messages[1]["id"]
    );
    assert!(reason.starts_with(&expected), "{reason}");
}

#[test]
fn a_file_waits_in_the_inbox_while_the_store_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = sqlite(dir.path());
    let mut engine = start(dir.path(), port, &store, STABLE);
    assert_eq!(engine.stop(), Some(0));
    // A read-only store: every commit fails.
    let mut engine = Engine::restart_in(dir.path(), port, &format!("{store}?mode=ro"));
    let inbox = dir.path().join("inbox");
    std::fs::write(inbox.join("wait.hl7"), adt("WAIT-1")).unwrap();
    eventually(20, "the failure is logged", || {
        engine
            .log()
            .contains("store unavailable; the file stays in the inbox")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(names(&inbox), ["wait.hl7"], "left in place");
    assert!(names(&inbox.join("error")).is_empty());
    assert_eq!(
        engine
            .log()
            .matches("store unavailable; the file stays in the inbox")
            .count(),
        1,
        "logged once, retried quietly"
    );
    assert_eq!(engine.stop(), Some(0));
    // The store is writable again: the file is ingested.
    let engine = Engine::restart_in(dir.path(), port, &store);
    eventually(20, "the file processed", || {
        names(&inbox.join("processed")) == ["wait.hl7"]
    });
    let messages = stored(&engine);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["control_id"], "WAIT-1");
}

#[test]
fn sigterm_finishes_the_file_in_hand_then_stops() {
    const N: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = sqlite(dir.path());
    let mut engine = start(
        dir.path(),
        port,
        &store,
        "stable_ms = 100\npoll_interval_ms = 100\n",
    );
    let inbox = dir.path().join("inbox");
    let file: String = (0..N).map(|i| adt(&format!("T{i:04}"))).collect();
    std::fs::write(inbox.join("term.hl7.tmp"), &file).unwrap();
    std::fs::rename(inbox.join("term.hl7.tmp"), inbox.join("term.hl7")).unwrap();
    eventually(30, "ingestion started", || {
        let out = engine.medway(&[
            "messages",
            "list",
            "--json",
            "--channel",
            "test",
            "--limit",
            "1",
            "--store",
            &store,
        ]);
        !out.stdout.is_empty()
    });
    assert_eq!(engine.stop(), Some(0), "clean exit");
    assert_eq!(
        names(&inbox.join("processed")),
        ["term.hl7"],
        "the file was finished"
    );
    assert_eq!(stored(&engine).len(), N);
}

#[test]
fn notifications_pick_up_a_new_file_without_waiting_for_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The first scan runs at start; after that only a notification can find the file soon.
    let engine = start(
        dir.path(),
        port,
        &sqlite(dir.path()),
        "stable_ms = 200\npoll_interval_ms = 600000\n",
    );
    let inbox = dir.path().join("inbox");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(inbox.join("new.hl7"), adt("NOTIFIED")).unwrap();
    eventually(10, "the file processed", || {
        names(&inbox.join("processed")) == ["new.hl7"]
    });
    assert_eq!(stored(&engine)[0]["control_id"], "NOTIFIED");
}

/// Drops a big multi-message file, SIGKILLs the engine while it is being ingested, restarts:
/// every message is stored exactly once and the file ends in processed/.
fn killed_mid_file_stores_each_message_once(dir: &Path, store: &str, n: usize) {
    let port = free_port();
    // Deliveries leased by the killed process come back after the lease (PostgreSQL).
    std::fs::write(dir.join("medway.toml"), "[delivery]\nlease_secs = 3\n").unwrap();
    let mut engine = start(
        dir,
        port,
        store,
        "stable_ms = 100\npoll_interval_ms = 100\n",
    );
    let inbox = dir.join("inbox");
    let mut file = String::new();
    for i in 0..n {
        file.push_str(&adt(&format!("K{i:05}")));
    }
    let tmp = inbox.join("big.hl7.tmp");
    std::fs::write(&tmp, &file).unwrap();
    std::fs::rename(&tmp, inbox.join("big.hl7")).unwrap();

    // Kill once some (not all) messages are stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = engine.medway(&[
            "messages",
            "list",
            "--json",
            "--channel",
            "test",
            "--limit",
            "1",
            "--store",
            store,
        ]);
        if !out.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing ingested; log:\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    engine.kill();
    let before = stored(&engine).len();
    assert!(
        before > 0 && before < n && inbox.join("big.hl7").exists(),
        "the kill must land mid-file (stored {before} of {n}); make the file bigger"
    );

    eprintln!("stored {before} of {n} before the kill");
    let engine = Engine::restart_in(dir, port, store);
    eventually(120, "the big file moved to processed/", || {
        names(&inbox.join("processed")) == ["big.hl7"]
    });
    let messages = stored(&engine);
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m["control_id"].as_str().unwrap_or(""))
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), n, "every message stored");
    assert_eq!(ids.len(), n, "none twice (stored {before} before the kill)");
    let in_order: Vec<String> = (0..n).map(|i| format!("K{i:05}")).collect();
    assert_eq!(ids, in_order, "stored in file order");
    // Each message was delivered once too: one delivery (one file) per stored message.
    eventually(60, "every message delivered", || {
        std::fs::read_dir(dir.join("out")).map_or(0, |d| d.count()) == n
    });
}

#[test]
fn sigkill_mid_file_then_restart_stores_every_message_once() {
    let dir = tempfile::tempdir().unwrap();
    killed_mid_file_stores_each_message_once(dir.path(), &sqlite(dir.path()), 2000);
}

#[test]
fn sigkill_mid_file_then_restart_stores_every_message_once_on_postgres() {
    let schema = format!("medway_folder_{}", std::process::id());
    psql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ));
    let store = pg_store_in(&schema);
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().to_path_buf();
    killed_mid_file_stores_each_message_once(&path, &store, 600);
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}

/// A folder channel reading `path`, with `extra` source settings, as a channel file.
fn folder_channel(path: &str, extra: &str) -> String {
    format!(
        "description = \"test\"\n\n[source]\nkind = \"folder\"\npath = \"{path}\"\n{extra}\n\
         [[destination]]\nname = \"out\"\nkind = \"file\"\ndirectory = \"out\"\n"
    )
}

#[test]
fn check_refuses_a_zero_stable_ms_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    std::fs::write(
        dir.path().join("channels/f.toml"),
        folder_channel("inbox", "stable_ms = 0\n"),
    )
    .unwrap();
    let out = medway_in(dir.path(), &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("channels/f.toml:")
            && stdout.contains("`stable_ms` must be at least 100")
            && stdout.contains("hint: a file must stay unchanged"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_two_folder_channels_on_one_inbox() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    std::fs::create_dir_all(dir.path().join("inbox")).unwrap();
    let inbox = dir.path().join("inbox").canonicalize().unwrap();
    std::fs::write(
        dir.path().join("channels/a.toml"),
        folder_channel("inbox", ""),
    )
    .unwrap();
    // The same directory, spelt differently and absolute.
    std::fs::write(
        dir.path().join("channels/b.toml"),
        folder_channel(&format!("{}/./", inbox.display()), ""),
    )
    .unwrap();
    // Another inbox is fine.
    std::fs::write(
        dir.path().join("channels/c.toml"),
        folder_channel("inbox2", ""),
    )
    .unwrap();
    let out = medway_in(dir.path(), &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let problems: Vec<&str> = stdout.lines().filter(|l| l.contains(".toml:")).collect();
    assert_eq!(problems.len(), 1, "{stdout}");
    assert!(
        problems[0].starts_with("channels/b.toml:")
            && problems[0].contains(&format!("{} is already", inbox.display()))
            && problems[0].contains("already the inbox folder of channel \"a\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("each channel needs its own inbox folder"),
        "{stdout}"
    );
}
