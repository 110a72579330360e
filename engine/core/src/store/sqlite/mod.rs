//! The SQLite backend: the embedded default, one file, zero set-up.
//!
//! Two pools: a single-connection write pool (`synchronous=FULL`) used only by the group commit,
//! so every acknowledged message is fsynced, and a small work pool for reads. WAL mode lets
//! readers run beside the writer. Write transactions start with `BEGIN IMMEDIATE` so two
//! connections never deadlock upgrading a read lock.
//!
//! Delivery leases live in memory, not in the file: one SQLite file is served by one process,
//! so a lease only has to hold within it, and a restart (which drops every lease) is exactly
//! the recovery wanted. Keeping leases out of the file keeps the only writer the group commit:
//! claims never take SQLite's write lock, so they never make a commit wait in the busy handler.

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
    use sqlx::sqlite::SqliteRow;
    crate::store::rows::row_mappers!(SqliteRow, i64);
}
use super::{Claim, DeliveryOutcome, Store, StoreError};
use crate::clock::now_micros;
use crate::message::{Delivery, NewMessage};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, SqlitePool as Pool};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub struct SqliteStore {
    write: SqlitePool,
    work: Pool,
    /// Delivery id → lease expiry (UTC micros). See the module docs.
    leases: Mutex<HashMap<i64, i64>>,
    /// True only while the write connection is known to be at `synchronous = FULL` (its
    /// setting from the connect options), so `durable()` skips the PRAGMA round trip then.
    /// Cleared *before* switching to NORMAL and set only *after* FULL succeeded: it may say
    /// "not FULL" for a FULL connection (one redundant PRAGMA), never the reverse.
    write_is_full: std::sync::atomic::AtomicBool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file named by `url` and applies migrations.
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::BadUrl(url.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = base.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", dir.display())))?;
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        let work = SqlitePoolOptions::new()
            .max_connections(pool_size.max(2))
            .connect_with(base.synchronous(SqliteSynchronous::Normal))
            .await?;
        let store = Self {
            write,
            work,
            leases: Mutex::new(HashMap::new()),
            write_is_full: std::sync::atomic::AtomicBool::new(false),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The write connection, set to fsync every commit: used for anything an ACK or a delivery
    /// outcome depends on.
    pub(super) async fn durable(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        let mut conn = self.write.acquire().await?;
        if !self.write_is_full.load(Ordering::Acquire) {
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await?;
            self.write_is_full.store(true, Ordering::Release);
        }
        Ok(conn)
    }

    /// The write connection without an fsync per commit: for the clinical tables, which are
    /// written while a delivery is being sent. Safe because the delivery's outcome is committed
    /// afterwards with `durable()`, and one fsync of the WAL makes every earlier commit durable
    /// too; a crash before that re-sends the delivery, which re-records the same rows
    /// (idempotent per delivery). Saves several fsyncs per scored ORU.
    pub(super) async fn relaxed(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        let mut conn = self.write.acquire().await?;
        self.write_is_full.store(false, Ordering::Release);
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        Ok(conn)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // Read first: an up-to-date database needs no write (and may be opened read-only).
        let applied: Vec<String> = sqlx::query_scalar("SELECT name FROM medway_schema_migrations")
            .fetch_all(&self.work)
            .await
            .unwrap_or_default();
        if migrations::SQLITE
            .iter()
            .all(|(name, _)| applied.iter().any(|a| a == name))
        {
            return Ok(());
        }
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS medway_schema_migrations \
             (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        for (name, sql) in migrations::SQLITE {
            let done: Option<String> =
                sqlx::query_scalar("SELECT name FROM medway_schema_migrations WHERE name = ?")
                    .bind(*name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_none() {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO medway_schema_migrations (name, applied_at) VALUES (?, ?)",
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

/// Rows per multi-row statement: at most 14 parameters a row, well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts messages (without origin) with the ids chosen for them, in multi-row statements.
async fn insert_messages(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    rows: &[(i64, &NewMessage)],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (id, channel, received_at, control_id, message_type, status, \
             error, patient_key, peer, raw, transformed, parent_id, parent_delivery_id, origin) ",
        );
        insert.push_values(chunk, |mut row, (id, m)| {
            row.push_bind(*id)
                .push_bind(&*m.channel)
                .push_bind(m.received_at)
                .push_bind(m.control_id.as_deref())
                .push_bind(m.message_type.as_deref())
                .push_bind(m.status.as_str())
                .push_bind(m.error.as_deref())
                .push_bind(m.patient_key.as_deref())
                .push_bind(m.peer.as_deref())
                .push_bind(&m.raw[..])
                .push_bind(m.transformed.as_deref())
                .push_bind(m.parent.map(|p| p.message_id))
                .push_bind(m.parent.map(|p| p.delivery_id))
                .push_bind(m.origin.as_deref());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn write_batch(
        &self,
        messages: &[NewMessage],
        outcomes: &[DeliveryOutcome],
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_micros();
        let mut ids = Vec::with_capacity(messages.len());
        let mut new_deliveries = Vec::with_capacity(messages.len());
        let mut conn = self.durable().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        // Messages without an origin get their ids here (the transaction is IMMEDIATE on the
        // only writer connection, so nobody else inserts meanwhile) and are inserted in
        // multi-row statements; those with an origin go one by one (a duplicate must answer
        // with the existing id), after the rows pending before them.
        let mut pending: Vec<(i64, &NewMessage)> = Vec::new();
        let mut next_id: Option<i64> = None;
        for m in messages {
            if m.origin.is_none() {
                let id = match next_id {
                    Some(id) => id,
                    None => {
                        sqlx::query_scalar::<_, i64>(
                            "SELECT COALESCE(MAX(id), 0) + 1 FROM messages",
                        )
                        .fetch_one(&mut *tx)
                        .await?
                    }
                };
                next_id = Some(id + 1);
                pending.push((id, m));
                new_deliveries.extend(m.deliveries.iter().map(|d| (id, m, d)));
                ids.push(id);
                continue;
            }
            insert_messages(&mut tx, &pending).await?;
            pending.clear();
            // A known (channel, origin) is a duplicate: no row, no deliveries, the existing id.
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO messages (channel, received_at, control_id, message_type, status, \
                 error, patient_key, peer, raw, transformed, parent_id, parent_delivery_id, \
                 origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) \
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
                let existing: i64 =
                    sqlx::query_scalar("SELECT id FROM messages WHERE channel = ? AND origin = ?")
                        .bind(&*m.channel)
                        .bind(m.origin.as_deref())
                        .fetch_one(&mut *tx)
                        .await?;
                ids.push(existing);
                continue;
            };
            next_id = Some(id + 1);
            new_deliveries.extend(m.deliveries.iter().map(|d| (id, m, d)));
            ids.push(id);
        }
        insert_messages(&mut tx, &pending).await?;
        // Multi-row statements: SQLite assigns rowids in VALUES order, so delivery ids still
        // follow message order (FIFO claims rely on it). Each statement on the single writer
        // connection is a round trip to sqlx's worker thread; batching them is what lets one
        // writer keep up with ingest and delivery outcomes at once.
        for chunk in new_deliveries.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO deliveries (message_id, channel, destination, status, \
                 ordering_key, attempts, next_attempt_at, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, (id, m, d)| {
                row.push_bind(*id)
                    .push_bind(&*m.channel)
                    .push_bind(&*d.destination)
                    .push_bind("queued")
                    .push_bind(d.ordering_key.as_deref())
                    .push_bind(0i64)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        // One UPDATE per chunk; a delivery reported twice in one batch keeps its last outcome
        // (as the one-by-one updates did), while every attempt row is kept.
        let mut last_outcome: HashMap<i64, usize> = HashMap::with_capacity(outcomes.len());
        for (index, o) in outcomes.iter().enumerate() {
            last_outcome.insert(o.delivery_id, index);
        }
        let latest: Vec<&DeliveryOutcome> = outcomes
            .iter()
            .enumerate()
            .filter(|(index, o)| last_outcome.get(&o.delivery_id) == Some(index))
            .map(|(_, o)| o)
            .collect();
        for chunk in latest.chunks(ROWS_PER_STATEMENT) {
            let mut update = sqlx::QueryBuilder::<Sqlite>::new(
                "WITH outcome(id, status, attempts, next_attempt_at, last_error) AS (",
            );
            update.push_values(chunk, |mut row, o| {
                let next = match &o.result {
                    super::AttemptResult::Retry {
                        next_attempt_at, ..
                    } => *next_attempt_at,
                    _ => now,
                };
                let last_error = match &o.result {
                    super::AttemptResult::Sent { .. } => None,
                    other => Some(other.detail()),
                };
                row.push_bind(o.delivery_id)
                    .push_bind(o.result.status().as_str())
                    .push_bind(i64::from(o.attempt))
                    .push_bind(next)
                    .push_bind(last_error);
            });
            update.push(
                ") UPDATE deliveries SET status = outcome.status, attempts = outcome.attempts, \
                 next_attempt_at = outcome.next_attempt_at, last_error = outcome.last_error, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ",
            );
            update.push_bind(now);
            update.push(" FROM outcome WHERE deliveries.id = outcome.id");
            update.build().execute(&mut *tx).await?;
        }
        for chunk in outcomes.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_us, \
                 outcome, detail) ",
            );
            insert.push_values(chunk, |mut row, o| {
                row.push_bind(o.delivery_id)
                    .push_bind(i64::from(o.attempt))
                    .push_bind(o.started_at)
                    .push_bind(o.duration_us)
                    .push_bind(o.result.outcome_word())
                    .push_bind(o.result.detail());
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if !outcomes.is_empty() {
            let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            for o in outcomes {
                leases.remove(&o.delivery_id);
            }
        }
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
        let _ = owner;
        let lookahead = lookahead(limit, order);
        let pending = sqlx::query(
            "SELECT id, ordering_key, next_attempt_at FROM deliveries \
             WHERE channel = ? AND destination = ? AND status IN ('queued', 'retrying') \
             ORDER BY id LIMIT ?",
        )
        .bind(channel)
        .bind(destination)
        .bind(lookahead)
        .fetch_all(&self.work)
        .await?;
        let now = now_micros();
        let ids: Vec<i64> = pending
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let keys: Vec<Option<String>> = pending
            .iter()
            .map(|r| r.try_get("ordering_key"))
            .collect::<Result<_, _>>()?;
        let chosen = {
            let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
            let rows = pending
                .iter()
                .zip(&ids)
                .zip(&keys)
                .map(|((r, id), key)| {
                    Ok(PendingRow {
                        ordering_key: key.as_deref(),
                        next_attempt_at: r.try_get("next_attempt_at")?,
                        leased: leases.get(id).is_some_and(|&expiry| expiry > now),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            select(&rows, order, now, limit as usize)
        };
        let (picked, next_due) = chosen;
        let mut claim = Claim {
            deliveries: Vec::with_capacity(picked.len()),
            next_due,
        };
        if picked.is_empty() {
            return Ok(claim);
        }
        let wanted: Vec<i64> = picked.iter().map(|&i| ids[i]).collect();
        let marks = vec!["?"; wanted.len()].join(",");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.id, d.message_id, d.attempts, d.ordering_key, m.control_id, \
             m.message_type, m.received_at, COALESCE(m.transformed, m.raw) AS payload \
             FROM deliveries d JOIN messages m ON m.id = d.message_id \
             WHERE d.id IN ({marks}) ORDER BY d.id"
        )));
        for id in &wanted {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&self.work).await? {
            let payload: Vec<u8> = row.try_get("payload")?;
            claim.deliveries.push(Delivery {
                id: row.try_get("id")?,
                message_id: row.try_get("message_id")?,
                channel: channel.to_string(),
                destination: destination.to_string(),
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                control_id: row.try_get("control_id")?,
                message_type: row.try_get("message_type")?,
                payload: payload.into(),
                received_at: row.try_get("received_at")?,
                ordering_key: row.try_get("ordering_key")?,
            });
        }
        let until = now + lease.as_micros() as i64;
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        for d in &claim.deliveries {
            leases.insert(d.id, until);
        }
        Ok(claim)
    }

    async fn release(&self, delivery_ids: &[i64]) -> Result<(), StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        for id in delivery_ids {
            leases.remove(id);
        }
        Ok(())
    }

    async fn add_deliveries(&self, deliveries: &[Redelivery]) -> Result<Vec<i64>, StoreError> {
        let now = now_micros();
        let mut conn = self.durable().await?;
        let mut ids = Vec::with_capacity(deliveries.len());
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        for d in deliveries {
            let done = sqlx::query(
                "INSERT INTO deliveries (message_id, channel, destination, status, ordering_key, \
                 attempts, next_attempt_at, created_at, updated_at) \
                 VALUES (?,?,?,'queued',?,0,?,?,?)",
            )
            .bind(d.message_id)
            .bind(&d.channel)
            .bind(&d.destination)
            .bind(d.ordering_key.as_deref())
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            ids.push(done.last_insert_rowid());
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn release_leases(&self, owner: &str) -> Result<(), StoreError> {
        // One SQLite file has one node: whoever held a lease, it is stale now.
        let _ = owner;
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }
}
