//! Hot reload while messages flow: editing one channel's files never drops another channel's
//! open MLLP connection, never loses or double-stores a message, and a broken file leaves the
//! running set untouched.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::*;

fn channel(port: u16, name: &str, script: &str) -> String {
    format!(
        r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{port}"

[[step]]
kind = "transform"
script = "{script}"

[[destination]]
name = "out"
kind = "file"
directory = "out/{name}"
filename = "{{control_id}}.hl7"
"#
    )
}

fn write(path: &Path, text: &str) {
    // Editors save by writing a temporary file and renaming it over the original.
    let temporary = path.with_extension("tmp~");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn stamp(script: &str, value: &str) -> String {
    format!("msg[\"PID-5.1\"] = \"{value}\";\n// {script}\n")
}

#[test]
fn reload_keeps_connections_and_messages_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (port_a, port_b) = (free_port(), free_port());
    std::fs::create_dir_all(root.join("channels")).unwrap();
    std::fs::create_dir_all(root.join("scripts/a")).unwrap();
    std::fs::create_dir_all(root.join("scripts/b")).unwrap();
    write(&root.join("scripts/a/t.rhai"), &stamp("a", "A1"));
    write(&root.join("scripts/b/t.rhai"), &stamp("b", "B1"));
    write(
        &root.join("channels/a.toml"),
        &channel(port_a, "a", "a/t.rhai"),
    );
    write(
        &root.join("channels/b.toml"),
        &channel(port_b, "b", "b/t.rhai"),
    );
    let store = format!("sqlite://{}", root.join("medway.db").display());
    let engine = Engine::restart_in(root, port_b, &store);
    let mut a = Mllp::connect(port_a);
    assert_eq!(
        segments(&a.exchange(&oru("A-before", "2.5.1", "", "", "M1^^^H^MR")))[1],
        "MSA|AA|A-before"
    );

    // A steady stream on channel B over ONE connection, for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut conn = Mllp::connect(port_b);
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("B{n}");
                conn.write(&frame(&oru(&id, "2.5.1", "", "", "M2^^^H^MR")));
                let ack = conn
                    .read_frame()
                    .unwrap_or_else(|| panic!("connection dropped after {n} messages"));
                assert_eq!(segments(&ack)[1], format!("MSA|AA|{id}"));
                acked.push(id);
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // 1. Change channel B's own script (found by the folder watch): same listener, new transform.
    write(&root.join("scripts/b/t.rhai"), &stamp("b", "B2"));
    eventually(10, "watch reload of b", || {
        engine.log().contains("changed=[\"b\"]")
    });
    std::thread::sleep(Duration::from_millis(300));

    // 2. Change channel A's file and reload with SIGHUP.
    write(&root.join("scripts/a/t.rhai"), &stamp("a", "A2"));
    engine.signal("HUP");
    eventually(10, "reload of a", || {
        engine.log().contains("changed=[\"a\"]")
    });

    // 3. A syntax error: the reload is refused, naming the file and line; A keeps running v2.
    let reloads_before = engine.log().matches("channels reloaded").count();
    write(&root.join("scripts/a/t.rhai"), "msg[\"PID-5.1\"] = ;\n");
    eventually(10, "refusal logged", || {
        engine.log().contains("reload refused")
    });
    assert!(
        engine.log().contains("t.rhai:1:"),
        "the refusal names the script line:\n{}",
        engine.log()
    );
    assert_eq!(
        engine.log().matches("channels reloaded").count(),
        reloads_before
    );
    let mut a = Mllp::connect(port_a);
    assert_eq!(
        segments(&a.exchange(&oru("A-after", "2.5.1", "", "", "M1^^^H^MR")))[1],
        "MSA|AA|A-after"
    );
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, Ordering::Relaxed);
    let acked = sender.join().expect("the B connection was never dropped");
    assert!(
        acked.len() > 50,
        "messages flowed throughout: {}",
        acked.len()
    );

    // Every acknowledged message is stored exactly once, and delivered.
    let stored = engine.messages();
    let b_ids: Vec<String> = stored
        .iter()
        .filter(|m| m["channel"] == "b")
        .map(|m| m["control_id"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = b_ids.iter().collect();
    assert_eq!(unique.len(), b_ids.len(), "no message stored twice");
    assert_eq!(b_ids.len(), acked.len(), "no message lost");
    eventually(10, "all of B delivered", || {
        std::fs::read_dir(root.join("out/b"))
            .map(|d| d.count())
            .unwrap_or(0)
            == acked.len()
    });
    // Early messages went out under v1, late ones under v2.
    let body = |name: &str, id: &str| {
        std::fs::read_to_string(root.join(format!("out/{name}/{id}.hl7"))).unwrap()
    };
    assert!(
        body("b", &acked[0]).contains("|B1^"),
        "first message under the old script"
    );
    assert!(
        body("b", acked.last().unwrap()).contains("|B2^"),
        "last message under the new script"
    );
    eventually(10, "A delivered", || {
        root.join("out/a/A-after.hl7").exists()
    });
    assert!(body("a", "A-before").contains("|A1^"));
    assert!(
        body("a", "A-after").contains("|A2^"),
        "the broken edit did not replace v2"
    );
    assert!(!engine.log().contains("panicked"));
}
