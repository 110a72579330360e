//! `medway send --count N`: Medway's own load generator and benchmark client.
//!
//! Opens C connections, sends N copies of a template message (a file, or the bundled sample
//! ORU) with a fresh MSH-10 each, stop-and-wait per connection, optionally paced to R msgs/s in
//! total, and prints throughput and ACK latency percentiles, and the time each connection took
//! to open (TCP connect, plus the TLS handshake with `--tls-ca`: the handshake cost).

use super::send::ack_code;
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use medway_connectors::mllp::MllpClient;
use medway_connectors::tls::ClientTls;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SAMPLE_ORU: &[u8] = include_bytes!("../../channels/samples/oru-r01-vitals.hl7");

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Load mode: send this many messages in total.
    #[arg(long)]
    pub count: Option<u64>,
    /// Parallel connections in load mode.
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Total target rate in messages per second (default: as fast as ACKs come back).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Spread the messages over this many patients (PID-3.1 rewritten to `LOADP<n>`), so
    /// per-patient processing (ordering keys, scoring, alerts) sees realistic mixed traffic.
    #[arg(long)]
    pub patients: Option<u64>,
}

pub async fn run(
    to: &str,
    tls: Option<&ClientTls>,
    timeout: Duration,
    args: &LoadArgs,
    template: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let count = args.count.unwrap_or(0);
    let connections = args.connections.max(1);
    let template = match template {
        Some(path) => Bytes::from(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => Bytes::from_static(SAMPLE_ORU),
    };
    let template = medway_hl7::Message::parse(template).context("template is not HL7 v2")?;
    let next = Arc::new(AtomicU64::new(0));
    let run_id = std::process::id() % 10_000;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut connects = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        let opening = Instant::now();
        let mut client = MllpClient::connect_over(to, tls, timeout, timeout).await?;
        connects.push(opening.elapsed().as_secs_f64() * 1000.0);
        let next = next.clone();
        let mut message = template.clone();
        let interval = args
            .rate
            .map(|r| Duration::from_secs_f64(f64::from(connections) / r));
        let patients = args.patients.filter(|p| *p > 0);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut refused, mut failed) = (0u64, 0u64);
            let mut pacer = interval.map(tokio::time::interval);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                if let Some(pacer) = pacer.as_mut() {
                    pacer.tick().await;
                }
                if message.set("MSH-10", &format!("LD{run_id}-{n}")).is_err()
                    || patients.is_some_and(|p| {
                        message.set("PID-3.1", &format!("LOADP{}", n % p)).is_err()
                    })
                {
                    failed += 1;
                    continue;
                }
                let payload = message.encode();
                let sent = Instant::now();
                match client.send(payload).await {
                    Ok(ack) => {
                        latencies.push(sent.elapsed().as_micros() as u32);
                        let code = ack_code(&ack);
                        if code != "AA" && code != "CA" {
                            refused += 1;
                        }
                    }
                    Err(_) => {
                        failed += 1;
                        break;
                    }
                }
            }
            (latencies, refused, failed)
        }));
    }
    let mut latencies = Vec::with_capacity(count as usize);
    let (mut refused, mut failed) = (0, 0);
    for task in tasks {
        let (l, r, f) = task.await?;
        latencies.extend(l);
        refused += r;
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    let acked = latencies.len();
    println!(
        "sent {acked} messages over {connections} connection(s) in {:.2}s: {:.0} msgs/s",
        elapsed.as_secs_f64(),
        acked as f64 / elapsed.as_secs_f64()
    );
    println!(
        "ACK latency ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    connects.sort_unstable_by(f64::total_cmp);
    let what = if tls.is_some() {
        "connect + TLS handshake"
    } else {
        "connect"
    };
    println!(
        "{what} ms: p50 {:.2}  max {:.2}",
        connects.get(connects.len() / 2).copied().unwrap_or(0.0),
        connects.last().copied().unwrap_or(0.0)
    );
    println!("refused (not AA/CA): {refused}, connection failures: {failed}");
    Ok(if refused == 0 && failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
