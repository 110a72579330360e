//! The store contract: the same behaviour, checked on SQLite and on a real PostgreSQL
//! (`MEDWAY_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`; each test gets
//! its own schema). A missing PostgreSQL fails these tests; it never skips them.

mod support;

use bytes::Bytes;
use medway_engine::message::{DeliveryStatus, MessageStatus, NewDelivery, NewMessage};
use medway_engine::store::{
    AttemptResult, ClaimOrder, DeliveryOutcome, MessageFilter, Store, StoreWriter,
};
use std::sync::Arc;
use std::time::Duration;
use support::Backend;

fn keyed(channel: &str, control_id: &str, key: &str) -> NewMessage {
    let mut m = message(channel, control_id, &["d1"]);
    m.deliveries[0].ordering_key = Some(key.to_string());
    m
}

fn message(channel: &str, control_id: &str, destinations: &[&str]) -> NewMessage {
    NewMessage {
        channel: Arc::from(channel),
        received_at: medway_engine::clock::now_micros(),
        control_id: Some(control_id.to_string()),
        message_type: Some("ORU^R01".into()),
        status: MessageStatus::Accepted,
        error: None,
        patient_key: Some("MRN1^HOSP".into()),
        peer: Some("127.0.0.1:5000".into()),
        parent: None,
        origin: None,
        raw: Bytes::from(format!(
            "MSH|^~\\&|A|B|C|D|||ORU^R01|{control_id}|P|2.5.1\r"
        )),
        transformed: None,
        deliveries: destinations
            .iter()
            .map(|d| NewDelivery {
                destination: Arc::from(*d),
                ordering_key: None,
            })
            .collect(),
    }
}

fn outcome(delivery_id: i64, attempt: u32, result: AttemptResult) -> DeliveryOutcome {
    DeliveryOutcome {
        delivery_id,
        attempt,
        started_at: medway_engine::clock::now_micros(),
        duration_us: 10,
        result,
    }
}

const LEASE: Duration = Duration::from_secs(60);

async fn writes_and_reads_back(store: Arc<dyn Store>) {
    let ids = store
        .write_batch(
            &[
                message("c1", "A1", &["d1", "d2"]),
                message("c1", "A2", &["d1"]),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[1] > ids[0], "ids increase in commit order: {ids:?}");
    let detail = store.message(ids[0]).await.unwrap().expect("stored");
    assert_eq!(detail.summary.control_id.as_deref(), Some("A1"));
    assert_eq!(detail.summary.status, MessageStatus::Accepted);
    assert_eq!(detail.raw, b"MSH|^~\\&|A|B|C|D|||ORU^R01|A1|P|2.5.1\r");
    assert_eq!(detail.patient_key.as_deref(), Some("MRN1^HOSP"));
    let deliveries = store.deliveries_of(&ids).await.unwrap();
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Queued)
    );
    assert_eq!(deliveries[0].destination, "d1");
    assert_eq!(deliveries[1].destination, "d2");
    assert!(store.message(ids[1] + 1000).await.unwrap().is_none());
}

