//! `PostgresWriter` against the real PostgreSQL on 127.0.0.1 (`MEDWAY_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test works in its own schema; the outage
//! test gets its own database, so switching it off disturbs nobody else.
//!
//! The benchmark is ignored by default:
//! `cargo test -p medway-connectors --test postgres_destination -- --ignored --nocapture`.

use bytes::Bytes;
use futures::StreamExt;
use medway_connectors::destinations::postgres::{PostgresSettings, PostgresWriter};
use medway_engine::config::ConnectorSpec;
use medway_engine::connector::{Destination, Retry};
use medway_engine::message::Delivery;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn pg_url() -> String {
    std::env::var("MEDWAY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The same server, another database.
fn url_for_database(database: &str) -> String {
    let url = pg_url();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_string(), format!("?{query}")),
        None => (url.clone(), String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let server = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => &base,
    };
    format!("{server}/{database}{query}")
}

async fn admin() -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&pg_url())
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/dev/services postgres)")
}

async fn exec(pool: &PgPool, sql: impl Into<String>) {
    let sql = sql.into();
    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A fresh schema named after the test, holding `table_sql` (with `{s}` for the schema).
async fn schema(name: &str, table_sql: &str) -> (PgPool, String) {
    let pool = admin().await;
    let schema = format!("medway_pgdest_{name}");
    exec(&pool, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    exec(&pool, format!("CREATE SCHEMA {schema}")).await;
    exec(&pool, table_sql.replace("{s}", &schema)).await;
    (pool, schema)
}

fn writer(toml_text: &str) -> PostgresWriter {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    let settings = PostgresSettings::from_spec(&ConnectorSpec::inline("postgres", table))
        .unwrap_or_else(|e| panic!("{e} ({:?}, {:?})", e.key, e.hint));
    PostgresWriter::new(settings).unwrap()
}

fn adt(mrn: &str, family: &str, given: &str) -> Bytes {
    Bytes::from(format!(
        "MSH|^~\\&|PAS|HOSP|MEDWAY|HOSP|20240501090000||ADT^A01|C{mrn}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||{family}^{given}||19710304|F\r\
         PV1|1|I|ICU^01^A\r"
    ))
}

fn delivery(id: i64, payload: Bytes) -> Delivery {
    Delivery {
        id,
        message_id: id * 10,
        channel: "adt".into(),
        destination: "rows".into(),
        attempts: 0,
        control_id: Some(format!("CTL{id}")),
        message_type: Some("ADT^A01".into()),
        payload,
        received_at: 1_714_554_000_000_000 + id,
        ordering_key: None,
    }
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

const ADT_TABLE: &str = "CREATE TABLE {s}.adt (
    id bigserial PRIMARY KEY,
    delivery_id bigint NOT NULL UNIQUE,
    message_id bigint,
    channel text,
    control_id varchar(20),
    event text,
    mrn text NOT NULL,
    family text,
    given text,
    birth_date date,
    received_at timestamptz,
    received_micros bigint,
    raw text,
    raw_bytes bytea
)";

fn adt_settings(schema: &str) -> String {
    format!(
        "url = \"{}\"\ntable = \"{schema}.adt\"\n[columns]\n\
         delivery_id = \"$delivery_id\"\nmessage_id = \"$message_id\"\nchannel = \"$channel\"\n\
         control_id = \"$control_id\"\nevent = \"$message_type\"\nmrn = \"PID-3.1\"\n\
         family = \"PID-5.1\"\ngiven = \"PID-5.2\"\nbirth_date = \"PID-7\"\n\
         received_at = \"$received_at\"\nreceived_micros = \"$received_at\"\n\
         raw = \"$payload\"\nraw_bytes = \"$payload\"\n",
        pg_url()
    )
}

#[tokio::test]
async fn rows_read_back_with_the_expected_values() {
    let (pool, schema) = schema("read_back", ADT_TABLE).await;
    let destination = writer(&adt_settings(&schema));
    destination.check().await.unwrap();

    let escaped = adt("00123456", "O'BRIEN\\T\\JONES", "MARY");
    let latin1 = Bytes::from_static(
        b"MSH|^~\\&|PAS|HOSP|MEDWAY|HOSP|20240501090000||ADT^A08|CL1|P|2.5.1||||||8859/1\r\
PID|1||00999^^^HOSP^MR||M\xdcLLER^J\xdcRGEN\r",
    );
    let response = destination
        .send(&delivery(1, escaped.clone()))
        .await
        .unwrap();
    assert!(
        response.summary.contains("inserted"),
        "{}",
        response.summary
    );
    destination
        .send(&delivery(2, latin1.clone()))
        .await
        .unwrap();

    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT delivery_id, message_id, channel, control_id, event, mrn, family, given, \
                birth_date::text AS birth, \
                (EXTRACT(EPOCH FROM received_at) * 1000000)::bigint AS received_at, received_micros, raw, raw_bytes \
         FROM {schema}.adt ORDER BY delivery_id"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    let first = &rows[0];
    assert_eq!(first.get::<i64, _>("delivery_id"), 1);
    assert_eq!(first.get::<i64, _>("message_id"), 10);
    assert_eq!(first.get::<String, _>("channel"), "adt");
    assert_eq!(first.get::<String, _>("control_id"), "CTL1");
    assert_eq!(first.get::<String, _>("event"), "ADT^A01");
    assert_eq!(first.get::<String, _>("mrn"), "00123456");
    assert_eq!(
        first.get::<String, _>("family"),
        "O'BRIEN&JONES",
        "HL7 escapes undone"
    );
    assert_eq!(first.get::<String, _>("given"), "MARY");
    assert_eq!(first.get::<String, _>("birth"), "1971-03-04");
    let micros = 1_714_554_000_000_001i64;
    assert_eq!(first.get::<i64, _>("received_micros"), micros);
    assert_eq!(
        first.get::<i64, _>("received_at"),
        micros,
        "timestamptz to the µs"
    );
    assert_eq!(first.get::<String, _>("raw").as_bytes(), &escaped[..]);
    assert_eq!(first.get::<Vec<u8>, _>("raw_bytes"), escaped.to_vec());

    let second = &rows[1];
    assert_eq!(
        second.get::<String, _>("family"),
        "MÜLLER",
        "decoded per MSH-18"
    );
    assert_eq!(second.get::<String, _>("given"), "JÜRGEN");
    assert!(second.get::<String, _>("raw").contains("MÜLLER^JÜRGEN"));
    assert_eq!(
        second.get::<Vec<u8>, _>("raw_bytes"),
        latin1.to_vec(),
        "bytea keeps the exact bytes"
    );
    assert_eq!(
        second.get::<Option<String>, _>("birth"),
        None,
        "missing → NULL"
    );
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn json_payload_keys_fill_columns() {
    let (pool, schema) = schema(
        "json",
        "CREATE TABLE {s}.obs (delivery_id bigint UNIQUE, mrn text, ward text, score integer, \
         vitals jsonb, flag text, doc jsonb, event_at timestamptz)",
    )
    .await;
    let writer = writer(&format!(
        "url = \"{}\"\ntable = \"{schema}.obs\"\n[columns]\ndelivery_id = \"$delivery_id\"\n\
         mrn = \"$.mrn\"\nward = \"$.ward\"\nscore = \"$.score\"\nvitals = \"$.vitals\"\n\
         flag = \"$.flag\"\ndoc = \"$payload\"\nevent_at = \"$.at\"\n",
        pg_url()
    ));
    writer.check().await.unwrap();
    let payload = Bytes::from_static(
        br#"{"mrn":"00123456","ward":"ICU","score":5,"vitals":{"hr":72,"rr":18},"flag":null,"at":"2024-05-01T09:00:00Z"}"#,
    );
    writer.send(&delivery(7, payload)).await.unwrap();
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT mrn, ward, score, vitals->>'hr' AS hr, flag, doc->>'ward' AS doc_ward, \
         EXTRACT(EPOCH FROM event_at)::bigint AS at FROM {schema}.obs"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("mrn"), "00123456");
    assert_eq!(row.get::<String, _>("ward"), "ICU");
    assert_eq!(row.get::<i32, _>("score"), 5);
    assert_eq!(row.get::<String, _>("hr"), "72");
    assert_eq!(row.get::<Option<String>, _>("flag"), None);
    assert_eq!(row.get::<String, _>("doc_ward"), "ICU");
    assert_eq!(row.get::<i64, _>("at"), 1_714_554_000);

    let error = writer
        .send(&delivery(8, adt("1", "A", "B")))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never, "HL7 where JSON is expected");
    assert!(error.reason.contains("JSON"), "{}", error.reason);
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn the_same_deliveries_sent_twice_leave_one_row_each() {
    let (pool, schema) = schema("twice", ADT_TABLE).await;
    let settings = adt_settings(&schema);
    let deliveries: Vec<Delivery> = (1..=50)
        .map(|i| delivery(i, adt(&format!("MRN{i}"), "DOE", "JANE")))
        .collect();
    let first = writer(&settings);
    for d in &deliveries {
        first.send(d).await.unwrap();
    }
    // A crash after the rows were written and before the store recorded them as sent: a new
    // process (a new writer, a new pool) sends every one of them again.
    drop(first);
    let second = writer(&settings);
    for d in &deliveries {
        let mut again = d.clone();
        again.attempts = 1;
        let response = second.send(&again).await.unwrap();
        assert!(response.summary.contains("already"), "{}", response.summary);
    }
    // And concurrently, as two nodes would.
    let second = Arc::new(second);
    futures::stream::iter(deliveries.iter().cloned())
        .map(|d| {
            let second = second.clone();
            async move { second.send(&d).await.unwrap() }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let table = format!("{schema}.adt");
    assert_eq!(count(&pool, &table).await, 50);
    let distinct: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(DISTINCT delivery_id) FROM {table}"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(distinct, 50);
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn upsert_keeps_one_row_per_key_and_never_goes_back_in_time() {
    let (pool, schema) = schema(
        "upsert",
        "CREATE TABLE {s}.patients (mrn text PRIMARY KEY, family text, delivery_id bigint)",
    )
    .await;
    let writer = writer(&format!(
        "url = \"{}\"\ntable = \"{schema}.patients\"\nmode = \"upsert\"\nkey = [\"mrn\"]\n\
         [columns]\nmrn = \"PID-3.1\"\nfamily = \"PID-5.1\"\ndelivery_id = \"$delivery_id\"\n",
        pg_url()
    ));
    writer.check().await.unwrap();
    let old = delivery(1, adt("A1", "SMITH", "JO"));
    writer.send(&old).await.unwrap();
    writer
        .send(&delivery(2, adt("B2", "JONES", "AL")))
        .await
        .unwrap();
    let new = delivery(3, adt("A1", "SMITH-BROWN", "JO"));
    let response = writer.send(&new).await.unwrap();
    assert!(
        response.summary.contains("upserted"),
        "{}",
        response.summary
    );
    // The same delivery again, and a late retry of the older one: neither changes the row.
    let response = writer.send(&new).await.unwrap();
    assert!(
        response.summary.contains("unchanged"),
        "{}",
        response.summary
    );
    writer.send(&old).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT mrn, family, delivery_id FROM {schema}.patients ORDER BY mrn"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("A1".to_string(), "SMITH-BROWN".to_string(), 3),
            ("B2".to_string(), "JONES".to_string(), 2)
        ]
    );
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn data_the_table_refuses_is_errored_without_patient_data_in_the_reason() {
    let (pool, schema) = schema(
        "bad_data",
        "CREATE TABLE {s}.t (delivery_id bigint UNIQUE, mrn text NOT NULL, age integer, \
         code varchar(3), mrn_unique text UNIQUE)",
    )
    .await;
    let writer = writer(&format!(
        "url = \"{}\"\ntable = \"{schema}.t\"\n[columns]\ndelivery_id = \"$delivery_id\"\n\
         mrn = \"PID-2\"\nage = \"PID-5.1\"\ncode = \"PID-5.2\"\nmrn_unique = \"PID-3.1\"\n",
        pg_url()
    ));
    // PID-2 is empty: NULL into a NOT NULL column.
    let error = writer
        .send(&delivery(1, adt("M1", "42", "ABC")))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never, "{}", error.reason);
    assert!(
        error.reason.contains("mrn") && error.reason.contains("23502"),
        "{}",
        error.reason
    );

    let writer = self::writer(&format!(
        "url = \"{}\"\ntable = \"{schema}.t\"\n[columns]\ndelivery_id = \"$delivery_id\"\n\
         mrn = \"PID-3.1\"\nage = \"PID-5.1\"\ncode = \"PID-5.2\"\nmrn_unique = \"PID-3.1\"\n",
        pg_url()
    ));
    let cases = [
        (adt("M2", "SMITH", "ABC"), "SMITH", "22P02"),
        (adt("M3", "42", "ABCDEFG"), "ABCDEFG", "22001"),
        (adt("M4", "99999999999", "ABC"), "99999999999", "22003"),
    ];
    for (i, (payload, secret, code)) in cases.into_iter().enumerate() {
        let error = writer
            .send(&delivery(10 + i as i64, payload))
            .await
            .unwrap_err();
        assert_eq!(error.retry, Retry::Never, "{}", error.reason);
        assert!(error.reason.contains(code), "{}", error.reason);
        assert!(
            !error.reason.contains(secret),
            "value leaked: {}",
            error.reason
        );
    }
    // Another unique constraint than the delivery id's is a real conflict, not a duplicate.
    writer
        .send(&delivery(20, adt("DUP", "40", "ABC")))
        .await
        .unwrap();
    let error = writer
        .send(&delivery(21, adt("DUP", "41", "ABC")))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never);
    assert!(error.reason.contains("23505"), "{}", error.reason);
    assert!(!error.reason.contains("DUP"), "{}", error.reason);

    let error = writer
        .send(&delivery(22, Bytes::from_static(b"not hl7 at all")))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Never);
    assert!(error.reason.contains("not an HL7"), "{}", error.reason);
    assert_eq!(count(&pool, &format!("{schema}.t")).await, 1);
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn check_names_a_missing_table_column_or_unique_index() {
    let (pool, schema) = schema(
        "check",
        "CREATE TABLE {s}.no_unique (delivery_id bigint, mrn text);
         CREATE TABLE {s}.wide_unique (delivery_id bigint, mrn text, UNIQUE (delivery_id, mrn));
         CREATE TABLE {s}.text_id (delivery_id text UNIQUE, mrn text);
         CREATE TABLE {s}.partial (delivery_id bigint, mrn text);
         CREATE UNIQUE INDEX ON {s}.partial (delivery_id) WHERE mrn IS NOT NULL;
         CREATE TABLE {s}.good (delivery_id bigint, mrn text);
         CREATE UNIQUE INDEX ON {s}.good (delivery_id);",
    )
    .await;
    let check = |table: &str, columns: &str| {
        let w = writer(&format!(
            "url = \"{}\"\ntable = \"{schema}.{table}\"\n[columns]\n\
             delivery_id = \"$delivery_id\"\n{columns}",
            pg_url()
        ));
        async move { w.check().await }
    };
    let error = check("absent", "mrn = \"PID-3.1\"").await.unwrap_err();
    assert!(
        error
            .reason
            .contains(&format!("table {schema}.absent does not exist")),
        "{}",
        error.reason
    );
    let error = check(
        "good",
        "mrn = \"PID-3.1\"\nward = \"PV1-3.1\"\nbed = \"PV1-3.3\"",
    )
    .await
    .unwrap_err();
    assert!(
        error.reason.contains("has no column bed, ward"),
        "{}",
        error.reason
    );
    for table in ["no_unique", "wide_unique", "partial"] {
        let error = check(table, "mrn = \"PID-3.1\"").await.unwrap_err();
        assert!(
            error.reason.contains("no unique index on")
                && error.reason.contains("CREATE UNIQUE INDEX"),
            "{table}: {}",
            error.reason
        );
    }
    let error = check("text_id", "mrn = \"PID-3.1\"").await.unwrap_err();
    assert!(error.reason.contains("must be bigint"), "{}", error.reason);
    check("good", "mrn = \"PID-3.1\"").await.unwrap();
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn a_table_renamed_away_retries_later_and_then_succeeds() {
    let (pool, schema) = schema("renamed", ADT_TABLE).await;
    let writer = writer(&adt_settings(&schema));
    writer
        .send(&delivery(1, adt("M1", "A", "B")))
        .await
        .unwrap();
    exec(
        &pool,
        format!("ALTER TABLE {schema}.adt RENAME TO adt_away"),
    )
    .await;
    let error = writer
        .send(&delivery(2, adt("M2", "A", "B")))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
    assert!(error.reason.contains("42P01"), "{}", error.reason);
    let error = writer
        .send(&delivery(2, adt("M2", "A", "B")))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert!(error.reason.contains("does not exist"), "{}", error.reason);
    exec(
        &pool,
        format!("ALTER TABLE {schema}.adt_away RENAME TO adt"),
    )
    .await;
    writer
        .send(&delivery(2, adt("M2", "A", "B")))
        .await
        .unwrap();
    assert_eq!(count(&pool, &format!("{schema}.adt")).await, 2);
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn a_connection_the_server_dropped_is_replaced_without_a_failed_attempt() {
    let (pool, schema) = schema("reconnect", ADT_TABLE).await;
    let app = "medway_pgdest_reconnect";
    let url = format!(
        "{}{}application_name={app}",
        pg_url(),
        if pg_url().contains('?') { "&" } else { "?" }
    );
    let writer = writer(&adt_settings(&schema).replace(&pg_url(), &url));
    writer
        .send(&delivery(1, adt("M1", "A", "B")))
        .await
        .unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(app)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(killed >= 1, "the pooled connection was terminated");
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer
        .send(&delivery(2, adt("M2", "A", "B")))
        .await
        .unwrap();
    assert_eq!(count(&pool, &format!("{schema}.adt")).await, 2);
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn no_server_retries_later() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let writer = writer(&format!(
        "url = \"postgres://medway:s3cr3t@127.0.0.1:{port}/db\"\ntable = \"t\"\n\
         connect_timeout_ms = 1000\n[columns]\ndelivery_id = \"$delivery_id\"\n"
    ));
    let started = Instant::now();
    let error = writer.check().await.unwrap_err();
    assert_eq!(error.retry, Retry::Later);
    assert!(!error.reason.contains("s3cr3t"), "{}", error.reason);
    let error = writer
        .send(&delivery(1, adt("M", "A", "B")))
        .await
        .unwrap_err();
    assert_eq!(error.retry, Retry::Later, "{}", error.reason);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The destination's database refuses connections for a while (`ALLOW_CONNECTIONS false` and
/// every backend terminated) while a worker-like loop keeps sending with 4 in flight: sends fail
/// with `Retry::Later`, then drain once it is back. Every delivery ends up exactly once.
#[tokio::test]
async fn an_unavailable_database_delays_deliveries_and_loses_none() {
    const TOTAL: i64 = 400;
    let admin = admin().await;
    let database = "medway_pgdest_outage";
    exec(
        &admin,
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    )
    .await;
    exec(&admin, format!("CREATE DATABASE {database}")).await;
    let target = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url_for_database(database))
        .await
        .unwrap();
    exec(
        &target,
        "CREATE TABLE adt (delivery_id bigint PRIMARY KEY, mrn text NOT NULL, family text)",
    )
    .await;
    target.close().await;

    let writer = Arc::new(writer(&format!(
        "url = \"{}\"\ntable = \"adt\"\nconnect_timeout_ms = 500\n[columns]\n\
         delivery_id = \"$delivery_id\"\nmrn = \"PID-3.1\"\nfamily = \"PID-5.1\"\n",
        url_for_database(database)
    )));
    writer.check().await.unwrap();

    let queue: Arc<std::sync::Mutex<VecDeque<Delivery>>> = Arc::new(std::sync::Mutex::new(
        (1..=TOTAL)
            .map(|i| delivery(i, adt(&format!("P{i}"), "DOE", "JO")))
            .collect(),
    ));
    let sent = Arc::new(AtomicUsize::new(0));
    let later = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (writer, queue, sent, later) =
                (writer.clone(), queue.clone(), sent.clone(), later.clone());
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some(mut d) = next else {
                        if sent.load(Ordering::SeqCst) == TOTAL as usize {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    match writer.send(&d).await {
                        Ok(_) => {
                            sent.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            assert_eq!(e.retry, Retry::Later, "{}", e.reason);
                            later.fetch_add(1, Ordering::SeqCst);
                            d.attempts += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            queue.lock().unwrap().push_back(d);
                        }
                    }
                }
            })
        })
        .collect();

    while sent.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    exec(
        &admin,
        format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"),
    )
    .await;
    exec(
        &admin,
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
    let sent_at_outage = sent.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_during = sent.load(Ordering::SeqCst) - sent_at_outage;
    let failures = later.load(Ordering::SeqCst);
    exec(
        &admin,
        format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"),
    )
    .await;

    tokio::time::timeout(Duration::from_secs(60), async {
        for worker in workers {
            worker.await.unwrap();
        }
    })
    .await
    .expect("every delivery drains after the database is back");
    assert!(
        failures > 0,
        "sends failed while the database was unavailable"
    );
    assert!(
        sent_during <= 4,
        "at most the in-flight sends finished: {sent_during}"
    );

    let target = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url_for_database(database))
        .await
        .unwrap();
    let (rows, distinct, min, max): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT delivery_id), min(delivery_id), max(delivery_id) FROM adt",
    )
    .fetch_one(&target)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct, min, max),
        (TOTAL, TOTAL, 1, TOTAL),
        "zero lost, zero doubled"
    );
    target.close().await;
    drop(writer);
    exec(&admin, format!("DROP DATABASE {database} WITH (FORCE)")).await;
    println!("outage: {failures} attempts retried later; all {TOTAL} rows present once");
}

