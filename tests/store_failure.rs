//! ACK only after commit: when the store cannot commit, the sender gets AR (original mode) or CE
//! (enhanced), never AA/CA, and nothing is half-stored. Against a read-only SQLite file and a
//! real PostgreSQL whose connections are killed while messages flow.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::*;

#[test]
fn read_only_sqlite_gets_ar_or_ce_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("medway.db");
    let store = format!("sqlite://{}", db.display());
    let mut engine = Engine::start(dir.path(), &channel_toml(port, ""), port, &store);
    assert_eq!(engine.stop(), Some(0));

    let read_only = format!("{store}?mode=ro");
    let engine = Engine::restart_in(dir.path(), port, &read_only);
    let mut conn = engine.connect();
    let segs = segments(&conn.exchange(&oru("RO1", "2.5.1", "", "", "MRN1^^^HOSP^MR")));
    assert!(segs[1].starts_with("MSA|AR|RO1|"), "{segs:?}");
    assert!(
        segs[2].contains("207^Application internal error^HL70357"),
        "{segs:?}"
    );
    let segs = segments(&conn.exchange(&oru("RO2", "2.5.1", "AL", "NE", "MRN1^^^HOSP^MR")));
    assert!(segs[1].starts_with("MSA|CE|RO2"), "{segs:?}");
    drop(engine);

    let engine = Engine::restart_in(dir.path(), port, &store);
    assert!(engine.messages().is_empty(), "nothing stored");
    assert!(
        std::fs::read_dir(dir.path().join("out"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn killed_postgres_connections_never_yield_aa_for_unstored_messages() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tag = format!("medway_e2e_{}_{}", std::process::id(), port);
    psql(&format!("CREATE SCHEMA {tag}"));
    let base = pg_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = format!("{base}{sep}application_name={tag}&options=-c%20search_path%3D{tag}");
    let engine = Engine::start(dir.path(), &channel_toml(port, ""), port, &store);

    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let tag = tag.clone();
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(Ordering::Relaxed) {
                psql(&format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{tag}'"
                ));
                kills += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            kills
        })
    };
    let mut acked = HashSet::new();
    let mut refused = HashSet::new();
    let mut conn = engine.connect();
    for n in 0..400 {
        let id = format!("PG{n}");
        let segs = segments(&conn.exchange(&oru(&id, "2.5.1", "", "", "MRN1^^^HOSP^MR")));
        if segs[1] == format!("MSA|AA|{id}") {
            acked.insert(id);
        } else {
            assert!(
                segs[1].starts_with(&format!("MSA|AR|{id}|")),
                "AR when not stored: {segs:?}"
            );
            refused.insert(id);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    assert!(kills > 5, "connections were killed {kills} times");
    assert!(
        !refused.is_empty(),
        "some commits must have failed under the killer"
    );
    assert!(!acked.is_empty(), "the pool reconnects and ingest goes on");

    // Every AA is stored; whatever is stored is whole (message + its delivery row). A refused
    // message may still be stored if the commit reached the server but its answer was lost:
    // the sender resends, which is the at-least-once contract.
    let stored = engine.messages();
    let ids: HashSet<String> = stored
        .iter()
        .map(|m| m["control_id"].as_str().unwrap().to_string())
        .collect();
    for id in &acked {
        assert!(
            ids.contains(id),
            "{id} was acknowledged, so it must be stored"
        );
    }
    for m in &stored {
        assert_eq!(m["status"], "accepted");
        assert_eq!(
            m["deliveries"].as_array().unwrap().len(),
            1,
            "no half-stored message: {m}"
        );
    }
    drop(engine);
    psql(&format!("DROP SCHEMA {tag} CASCADE"));
}
