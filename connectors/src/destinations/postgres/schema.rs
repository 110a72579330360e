//! The target table as PostgreSQL describes it (columns, types, unique indexes), the checks a
//! destination needs from it, and the one `INSERT … ON CONFLICT` statement built from it.
//!
//! Identifiers are validated when the settings are read (letters, digits, `_`, `$`; at most 63
//! bytes) and always written double-quoted, so a channel file can never inject SQL; values are
//! always bound parameters. Every parameter is sent as text and cast to the column's own type
//! (`CAST($n AS <type>)`), except `bytea` columns, which receive bytes.

use super::source::{Parsed, Value, ValueSource};
use medway_engine::message::Delivery;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// `name` or `schema.name`, as written in the channel file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (schema, name) = match text.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, text),
        };
        for part in schema.iter().chain(std::iter::once(&name)) {
            if !is_identifier(part) {
                return Err(format!("{part:?} is not a plain SQL identifier"));
            }
        }
        Ok(Self {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        })
    }

    /// `"schema"."name"` or `"name"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Letters, digits, `_` and `$`, not starting with a digit or `$`, 1 to 63 bytes: safe to quote
/// and the same name PostgreSQL stores (quoted names are case-sensitive).
pub fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && text.len() <= 63
}

pub fn quote(identifier: &str) -> String {
    format!("\"{identifier}\"")
}

/// How a column takes its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Bytea,
    /// Integer and numeric types: `$received_at` is microseconds.
    Numeric,
    Json,
    /// Text, timestamps, dates, enums, …: text cast to the column's type.
    Other,
}

#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// The type without its modifier, e.g. `character varying`, `timestamp with time zone`:
    /// an explicit cast to `varchar(3)` would silently truncate, whereas the assignment into
    /// the column then checks the length and refuses (22001).
    pub sql_type: String,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone)]
pub struct TableSchema {
    pub columns: HashMap<String, ColumnInfo>,
    /// Key columns of each usable unique index (valid, immediate, no predicate or expression).
    pub unique_sets: Vec<BTreeSet<String>>,
}

impl TableSchema {
    /// The table's columns and unique indexes; `None` when the table does not exist.
    pub async fn load(pool: &PgPool, table: &TableName) -> Result<Option<Self>, sqlx::Error> {
        let quoted = table.quoted();
        let exists: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::bigint")
            .bind(&quoted)
            .fetch_one(pool)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, NULL), \
                    t.typcategory::text, t.typname::text \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(&quoted)
        .fetch_all(pool)
        .await?;
        let columns = rows
            .into_iter()
            .map(|(name, sql_type, category, type_name)| {
                let kind = match (category.as_str(), type_name.as_str()) {
                    (_, "bytea") => ColumnKind::Bytea,
                    (_, "json" | "jsonb") => ColumnKind::Json,
                    ("N", _) => ColumnKind::Numeric,
                    _ => ColumnKind::Other,
                };
                (name, ColumnInfo { sql_type, kind })
            })
            .collect();
        let sets: Vec<Vec<String>> = sqlx::query_scalar(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) \
             FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid \
                  AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]) \
             WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid \
                   AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL \
             GROUP BY i.indexrelid",
        )
        .bind(&quoted)
        .fetch_all(pool)
        .await?;
        Ok(Some(Self {
            columns,
            unique_sets: sets.into_iter().map(|s| s.into_iter().collect()).collect(),
        }))
    }

    fn has_unique(&self, columns: &[&str]) -> bool {
        let wanted: BTreeSet<String> = columns.iter().map(|c| c.to_string()).collect();
        self.unique_sets.contains(&wanted)
    }
}

/// What the destination writes: the columns, the conflict target, the mode.
#[derive(Debug, Clone)]
pub struct WritePlan {
    pub table: TableName,
    /// (column, source), in a fixed order.
    pub columns: Vec<(String, ValueSource)>,
    /// The column holding `$delivery_id`.
    pub delivery_column: String,
    /// Upsert key columns; empty in insert mode.
    pub key: Vec<String>,
}

/// The statement for one table layout, with how each parameter is rendered.
#[derive(Debug)]
pub struct Statement {
    pub sql: Arc<str>,
    binds: Vec<(ValueSource, ColumnKind)>,
}

