//! Two engine processes on one PostgreSQL store with the same channel: every delivery is sent
//! exactly once while both run; SIGKILL one mid-run and the other finishes its leased work after
//! the lease expires, with duplicates only for deliveries in flight at the kill — and none at all
//! in the idempotent PostgreSQL destination.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::peer::Peer;
use support::*;

const BATCH: usize = 16;

fn node(dir: &std::path::Path, port: u16, peer: u16, schema: &str) {
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    std::fs::write(
        dir.join("medway.toml"),
        format!("[delivery]\nlease_secs = 3\nbatch = {BATCH}\nidle_poll_ms = 100\n"),
    )
    .unwrap();
    let base = pg_url();
    std::fs::write(
        dir.join("channels/test.toml"),
        format!(
            r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{port}"

[[destination]]
name = "lab"
kind = "mllp"
address = "127.0.0.1:{peer}"
retry = {{ initial_delay_ms = 100, max_delay_ms = 500 }}

[[destination]]
name = "rows"
kind = "postgres"
url = "{base}"
table = "{schema}.results"
[destination.columns]
delivery_id = "$delivery_id"
control_id = "$control_id"
mrn = "PID-3.1"
"#
        ),
    )
    .unwrap();
}

fn sender(
    port: u16,
    prefix: String,
    count: usize,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(_) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return;
        };
        let mut conn = Mllp::connect(port);
        for n in 0..count {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let id = format!("{prefix}{n}");
            conn.write(&frame(&oru(&id, "2.5.1", "", "", "MRN9^^^H^MR")));
            let Some(ack) = conn.read_frame() else { return };
            if segments(&ack)[1] == format!("MSA|AA|{id}") {
                acked.lock().unwrap().push(id);
            }
        }
    })
}

#[test]
fn two_nodes_share_the_work_without_duplicates() {
    let schema = format!("medway_2n_{}_{}", std::process::id(), free_port());
    psql(&format!("CREATE SCHEMA {schema}"));
    psql(&format!(
        "CREATE TABLE {schema}.results (delivery_id BIGINT UNIQUE NOT NULL, control_id TEXT, mrn TEXT)"
    ));
    let store = pg_store_in(&schema);
    let peer = Peer::default();
    let peer_port = peer.start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (port_a, port_b) = (free_port(), free_port());
    node(dir_a.path(), port_a, peer_port, &schema);
    node(dir_b.path(), port_b, peer_port, &schema);
    let mut a = Engine::restart_in(dir_a.path(), port_a, &store);
    let b = Engine::restart_in(dir_b.path(), port_b, &store);

    // Phase 1: both run; every delivery exactly once.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let go = Arc::new(AtomicBool::new(false));
    let senders = [
        sender(port_a, "A".into(), 150, acked.clone(), go.clone()),
        sender(port_b, "B".into(), 150, acked.clone(), go.clone()),
    ];
    for s in senders {
        s.join().unwrap();
    }
    let phase1: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert_eq!(phase1.len(), 300);
    eventually(30, "phase 1 delivered", || {
        let got: HashSet<String> = peer.received().into_iter().map(|(id, _)| id).collect();
        phase1.is_subset(&got)
    });
    let counts = |received: &[(String, String)]| {
        let mut c: HashMap<String, usize> = HashMap::new();
        for (id, _) in received {
            *c.entry(id.clone()).or_default() += 1;
        }
        c
    };
    let c = counts(&peer.received());
    let dupes: Vec<_> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dupes.is_empty(),
        "exactly once while both nodes run: {dupes:?}"
    );

    // Phase 2: kill node A in the middle of its work; B finishes everything.
    let stop = Arc::new(AtomicBool::new(false));
    let acked2: Arc<Mutex<Vec<String>>> = Arc::default();
    let to_a = sender(port_a, "KA".into(), 400, acked2.clone(), stop.clone());
    let to_b = sender(
        port_b,
        "KB".into(),
        200,
        acked2.clone(),
        Arc::new(AtomicBool::new(false)),
    );
    std::thread::sleep(Duration::from_millis(300));
    a.kill();
    stop.store(true, Ordering::Relaxed);
    to_a.join().unwrap();
    to_b.join().unwrap();
    let phase2: HashSet<String> = acked2.lock().unwrap().iter().cloned().collect();
    assert!(
        phase2.iter().any(|id| id.starts_with("KA")),
        "A acknowledged some before the kill"
    );
    eventually(
        60,
        "everything acknowledged is delivered by the survivor",
        || {
            let got: HashSet<String> = peer.received().into_iter().map(|(id, _)| id).collect();
            phase2.is_subset(&got)
        },
    );
    let c = counts(&peer.received());
    let dupes: Vec<_> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dupes.len() <= BATCH,
        "duplicates only for what A had in flight (at most one claimed batch): {dupes:?}"
    );
    // The idempotent PostgreSQL destination has exactly one row per delivery: every acknowledged
    // message is there once. (A message A committed just before the kill, whose ACK was lost, is
    // stored and delivered too: the sender would resend it — at least once.)
    let all: HashSet<String> = phase1.union(&phase2).cloned().collect();
    eventually(60, "all rows written", || {
        let rows = psql(&format!("SELECT control_id FROM {schema}.results"));
        let got: HashSet<&str> = rows.lines().collect();
        all.iter().all(|id| got.contains(id.as_str()))
    });
    let total = psql(&format!("SELECT count(*) FROM {schema}.results"));
    let distinct = psql(&format!(
        "SELECT count(DISTINCT control_id) FROM {schema}.results"
    ));
    assert_eq!(
        total, distinct,
        "no message written twice into the idempotent destination"
    );
    drop(b);
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}
