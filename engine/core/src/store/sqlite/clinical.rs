//! The clinical tables on SQLite (see [`Clinical`]). Writes go through the single write
//! connection (`synchronous=FULL`); reads through the work pool.

use super::SqliteStore;
use super::rows::*;
use crate::clock::now_micros;
use crate::store::{AlertFilter, AlertRow, Clinical, ObservationRow, ScoreRow, StoreError};
use async_trait::async_trait;
use sqlx::{Connection, Row};

#[async_trait]
impl Clinical for SqliteStore {
    async fn record_observations(&self, rows: &[ObservationRow]) -> Result<(), StoreError> {
        let now = now_micros();
        let mut conn = self.relaxed().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for o in rows {
            sqlx::query(
                "INSERT INTO observations (patient, kind, value, text, unit, original, \
                 observed_at, status, set_id, message_id, delivery_id, seq, recorded_at) \
                 VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (delivery_id, seq) DO NOTHING",
            )
            .bind(&o.patient)
            .bind(&o.kind)
            .bind(o.value)
            .bind(o.text.as_deref())
            .bind(&o.unit)
            .bind(&o.original)
            .bind(o.observed_at)
            .bind(&o.status)
            .bind(o.set_id.as_deref())
            .bind(o.message_id)
            .bind(o.delivery_id)
            .bind(o.seq)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn patient_observations(
        &self,
        patient: &str,
        since: i64,
    ) -> Result<Vec<ObservationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT patient, kind, value, text, unit, original, observed_at, status, set_id, \
             message_id, delivery_id, seq FROM observations \
             WHERE patient = ? AND observed_at >= ? ORDER BY observed_at, id",
        )
        .bind(patient)
        .bind(since)
        .fetch_all(&self.work)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ObservationRow {
                    patient: r.try_get("patient")?,
                    kind: r.try_get("kind")?,
                    value: r.try_get("value")?,
                    text: r.try_get("text")?,
                    unit: r.try_get("unit")?,
                    original: r.try_get("original")?,
                    observed_at: r.try_get("observed_at")?,
                    status: r.try_get("status")?,
                    set_id: r.try_get("set_id")?,
                    message_id: r.try_get("message_id")?,
                    delivery_id: r.try_get("delivery_id")?,
                    seq: r.try_get("seq")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn spo2_scale(&self, patient: &str) -> Result<Option<(u8, i64)>, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT spo2_scale, updated_at FROM patient_flags WHERE patient = ?")
                .bind(patient)
                .fetch_optional(&self.work)
                .await?;
        Ok(row.map(|(scale, at)| (if scale == 2 { 2 } else { 1 }, at)))
    }

    async fn set_spo2_scale(&self, patient: &str, scale: u8) -> Result<(), StoreError> {
        // A person's decision: durable at once.
        let mut conn = self.durable().await?;
        sqlx::query(
            "INSERT INTO patient_flags (patient, spo2_scale, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (patient) DO UPDATE SET spo2_scale = excluded.spo2_scale, \
             updated_at = excluded.updated_at",
        )
        .bind(patient)
        .bind(i64::from(scale))
        .bind(now_micros())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn record_score(&self, s: &ScoreRow) -> Result<i64, StoreError> {
        let mut conn = self.relaxed().await?;
        let done = sqlx::query(
            "INSERT INTO scores (patient, at, news2_total, news2_band, qsofa_total, sirs_total, \
             complete, detail, message_id, delivery_id, created_at) \
             VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        )
        .bind(&s.patient)
        .bind(s.at)
        .bind(s.news2_total)
        .bind(s.news2_band.as_deref())
        .bind(s.qsofa_total)
        .bind(s.sirs_total)
        .bind(s.complete)
        .bind(s.detail.to_string())
        .bind(s.message_id)
        .bind(s.delivery_id)
        .bind(now_micros())
        .execute(&mut *conn)
        .await?;
        Ok(done.last_insert_rowid())
    }

    async fn latest_score(&self, patient: &str) -> Result<Option<ScoreRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCORE_COLUMNS} FROM scores WHERE patient = ? ORDER BY at DESC, id DESC LIMIT 1"
        )))
        .bind(patient)
        .fetch_optional(&self.work)
        .await?;
        Ok(row.as_ref().map(score).transpose()?)
    }

    async fn latest_alert(
        &self,
        patient: &str,
        rule: &str,
    ) -> Result<Option<AlertRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE patient = ? AND rule = ? \
             ORDER BY raised_at DESC, id DESC LIMIT 1"
        )))
        .bind(patient)
        .bind(rule)
        .fetch_optional(&self.work)
        .await?;
        Ok(row.as_ref().map(alert).transpose()?)
    }

    async fn insert_alert(&self, a: &AlertRow) -> Result<i64, StoreError> {
        let mut conn = self.relaxed().await?;
        let done = sqlx::query(
            "INSERT INTO alerts (patient, rule, severity, rank, state, title, detail, score_id, \
             raised_at, suppress_until, updated_at, escalated_from) \
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        )
        .bind(&a.patient)
        .bind(&a.rule)
        .bind(&a.severity)
        .bind(a.rank)
        .bind(&a.state)
        .bind(&a.title)
        .bind(a.detail.to_string())
        .bind(a.score_id)
        .bind(a.raised_at)
        .bind(a.suppress_until)
        .bind(a.updated_at)
        .bind(a.escalated_from.as_deref())
        .execute(&mut *conn)
        .await?;
        Ok(done.last_insert_rowid())
    }

    async fn alert(&self, id: i64) -> Result<Option<AlertRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.work)
        .await?;
        Ok(row.as_ref().map(alert).transpose()?)
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE (?1 IS NULL OR state = ?1) AND \
             (?2 IS NULL OR patient = ?2) AND (?3 IS NULL OR raised_at >= ?3) \
             ORDER BY id DESC LIMIT ?4"
        )))
        .bind(filter.state.as_deref())
        .bind(filter.patient.as_deref())
        .bind(filter.since)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.work)
        .await?;
        Ok(rows.iter().map(alert).collect::<Result<_, _>>()?)
    }

    async fn set_alert_state(
        &self,
        id: i64,
        state: &str,
        by: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        // A person's decision: durable at once.
        let mut conn = self.durable().await?;
        let sql = match state {
            "acknowledged" => {
                "UPDATE alerts SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?, \
                 updated_at = ? WHERE id = ? AND state = 'open'"
            }
            _ => {
                "UPDATE alerts SET state = 'resolved', resolved_by = ?, resolved_at = ?, \
                 updated_at = ? WHERE id = ? AND state <> 'resolved'"
            }
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(by)
            .bind(at)
            .bind(at)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_alert_dispatched(&self, id: i64, message_id: i64) -> Result<(), StoreError> {
        let mut conn = self.relaxed().await?;
        sqlx::query("UPDATE alerts SET dispatched_message_id = ? WHERE id = ?")
            .bind(message_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