/// One bound parameter.
pub enum Bind {
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl WritePlan {
    /// Everything about `schema` that stops this plan from working, for people.
    pub fn problems(&self, schema: &TableSchema) -> Vec<String> {
        let mut problems: Vec<String> = self.missing_columns(schema).into_iter().collect();
        if let Some(info) = schema.columns.get(&self.delivery_column)
            && !matches!(info.sql_type.as_str(), "bigint" | "numeric")
        {
            problems.push(format!(
                "column {} holds $delivery_id but is {}; it must be bigint",
                self.delivery_column, info.sql_type
            ));
        }
        if self.key.is_empty() {
            if !schema.has_unique(&[self.delivery_column.as_str()]) {
                problems.push(format!(
                    "no unique index on {}({}) alone: add `CREATE UNIQUE INDEX ON {} ({})` so \
                     a delivery sent twice writes one row",
                    self.table,
                    self.delivery_column,
                    self.table.quoted(),
                    quote(&self.delivery_column)
                ));
            }
        } else {
            let key: Vec<&str> = self.key.iter().map(String::as_str).collect();
            if !schema.has_unique(&key) {
                problems.push(format!(
                    "no unique index on {}({}) for the upsert key",
                    self.table,
                    key.join(", ")
                ));
            }
        }
        problems
    }

    /// "table t has no column a, b", when some are missing: the statement cannot be built.
    pub fn missing_columns(&self, schema: &TableSchema) -> Option<String> {
        let missing: Vec<&str> = self
            .columns
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| !schema.columns.contains_key(*c))
            .collect();
        (!missing.is_empty())
            .then(|| format!("table {} has no column {}", self.table, missing.join(", ")))
    }

    /// The `INSERT … ON CONFLICT` statement for `schema` (which must have every column).
    pub fn statement(&self, schema: &TableSchema) -> Statement {
        let mut names = Vec::new();
        let mut values = Vec::new();
        let mut binds = Vec::new();
        for (i, (column, source)) in self.columns.iter().enumerate() {
            let (kind, sql_type) = schema
                .columns
                .get(column)
                .map_or((ColumnKind::Other, "text"), |c| {
                    (c.kind, c.sql_type.as_str())
                });
            names.push(quote(column));
            values.push(match kind {
                ColumnKind::Bytea => format!("${}", i + 1),
                _ => format!("CAST(${} AS {sql_type})", i + 1),
            });
            binds.push((source.clone(), kind));
        }
        let delivery = quote(&self.delivery_column);
        let conflict = if self.key.is_empty() {
            format!("ON CONFLICT ({delivery}) DO NOTHING")
        } else {
            let key: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
            let set: Vec<String> = self
                .columns
                .iter()
                .filter(|(c, _)| !self.key.contains(c))
                .map(|(c, _)| format!("{0} = EXCLUDED.{0}", quote(c)))
                .collect();
            // A late retry of an older delivery never overwrites a newer one's row.
            format!(
                "ON CONFLICT ({}) DO UPDATE SET {} WHERE t.{delivery} IS NULL OR t.{delivery} < EXCLUDED.{delivery}",
                key.join(", "),
                set.join(", ")
            )
        };
        let sql = format!(
            "INSERT INTO {} AS t ({}) VALUES ({}) {conflict}",
            self.table.quoted(),
            names.join(", "),
            values.join(", ")
        );
        Statement {
            sql: Arc::from(sql),
            binds,
        }
    }
}

impl Statement {
    /// The parameters for `delivery`; an error (for people, no values) if the payload cannot
    /// supply them.
    pub fn binds(&self, delivery: &Delivery) -> Result<Vec<Bind>, String> {
        let sources: Vec<ValueSource> = self.binds.iter().map(|(s, _)| s.clone()).collect();
        let parsed = Parsed::new(&delivery.payload, &sources)?;
        Ok(self
            .binds
            .iter()
            .map(|(source, kind)| render(parsed.value(source, delivery), *kind, &parsed))
            .collect())
    }
}