async fn claims_fifo_with_leases(store: Arc<dyn Store>) {
    let batch: Vec<NewMessage> = (0..5)
        .map(|i| message("c1", &format!("F{i}"), &["d1"]))
        .collect();
    store.write_batch(&batch, &[]).await.unwrap();
    let claim = store
        .claim("c1", "d1", "node-a", LEASE, 3, ClaimOrder::Fifo)
        .await
        .unwrap();
    let got: Vec<&str> = claim
        .deliveries
        .iter()
        .map(|d| d.control_id.as_deref().unwrap())
        .collect();
    assert_eq!(got, vec!["F0", "F1", "F2"]);
    assert_eq!(claim.deliveries[0].attempts, 0);
    assert!(claim.deliveries[0].payload.starts_with(b"MSH|"));
    // The head is leased by node-a: another node may not pass it.
    let other = store
        .claim("c1", "d1", "node-b", LEASE, 10, ClaimOrder::Fifo)
        .await
        .unwrap();
    assert!(other.deliveries.is_empty());
    // Other destinations are independent.
    assert!(
        store
            .claim("c1", "d2", "node-b", LEASE, 10, ClaimOrder::Fifo)
            .await
            .unwrap()
            .deliveries
            .is_empty()
    );
    // Releasing gives them back, in order.
    let ids: Vec<i64> = claim.deliveries.iter().map(|d| d.id).collect();
    store.release(&ids).await.unwrap();
    let again = store
        .claim("c1", "d1", "node-b", LEASE, 10, ClaimOrder::Fifo)
        .await
        .unwrap();
    assert_eq!(again.deliveries.len(), 5);
    assert_eq!(again.deliveries[0].id, ids[0]);
    store.release_leases("node-b").await.unwrap();
    assert_eq!(
        store
            .claim("c1", "d1", "node-a", LEASE, 10, ClaimOrder::Fifo)
            .await
            .unwrap()
            .deliveries
            .len(),
        5
    );
}

async fn outcomes_move_deliveries(store: Arc<dyn Store>) {
    let ids = store
        .write_batch(
            &[message("c1", "S1", &["d1"]), message("c1", "S2", &["d1"])],
            &[],
        )
        .await
        .unwrap();
    let claim = store
        .claim("c1", "d1", "n", LEASE, 10, ClaimOrder::Fifo)
        .await
        .unwrap();
    let (first, second) = (claim.deliveries[0].id, claim.deliveries[1].id);
    let later = medway_engine::clock::now_micros() + 3_600_000_000;
    store
        .write_batch(
            &[],
            &[
                outcome(
                    first,
                    1,
                    AttemptResult::Sent {
                        summary: "ok".into(),
                    },
                ),
                outcome(
                    second,
                    1,
                    AttemptResult::Retry {
                        reason: "peer down".into(),
                        next_attempt_at: later,
                    },
                ),
            ],
        )
        .await
        .unwrap();
    let views = store.deliveries_of(&ids).await.unwrap();
    assert_eq!(views[0].status, DeliveryStatus::Sent);
    assert_eq!(views[1].status, DeliveryStatus::Retrying);
    assert_eq!(views[1].attempts, 1);
    assert_eq!(views[1].last_error.as_deref(), Some("peer down"));
    // The retrying head is not due: nothing is claimed and the due time is reported.
    let claim = store
        .claim("c1", "d1", "n", LEASE, 10, ClaimOrder::Fifo)
        .await
        .unwrap();
    assert!(claim.deliveries.is_empty());
    assert_eq!(claim.next_due, Some(later));
    // Errored deliveries leave the queue for good.
    store
        .write_batch(
            &[],
            &[outcome(
                second,
                2,
                AttemptResult::Errored {
                    reason: "bad".into(),
                },
            )],
        )
        .await
        .unwrap();
    let views = store.deliveries_of(&ids).await.unwrap();
    assert_eq!(views[1].status, DeliveryStatus::Errored);
    assert_eq!(views[1].attempts, 2);
    let claim = store
        .claim("c1", "d1", "n", LEASE, 10, ClaimOrder::Fifo)
        .await
        .unwrap();
    assert!(claim.deliveries.is_empty() && claim.next_due.is_none());
    let counts = store.queue_counts().await.unwrap();
    let count = |s: DeliveryStatus| {
        counts
            .iter()
            .filter(|c| c.status == s)
            .map(|c| c.count)
            .sum::<i64>()
    };
    assert_eq!(
        (count(DeliveryStatus::Sent), count(DeliveryStatus::Errored)),
        (1, 1)
    );
}

