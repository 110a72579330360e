//! `PostgresWriter`: the PostgreSQL destination. Each delivery becomes one row of a configured
//! table, with columns taken from HL7 paths, from a JSON payload's top-level keys (a destination
//! transform may build one), or from the delivery itself.
//!
//! ```toml
//! [[destination]]
//! name = "adt-rows"
//! kind = "postgres"
//! url = "postgres://medway@db.hospital.local/clinical"   # its own pool, not the store's
//! table = "integration.adt_events"                        # optionally schema-qualified
//! mode = "insert"                                         # or "upsert" (with `key`)
//! # key = ["mrn"]                                         # upsert: ON CONFLICT (mrn) DO UPDATE
//! max_connections = 4                                     # default 4
//! connect_timeout_ms = 5000                               # default 5 s
//! [destination.columns]
//! delivery_id = "$delivery_id"      # required: the idempotency key (bigint, unique index)
//! mrn = "PID-3.1"                   # HL7 path, unescaped; empty or missing → NULL
//! family_name = "PID-5.1"
//! event = "$message_type"           # also: $message_id $channel $destination $control_id
//! received_at = "$received_at"      # timestamptz/timestamp/text: RFC 3339; integer: µs
//! raw = "$payload"                  # text (decoded per MSH-18) or bytea (the exact bytes)
//! # ward = "$.ward"                 # a top-level key of a JSON-object payload
//! ```
//!
//! Invariants:
//! - Idempotent on the delivery id. Insert mode writes `ON CONFLICT (<delivery column>) DO
//!   NOTHING`, so a delivery sent again (retry, crash before the status commit, a second node)
//!   leaves exactly one row; this needs a unique index on that column alone. Upsert mode writes
//!   `ON CONFLICT (<key>) DO UPDATE … WHERE row.delivery < new.delivery`, so the same delivery
//!   twice changes nothing and a late retry of an older delivery never overwrites a newer row.
//! - `check()` verifies the table, every column, the delivery column's type and the unique
//!   index, and names what is missing. Each value is cast to its column's type by PostgreSQL.
//! - A row is acknowledged only after PostgreSQL committed it (autocommit, one statement);
//!   durability is the server's `synchronous_commit`, which `check()` warns about when `off`.
//! - Connection failures, a missing table or column, and other server-side trouble → retry
//!   later; data the table refuses (constraint violations, values its types cannot hold, a
//!   payload the columns cannot be read from) → errored, with the reason.
//!
//! It must never log, or put in a reason, a value or the payload: reasons carry SQLSTATEs,
//! identifiers and PostgreSQL's message with every quoted value replaced by `"…"`. It never
//! prints the URL's password and never touches Medway's own store.

mod schema;
mod settings;
mod source;

pub use settings::{PostgresSettings, WriteMode};

use async_trait::async_trait;
use medway_engine::config::SettingsError;
use medway_engine::connector::{DeliveryError, Destination, Response};
use medway_engine::message::Delivery;
use schema::{Bind, Statement, TableSchema, WritePlan};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Writes each delivery as one row through its own small connection pool.
pub struct PostgresWriter {
    plan: WritePlan,
    options: PgConnectOptions,
    pool_options: (u32, Duration),
    /// Opened on first use (inside the runtime), lazily: start-up never waits for the database.
    pool: OnceLock<PgPool>,
    /// Built from the table's layout on first use; dropped when the layout may have changed.
    statement: Mutex<Option<Arc<Statement>>>,
    /// `host:port/database`, for reasons.
    target: String,
}

impl PostgresWriter {
    pub fn new(settings: PostgresSettings) -> Result<Self, SettingsError> {
        let plan = settings.plan()?;
        let options = settings.connect_options()?;
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        Ok(Self {
            plan,
            options,
            pool_options: (
                settings.max_connections,
                Duration::from_millis(settings.connect_timeout_ms),
            ),
            pool: OnceLock::new(),
            statement: Mutex::new(None),
            target,
        })
    }

    fn pool(&self) -> &PgPool {
        self.pool.get_or_init(|| {
            let (max, timeout) = self.pool_options;
            PgPoolOptions::new()
                .max_connections(max)
                .min_connections(0)
                .acquire_timeout(timeout)
                .idle_timeout(Duration::from_secs(60))
                // No ping before each statement: a dropped connection is retried once instead.
                .test_before_acquire(false)
                .connect_lazy_with(self.options.clone())
        })
    }

    /// The table's layout, or why it cannot be written (`Retry::Later`: someone may be migrating).
    async fn load(&self) -> Result<TableSchema, DeliveryError> {
        match TableSchema::load(self.pool(), &self.plan.table).await {
            Ok(Some(schema)) => Ok(schema),
            Ok(None) => Err(DeliveryError::later(format!(
                "table {} does not exist in {} (names are case-sensitive)",
                self.plan.table, self.target
            ))),
            Err(error) => Err(self.database_error(error)),
        }
    }