/// Rows/s for 20,000 deliveries (`MEDWAY_BENCH_N`), sent one at a time and with 8 in flight.
#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn benchmark_rows_per_second() {
    let n: i64 = std::env::var("MEDWAY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (pool, schema) = schema(
        "bench",
        "CREATE TABLE {s}.adt (delivery_id bigint PRIMARY KEY, mrn text NOT NULL, family text, \
         given text, event text, received_at timestamptz, raw text)",
    )
    .await;
    let writer = Arc::new(writer(&format!(
        "url = \"{}\"\ntable = \"{schema}.adt\"\nmax_connections = 8\n[columns]\n\
         delivery_id = \"$delivery_id\"\nmrn = \"PID-3.1\"\nfamily = \"PID-5.1\"\n\
         given = \"PID-5.2\"\nevent = \"$message_type\"\nreceived_at = \"$received_at\"\n\
         raw = \"$payload\"\n",
        pg_url()
    )));
    writer.check().await.unwrap();
    let payload = adt("00123456", "DOE", "JANE");

    let started = Instant::now();
    for i in 1..=n {
        writer.send(&delivery(i, payload.clone())).await.unwrap();
    }
    let sequential = n as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    futures::stream::iter(n + 1..=2 * n)
        .map(|i| {
            let (writer, payload) = (writer.clone(), payload.clone());
            async move { writer.send(&delivery(i, payload)).await.unwrap() }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let concurrent = n as f64 / started.elapsed().as_secs_f64();
    assert_eq!(count(&pool, &format!("{schema}.adt")).await, 2 * n);
    println!(
        "postgres destination: {n} deliveries sequential {sequential:.0} rows/s; \
         8 in flight {concurrent:.0} rows/s"
    );
    exec(&pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}