/// Batches larger than one multi-row statement keep delivery ids in message order (FIFO relies
/// on it), and a delivery reported twice in one batch keeps its last outcome and both attempts.
async fn large_batches_keep_order_and_the_last_outcome(store: Arc<dyn Store>) {
    let messages: Vec<NewMessage> = (0..1_203)
        .map(|i| message("big", &format!("B{i:04}"), &["d1", "d2"]))
        .collect();
    let ids = store.write_batch(&messages, &[]).await.unwrap();
    assert_eq!(ids.len(), 1_203);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let views = store.deliveries_of(&ids).await.unwrap();
    assert_eq!(views.len(), 2 * 1_203);
    let claim = store
        .claim("big", "d1", "n", LEASE, 1_500, ClaimOrder::Fifo)
        .await
        .unwrap();
    let claimed: Vec<i64> = claim.deliveries.iter().map(|d| d.message_id).collect();
    assert_eq!(claimed, ids, "d1's deliveries come back in message order");
    let (first, second) = (claim.deliveries[0].id, claim.deliveries[1].id);
    let later = medway_engine::clock::now_micros() + 3_600_000_000;
    let mut outcomes = vec![
        outcome(
            first,
            1,
            AttemptResult::Retry {
                reason: "peer down".into(),
                next_attempt_at: later,
            },
        ),
        outcome(
            second,
            1,
            AttemptResult::Sent {
                summary: "ok".into(),
            },
        ),
        outcome(
            first,
            2,
            AttemptResult::Sent {
                summary: "ok".into(),
            },
        ),
    ];
    outcomes.extend(claim.deliveries[2..].iter().map(|d| {
        outcome(
            d.id,
            1,
            AttemptResult::Sent {
                summary: "ok".into(),
            },
        )
    }));
    store.write_batch(&[], &outcomes).await.unwrap();
    let views = store.deliveries_of(&ids).await.unwrap();
    let d1: Vec<_> = views.iter().filter(|v| v.destination == "d1").collect();
    assert!(
        d1.iter().all(|v| v.status == DeliveryStatus::Sent),
        "every d1 delivery sent"
    );
    let head = d1.iter().find(|v| v.id == first).unwrap();
    assert_eq!((head.attempts, head.last_error.as_deref()), (2, None));
    let attempts = store.attempts(first).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        ["retry", "sent"]
    );
    let d2 = views.iter().filter(|v| v.destination == "d2");
    assert!(d2.clone().all(|v| v.status == DeliveryStatus::Queued));
}

