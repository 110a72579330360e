//! One worker per channel destination. See the module docs of [`crate::delivery`].

use super::backoff;
use super::scripts::{DestinationScripts, Prepared, ResponseDecision};
use crate::clock::now_micros;
use crate::config::RetryPolicy;
use crate::connector::{Destination, Retry};
use crate::message::Delivery;
use crate::store::{AttemptResult, ClaimOrder, DeliveryOutcome, Store, WriterHandle};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Tunables shared by all workers.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Identifies this process's leases.
    pub owner: Arc<str>,
    pub lease: Duration,
    /// Deliveries claimed per round trip.
    pub batch: u32,
    /// Longest a single send may take before it counts as a failed attempt.
    pub send_timeout: Duration,
    /// Poll interval when idle (a safety net; commits wake the worker at once).
    pub idle_poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            owner: Arc::from(format!(
                "{}-{}",
                std::process::id(),
                now_micros() % 1_000_000
            )),
            lease: Duration::from_secs(60),
            batch: 64,
            send_timeout: Duration::from_secs(30),
            idle_poll: Duration::from_secs(5),
        }
    }
}

pub struct DeliveryWorker {
    pub channel: Arc<str>,
    pub name: Arc<str>,
    pub destination: Arc<dyn Destination>,
    pub scripts: Arc<DestinationScripts>,
    pub retry: RetryPolicy,
    pub order: ClaimOrder,
    /// Groups (ordering keys, or single deliveries when unordered) sent at the same time.
    pub max_in_flight: usize,
    pub store: Arc<dyn Store>,
    pub writer: WriterHandle,
    pub wake: Arc<Notify>,
    pub settings: WorkerSettings,
}

