//! The SQLite log's schema: creating it, telling format 1 from format 2,
//! and checking that a format-2 log's table and view are weir's.

use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use crate::error::{Error, Result};
use crate::event::EventFormat;

/// The format-2 events table, exactly as created and as verification
/// expects to find it in `sqlite_schema`. Only the chain, the seq and the
/// record are stored.
const EVENTS_TABLE_V2: &str = "CREATE TABLE audit_events (
    chain TEXT NOT NULL, seq INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
) WITHOUT ROWID";

/// The fields of format-2 events as columns, extracted from the record on
/// read (for [`AuditSink::query`] and for people using `sqlite3`), so they
/// cannot be edited apart from it. A view rather than generated columns:
/// SQLite computes generated columns on every `INSERT`, which doubled the
/// writer's CPU per event. Verification checks that its text is exactly
/// this (SQLite keeps it verbatim and reads through it), so a redefined
/// column shows as [`DamageKind::Restructured`](crate::DamageKind).
const FIELDS_VIEW_V2: &str = "CREATE VIEW audit_event_fields AS SELECT chain, seq, record,
    record ->> '$.time_us' AS time_us, record ->> '$.actor' AS actor,
    record ->> '$.run' AS run, record ->> '$.stage' AS stage,
    record ->> '$.attempt' AS attempt, record ->> '$.action' AS action,
    record ->> '$.store' AS store, record ->> '$.path' AS path,
    record ->> '$.decision' AS decision, record ->> '$.reason' AS reason,
    record ->> '$.token_id_hmac' AS token_id_hmac, record ->> '$.origin' AS origin,
    record ->> '$.prev_hash' AS prev_hash
FROM audit_events";

/// Everything but the events table; the same in both formats.
const SCHEMA_REST: &str = "
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
    time_us INTEGER NOT NULL, signature TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_heads (
    chain TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL,
    time_us INTEGER NOT NULL, checkpoint_seq INTEGER NOT NULL,
    checkpoint_time_us INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
";

/// The events table's stored definition.
const EVENTS_TABLE_SQL: &str =
    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'audit_events'";
/// The fields view's stored definition.
const FIELDS_VIEW_SQL: &str =
    "SELECT sql FROM sqlite_schema WHERE type = 'view' AND name = 'audit_event_fields'";
/// Whether the events table has format 1's stored `hash` column.
const HAS_V1_COLUMNS: &str = "SELECT count(*) FROM pragma_table_info('audit_events') \
     WHERE name IN ('hash', 'prev_hash', 'actor')";

/// Finds the log's format, creating a format-2 log in an empty file. The
/// check and the creation happen under SQLite's write lock, so two
/// processes opening a new file at once agree.
///
/// # Errors
///
/// [`Error::Restructured`] if the file holds an events table or view weir
/// did not define: weir will not append to it.
pub(super) async fn ensure_schema(conn: &mut SqliteConnection) -> Result<EventFormat> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(Error::db("begin"))?;
    let format = match events_table_sql(&mut tx).await?.as_deref() {
        None => {
            sqlx::raw_sql(EVENTS_TABLE_V2)
                .execute(&mut *tx)
                .await
                .map_err(Error::db("create schema"))?;
            EventFormat::V2
        }
        Some(EVENTS_TABLE_V2) => EventFormat::V2,
        Some(_) => {
            let v1_columns: i64 = sqlx::query_scalar(HAS_V1_COLUMNS)
                .fetch_one(&mut *tx)
                .await
                .map_err(Error::db("read the table definition"))?;
            if v1_columns != 3 {
                return Err(Error::Restructured {
                    reason: "audit_events is defined neither as weir's format 1 nor format 2",
                });
            }
            EventFormat::V1
        }
    };
    if format == EventFormat::V2 {
        if fields_view_sql(&mut tx).await?.is_none() {
            sqlx::raw_sql(FIELDS_VIEW_V2)
                .execute(&mut *tx)
                .await
                .map_err(Error::db("create schema"))?;
        }
        if let Some(reason) = v2_structure_damage(&mut tx).await? {
            return Err(Error::Restructured { reason });
        }
    }
    sqlx::raw_sql(SCHEMA_REST)
        .execute(&mut *tx)
        .await
        .map_err(Error::db("create schema"))?;
    tx.commit().await.map_err(Error::db("create schema"))?;
    Ok(format)
}

/// Why a format-2 log's table or view cannot be trusted, if either differs
/// from weir's definition.
pub(super) async fn v2_structure_damage(
    conn: &mut SqliteConnection,
) -> Result<Option<&'static str>> {
    if events_table_sql(conn).await?.as_deref() != Some(EVENTS_TABLE_V2) {
        return Ok(Some(
            "the audit_events table is not defined as weir defines it",
        ));
    }
    if fields_view_sql(conn).await?.as_deref() != Some(FIELDS_VIEW_V2) {
        return Ok(Some(
            "the audit_event_fields view is not defined as weir defines it",
        ));
    }
    Ok(None)
}

/// The events table's stored definition, if the table exists.
async fn events_table_sql(conn: &mut SqliteConnection) -> Result<Option<String>> {
    sqlx::query_scalar(EVENTS_TABLE_SQL)
        .fetch_optional(conn)
        .await
        .map_err(Error::db("read the table definition"))
}

/// The fields view's stored definition, if the view exists.
async fn fields_view_sql(conn: &mut SqliteConnection) -> Result<Option<String>> {
    sqlx::query_scalar(FIELDS_VIEW_SQL)
        .fetch_optional(conn)
        .await
        .map_err(Error::db("read the view definition"))
}