fn render(value: Value, kind: ColumnKind, parsed: &Parsed) -> Bind {
    let text = match (value, kind) {
        (Value::Null, ColumnKind::Bytea) => return Bind::Bytes(None),
        (Value::Null, _) => None,
        (Value::Payload(bytes), ColumnKind::Bytea) => return Bind::Bytes(Some(bytes.to_vec())),
        (Value::Payload(bytes), ColumnKind::Json) => {
            let text = parsed.payload_text(&bytes);
            if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                Some(text.into_owned())
            } else {
                Some(serde_json::Value::String(text.into_owned()).to_string())
            }
        }
        (Value::Payload(bytes), _) => Some(parsed.payload_text(&bytes).into_owned()),
        (Value::Text(s), ColumnKind::Json) => Some(serde_json::Value::String(s).to_string()),
        (Value::Text(s), _) => Some(s),
        (Value::Integer(n), _) => Some(n.to_string()),
        (Value::Micros(micros), ColumnKind::Numeric | ColumnKind::Bytea) => {
            Some(micros.to_string())
        }
        (Value::Micros(micros), ColumnKind::Json) => Some(
            serde_json::Value::String(medway_engine::clock::micros_to_rfc3339(micros)).to_string(),
        ),
        (Value::Micros(micros), ColumnKind::Other) => {
            Some(medway_engine::clock::micros_to_rfc3339(micros))
        }
        (Value::Json(value), ColumnKind::Json) => Some(value.to_string()),
        (Value::Json(serde_json::Value::String(s)), _) => Some(s),
        (Value::Json(value), _) => Some(value.to_string()),
    };
    match kind {
        ColumnKind::Bytea => Bind::Bytes(text.map(String::into_bytes)),
        _ => Bind::Text(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        let t = TableName::parse("clinical.adt_events").unwrap();
        assert_eq!(t.quoted(), "\"clinical\".\"adt_events\"");
        assert_eq!(TableName::parse("adt").unwrap().quoted(), "\"adt\"");
        for bad in [
            "",
            "a.b.c",
            "a-b",
            "1abc",
            "x\"; DROP TABLE y; --",
            "a.",
            ".a",
            "$a",
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
        assert!(!is_identifier(&"a".repeat(64)));
    }

    fn plan(key: &[&str]) -> WritePlan {
        WritePlan {
            table: TableName::parse("s.t").unwrap(),
            columns: vec![
                ("delivery_id".into(), ValueSource::DeliveryId),
                ("mrn".into(), ValueSource::parse("PID-3.1").unwrap()),
                ("raw".into(), ValueSource::Payload),
            ],
            delivery_column: "delivery_id".into(),
            key: key.iter().map(|k| k.to_string()).collect(),
        }
    }

    fn schema() -> TableSchema {
        let col = |t: &str, kind| ColumnInfo {
            sql_type: t.into(),
            kind,
        };
        TableSchema {
            columns: HashMap::from([
                ("delivery_id".into(), col("bigint", ColumnKind::Numeric)),
                ("mrn".into(), col("text", ColumnKind::Other)),
                ("raw".into(), col("bytea", ColumnKind::Bytea)),
            ]),
            unique_sets: vec![BTreeSet::from(["delivery_id".to_string()])],
        }
    }

    #[test]
    fn insert_statement() {
        let s = plan(&[]).statement(&schema());
        assert_eq!(
            &*s.sql,
            "INSERT INTO \"s\".\"t\" AS t (\"delivery_id\", \"mrn\", \"raw\") VALUES \
             (CAST($1 AS bigint), CAST($2 AS text), $3) ON CONFLICT (\"delivery_id\") DO NOTHING"
        );
        assert!(plan(&[]).problems(&schema()).is_empty());
    }

    #[test]
    fn upsert_statement_guards_against_older_deliveries() {
        let s = plan(&["mrn"]).statement(&schema());
        assert!(
            s.sql.ends_with(
                "ON CONFLICT (\"mrn\") DO UPDATE SET \"delivery_id\" = EXCLUDED.\"delivery_id\", \
             \"raw\" = EXCLUDED.\"raw\" WHERE t.\"delivery_id\" IS NULL OR \
             t.\"delivery_id\" < EXCLUDED.\"delivery_id\""
            ),
            "{}",
            s.sql
        );
        let problems = plan(&["mrn"]).problems(&schema());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("upsert key"));
    }

    #[test]
    fn problems_name_what_is_missing() {
        let mut schema = schema();
        schema.columns.remove("mrn");
        schema.unique_sets.clear();
        let problems = plan(&[]).problems(&schema);
        assert!(problems[0].contains("no column mrn"), "{problems:?}");
        assert!(problems[1].contains("no unique index"), "{problems:?}");
    }
}
