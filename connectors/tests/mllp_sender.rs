//! The MLLP sender against a real TCP peer on 127.0.0.1 that answers AA, AE, AR, a wrong MSA-2,
//! a late ACK after the timeout, or nothing — each outcome exactly as specified, and a late ACK
//! never taken for another message.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use medway_connectors::destinations::mllp::{MllpSender, MllpSenderSettings};
use medway_connectors::mllp::MllpCodec;
use medway_engine::connector::{Destination, Retry};
use medway_engine::message::Delivery;
use medway_hl7::Message;
use medway_hl7::ack::{self, AckError, Outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// A peer whose answer depends on the control id's prefix. Counts connections.
async fn peer() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, MllpCodec::new(1 << 20));
                while let Some(Ok(frame)) = framed.next().await {
                    let message = Message::parse(frame).unwrap();
                    let id = message.control_id().unwrap().into_owned();
                    let error = AckError {
                        code: 207,
                        text: "peer says no".into(),
                        location: None,
                    };
                    let (outcome, answer_for) = match id.split('-').next().unwrap() {
                        "AE" => (Outcome::Error(error), id.clone()),
                        "AR" => (Outcome::Reject(AckError { code: 200, ..error }), id.clone()),
                        // AR with ERR-3 207: the peer could not take it now (store down, rate
                        // limit) and asks for a resend.
                        "RESEND" => (Outcome::Reject(error), id.clone()),
                        "WRONG" => (Outcome::Accept, "SOMEONE-ELSE".to_string()),
                        "SILENT" => continue,
                        "LATE" => {
                            tokio::time::sleep(Duration::from_millis(600)).await;
                            (Outcome::Accept, id.clone())
                        }
                        _ => (Outcome::Accept, id.clone()),
                    };
                    let mut ack = String::from_utf8(
                        ack::build_ack(&message, &outcome, "ACK1", "20240101").to_vec(),
                    )
                    .unwrap();
                    ack = ack.replace(&format!("|{id}"), &format!("|{answer_for}"));
                    if framed.send(Bytes::from(ack)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, connections)
}

fn sender(address: &str, on_error: &str) -> MllpSender {
    MllpSender::new(MllpSenderSettings {
        address: address.to_string(),
        connect_timeout_ms: 1_000,
        response_timeout_ms: 300,
        on_application_error: on_error.into(),
        keep_alive: true,
        tls: None,
    })
}

fn delivery(control_id: &str) -> Delivery {
    Delivery {
        id: 1,
        message_id: 1,
        channel: "c".into(),
        destination: "d".into(),
        attempts: 0,
        control_id: Some(control_id.into()),
        message_type: Some("ORU^R01".into()),
        payload: Bytes::from(format!(
            "MSH|^~\\&|MEDWAY|HOSP|LAB|HOSP|20240501||ORU^R01|{control_id}|P|2.5.1\rPID|1||MRN1\r"
        )),
        received_at: 0,
        ordering_key: None,
    }
}

#[tokio::test]
async fn aa_is_sent() {
    let (address, _) = peer().await;
    let response = sender(&address, "retry")
        .send(&delivery("AA-1"))
        .await
        .unwrap();
    assert!(response.summary.contains("AA"), "{}", response.summary);
}

#[tokio::test]
async fn ae_retries_or_errors_by_setting_and_ar_errors() {
    let (address, _) = peer().await;
    let e = sender(&address, "retry")
        .send(&delivery("AE-1"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Later);
    assert!(
        e.reason.contains("AE") && e.reason.contains("peer says no"),
        "{}",
        e.reason
    );
    let e = sender(&address, "error")
        .send(&delivery("AE-2"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Never);
    let e = sender(&address, "retry")
        .send(&delivery("AR-1"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Never);
    assert!(e.reason.contains("AR"), "{}", e.reason);
    let e = sender(&address, "error")
        .send(&delivery("RESEND-1"))
        .await
        .unwrap_err();
    assert_eq!(
        e.retry,
        Retry::Later,
        "AR with ERR 207 is retried: {}",
        e.reason
    );
}

#[tokio::test]
async fn wrong_msa2_is_never_accepted_and_closes_the_connection() {
    let (address, connections) = peer().await;
    let sender = sender(&address, "retry");
    let e = sender.send(&delivery("WRONG-1")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Later);
    assert!(e.reason.contains("ACK for another message"), "{}", e.reason);
    sender.send(&delivery("AA-2")).await.unwrap();
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "a fresh connection after the mismatch"
    );
}

#[tokio::test]
async fn a_late_ack_is_never_matched_to_the_next_message() {
    let (address, connections) = peer().await;
    let sender = sender(&address, "retry");
    let e = sender.send(&delivery("LATE-1")).await.unwrap_err();
    assert_eq!(e.retry, Retry::Later);
    assert!(e.reason.contains("no ACK within"), "{}", e.reason);
    // The peer will answer LATE-1 on the old connection; the next message uses a new one
    // and gets its own ACK.
    let response = sender.send(&delivery("AA-3")).await.unwrap();
    assert!(response.summary.contains("AA-3"), "{}", response.summary);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let response = sender.send(&delivery("AA-4")).await.unwrap();
    assert!(response.summary.contains("AA-4"), "{}", response.summary);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn silence_times_out_and_refused_connections_retry() {
    let (address, _) = peer().await;
    let e = sender(&address, "retry")
        .send(&delivery("SILENT-1"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Later);
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let e = sender(&address, "retry")
        .send(&delivery("AA-5"))
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Later);
    assert!(e.reason.contains("cannot connect"), "{}", e.reason);
}
