//! The RabbitMQ destination against the real broker on 127.0.0.1:5672 (guest/guest; override
//! with `MEDWAY_TEST_AMQP_URL`). Every test uses its own uniquely named exchange and queue and
//! deletes them at the end (also on failure, from a drop guard). Every test holds one lock:
//! some close all connections, stop the broker or raise a memory alarm, and must not overlap.
//!
//! Run: `cargo test -p medway-connectors --test rabbitmq`; the benchmark:
//! `cargo test --release -p medway-connectors --test rabbitmq -- --ignored --nocapture bench`.

use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use medway_connectors::destinations::rabbitmq::{RabbitMqPublisher, RabbitMqSettings};
use medway_engine::config::ConnectorSpec;
use medway_engine::connector::{Destination, Retry};
use medway_engine::message::Delivery;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Held by every test: the chaos tests close every connection or stop the broker.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn url() -> String {
    std::env::var("MEDWAY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("medway-test-{prefix}-{}-{nanos}", std::process::id())
}

fn settings(extra: &str) -> RabbitMqSettings {
    let text = format!("url = {:?}\n{extra}", url());
    let table: toml::Table = toml::from_str(&text).expect("test settings are TOML");
    RabbitMqSettings::from_spec(&ConnectorSpec::inline("rabbitmq", table))
        .unwrap_or_else(|e| panic!("settings: {} ({:?})", e.message, e.hint))
}

/// A topic exchange + durable queue bound with `#`, declared by the publisher itself.
fn declared(exchange: &str, queue: &str, extra: &str) -> RabbitMqPublisher {
    let s = settings(&format!(
        "exchange = {exchange:?}\nrouting_key = \"{{channel}}.{{type}}.{{trigger}}.{{PID-3.4}}\"\n\
         declare = {{ exchange_type = \"topic\", queue = {queue:?}, binding_key = \"#\" }}\n{extra}"
    ));
    RabbitMqPublisher::new(s, "medway test")
}

fn delivery(id: i64) -> Delivery {
    let control_id = format!("CTL{id}");
    let payload = format!(
        "MSH|^~\\&|LAB|HOSP|MEDWAY|HOSP|20240101120000||ORU^R01|{control_id}|P|2.5\r\
         PID|1||MRN{id}^^^HOSP||DOE^JANE\r\
         OBX|1|NM|8867-4^Heart rate^LN||{}|/min|||||F\r",
        60 + id % 50
    );
    Delivery {
        id,
        message_id: 10_000 + id,
        channel: "lab".into(),
        destination: "bus".into(),
        attempts: 0,
        control_id: Some(control_id),
        message_type: Some("ORU^R01".into()),
        payload: Bytes::from(payload),
        received_at: 1_700_000_000_000_000 + id,
        ordering_key: None,
    }
}

async fn connect() -> Connection {
    Connection::connect(&url(), ConnectionProperties::default())
        .await
        .expect("the test broker is up on 127.0.0.1:5672")
}

async fn rabbitmqctl(args: &[&str]) {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl is installed");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the broker's app if a previous run left it stopped, and waits until it accepts.
async fn broker_up() {
    let _ = tokio::process::Command::new("rabbitmqctl")
        .arg("start_app")
        .output()
        .await;
    rabbitmqctl(&["await_startup"]).await;
}

/// Deletes the test's exchange and queue when dropped (on success and on panic alike).
struct Topology {
    exchange: String,
    queue: String,
}

impl Topology {
    fn new(name: &str) -> Self {
        Self {
            exchange: unique(&format!("{name}-x")),
            queue: unique(&format!("{name}-q")),
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let (exchange, queue) = (self.exchange.clone(), self.queue.clone());
        // Async cleanup from a synchronous drop: a short-lived runtime on its own thread.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                // Make sure a failed chaos test does not leave the broker stopped.
                let _ = tokio::process::Command::new("rabbitmqctl")
                    .arg("start_app")
                    .output()
                    .await;
                let Ok(conn) = Connection::connect(&url(), ConnectionProperties::default()).await
                else {
                    return;
                };
                if let Ok(channel) = conn.create_channel().await {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                }
                let _ = conn.close(200, "test cleanup".into()).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Reads every message now in `queue` with a consumer (acking each).
async fn drain(queue: &str) -> Vec<lapin::message::Delivery> {
    let conn = connect().await;
    let channel = conn.create_channel().await.expect("channel");
    let count = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the queue exists")
        .message_count();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "medway-test-drain".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut out = Vec::new();
    while out.len() < count as usize {
        match tokio::time::timeout(Duration::from_secs(10), consumer.next()).await {
            Ok(Some(Ok(delivery))) => out.push(delivery),
            other => panic!(
                "consumer stopped after {} of {count}: {:?}",
                out.len(),
                other.map(|o| o.map(|r| r.map(|_| ())))
            ),
        }
    }
    let _ = conn.close(200, "drained".into()).await;
    out
}

async fn queue_depth(channel: &lapin::Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the queue exists")
        .message_count()
}

fn header<'a>(message: &'a lapin::message::Delivery, key: &str) -> Option<&'a [u8]> {
    let headers = message.properties.headers().as_ref()?;
    match headers.inner().get(key)? {
        AMQPValue::LongString(value) => Some(value.as_bytes()),
        _ => None,
    }
}

fn message_id(message: &lapin::message::Delivery) -> i64 {
    message
        .properties
        .message_id()
        .as_ref()
        .and_then(|id| id.as_str().parse().ok())
        .expect("every message has a numeric message_id")
}

#[test]
fn settings_keep_ip_hosts_and_never_show_credentials() {
    let s = settings("routing_key = \"k\"");
    assert_eq!(
        s.endpoint(),
        "127.0.0.1:5672//",
        "not silently turned into localhost"
    );
    let shown = format!("{s:?}");
    assert!(!shown.contains("guest:guest"), "{shown}");
    let table: toml::Table =
        toml::from_str("url = \"amqp://u:hunter2@[::1\"\nrouting_key = \"k\"").expect("TOML");
    let error = RabbitMqSettings::from_spec(&ConnectorSpec::inline("rabbitmq", table))
        .expect_err("a bad URL");
    assert!(!error.message.contains("hunter2"), "{}", error.message);
    assert_eq!(error.key.as_deref(), Some("url"));
}

#[test]
fn the_registry_builds_a_rabbitmq_destination() {
    use medway_connectors::registry::Registry;
    use medway_engine::connector::ConnectorFactory;
    let table: toml::Table =
        toml::from_str(&format!("url = {:?}\nrouting_key = \"{{type}}\"", url())).expect("TOML");
    let spec = ConnectorSpec::inline("rabbitmq", table);
    assert!(
        Registry
            .destination("lab", &spec, &Default::default())
            .is_ok()
    );
    let mut table: toml::Table = toml::from_str("routing_key = \"{nope}\"").expect("TOML");
    table.insert("url".into(), url().into());
    let error = Registry
        .destination(
            "lab",
            &ConnectorSpec::inline("rabbitmq", table),
            &Default::default(),
        )
        .err()
        .expect("a bad template");
    assert!(error.to_string().contains("routing_key"), "{error}");
}

#[tokio::test]
async fn publishes_confirmed_persistent_messages_with_body_headers_and_id() {
    let _broker = BROKER.lock().await;
    broker_up().await;
    let topology = Topology::new("basic");
    let publisher = declared(&topology.exchange, &topology.queue, "");
    publisher
        .check()
        .await
        .expect("check connects and declares");

    let observer = connect().await;
    let observer = observer.create_channel().await.expect("channel");
    const N: i64 = 300;
    for id in 1..=N {
        let response = publisher.send(&delivery(id)).await.expect("send");
        assert!(
            response.summary.contains("confirmed"),
            "{}",
            response.summary
        );
        if id <= 5 {
            // The confirm is awaited: once `send` returns, the message is in the queue.
            assert_eq!(queue_depth(&observer, &topology.queue).await, id as u32);
        }
    }

    let messages = drain(&topology.queue).await;
    assert_eq!(messages.len(), N as usize);
    for (message, id) in messages.iter().zip(1..) {
        let expected = delivery(id);
        assert_eq!(message_id(message), id, "in publish order");
        assert_eq!(message.data, expected.payload.as_ref());
        assert_eq!(*message.properties.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            message
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.as_str()),
            Some("x-application/hl7-v2+er7")
        );
        assert_eq!(message.exchange.as_str(), topology.exchange);
        assert_eq!(message.routing_key.as_str(), "lab.ORU.R01.HOSP");
        assert_eq!(header(message, "medway-channel"), Some(&b"lab"[..]));
        assert_eq!(
            header(message, "medway-control-id"),
            Some(format!("CTL{id}").as_bytes())
        );
        assert_eq!(
            header(message, "medway-message-type"),
            Some(&b"ORU^R01"[..])
        );
        assert_eq!(
            header(message, "medway-message-id"),
            Some((10_000 + id).to_string().as_bytes())
        );
        assert_eq!(*message.properties.timestamp(), Some(1_700_000_000));
    }
}

#[tokio::test]
async fn concurrent_sends_share_one_channel_safely() {
    let _broker = BROKER.lock().await;
    broker_up().await;
    let topology = Topology::new("concurrent");
    let publisher = Arc::new(declared(&topology.exchange, &topology.queue, ""));
    let tasks: Vec<_> = (0..16)
        .map(|worker| {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    publisher
                        .send(&delivery(worker * 1000 + i))
                        .await
                        .expect("send");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender");
    }
    let messages = drain(&topology.queue).await;
    let ids: HashSet<i64> = messages.iter().map(message_id).collect();
    assert_eq!(messages.len(), 800);
    assert_eq!(ids.len(), 800);
    for message in &messages {
        assert_eq!(message.data, delivery(message_id(message)).payload.as_ref());
    }
}

#[tokio::test]
async fn unroutable_messages_are_retried_later_and_bad_routes_never() {
    let _broker = BROKER.lock().await;
    broker_up().await;
    let topology = Topology::new("unroutable");
    // A declared exchange with no queue bound: mandatory → returned → Retry::Later.
    let s = settings(&format!(
        "exchange = {:?}\nrouting_key = \"nowhere.{{type}}\"\ndeclare = {{ exchange_type = \"direct\" }}",
        topology.exchange
    ));
    let publisher = RabbitMqPublisher::new(s, "medway test");
    let error = publisher.send(&delivery(1)).await.expect_err("unroutable");
    assert_eq!(error.retry, Retry::Later);
    assert!(
        error.reason.contains(&topology.exchange),
        "{}",
        error.reason
    );
    assert!(error.reason.contains("nowhere.ORU"), "{}", error.reason);
    assert!(error.reason.contains("NO_ROUTE"), "{}", error.reason);
    // The channel is still fine: the same publisher keeps working.
    let again = publisher
        .send(&delivery(2))
        .await
        .expect_err("still unroutable");
    assert_eq!(again.retry, Retry::Later);

    // With mandatory = false the broker drops it silently: that is what the setting means.
    let s = settings(&format!(
        "exchange = {:?}\nrouting_key = \"nowhere\"\nmandatory = false",
        topology.exchange
    ));
    RabbitMqPublisher::new(s, "medway test")
        .send(&delivery(3))
        .await
        .expect("not mandatory");

    // The default exchange with no such queue: returned too.
    let s = settings(&format!("routing_key = {:?}", unique("no-such-queue")));
    let error = RabbitMqPublisher::new(s, "medway test")
        .send(&delivery(4))
        .await
        .expect_err("no queue");
    assert_eq!(error.retry, Retry::Later);

    // A missing exchange closes the channel (404): Later, and the next send reconnects.
    let s = settings(&format!(
        "exchange = \"{{channel}}-{}\"\nrouting_key = \"k\"",
        topology.exchange
    ));
    let publisher = RabbitMqPublisher::new(s, "medway test");
    let error = publisher.send(&delivery(5)).await.expect_err("no exchange");
    assert_eq!(error.retry, Retry::Later);
    assert!(error.reason.contains("NOT_FOUND"), "{}", error.reason);

    // Routes that can never render: Never, without touching the broker.
    let s = settings("routing_key = \"{PID-3.4}\"");
    let publisher = RabbitMqPublisher::new(s, "medway test");
    let mut not_hl7 = delivery(6);
    not_hl7.payload = Bytes::from_static(b"{\"json\": true}");
    let error = publisher.send(&not_hl7).await.expect_err("not HL7");
    assert_eq!(error.retry, Retry::Never);
    let s = settings("routing_key = \"{control_id}\"");
    let mut long = delivery(7);
    long.control_id = Some("x".repeat(300));
    let error = RabbitMqPublisher::new(s, "medway test")
        .send(&long)
        .await
        .expect_err("too long");
    assert_eq!(error.retry, Retry::Never);
}

#[tokio::test]
async fn an_unreachable_broker_fails_fast_with_retry_later() {
    let _broker = BROKER.lock().await;
    // Nothing listens on port 1.
    let table: toml::Table = toml::from_str(
        "url = \"amqp://guest:guest@127.0.0.1:1/%2f\"\nrouting_key = \"k\"\nconnect_timeout_ms = 2000\nreconnect_initial_ms = 5000",
    )
    .expect("TOML");
    let s = RabbitMqSettings::from_spec(&ConnectorSpec::inline("rabbitmq", table)).expect("ok");
    let publisher = RabbitMqPublisher::new(s, "medway test");
    let started = Instant::now();
    let error = publisher.check().await.expect_err("unreachable");
    assert_eq!(error.retry, Retry::Later);
    assert!(
        error.reason.starts_with("broker unavailable"),
        "{}",
        error.reason
    );
    assert!(
        !error.reason.contains("guest:guest"),
        "no credentials in reasons"
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
    // While backing off, a send fails at once and says when to come back.
    let started = Instant::now();
    let error = publisher.send(&delivery(1)).await.expect_err("still down");
    assert_eq!(error.retry, Retry::Later);
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert!(
        error
            .retry_after
            .is_some_and(|w| w > Duration::from_secs(1))
    );
}

/// What a run with retries saw.
#[derive(Default)]
struct RunReport {
    sent: usize,
    failures: usize,
    retried: HashSet<i64>,
    slowest_failure: Duration,
    reasons: BTreeMap<String, usize>,
}

/// Simulates delivery workers: `workers` loops take the next id and send it until it succeeds
/// (on error: wait 100 ms, resend the same delivery). Runs until `done` is set and at least
/// `at_least` deliveries were sent.
async fn send_with_retries(
    publisher: Arc<RabbitMqPublisher>,
    workers: usize,
    at_least: i64,
    done: Arc<AtomicBool>,
) -> RunReport {
    let next = Arc::new(AtomicI64::new(1));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (publisher, next, done) = (publisher.clone(), next.clone(), done.clone());
            tokio::spawn(async move {
                let mut report = RunReport::default();
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id > at_least && done.load(Ordering::Relaxed) {
                        break;
                    }
                    let delivery = delivery(id);
                    loop {
                        let started = Instant::now();
                        match publisher.send(&delivery).await {
                            Ok(_) => break,
                            Err(error) => {
                                assert_eq!(error.retry, Retry::Later, "{}", error.reason);
                                report.failures += 1;
                                report.retried.insert(id);
                                report.slowest_failure =
                                    report.slowest_failure.max(started.elapsed());
                                let kind: String = error.reason.chars().take(60).collect();
                                *report.reasons.entry(kind).or_default() += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    report.sent += 1;
                    // A steady rate, so the chaos lands mid-run.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                report
            })
        })
        .collect();
    let mut total = RunReport::default();
    for task in tasks {
        let report = task.await.expect("worker");
        total.sent += report.sent;
        total.failures += report.failures;
        total.retried.extend(report.retried);
        total.slowest_failure = total.slowest_failure.max(report.slowest_failure);
        for (reason, n) in report.reasons {
            *total.reasons.entry(reason).or_default() += n;
        }
    }
    total
}

/// Every sent id arrived at least once; duplicates only for retried ids. Prints a summary.
async fn assert_zero_loss(name: &str, queue: &str, report: &RunReport) {
    let messages = drain(queue).await;
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for message in &messages {
        let id = message_id(message);
        assert_eq!(message.data, delivery(id).payload.as_ref(), "body of {id}");
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<i64> = (1..=report.sent as i64)
        .filter(|id| !seen.contains_key(id))
        .collect();
    let duplicates: Vec<(i64, usize)> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .collect();
    println!(
        "{name}: sent {} deliveries, {} failed attempts on {} deliveries, slowest failure {:?}, \
         received {} messages, {} duplicated ids {:?}; reasons {:?}",
        report.sent,
        report.failures,
        report.retried.len(),
        report.slowest_failure,
        messages.len(),
        duplicates.len(),
        duplicates,
        report.reasons
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(seen.len(), report.sent, "no unexpected ids");
    for (id, _) in &duplicates {
        assert!(
            report.retried.contains(id),
            "{id} duplicated without a retry"
        );
    }
}

#[tokio::test]
async fn connections_closed_mid_run_lose_nothing() {
    let _broker = BROKER.lock().await;
    broker_up().await;
    let topology = Topology::new("closed");
    let publisher = Arc::new(declared(
        &topology.exchange,
        &topology.queue,
        "connect_timeout_ms = 2000\npublish_timeout_ms = 2000",
    ));
    publisher.check().await.expect("up");
    let done = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn(send_with_retries(publisher.clone(), 4, 1500, done.clone()));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        rabbitmqctl(&["close_all_connections", "test"]).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    done.store(true, Ordering::Relaxed);
    let report = run.await.expect("run");
    assert!(report.failures > 0, "the chaos hit no send");
    assert!(
        report.slowest_failure < Duration::from_millis(4500),
        "a failed send blocked for {:?}",
        report.slowest_failure
    );
    assert_zero_loss("close_all_connections", &topology.queue, &report).await;
}

/// Starts the broker's app again when dropped, whatever happened.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .output();
    }
}

#[tokio::test]
async fn broker_stopped_and_restarted_mid_run_loses_nothing() {
    let _broker = BROKER.lock().await;
    broker_up().await;
    let topology = Topology::new("restart");
    let publisher = Arc::new(declared(
        &topology.exchange,
        &topology.queue,
        "connect_timeout_ms = 2000\npublish_timeout_ms = 2000\nreconnect_max_ms = 1000",
    ));
    publisher.check().await.expect("up");
    let done = Arc::new(AtomicBool::new(false));
    let run = tokio::spawn(send_with_retries(publisher.clone(), 4, 1500, done.clone()));
    {
        let _restart = RestartGuard;
        tokio::time::sleep(Duration::from_millis(700)).await;
        rabbitmqctl(&["stop_app"]).await;
        // Down for a while: sends must fail fast meanwhile, not pile up.
        tokio::time::sleep(Duration::from_secs(3)).await;
        rabbitmqctl(&["start_app"]).await;
        rabbitmqctl(&["await_startup"]).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    done.store(true, Ordering::Relaxed);
    let report = run.await.expect("run");
    assert!(report.failures > 0, "the restart hit no send");
    assert!(
        report.slowest_failure < Duration::from_millis(4500),
        "a failed send blocked for {:?}",
        report.slowest_failure
    );
    assert_zero_loss("stop_app/start_app", &topology.queue, &report).await;
}

/// Puts the broker's memory watermark back when dropped.
struct WatermarkGuard(String);

impl Drop for WatermarkGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["set_vm_memory_high_watermark", &self.0])
            .output();
    }
}

async fn rabbitmqctl_output(args: &[&str]) -> String {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A memory alarm blocks publishers: the broker stops reading, no confirm comes. The send must
/// give up after `publish_timeout_ms`, and the delivery goes through once the alarm clears.
#[tokio::test]
async fn a_blocked_broker_times_out_then_recovers() {
    let _broker = BROKER.lock().await;
    broker_up().await;
    let topology = Topology::new("blocked");
    let publisher = declared(
        &topology.exchange,
        &topology.queue,
        "connect_timeout_ms = 1000\npublish_timeout_ms = 1000",
    );
    publisher
        .send(&delivery(1))
        .await
        .expect("before the alarm");

    let watermark =
        rabbitmqctl_output(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]).await;
    let watermark = if watermark.parse::<f64>().is_ok() {
        watermark
    } else {
        "0.4".to_string()
    };
    let mut retried = 0;
    {
        let _restore = WatermarkGuard(watermark.clone());
        rabbitmqctl(&["set_vm_memory_high_watermark", "0.000001"]).await;
        let started = Instant::now();
        let timed_out = loop {
            let attempt = Instant::now();
            match publisher.send(&delivery(2)).await {
                Ok(_) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(45),
                        "the memory alarm never blocked publishing"
                    );
                    // Sent before the alarm took hold: send it again (a duplicate of id 2,
                    // which the assertions below allow).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(error) => {
                    assert_eq!(error.retry, Retry::Later);
                    retried += 1;
                    if error.reason.starts_with("no confirm within 1000 ms") {
                        break attempt.elapsed();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!("blocked broker: the send gave up after {timed_out:?}");
        assert!(timed_out < Duration::from_millis(1500), "{timed_out:?}");
        rabbitmqctl(&["set_vm_memory_high_watermark", &watermark]).await;
    }
    let started = Instant::now();
    while let Err(error) = publisher.send(&delivery(2)).await {
        assert_eq!(error.retry, Retry::Later);
        retried += 1;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still failing after the alarm cleared: {}",
            error.reason
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let messages = drain(&topology.queue).await;
    let ids: Vec<i64> = messages.iter().map(message_id).collect();
    println!("blocked broker: {retried} failed attempts; received ids {ids:?}");
    assert_eq!(ids.first(), Some(&1));
    assert!(ids.iter().skip(1).all(|id| *id == 2), "{ids:?}");
    assert!(ids.contains(&2));
}

/// msgs/s publishing 20,000 small messages with confirms, sequentially and with 16 concurrent
/// sends. `cargo test --release -p medway-connectors --test rabbitmq -- --ignored --nocapture bench`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_publish_with_confirms() {
    let _broker = BROKER.lock().await;
    broker_up().await;
    const COUNT: i64 = 20_000;
    for concurrency in [1_i64, 16] {
        let topology = Topology::new(&format!("bench{concurrency}"));
        let publisher = Arc::new(declared(&topology.exchange, &topology.queue, ""));
        publisher.check().await.expect("up");
        let deliveries: Arc<Vec<Delivery>> = Arc::new((1..=COUNT).map(delivery).collect());
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|worker| {
                let (publisher, deliveries) = (publisher.clone(), deliveries.clone());
                tokio::spawn(async move {
                    let mut i = worker;
                    while let Some(delivery) = deliveries.get(i as usize) {
                        publisher.send(delivery).await.expect("send");
                        i += concurrency;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("sender");
        }
        let elapsed = started.elapsed();
        println!(
            "bench: {COUNT} messages ({} bytes each), {concurrency} concurrent send(s): {:.2?}, {:.0} msgs/s",
            deliveries[0].payload.len(),
            elapsed,
            COUNT as f64 / elapsed.as_secs_f64()
        );
        let observer = connect().await;
        let channel = observer.create_channel().await.expect("channel");
        assert_eq!(queue_depth(&channel, &topology.queue).await, COUNT as u32);
    }
}
