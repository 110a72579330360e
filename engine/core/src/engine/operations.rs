//! The operational checks of a running engine (see `alerts::operations`): gather the
//! conditions, open and resolve their alerts, hand each change to the alert channel.

use super::RunningEngine;
use crate::alerts::operations::{Condition, transitions};
use crate::alerts::{AlertDocument, AlertLocation, AlertPatient};
use crate::clock::{micros_to_rfc3339, now_micros};
use crate::message::{DeliveryStatus, Inbound, MessageStatus};
use crate::store::{AlertFilter, AlertRow, MessageFilter, StoreError};
use bytes::Bytes;
use std::collections::HashMap;

/// What the previous check saw (errored counts per destination).
#[derive(Debug, Default)]
pub(super) struct OperationsState {
    errored: Option<HashMap<(String, String), i64>>,
    last_check: i64,
}

impl RunningEngine {
    /// Runs one operational check; returns how many alerts started and resolved. Does nothing
    /// unless `[operations] alert_channel` is set.
    pub async fn check_operations(&mut self) -> Result<(usize, usize), StoreError> {
        let settings = self.config.operations.clone();
        let Some(channel) = settings.alert_channel.clone() else {
            return Ok((0, 0));
        };
        let now = now_micros();
        let mut found = Vec::new();
        let counts = self.store.queue_counts().await?;
        let mut errored = HashMap::new();
        let mut waiting: HashMap<(String, String), i64> = HashMap::new();
        for c in &counts {
            let key = (c.channel.clone(), c.destination.clone());
            match c.status {
                DeliveryStatus::Errored => {
                    errored.insert(key, c.count);
                }
                DeliveryStatus::Queued | DeliveryStatus::Retrying => {
                    *waiting.entry(key).or_default() += c.count;
                }
                DeliveryStatus::Sent => {}
            }
        }
        if let Some(before) = &self.operations.errored {
            for ((ch, dest), count) in &errored {
                let new = count
                    - before
                        .get(&(ch.clone(), dest.clone()))
                        .copied()
                        .unwrap_or(0);
                if new > 0 {
                    found.push(Condition {
                        key: format!("errored:{ch}/{dest}"),
                        title: format!("{new} delivery(ies) to {ch}/{dest} errored"),
                        reasons: vec![format!(
                            "see `medway deliveries list --channel {ch} --destination {dest} --status errored`"
                        )],
                    });
                }
            }
        }
        self.operations.errored = Some(errored);
        for ((ch, dest), count) in &waiting {
            if *count > settings.queue_depth {
                found.push(Condition {
                    key: format!("queue:{ch}/{dest}"),
                    title: format!("{count} deliveries waiting for {ch}/{dest}"),
                    reasons: vec![format!("over the limit of {}", settings.queue_depth)],
                });
            }
        }
        for (name, live) in &self.channels {
            if live.source.as_ref().is_none_or(|s| s.task.is_finished()) {
                found.push(Condition {
                    key: format!("listener:{name}"),
                    title: format!("channel {name} has no running source"),
                    reasons: vec!["its listener stopped or could not be bound; see the log".into()],
                });
            }
            if settings.silent_channel_minutes > 0 {
                let since = now - settings.silent_channel_minutes as i64 * 60_000_000;
                let recent = self
                    .store
                    .list_messages(&MessageFilter {
                        channel: Some(name.clone()),
                        since: Some(since),
                        limit: 1,
                        ..Default::default()
                    })
                    .await?;
                if recent.is_empty() {
                    found.push(Condition {
                        key: format!("silent:{name}"),
                        title: format!(
                            "channel {name} received nothing for {} min",
                            settings.silent_channel_minutes
                        ),
                        reasons: vec![],
                    });
                }
            }
            if settings.error_rate_percent > 0 && self.operations.last_check > 0 {
                let window = self
                    .store
                    .list_messages(&MessageFilter {
                        channel: Some(name.clone()),
                        since: Some(self.operations.last_check),
                        limit: 10_000,
                        ..Default::default()
                    })
                    .await?;
                let errors = window
                    .iter()
                    .filter(|m| m.status == MessageStatus::Error)
                    .count();
                if !window.is_empty()
                    && errors * 100 > window.len() * settings.error_rate_percent as usize
                {
                    found.push(Condition {
                        key: format!("error-rate:{name}"),
                        title: format!(
                            "channel {name}: {errors} of {} messages refused",
                            window.len()
                        ),
                        reasons: vec![format!("over {} %", settings.error_rate_percent)],
                    });
                }
            }
        }
        self.operations.last_check = now;

        // Open operational alerts: the newest alert per rule, when not resolved.
        let mut newest: HashMap<String, AlertRow> = HashMap::new();
        for alert in self
            .store
            .list_alerts(&AlertFilter {
                patient: Some(String::new()),
                limit: 1000,
                ..Default::default()
            })
            .await?
        {
            newest.entry(alert.rule.clone()).or_insert(alert);
        }
        let open: Vec<String> = newest
            .values()
            .filter(|a| a.state != "resolved")
            .map(|a| a.rule.clone())
            .collect();
        let (started, resolved) = transitions(&found, &open);
        let (n_started, n_resolved) = (started.len(), resolved.len());
        for condition in started {
            let mut row = AlertRow {
                id: 0,
                patient: String::new(),
                rule: condition.key.clone(),
                severity: "warning".into(),
                rank: 1,
                state: "open".into(),
                title: condition.title.clone(),
                detail: serde_json::json!({"reasons": condition.reasons, "kind": "operational"}),
                score_id: None,
                raised_at: now,
                suppress_until: now,
                updated_at: now,
                escalated_from: None,
                acknowledged_by: None,
                acknowledged_at: None,
                resolved_by: None,
                resolved_at: None,
                dispatched_message_id: None,
            };
            row.id = self.store.insert_alert(&row).await?;
            tracing::warn!(rule = %row.rule, alert_id = row.id, "operational alert started");
            self.dispatch_operational(&channel, &row, "open").await?;
        }
        for key in resolved {
            if let Some(alert) = newest.get(key) {
                self.store
                    .set_alert_state(alert.id, "resolved", "medway", now)
                    .await?;
                tracing::info!(rule = %alert.rule, alert_id = alert.id, "operational alert resolved");
                self.dispatch_operational(&channel, alert, "resolved")
                    .await?;
            }
        }
        Ok((n_started, n_resolved))
    }

    async fn dispatch_operational(
        &self,
        channel: &str,
        alert: &AlertRow,
        state: &str,
    ) -> Result<(), StoreError> {
        let Some(target) = self.directory.get(channel) else {
            tracing::warn!(channel, "operational alert channel is not running");
            return Ok(());
        };
        let document = AlertDocument {
            alert_id: alert.id,
            kind: "operational".into(),
            rule: alert.rule.clone(),
            severity: alert.severity.clone(),
            state: state.into(),
            escalated_from: None,
            title: alert.title.clone(),
            location: AlertLocation::default(),
            patient: AlertPatient::default(),
            scores: serde_json::json!({}),
            reasons: alert.detail["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            observed_at: micros_to_rfc3339(alert.raised_at),
            raised_at: micros_to_rfc3339(now_micros()),
            link: None,
        };
        let Ok(payload) = serde_json::to_vec(&document) else {
            return Ok(());
        };
        let reply = target.submit(Inbound::new(Bytes::from(payload))).await;
        if let Some(message_id) = reply.message_id.filter(|_| reply.outcome.is_stored_ok())
            && state == "open"
        {
            self.store
                .mark_alert_dispatched(alert.id, message_id)
                .await?;
        }
        Ok(())
    }
}
