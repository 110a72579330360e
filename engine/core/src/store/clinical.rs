//! The clinical part of the store: observations per patient, the scores computed from them, the
//! per-patient flags clinicians set (NEWS2 SpO₂ scale 2), and alerts with their life cycle
//! (`open → acknowledged → resolved`). Windows live here, not in memory, so a restart keeps
//! them. Rows are plain data: the scoring module decides what they mean.

use super::StoreError;
use async_trait::async_trait;
use serde::Serialize;

/// One stored observation. `(delivery_id, seq)` is unique: recording the same delivery twice
/// (retry, restart) adds nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservationRow {
    /// `ID^^^AUTHORITY` (PID-3.1 and PID-3.4): never a name or a bed.
    pub patient: String,
    /// The vital or lab, e.g. `RespiratoryRate`.
    pub kind: String,
    /// In the canonical unit.
    pub value: Option<f64>,
    /// Coded values (ACVPU) and texts.
    pub text: Option<String>,
    pub unit: String,
    /// The value and unit as received, for the "why" of a score.
    pub original: String,
    pub observed_at: i64,
    /// `final`, `corrected`, `preliminary`, `retracted`, …
    pub status: String,
    pub set_id: Option<String>,
    pub message_id: Option<i64>,
    pub delivery_id: i64,
    pub seq: i64,
}

/// A computed score set, with everything it used (`detail` is the JSON of the score).
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    pub id: i64,
    pub patient: String,
    pub at: i64,
    pub news2_total: Option<i64>,
    pub news2_band: Option<String>,
    pub qsofa_total: Option<i64>,
    pub sirs_total: Option<i64>,
    pub complete: bool,
    pub detail: serde_json::Value,
    pub message_id: Option<i64>,
    pub delivery_id: Option<i64>,
}

/// An alert and where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub patient: String,
    pub rule: String,
    pub severity: String,
    /// Higher is worse; a higher rank for the same patient × rule escalates at once.
    pub rank: i64,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    pub title: String,
    pub detail: serde_json::Value,
    pub score_id: Option<i64>,
    pub raised_at: i64,
    pub suppress_until: i64,
    pub updated_at: i64,
    pub escalated_from: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    /// The alert message handed to the alert channel, once dispatched.
    pub dispatched_message_id: Option<i64>,
}

/// Filters for listing alerts.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub state: Option<String>,
    pub patient: Option<String>,
    pub since: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait Clinical: Send + Sync {
    /// Stores observations; rows already recorded for the same `(delivery_id, seq)` are skipped.
    async fn record_observations(&self, rows: &[ObservationRow]) -> Result<(), StoreError>;

    /// A patient's observations observed at or after `since`, oldest first.
    async fn patient_observations(
        &self,
        patient: &str,
        since: i64,
    ) -> Result<Vec<ObservationRow>, StoreError>;

    /// The NEWS2 SpO₂ scale a clinician set for a patient, and when (UTC micros); `None` if
    /// never set.
    async fn spo2_scale(&self, patient: &str) -> Result<Option<(u8, i64)>, StoreError>;

    async fn set_spo2_scale(&self, patient: &str, scale: u8) -> Result<(), StoreError>;

    /// Stores a score set; returns its id.
    async fn record_score(&self, score: &ScoreRow) -> Result<i64, StoreError>;

    async fn latest_score(&self, patient: &str) -> Result<Option<ScoreRow>, StoreError>;

    /// The newest alert of this patient × rule, whatever its state.
    async fn latest_alert(&self, patient: &str, rule: &str)
    -> Result<Option<AlertRow>, StoreError>;

    /// Stores a new alert; returns its id.
    async fn insert_alert(&self, alert: &AlertRow) -> Result<i64, StoreError>;

    async fn alert(&self, id: i64) -> Result<Option<AlertRow>, StoreError>;

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError>;

    /// Records who acknowledged (`state = acknowledged`) or resolved an alert, and when.
    async fn set_alert_state(
        &self,
        id: i64,
        state: &str,
        by: &str,
        at: i64,
    ) -> Result<bool, StoreError>;

    async fn mark_alert_dispatched(&self, id: i64, message_id: i64) -> Result<(), StoreError>;
}
