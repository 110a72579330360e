//! Operational alerts: an errored delivery and a stopped peer start an alert in the alert
//! channel; when the condition is gone it is resolved — one started/resolved pair, not a flood.

mod support;

use serde_json::Value;
use support::*;

#[test]
fn errored_deliveries_start_and_resolve_one_operational_alert() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead = free_port();
    std::fs::create_dir_all(dir.path().join("channels")).unwrap();
    std::fs::write(
        dir.path().join("medway.toml"),
        "[operations]\nalert_channel = \"alerts\"\ncheck_secs = 1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("channels/lab.toml"),
        format!(
            "[source]\nkind = \"mllp\"\nlisten = \"127.0.0.1:{port}\"\n\n[[destination]]\nname = \"lis\"\nkind = \"mllp\"\naddress = \"127.0.0.1:{dead}\"\nconnect_timeout_ms = 200\nretry = {{ max_attempts = 1 }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("channels/alerts.toml"),
        "[source]\nkind = \"internal\"\n\n[[destination]]\nname = \"log\"\nkind = \"file\"\ndirectory = \"alerts\"\nfilename = \"{control_id}-{delivery_id}.json\"\n",
    )
    .unwrap();
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    let engine = Engine::restart_in(dir.path(), port, &store);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let ack = engine
        .connect()
        .exchange(&oru("OPS1", "2.5.1", "", "", "M1^^^H^MR"));
    assert_eq!(
        segments(&ack)[1],
        "MSA|AA|OPS1",
        "ingest does not care that the peer is down"
    );
    let alerts = || -> Vec<Value> {
        let out = engine.medway(&["alerts", "list", "--json", "--store", &store]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    eventually(20, "an operational alert for the errored delivery", || {
        alerts().iter().any(|a| a["rule"] == "errored:lab/lis")
    });
    // No new errors in the next check: the same alert is resolved (not a second one raised).
    eventually(20, "resolved", || {
        alerts()
            .iter()
            .any(|a| a["rule"] == "errored:lab/lis" && a["state"] == "resolved")
    });
    let list = alerts();
    assert_eq!(
        list.iter()
            .filter(|a| a["rule"] == "errored:lab/lis")
            .count(),
        1,
        "{list:?}"
    );
    let alert = list
        .iter()
        .find(|a| a["rule"] == "errored:lab/lis")
        .unwrap();
    assert_eq!(alert["resolved_by"], "medway");
    // Both the start and the resolution went to the alert channel as documents.
    eventually(20, "two documents in the alert channel", || {
        std::fs::read_dir(dir.path().join("alerts"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 2
    });
    let bodies: Vec<Value> = std::fs::read_dir(dir.path().join("alerts"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert!(bodies.iter().all(|b| b["kind"] == "operational"));
    let mut states: Vec<&str> = bodies
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    states.sort_unstable();
    assert_eq!(states, vec!["open", "resolved"]);
}
