//! Ingest through the running engine into the real RabbitMQ while the broker misbehaves: its
//! connections forcibly closed, then the broker application stopped and started. Ingest keeps
//! ACKing (it never waits for destinations), deliveries retry and drain, and every acknowledged
//! message reaches the queue (at least once).

mod support;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed for this test");
    assert!(
        status.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Starts the broker application again even if the test fails half-way.
struct BrokerGuard;

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

async fn drain(queue: &str, want: usize) -> Vec<String> {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "medway-e2e".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut ids = Vec::new();
    let mut distinct = HashSet::new();
    while distinct.len() < want {
        match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
            Ok(Some(Ok(delivery))) => {
                let body = String::from_utf8_lossy(&delivery.data).to_string();
                let msh = body.split('\r').next().unwrap_or_default().to_string();
                let id = field(&msh, 10);
                distinct.insert(id.clone());
                ids.push(id);
            }
            other => panic!(
                "consumer stopped after {} distinct of {want} (timed out: {})",
                distinct.len(),
                other.is_err()
            ),
        }
    }
    let _ = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "done".into()).await;
    ids
}

#[test]
fn ingest_keeps_acking_and_nothing_is_lost_while_the_broker_misbehaves() {
    let _guard = BrokerGuard;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tag = format!("medway.e2e.{}.{port}", std::process::id());
    let channel = format!(
        r##"
[source]
kind = "mllp"
listen = "127.0.0.1:{port}"

[[destination]]
name = "bus"
kind = "rabbitmq"
url = "{AMQP}"
exchange = "{tag}"
routing_key = "{{control_id}}"
declare = {{ exchange_type = "topic", queue = "{tag}.q", binding_key = "#" }}
connect_timeout_ms = 1000
publish_timeout_ms = 2000
reconnect_initial_ms = 100
reconnect_max_ms = 1000
retry = {{ initial_delay_ms = 100, multiplier = 1.5, max_delay_ms = 1000, max_attempts = 1000 }}
"##
    );
    let store = format!("sqlite://{}", dir.path().join("medway.db").display());
    let engine = Engine::start(dir.path(), &channel, port, &store);

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let sender = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let mut conn = Mllp::connect(port);
            for n in 0..400 {
                let id = format!("RMQ{n}");
                let ack = conn.exchange(&oru(&id, "2.5.1", "", "", "MRN1^^^HOSP^MR"));
                assert_eq!(
                    segments(&ack)[1],
                    format!("MSA|AA|{id}"),
                    "ingest keeps acknowledging"
                );
                acked.lock().unwrap().push(id);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        rabbitmqctl(&["close_all_connections", "medway e2e test"]);
    }
    rabbitmqctl(&["stop_app"]);
    std::thread::sleep(Duration::from_millis(1500));
    rabbitmqctl(&["start_app"]);
    sender.join().expect("every message was acknowledged");
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 400);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let received = runtime.block_on(async {
        // The broker restarted: give the engine's supervisor time to reconnect and drain.
        tokio::time::timeout(
            Duration::from_secs(120),
            drain(&format!("{tag}.q"), acked.len()),
        )
        .await
        .expect("every acknowledged message reaches RabbitMQ in time")
    });
    let got: HashSet<&String> = received.iter().collect();
    for id in &acked {
        assert!(
            got.contains(id),
            "{id} was acknowledged, so it must be published"
        );
    }
    eprintln!(
        "{} acknowledged, {} published ({} duplicates from retried sends)",
        acked.len(),
        received.len(),
        received.len() - got.len()
    );
    eventually(30, "all deliveries sent", || {
        let out = engine.medway(&[
            "deliveries",
            "list",
            "--status",
            "sent",
            "--limit",
            "1000",
            "--json",
            "--store",
            &store,
        ]);
        String::from_utf8_lossy(&out.stdout).lines().count() == 400
    });
}
