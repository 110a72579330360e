//! Test backends: a SQLite file in a temporary folder, or a fresh schema on the real PostgreSQL.

use medway_engine::store::{self, Store};
use sqlx::Connection;
use std::sync::Arc;

#[allow(dead_code)] // `url` is for tests that open a second store on the same database.
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server the tests use.
pub fn pg_url() -> String {
    std::env::var("MEDWAY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl Backend {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("medway.db").display());
        let store = store::open(&url, 4).await.expect("open sqlite store");
        Self {
            store,
            url,
            schema: None,
            _dir: Some(dir),
        }
    }

    /// A store in a new, uniquely named schema. Panics (fails the test) when PostgreSQL is down.
    pub async fn postgres() -> Self {
        let base = pg_url();
        let schema = format!(
            "medway_test_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for this test: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let store = store::open(&url, 4).await.expect("open postgres store");
        Self {
            store,
            url,
            schema: Some(schema),
            _dir: None,
        }
    }

    pub async fn cleanup(self) {
        if let Some(schema) = &self.schema
            && let Ok(mut conn) = sqlx::PgConnection::connect(&pg_url()).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await;
        }
    }
}