impl DeliveryWorker {
    /// Runs until `shutdown` fires. A send in progress is finished (the caller bounds that with a
    /// grace period); its outcome is recorded before returning.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Err(e) = self.destination.check().await {
            tracing::warn!(channel = %self.channel, destination = %self.name, error = %e.reason,
                "destination start-up check failed; deliveries will retry");
        }
        let mut store_failures = 0u32;
        while !shutdown.is_cancelled() {
            let claim = match self
                .store
                .claim(
                    &self.channel,
                    &self.name,
                    &self.settings.owner,
                    self.settings.lease,
                    self.settings.batch,
                    self.order,
                )
                .await
            {
                Ok(claim) => {
                    store_failures = 0;
                    claim
                }
                Err(error) => {
                    store_failures += 1;
                    if store_failures == 1 || store_failures.is_multiple_of(60) {
                        tracing::warn!(channel = %self.channel, destination = %self.name, %error,
                            "cannot claim deliveries; will keep trying");
                    }
                    self.pause(Duration::from_secs(1), &shutdown).await;
                    continue;
                }
            };
            if claim.deliveries.is_empty() {
                let wait = match claim.next_due {
                    Some(due) => Duration::from_micros((due - now_micros()).max(1_000) as u64)
                        .min(self.settings.idle_poll),
                    None => self.settings.idle_poll,
                };
                self.pause(wait, &shutdown).await;
                continue;
            }
            let groups = group(claim.deliveries, self.order);
            let results: Vec<(Vec<DeliveryOutcome>, Vec<i64>)> = futures::stream::iter(groups)
                .map(|group| self.send_group(group, &shutdown))
                .buffer_unordered(self.max_in_flight.max(1))
                .collect()
                .await;
            let mut outcomes = Vec::new();
            let mut unsent = Vec::new();
            for (mut done, mut not_sent) in results {
                outcomes.append(&mut done);
                unsent.append(&mut not_sent);
            }
            if outcomes
                .iter()
                .any(|o| matches!(o.result, AttemptResult::Sent { .. }))
                && let Err(error) = self.destination.flush().await
            {
                tracing::warn!(channel = %self.channel, destination = %self.name, reason = %error.reason,
                    "flush failed; the batch will be retried");
                for outcome in &mut outcomes {
                    if matches!(outcome.result, AttemptResult::Sent { .. }) {
                        outcome.result = self.failure(
                            Retry::Later,
                            format!("flush failed: {}", error.reason),
                            outcome.attempt,
                        );
                    }
                }
            }
            if let Err(error) = self.writer.record(outcomes).await {
                tracing::warn!(channel = %self.channel, destination = %self.name, %error,
                    "cannot record delivery outcomes; they will be retried (at-least-once)");
                self.pause(Duration::from_secs(1), &shutdown).await;
            }
            if !unsent.is_empty()
                && let Err(error) = self.store.release(&unsent).await
            {
                tracing::warn!(%error, "cannot release leases; they expire on their own");
            }
        }
    }

    /// Sends one group in order; after a failure the rest of the group waits (its order holds).
    async fn send_group(
        &self,
        group: Vec<Delivery>,
        shutdown: &CancellationToken,
    ) -> (Vec<DeliveryOutcome>, Vec<i64>) {
        let mut outcomes = Vec::with_capacity(group.len());
        let mut unsent = Vec::new();
        let mut stop = false;
        for delivery in group {
            if stop || shutdown.is_cancelled() {
                unsent.push(delivery.id);
                continue;
            }
            let attempt = delivery.attempts + 1;
            let started_at = now_micros();
            let clock = Instant::now();
            let (id, received_at) = (delivery.id, delivery.received_at);
            let control_id = delivery.control_id.clone();
            let mut result = self.attempt(delivery, attempt).await;
            if let AttemptResult::Retry { reason, .. } = &result
                && self
                    .retry
                    .max_age_secs
                    .is_some_and(|age| now_micros() - received_at > age as i64 * 1_000_000)
            {
                result = AttemptResult::Errored {
                    reason: format!("{reason} (gave up: older than the retry max age)"),
                };
            }
            if !matches!(result, AttemptResult::Sent { .. }) {
                tracing::warn!(channel = %self.channel, destination = %self.name,
                    delivery_id = id, control_id = control_id.as_deref().unwrap_or(""),
                    attempt, outcome = ?result, "delivery attempt failed");
                stop = true;
            }
            outcomes.push(DeliveryOutcome {
                delivery_id: id,
                attempt,
                started_at,
                duration_us: clock.elapsed().as_micros() as i64,
                result,
            });
        }
        (outcomes, unsent)
    }

    /// One attempt: destination scripts, the send itself (under a timeout), the response script.
    async fn attempt(&self, mut delivery: Delivery, attempt: u32) -> AttemptResult {
        match self.scripts.prepare(&delivery.payload) {
            Err(reason) => return AttemptResult::Errored { reason },
            Ok(Prepared::Skip(note)) => return AttemptResult::Sent { summary: note },
            Ok(Prepared::Send(payload)) => delivery.payload = payload,
        }
        let sent = match tokio::time::timeout(
            self.settings.send_timeout,
            self.destination.send(&delivery),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(crate::connector::DeliveryError::later(format!(
                "send timed out after {:?}",
                self.settings.send_timeout
            ))),
        };
        match self.scripts.judge(&delivery.payload, &sent) {
            Some(ResponseDecision::Sent) => AttemptResult::Sent {
                summary: match sent {
                    Ok(r) => r.summary,
                    Err(e) => format!("accepted by response script despite: {}", e.reason),
                },
            },
            Some(ResponseDecision::Retry(reason)) => self.failure(Retry::Later, reason, attempt),
            Some(ResponseDecision::Error(reason)) => self.failure(Retry::Never, reason, attempt),
            None => match sent {
                Ok(response) => AttemptResult::Sent {
                    summary: response.summary,
                },
                Err(error) => {
                    let mut result = self.failure(error.retry, error.reason, attempt);
                    if let (
                        AttemptResult::Retry {
                            next_attempt_at, ..
                        },
                        Some(wait),
                    ) = (&mut result, error.retry_after)
                    {
                        *next_attempt_at =
                            (*next_attempt_at).max(now_micros() + wait.as_micros() as i64);
                    }
                    result
                }
            },
        }
    }

    fn failure(&self, retry: Retry, reason: String, attempt: u32) -> AttemptResult {
        if retry == Retry::Never {
            return AttemptResult::Errored { reason };
        }
        if !backoff::may_retry(&self.retry, attempt) {
            return AttemptResult::Errored {
                reason: format!("{reason} (gave up after {attempt} attempts)"),
            };
        }
        let delay = backoff::delay(&self.retry, attempt);
        AttemptResult::Retry {
            reason,
            next_attempt_at: now_micros() + delay.as_micros() as i64,
        }
    }

    async fn pause(&self, wait: Duration, shutdown: &CancellationToken) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Splits a claimed batch (in id order) into groups that must each be sent in order.
fn group(deliveries: Vec<Delivery>, order: ClaimOrder) -> Vec<Vec<Delivery>> {
    match order {
        ClaimOrder::Fifo => vec![deliveries],
        ClaimOrder::Unordered => deliveries.into_iter().map(|d| vec![d]).collect(),
        ClaimOrder::ByKey => {
            let mut groups: Vec<(Option<String>, Vec<Delivery>)> = Vec::new();
            for delivery in deliveries {
                match groups
                    .iter_mut()
                    .find(|(key, _)| *key == delivery.ordering_key)
                {
                    Some((_, group)) => group.push(delivery),
                    None => groups.push((delivery.ordering_key.clone(), vec![delivery])),
                }
            }
            groups.into_iter().map(|(_, group)| group).collect()
        }
    }
}
