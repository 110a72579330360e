//! The PostgreSQL backend: production, shared by several Medway nodes.
//!
//! Commits run with `synchronous_commit=on`. Delivery claims use `FOR UPDATE OF d SKIP LOCKED`
//! plus a time-limited lease, so two nodes never send one delivery at the same time and a
//! crashed node's work is picked up when its leases expire. Migrations take an advisory lock so
//! nodes starting together do not race.

use super::Redelivery;
use super::claim::{ClaimOrder, PendingRow, lookahead, select};
use super::migrations;

mod clinical;
mod inspect;

/// Row mapping for this backend (see `store/rows.rs`).
mod rows {
    use crate::store::{
        AlertRow, DeliveryView, MessageSummary, ScoreRow, delivery_status, message_status,
    };
    use sqlx::Row;
    use sqlx::postgres::PgRow;
    crate::store::rows::row_mappers!(PgRow, i32);
}
use super::{AttemptResult, Claim, DeliveryOutcome, Store, StoreError};
use crate::clock::now_micros;
use crate::message::{Delivery, NewMessage};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
}

/// Arbitrary constant naming Medway's migration lock.
const MIGRATION_LOCK: i64 = 0x6d65_6477_6179;

impl PostgresStore {
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::BadUrl(url.to_string()))?
            .options([("synchronous_commit", "on")]);
        if !url.contains("application_name=") {
            options = options.application_name("medway");
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A transaction that does not wait for its WAL flush: for the clinical tables, written
    /// while a delivery is being sent. Safe because the delivery's outcome commits afterwards
    /// with `synchronous_commit = on`, which flushes the WAL past these commits too; a crash
    /// before that re-sends the delivery, which re-records the same rows (idempotent).
    pub(super) async fn relaxed(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS medway_schema_migrations \
             (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        for (name, sql) in migrations::POSTGRES {
            let done: Option<String> =
                sqlx::query_scalar("SELECT name FROM medway_schema_migrations WHERE name = $1")
                    .bind(*name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_none() {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO medway_schema_migrations (name, applied_at) VALUES ($1, $2)",
                )
                .bind(*name)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn write_batch(
        &self,
        messages: &[NewMessage],
        outcomes: &[DeliveryOutcome],
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_micros();
        let mut ids = Vec::with_capacity(messages.len());
        let mut tx = self.pool.begin().await?;
        for m in messages {
            // A known (channel, origin) is a duplicate: no row, no deliveries, the existing id.
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO messages (channel, received_at, control_id, message_type, status, \
                 error, patient_key, peer, raw, transformed, parent_id, parent_delivery_id, \
                 origin) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
                 ON CONFLICT (channel, origin) WHERE origin IS NOT NULL DO NOTHING RETURNING id",
            )
            .bind(&*m.channel)
            .bind(m.received_at)
            .bind(m.control_id.as_deref())
            .bind(m.message_type.as_deref())
            .bind(m.status.as_str())
            .bind(m.error.as_deref())
            .bind(m.patient_key.as_deref())
            .bind(m.peer.as_deref())
            .bind(&m.raw[..])
            .bind(m.transformed.as_deref())
            .bind(m.parent.map(|p| p.message_id))
            .bind(m.parent.map(|p| p.delivery_id))
            .bind(m.origin.as_deref())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = inserted else {
                // Another node may have committed it since this statement began: READ
                // COMMITTED gives this new statement a fresh snapshot that sees it.
                let existing: i64 = sqlx::query_scalar(
                    "SELECT id FROM messages WHERE channel = $1 AND origin = $2",
                )
                .bind(&*m.channel)
                .bind(m.origin.as_deref())
                .fetch_one(&mut *tx)
                .await?;
                ids.push(existing);
                continue;
            };
            for d in &m.deliveries {
                sqlx::query(
                    "INSERT INTO deliveries (message_id, channel, destination, status, \
                     ordering_key, attempts, next_attempt_at, created_at, updated_at) \
                     VALUES ($1,$2,$3,'queued',$4,0,$5,$5,$5)",
                )
                .bind(id)
                .bind(&*m.channel)
                .bind(&*d.destination)
                .bind(d.ordering_key.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            ids.push(id);
        }
        for o in outcomes {
            let next = match &o.result {
                AttemptResult::Retry {
                    next_attempt_at, ..
                } => *next_attempt_at,
                _ => now,
            };
            let last_error = match &o.result {
                AttemptResult::Sent { .. } => None,
                other => Some(other.detail()),
            };
            sqlx::query(
                "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
                 last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
                 WHERE id = $6",
            )
            .bind(o.result.status().as_str())
            .bind(o.attempt as i32)
            .bind(next)
            .bind(last_error)
            .bind(now)
            .bind(o.delivery_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, \
                 outcome, detail) VALUES ($1,$2,$3,$4,$5,$6)",
            )
            .bind(o.delivery_id)
            .bind(o.attempt as i32)
            .bind(o.started_at)
            .bind(o.duration_us)
            .bind(o.result.outcome_word())
            .bind(o.result.detail())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn claim(
        &self,
        channel: &str,
        destination: &str,
        owner: &str,
        lease: Duration,
        limit: u32,
        order: ClaimOrder,
    ) -> Result<Claim, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One claimer per destination at a time across all nodes; the others come back shortly.
        // Without this, SKIP LOCKED would let a second node pass rows the first is leasing.
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7))")
                .bind(format!("{channel}/{destination}"))
                .fetch_one(&mut *tx)
                .await?;
        let now = now_micros();
        if !locked {
            return Ok(Claim {
                deliveries: Vec::new(),
                next_due: Some(now + 50_000),
            });
        }
        let pending = sqlx::query(
            "SELECT id, ordering_key, next_attempt_at, lease_owner, lease_until FROM deliveries \
             WHERE channel = $1 AND destination = $2 AND status IN ('queued', 'retrying') \
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(channel)
        .bind(destination)
        .bind(lookahead(limit, order))
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<i64> = pending
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let keys: Vec<Option<String>> = pending
            .iter()
            .map(|r| r.try_get("ordering_key"))
            .collect::<Result<_, _>>()?;
        let rows = pending
            .iter()
            .zip(&keys)
            .map(|(r, key)| {
                let until: Option<i64> = r.try_get("lease_until")?;
                Ok(PendingRow {
                    ordering_key: key.as_deref(),
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    leased: until.is_some_and(|u| u > now),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let (picked, next_due) = select(&rows, order, now, limit as usize);
        let mut claim = Claim {
            deliveries: Vec::with_capacity(picked.len()),
            next_due,
        };
        if picked.is_empty() {
            tx.commit().await?;
            return Ok(claim);
        }
        let wanted: Vec<i64> = picked.iter().map(|&i| ids[i]).collect();
        sqlx::query("UPDATE deliveries SET lease_owner = $1, lease_until = $2 WHERE id = ANY($3)")
            .bind(owner)
            .bind(now + lease.as_micros() as i64)
            .bind(&wanted)
            .execute(&mut *tx)
            .await?;
        let full = sqlx::query(
            "SELECT d.id, d.message_id, d.attempts, d.ordering_key, m.control_id, m.message_type, \
             m.received_at, COALESCE(m.transformed, m.raw) AS payload \
             FROM deliveries d JOIN messages m ON m.id = d.message_id \
             WHERE d.id = ANY($1) ORDER BY d.id",
        )
        .bind(&wanted)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for row in full {
            let payload: Vec<u8> = row.try_get("payload")?;
            claim.deliveries.push(Delivery {
                id: row.try_get("id")?,
                message_id: row.try_get("message_id")?,
                channel: channel.to_string(),
                destination: destination.to_string(),
                attempts: row.try_get::<i32, _>("attempts")? as u32,
                control_id: row.try_get("control_id")?,
                message_type: row.try_get("message_type")?,
                payload: payload.into(),
                received_at: row.try_get("received_at")?,
                ordering_key: row.try_get("ordering_key")?,
            });
        }
        Ok(claim)
    }

    async fn release(&self, delivery_ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE id = ANY($1)",
        )
        .bind(delivery_ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_deliveries(&self, deliveries: &[Redelivery]) -> Result<Vec<i64>, StoreError> {
        let now = now_micros();
        let mut ids = Vec::with_capacity(deliveries.len());
        let mut tx = self.pool.begin().await?;
        for d in deliveries {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO deliveries (message_id, channel, destination, status, ordering_key, \
                 attempts, next_attempt_at, created_at, updated_at) \
                 VALUES ($1,$2,$3,'queued',$4,0,$5,$5,$5) RETURNING id",
            )
            .bind(d.message_id)
            .bind(&d.channel)
            .bind(&d.destination)
            .bind(d.ordering_key.as_deref())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn release_leases(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