async fn failed_batch_stores_nothing(store: Arc<dyn Store>) {
    // An outcome for a delivery that does not exist violates a foreign key: the whole
    // transaction, including the message beside it, must roll back.
    let result = store
        .write_batch(
            &[message("c1", "ROLLBACK", &["d1"])],
            &[outcome(
                987_654_321,
                1,
                AttemptResult::Sent {
                    summary: String::new(),
                },
            )],
        )
        .await;
    assert!(result.is_err(), "the batch must fail");
    let found = store
        .list_messages(&MessageFilter {
            control_id: Some("ROLLBACK".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(found.is_empty(), "nothing half-stored: {found:?}");
    assert!(
        store
            .claim("c1", "d1", "n", LEASE, 10, ClaimOrder::Fifo)
            .await
            .unwrap()
            .deliveries
            .is_empty()
    );
}

async fn lists_with_filters(store: Arc<dyn Store>) {
    let mut error = message("c2", "E1", &[]);
    error.status = MessageStatus::Error;
    error.error = Some("PID-3 missing".into());
    store
        .write_batch(
            &[
                message("c1", "L1", &["d1"]),
                error,
                message("c2", "L3", &[]),
            ],
            &[],
        )
        .await
        .unwrap();
    let all = store
        .list_messages(&MessageFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].control_id.as_deref(), Some("L3"), "newest first");
    let c2 = store
        .list_messages(&MessageFilter {
            channel: Some("c2".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c2.len(), 2);
    let errors = store
        .list_messages(&MessageFilter {
            status: Some(MessageStatus::Error),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error.as_deref(), Some("PID-3 missing"));
    let future = medway_engine::clock::now_micros() + 60_000_000;
    let none = store
        .list_messages(&MessageFilter {
            since: Some(future),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let limited = store
        .list_messages(&MessageFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

async fn writer_group_commits_concurrent_requests(store: Arc<dyn Store>) {
    let (writer, task) = StoreWriter::spawn(store.clone(), 64, 256);
    let wake = Arc::new(tokio::sync::Notify::new());
    let mut joins = Vec::new();
    for i in 0..200 {
        let writer = writer.clone();
        let wake = wake.clone();
        joins.push(tokio::spawn(async move {
            writer
                .commit(message("w", &format!("W{i}"), &["d1"]), vec![wake])
                .await
        }));
    }
    let mut ids = Vec::new();
    for j in joins {
        ids.push(j.await.unwrap().expect("committed"));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200, "every request got its own id");
    // Committing woke the worker.
    tokio::time::timeout(Duration::from_secs(1), wake.notified())
        .await
        .expect("woken");
    drop(writer);
    task.await.unwrap();
    let listed = store
        .list_messages(&MessageFilter {
            channel: Some("w".into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 200);
}

async fn ordering_keys_block_only_their_own_key(store: Arc<dyn Store>) {
    let batch = vec![
        keyed("k", "P1-a", "P1"),
        keyed("k", "P2-a", "P2"),
        keyed("k", "P1-b", "P1"),
        keyed("k", "P2-b", "P2"),
    ];
    store.write_batch(&batch, &[]).await.unwrap();
    let claim = store
        .claim("k", "d1", "n", LEASE, 1, ClaimOrder::ByKey)
        .await
        .unwrap();
    assert_eq!(claim.deliveries.len(), 1);
    let p1a = claim.deliveries[0].clone();
    assert_eq!(p1a.ordering_key.as_deref(), Some("P1"));
    // P1's head fails and waits for its retry: P1-b must wait, P2 flows.
    let later = medway_engine::clock::now_micros() + 3_600_000_000;
    store
        .write_batch(
            &[],
            &[outcome(
                p1a.id,
                1,
                AttemptResult::Retry {
                    reason: "down".into(),
                    next_attempt_at: later,
                },
            )],
        )
        .await
        .unwrap();
    let claim = store
        .claim("k", "d1", "n", LEASE, 10, ClaimOrder::ByKey)
        .await
        .unwrap();
    let got: Vec<&str> = claim
        .deliveries
        .iter()
        .map(|d| d.control_id.as_deref().unwrap())
        .collect();
    assert_eq!(got, vec!["P2-a", "P2-b"]);
    assert_eq!(claim.next_due, Some(later));
    // Strict FIFO on the same queue would have stopped at P1-a.
    let ids: Vec<i64> = claim.deliveries.iter().map(|d| d.id).collect();
    store.release(&ids).await.unwrap();
    let fifo = store
        .claim("k", "d1", "n", LEASE, 10, ClaimOrder::Fifo)
        .await
        .unwrap();
    assert!(fifo.deliveries.is_empty());
    assert_eq!(fifo.next_due, Some(later));
}

fn with_origin(channel: &str, control_id: &str, origin: &str) -> NewMessage {
    let mut m = message(channel, control_id, &["d1"]);
    m.origin = Some(origin.to_string());
    m
}

async fn count_in(store: &Arc<dyn Store>, channel: &str) -> usize {
    store
        .list_messages(&MessageFilter {
            channel: Some(channel.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

/// A message whose (channel, origin) is already stored is answered with the existing id and
/// adds nothing (no row, no delivery); the rest of its batch commits. Duplicates inside one
/// batch collapse too; the same origin on another channel, or no origin, is a new message.
async fn origin_duplicates_collapse(store: Arc<dyn Store>) {
    let first = store
        .write_batch(&[with_origin("c1", "O1", "file:aa:0")], &[])
        .await
        .unwrap();
    let detail = store.message(first[0]).await.unwrap().expect("stored");
    assert_eq!(detail.origin.as_deref(), Some("file:aa:0"));
    let ids = store
        .write_batch(
            &[
                with_origin("c1", "O1-again", "file:aa:0"),
                with_origin("c1", "O2", "file:aa:1"),
                with_origin("c1", "O2-again", "file:aa:1"),
                message("c1", "plain", &["d1"]),
                message("c1", "plain", &["d1"]),
                with_origin("c2", "O1-other-channel", "file:aa:0"),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 6, "one answer per request: {ids:?}");
    assert_eq!(
        ids[0], first[0],
        "a known origin answers with the existing id"
    );
    assert_eq!(ids[1], ids[2], "duplicates inside one batch collapse");
    assert!(ids[1] > first[0]);
    assert_ne!(
        ids[3], ids[4],
        "messages without an origin are never collapsed"
    );
    assert!(!ids[..5].contains(&ids[5]), "origins are per channel");
    assert_eq!(count_in(&store, "c1").await, 4);
    assert_eq!(count_in(&store, "c2").await, 1);
    // The stored row is the first one; the duplicate added no delivery.
    let kept = store.message(first[0]).await.unwrap().expect("stored");
    assert_eq!(kept.summary.control_id.as_deref(), Some("O1"));
    let deliveries = store.deliveries_of(&[first[0], ids[1]]).await.unwrap();
    assert_eq!(deliveries.len(), 2, "one delivery each: {deliveries:?}");
    let claim = store
        .claim("c1", "d1", "n", LEASE, 100, ClaimOrder::Fifo)
        .await
        .unwrap();
    let claimed: Vec<&str> = claim
        .deliveries
        .iter()
        .map(|d| d.control_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(claimed, vec!["O1", "O2", "plain", "plain"]);
}

/// Through the group-committing writer: concurrent commits of one origin (a source re-reading
/// a file while the first read is still being committed) all get the one stored id.
async fn writer_answers_duplicates_with_the_existing_id(store: Arc<dyn Store>) {
    let (writer, task) = StoreWriter::spawn(store.clone(), 64, 256);
    let mut joins = Vec::new();
    for i in 0..40 {
        let writer = writer.clone();
        joins.push(tokio::spawn(async move {
            let origin = format!("file:bb:{}", i % 4);
            writer
                .commit(with_origin("wd", &format!("D{i}"), &origin), Vec::new())
                .await
        }));
    }
    let mut ids = Vec::new();
    for j in joins {
        ids.push(j.await.unwrap().expect("committed, not failed"));
    }
    let again = writer
        .commit(with_origin("wd", "late", "file:bb:0"), Vec::new())
        .await
        .expect("a late duplicate is answered");
    assert!(ids.contains(&again));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one message per origin: {ids:?}");
    drop(writer);
    task.await.unwrap();
    assert_eq!(count_in(&store, "wd").await, 4);
    let deliveries = store.deliveries_of(&ids).await.unwrap();
    assert_eq!(deliveries.len(), 4);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::sqlite().await;
                    super::$name(backend.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::Backend::postgres().await;
                    super::$name(backend.store.clone()).await;
                    backend.cleanup().await;
                }
            )*
        }
    };
}

contract!(
    writes_and_reads_back,
    claims_fifo_with_leases,
    outcomes_move_deliveries,
    failed_batch_stores_nothing,
    lists_with_filters,
    writer_group_commits_concurrent_requests,
    ordering_keys_block_only_their_own_key,
    origin_duplicates_collapse,
    writer_answers_duplicates_with_the_existing_id,
    large_batches_keep_order_and_the_last_outcome,
);

mod clinical {
    use super::support::Backend;
    use medway_engine::store::{AlertFilter, AlertRow, ObservationRow, ScoreRow, Store};
    use std::sync::Arc;

    fn obs(patient: &str, seq: i64, at: i64, value: f64) -> ObservationRow {
        ObservationRow {
            patient: patient.into(),
            kind: "HeartRate".into(),
            value: Some(value),
            text: None,
            unit: "/min".into(),
            original: format!("{value} /min"),
            observed_at: at,
            status: "final".into(),
            set_id: Some("1".into()),
            message_id: None,
            delivery_id: 7,
            seq,
        }
    }

    async fn observations_scores_and_alerts(store: Arc<dyn Store>) {
        store
            .record_observations(&[obs("P1^^^H", 0, 100, 80.0), obs("P1^^^H", 1, 200, 90.0)])
            .await
            .unwrap();
        // The same delivery recorded again adds nothing.
        store
            .record_observations(&[obs("P1^^^H", 1, 200, 90.0)])
            .await
            .unwrap();
        store
            .record_observations(&[ObservationRow {
                delivery_id: 8,
                ..obs("P2^^^H", 0, 150, 60.0)
            }])
            .await
            .unwrap();
        let p1 = store.patient_observations("P1^^^H", 0).await.unwrap();
        assert_eq!(
            p1.iter().map(|o| o.value.unwrap()).collect::<Vec<_>>(),
            vec![80.0, 90.0]
        );
        assert_eq!(
            store
                .patient_observations("P1^^^H", 150)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.spo2_scale("P1^^^H").await.unwrap(), None);
        store.set_spo2_scale("P1^^^H", 2).await.unwrap();
        assert_eq!(
            store.spo2_scale("P1^^^H").await.unwrap().map(|(s, _)| s),
            Some(2)
        );
        assert_eq!(store.spo2_scale("P2^^^H").await.unwrap(), None);

        let score = ScoreRow {
            id: 0,
            patient: "P1^^^H".into(),
            at: 200,
            news2_total: Some(7),
            news2_band: Some("high".into()),
            qsofa_total: Some(2),
            sirs_total: None,
            complete: false,
            detail: serde_json::json!({"news2": {"total": 7}}),
            message_id: None,
            delivery_id: Some(7),
        };
        let score_id = store.record_score(&score).await.unwrap();
        let latest = store.latest_score("P1^^^H").await.unwrap().unwrap();
        assert_eq!(
            (latest.id, latest.news2_total, latest.complete),
            (score_id, Some(7), false)
        );
        assert_eq!(latest.detail["news2"]["total"], 7);

        let alert = AlertRow {
            id: 0,
            patient: "P1^^^H".into(),
            rule: "news2".into(),
            severity: "emergency".into(),
            rank: 3,
            state: "open".into(),
            title: "NEWS2 7 (high) — WARD7".into(),
            detail: serde_json::json!({}),
            score_id: Some(score_id),
            raised_at: 200,
            suppress_until: 1000,
            updated_at: 200,
            escalated_from: Some("urgent".into()),
            acknowledged_by: None,
            acknowledged_at: None,
            resolved_by: None,
            resolved_at: None,
            dispatched_message_id: None,
        };
        let id = store.insert_alert(&alert).await.unwrap();
        let found = store
            .latest_alert("P1^^^H", "news2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id, found.rank, found.escalated_from.as_deref()),
            (id, 3, Some("urgent"))
        );
        assert!(
            store
                .latest_alert("P2^^^H", "news2")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .set_alert_state(id, "acknowledged", "nurse.jones", 300)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_alert_state(id, "acknowledged", "someone.else", 301)
                .await
                .unwrap(),
            "only once"
        );
        store.mark_alert_dispatched(id, 42).await.unwrap();
        let a = store.alert(id).await.unwrap().unwrap();
        assert_eq!(
            (
                a.state.as_str(),
                a.acknowledged_by.as_deref(),
                a.dispatched_message_id
            ),
            ("acknowledged", Some("nurse.jones"), Some(42))
        );
        assert!(
            store
                .set_alert_state(id, "resolved", "dr.who", 400)
                .await
                .unwrap()
        );
        let listed = store
            .list_alerts(&AlertFilter {
                state: Some("resolved".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].resolved_by.as_deref(), Some("dr.who"));
    }

    #[tokio::test]
    async fn sqlite() {
        let backend = Backend::sqlite().await;
        observations_scores_and_alerts(backend.store.clone()).await;
    }

    #[tokio::test]
    async fn postgres() {
        let backend = Backend::postgres().await;
        observations_scores_and_alerts(backend.store.clone()).await;
        backend.cleanup().await;
    }
}
