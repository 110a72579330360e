//! Crash safety: senders on several connections, the engine SIGKILLed at a random moment,
//! restarted, again and again. Every control id that got an AA must be stored exactly once and
//! its file delivery must eventually be written, byte for byte. At least 20 kill points per run
//! (`MEDWAY_CRASH_KILLS` raises it).

mod support;

use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const CONNECTIONS: usize = 4;

#[test]
fn no_acked_message_is_lost_across_sigkills() {
    let kills: usize = std::env::var("MEDWAY_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
        .max(20);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    let acked: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let mut rng = rand::rng();
    let mut engine = Engine::start(dir.path(), &channel_toml(port, ""), port, &store);
    for round in 0..kills {
        let senders: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let acked = acked.clone();
                std::thread::spawn(move || {
                    let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        return;
                    };
                    drop(stream);
                    let mut conn = Mllp::connect(port);
                    for n in 0.. {
                        let id = format!("R{round}C{c}N{n}");
                        let message = oru(&id, "2.5.1", "", "", "MRN1^^^HOSP^MR");
                        conn.write(&frame(&message));
                        let Some(ack) = conn.read_frame() else { return };
                        let segs = segments(&ack);
                        if segs.get(1).is_some_and(|s| s.starts_with("MSA|AA|")) {
                            assert_eq!(
                                segs[1],
                                format!("MSA|AA|{id}"),
                                "ACK for the right message"
                            );
                            acked.lock().unwrap().insert(id, message);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(20..250)));
        engine.kill();
        for s in senders {
            let _ = s.join();
        }
        engine = Engine::restart_in(dir.path(), port, &store);
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > kills * 10,
        "the test must actually send: {} acked",
        acked.len()
    );

    // Every acked control id is stored once, accepted, and delivered.
    eventually(60, "every acked message delivered", || {
        let stored = engine.messages();
        let sent: HashSet<String> = stored
            .iter()
            .filter(|m| m["deliveries"][0]["status"] == "sent")
            .map(|m| m["control_id"].as_str().unwrap().to_string())
            .collect();
        acked.keys().all(|id| sent.contains(id))
    });
    let stored = engine.messages();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &stored {
        assert_eq!(m["status"], "accepted");
        *seen
            .entry(m["control_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for id in acked.keys() {
        assert_eq!(seen.get(id), Some(&1), "{id} stored exactly once");
    }
    // The files are there, byte for byte.
    let files: HashMap<String, Vec<u8>> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let id = name.rsplit_once('-').unwrap().0.to_string();
            (id, std::fs::read(&p).unwrap())
        })
        .collect();
    for (id, message) in &acked {
        assert_eq!(files.get(id), Some(message), "file for {id}");
    }
    assert!(!engine.log().contains("panicked"));
    assert_eq!(engine.stop(), Some(0), "clean exit on SIGTERM");
}
