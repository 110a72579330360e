//! The read side of the SQLite store (see [`Inspect`]). Reads use the work pool, never the
//! single write connection, so a long listing never delays a commit.

use super::SqliteStore;
use super::rows::*;
use crate::store::{
    AttemptView, DeliveryFilter, DeliveryView, Inspect, MessageDetail, MessageFilter,
    MessageSummary, QueueCount, StoreError, delivery_status,
};
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl Inspect for SqliteStore {
    async fn list_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUMMARY_COLUMNS} FROM messages WHERE \
             (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR status = ?2) AND \
             (?3 IS NULL OR control_id = ?3) AND (?4 IS NULL OR received_at >= ?4) AND \
             (?5 IS NULL OR received_at <= ?5) ORDER BY id DESC LIMIT ?6"
        )))
        .bind(filter.channel.as_deref())
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.control_id.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(i64::from(filter.limit.max(1)))
        .fetch_all(&self.work)
        .await?;
        Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
    }

    async fn message(&self, id: i64) -> Result<Option<MessageDetail>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUMMARY_COLUMNS}, patient_key, peer, origin, raw, transformed \
             FROM messages WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.work)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(MessageDetail {
            summary: summary(&row)?,
            patient_key: row.try_get("patient_key")?,
            peer: row.try_get("peer")?,
            origin: row.try_get("origin")?,
            raw: row.try_get("raw")?,
            transformed: row.try_get("transformed")?,
        }))
    }

    async fn deliveries_of(&self, message_ids: &[i64]) -> Result<Vec<DeliveryView>, StoreError> {
        let mut out = Vec::new();
        for chunk in message_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE message_id IN ({marks}) \
                 ORDER BY message_id, id"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.work).await? {
                out.push(delivery_view(&row)?);
            }
        }
        Ok(out)
    }

    async fn queue_counts(&self) -> Result<Vec<QueueCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, destination, status, COUNT(*) AS n FROM deliveries \
             GROUP BY channel, destination, status ORDER BY channel, destination, status",
        )
        .fetch_all(&self.work)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueCount {
                    channel: row.try_get("channel")?,
                    destination: row.try_get("destination")?,
                    status: delivery_status(row.try_get("status")?),
                    count: row.try_get("n")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.work).await?;
        Ok(())
    }

    async fn children(&self, message_id: i64) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM messages WHERE parent_id = ? ORDER BY id")
                .bind(message_id)
                .fetch_all(&self.work)
                .await?,
        )
    }

    async fn find_child(&self, parent_delivery_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM messages WHERE parent_delivery_id = ? LIMIT 1")
                .bind(parent_delivery_id)
                .fetch_optional(&self.work)
                .await?,
        )
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE \
             (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR destination = ?2) AND \
             (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR message_id = ?4) AND \
             (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at <= ?6) AND \
             (?8 IS NULL OR id = ?8) ORDER BY id DESC LIMIT ?7"
        )))
        .bind(filter.channel.as_deref())
        .bind(filter.destination.as_deref())
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.message_id)
        .bind(filter.since)
        .bind(filter.until)
        .bind(i64::from(filter.limit.max(1)))
        .bind(filter.id)
        .fetch_all(&self.work)
        .await?;
        Ok(rows.iter().map(delivery_view).collect::<Result<_, _>>()?)
    }

    async fn attempts(&self, delivery_id: i64) -> Result<Vec<AttemptView>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, started_at, duration_us, outcome, detail FROM delivery_attempts \
             WHERE delivery_id = ? ORDER BY id",
        )
        .bind(delivery_id)
        .fetch_all(&self.work)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptView {
                    attempt: row.try_get::<i64, _>("attempt")? as u32,
                    started_at: row.try_get("started_at")?,
                    duration_us: row.try_get("duration_us")?,
                    outcome: row.try_get("outcome")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
