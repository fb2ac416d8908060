//! [`PostgresRunStore`]: run records in a PostgreSQL table every machine
//! shares.
//!
//! # Schema
//! One table, [`RUNS_TABLE`], in the configured schema (created if
//! missing) or else the connection's `search_path`: the record as `JSONB`,
//! plus `run_id` (primary key), `pipeline`, `status`, `started_at` and
//! `finished_at` as indexed columns for queries by people and tools.
//!
//! # Security
//! Every statement is static text with bound values (a test scans this
//! crate's sources that use sqlx). The schema name is validated, passed as
//! a connection parameter and quoted by the server (`format('%I')`).
//! PostgreSQL text cannot hold NUL characters: they are stored as U+FFFD.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{RunRecord, RunStore, check_run_id};
use crate::database::Database;
use crate::error::{Error, Result};

/// The table of run records.
pub const RUNS_TABLE: &str = "weir_runs";

/// The audit sink's schema-creation lock ("weiraud1"): taking the same one
/// means the two never race to create the schema.
const SCHEMA_LOCK: i64 = 0x7765_6972_6175_6431;

const CREATE_SCHEMA: &str = "DO $$ BEGIN
    IF coalesce(current_setting('weir.schema', true), '') <> '' THEN
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', current_setting('weir.schema', true));
    END IF;
END $$";

const CREATE_TABLE: &str = "
CREATE TABLE IF NOT EXISTS weir_runs (
    run_id TEXT PRIMARY KEY CHECK (run_id ~ '^[A-Za-z0-9]{1,64}$'),
    pipeline TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    record JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS weir_runs_pipeline ON weir_runs (pipeline, started_at DESC);
CREATE INDEX IF NOT EXISTS weir_runs_status ON weir_runs (status, started_at DESC);
CREATE INDEX IF NOT EXISTS weir_runs_started_at ON weir_runs (started_at DESC);
";

const SAVE: &str = "INSERT INTO weir_runs (run_id, pipeline, status, started_at, finished_at, record) \
     VALUES ($1, $2, $3, $4::timestamptz, $5::timestamptz, $6::jsonb) \
     ON CONFLICT (run_id) DO UPDATE SET pipeline = EXCLUDED.pipeline, status = EXCLUDED.status, \
     started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, record = EXCLUDED.record";
const LOAD: &str = "SELECT record::text FROM weir_runs WHERE run_id = $1";
const LIST: &str = "SELECT run_id, record::text FROM weir_runs ORDER BY run_id DESC LIMIT $1::int8";

/// Run records in PostgreSQL.
#[derive(Clone)]
pub struct PostgresRunStore {
    pool: PgPool,
    database: Database,
}

impl std::fmt::Debug for PostgresRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRunStore")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl PostgresRunStore {
    /// Connects to `database` and creates the schema and [`RUNS_TABLE`] if
    /// missing.
    ///
    /// # Errors
    /// [`Error::Database`] if the database cannot be reached or refuses the
    /// table; [`Error::DatabaseConfig`] for an unusable URL.
    pub async fn connect(database: &Database) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(database.connect_options()?)
            .await
            .map_err(database.error("connect"))?;
        let store = Self {
            pool,
            database: database.clone(),
        };
        store.init().await?;
        Ok(store)
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn init(&self) -> Result<()> {
        let err = |op| self.database.error(op);
        let mut tx = self.pool.begin().await.map_err(err("begin"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(err("lock the schema"))?;
        sqlx::raw_sql(CREATE_SCHEMA)
            .execute(&mut *tx)
            .await
            .map_err(err("set up the schema"))?;
        sqlx::raw_sql(CREATE_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(err("set up the run records table"))?;
        tx.commit()
            .await
            .map_err(err("commit the run records table"))
    }

    fn decode(&self, run_id: &str, text: &str) -> Result<RunRecord> {
        serde_json::from_str(text).map_err(|e| Error::Database {
            host: self.database.host().to_owned(),
            operation: "decode a run record",
            message: format!("run {run_id}: {e}"),
        })
    }
}

#[async_trait::async_trait]
impl RunStore for PostgresRunStore {
    async fn save(&self, record: &RunRecord) -> Result<()> {
        check_run_id(&record.run_id)?;
        let mut value = serde_json::to_value(record).map_err(|e| Error::Internal {
            message: format!("run record encoding: {e}"),
        })?;
        replace_nul(&mut value);
        sqlx::query(SAVE)
            .bind(&record.run_id)
            .bind(record.pipeline.replace('\0', "\u{fffd}"))
            .bind(record.status.as_str())
            .bind(timestamp(record.started_at))
            .bind(record.finished_at.map(timestamp))
            .bind(value.to_string())
            .execute(&self.pool)
            .await
            .map_err(self.database.error("save a run record"))?;
        Ok(())
    }

    async fn load(&self, run_id: &str) -> Result<Option<RunRecord>> {
        check_run_id(run_id)?;
        let text: Option<String> = sqlx::query_scalar(LOAD)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.database.error("load a run record"))?;
        text.map(|t| self.decode(run_id, &t)).transpose()
    }

    async fn list(&self, limit: Option<usize>) -> Result<Vec<RunRecord>> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows: Vec<(String, String)> = sqlx::query_as(LIST)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(self.database.error("list run records"))?;
        let mut out = Vec::with_capacity(rows.len());
        for (run_id, text) in rows {
            match self.decode(&run_id, &text) {
                Ok(record) => out.push(record),
                Err(e) => tracing::warn!(error = %e, "skipping a run record that does not decode"),
            }
        }
        Ok(out)
    }
}

/// RFC 3339 with microseconds, which `timestamptz` keeps exactly.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// PostgreSQL text and `jsonb` refuse NUL; a stage's error text may hold one.
fn replace_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => map.values_mut().for_each(replace_nul),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_everywhere() {
        let mut v = serde_json::json!({"a": "x\0y", "b": ["\0"], "c": {"d": "ok"}});
        replace_nul(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": "x\u{fffd}y", "b": ["\u{fffd}"], "c": {"d": "ok"}})
        );
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.123456Z");
    }
}