    async fn statement(&self) -> Result<Arc<Statement>, DeliveryError> {
        if let Some(statement) = self.cached() {
            return Ok(statement);
        }
        let schema = self.load().await?;
        if let Some(missing) = self.plan.missing_columns(&schema) {
            return Err(DeliveryError::later(missing));
        }
        let statement = Arc::new(self.plan.statement(&schema));
        *self.statement.lock().unwrap_or_else(|e| e.into_inner()) = Some(statement.clone());
        Ok(statement)
    }

    fn cached(&self) -> Option<Arc<Statement>> {
        self.statement
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn forget_statement(&self) {
        *self.statement.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Classifies a database error. Values never reach the reason (see [`redact`]).
    fn database_error(&self, error: sqlx::Error) -> DeliveryError {
        match &error {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let known = |name: &str| {
                    name == self.plan.table.name
                        || self.plan.table.schema.as_deref() == Some(name)
                        || self.plan.columns.iter().any(|(c, _)| c == name)
                        || db.constraint() == Some(name)
                        || db.table() == Some(name)
                };
                let reason = format!(
                    "PostgreSQL {}: {} (SQLSTATE {code})",
                    self.target,
                    redact(db.message(), known)
                );
                match code.get(..2) {
                    // Data exceptions and integrity constraint violations: this row will never fit.
                    Some("22" | "23") => DeliveryError::never(reason),
                    // Undefined table or column, privileges, a changed layout: re-read the table
                    // on the next attempt, and wait for someone to fix it.
                    Some("42" | "0A") => {
                        self.forget_statement();
                        DeliveryError::later(reason)
                    }
                    _ => DeliveryError::later(reason),
                }
            }
            sqlx::Error::PoolTimedOut => DeliveryError::later(format!(
                "cannot connect to PostgreSQL {} within {} ms",
                self.target,
                self.pool_options.1.as_millis()
            )),
            other => DeliveryError::later(format!("PostgreSQL {}: {other}", self.target)),
        }
    }
}

/// The connection broke under the statement (rather than the server refusing it).
fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        // 08: connection exception; 57P01..57P03: the server shut down or terminated us.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// PostgreSQL's message with every double-quoted part replaced by `"…"` unless it is a name we
/// know (table, columns, constraint): messages like `invalid input syntax for type integer:
/// "SMITH"` carry patient data.
fn redact(message: &str, known: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else {
            out.push('…');
            return out;
        };
        let inner = &after[..close];
        out.push_str(if known(inner) { inner } else { "…" });
        out.push('"');
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[async_trait]
impl Destination for PostgresWriter {
    async fn send(&self, delivery: &Delivery) -> Result<Response, DeliveryError> {
        let statement = self.statement().await?;
        let binds = statement.binds(delivery).map_err(DeliveryError::never)?;
        let query = || {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql.clone()));
            for bind in &binds {
                query = match bind {
                    Bind::Text(value) => query.bind(value.clone()),
                    Bind::Bytes(value) => query.bind(value.clone()),
                };
            }
            query
        };
        // A pooled connection the server dropped (restart, idle kill, failover) fails at once:
        // close it and try again on the next one; every pooled connection may be dead, hence up
        // to `max_connections` retries. Safe: the statement is idempotent. Failing to connect at
        // all is not retried here.
        let mut retries = self.pool_options.0;
        let done = loop {
            let mut connection = self
                .pool()
                .acquire()
                .await
                .map_err(|e| self.database_error(e))?;
            match query().execute(&mut *connection).await {
                Err(error) if retries > 0 && connection_lost(&error) => {
                    connection.close_on_drop();
                    retries -= 1;
                }
                result => break result.map_err(|e| self.database_error(e))?,
            }
        };
        let summary = match (done.rows_affected(), self.plan.key.is_empty()) {
            (0, true) => format!(
                "already in {} (written by an earlier attempt of delivery {})",
                self.plan.table, delivery.id
            ),
            (0, false) => format!(
                "{} unchanged: the row already holds this or a newer delivery",
                self.plan.table
            ),
            (_, true) => format!("inserted into {}", self.plan.table),
            (_, false) => format!("upserted into {}", self.plan.table),
        };
        Ok(Response { summary })
    }

    async fn check(&self) -> Result<(), DeliveryError> {
        let schema = self.load().await?;
        let problems = self.plan.problems(&schema);
        if !problems.is_empty() {
            return Err(DeliveryError::never(problems.join("; ")));
        }
        let synchronous: Result<String, _> = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(self.pool())
            .await;
        if let Ok(setting) = synchronous
            && setting == "off"
        {
            tracing::warn!(target_db = %self.target, table = %self.plan.table,
                "synchronous_commit is off: a row acknowledged as sent can be lost if PostgreSQL crashes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_known_names_only() {
        let known = |n: &str| n == "adt" || n == "mrn";
        assert_eq!(
            redact("invalid input syntax for type integer: \"SMITH\"", known),
            "invalid input syntax for type integer: \"…\""
        );
        assert_eq!(
            redact(
                "null value in column \"mrn\" of relation \"adt\" violates not-null constraint",
                known
            ),
            "null value in column \"mrn\" of relation \"adt\" violates not-null constraint"
        );
        assert_eq!(redact("odd \"quote", known), "odd \"…");
    }
}
