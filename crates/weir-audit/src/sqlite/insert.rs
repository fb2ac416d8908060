//! Writing a sealed batch and its new chain head, in as few statements as
//! possible: each statement is a round trip to the connection's worker
//! thread, and under load each round trip waits for a core.
//!
//! - Format 1: multi-row `INSERT`s of 1024, 512, ..., 1 rows, then the
//!   head's `UPDATE`.
//! - Format 2: `INSERT`s of 1024, ..., 64 rows while 64 or more remain,
//!   then one statement that inserts the last 0 to 63 rows (padded to 64
//!   with `NULL` rows, which it skips) *and* updates the head. A batch of up
//!   to 63 events, the usual group commit, is one statement.
//!
//! All text is static, one constant per size and format.

use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;

use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventFormat};
use crate::filter::seq_to_sql;
use crate::row::event_columns;
use crate::sealer::{Head, Sealed};

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, <Sqlite as sqlx::Database>::Arguments>;

/// Most rows one format-1 multi-row `INSERT` holds: 16 columns x 1024 rows
/// is 16384 parameters, half SQLite's 32766 limit. A batch is written in chunks of
/// 1024, 512, ..., 1 rows, so it takes at most one statement per power of
/// two below the batch size (each statement is a round trip to the
/// connection's worker thread).
const MAX_ROWS_PER_INSERT: usize = 1024;
const _: () = assert!(
    MAX_ROWS_PER_INSERT * 16 <= 32_766,
    "too many bound parameters"
);

/// `$row` repeated 2, 4, ..., 1024 times, comma-separated (compile-time
/// text only: `$row` is a literal).
macro_rules! rows_2 {
    ($row:literal) => {
        concat!($row, ",", $row)
    };
}
macro_rules! rows_4 {
    ($row:literal) => {
        concat!(rows_2!($row), ",", rows_2!($row))
    };
}
macro_rules! rows_8 {
    ($row:literal) => {
        concat!(rows_4!($row), ",", rows_4!($row))
    };
}
macro_rules! rows_16 {
    ($row:literal) => {
        concat!(rows_8!($row), ",", rows_8!($row))
    };
}
macro_rules! rows_32 {
    ($row:literal) => {
        concat!(rows_16!($row), ",", rows_16!($row))
    };
}
macro_rules! rows_64 {
    ($row:literal) => {
        concat!(rows_32!($row), ",", rows_32!($row))
    };
}
macro_rules! rows_128 {
    ($row:literal) => {
        concat!(rows_64!($row), ",", rows_64!($row))
    };
}
macro_rules! rows_256 {
    ($row:literal) => {
        concat!(rows_128!($row), ",", rows_128!($row))
    };
}
macro_rules! rows_512 {
    ($row:literal) => {
        concat!(rows_256!($row), ",", rows_256!($row))
    };
}
macro_rules! rows_1024 {
    ($row:literal) => {
        concat!(rows_512!($row), ",", rows_512!($row))
    };
}
macro_rules! v1_insert {
    () => {
        concat!("INSERT INTO audit_events (", event_columns!(), ") VALUES ")
    };
}
macro_rules! v2_insert {
    () => {
        concat!("INSERT INTO audit_events (", record_columns!(), ") VALUES ")
    };
}

const INSERT_V1_1024: &str = concat!(
    v1_insert!(),
    rows_1024!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
);
const INSERT_V1_512: &str = concat!(v1_insert!(), rows_512!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_256: &str = concat!(v1_insert!(), rows_256!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_128: &str = concat!(v1_insert!(), rows_128!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_64: &str = concat!(v1_insert!(), rows_64!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_32: &str = concat!(v1_insert!(), rows_32!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_16: &str = concat!(v1_insert!(), rows_16!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_8: &str = concat!(v1_insert!(), rows_8!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_4: &str = concat!(v1_insert!(), rows_4!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_2: &str = concat!(v1_insert!(), rows_2!("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
const INSERT_V1_1: &str = concat!(v1_insert!(), "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
const INSERT_V2_1024: &str = concat!(v2_insert!(), rows_1024!("(?,?,?)"));
const INSERT_V2_512: &str = concat!(v2_insert!(), rows_512!("(?,?,?)"));
const INSERT_V2_256: &str = concat!(v2_insert!(), rows_256!("(?,?,?)"));
const INSERT_V2_128: &str = concat!(v2_insert!(), rows_128!("(?,?,?)"));
const INSERT_V2_64: &str = concat!(v2_insert!(), rows_64!("(?,?,?)"));
const INSERT_V2_32: &str = concat!(v2_insert!(), rows_32!("(?,?,?)"));
const INSERT_V2_16: &str = concat!(v2_insert!(), rows_16!("(?,?,?)"));
const INSERT_V2_8: &str = concat!(v2_insert!(), rows_8!("(?,?,?)"));
const INSERT_V2_4: &str = concat!(v2_insert!(), rows_4!("(?,?,?)"));
const INSERT_V2_2: &str = concat!(v2_insert!(), rows_2!("(?,?,?)"));
const INSERT_V2_1: &str = concat!(v2_insert!(), "(?,?,?)");

/// Rows of the format-2 tail statement ([`INSERT_V2_TAIL_SAVE_HEAD`]).
const TAIL_ROWS: usize = 64;

/// Stores a chain's new head; positional parameters `seq, hash, time_us,
/// checkpoint_seq, checkpoint_time_us, chain`.
macro_rules! save_head {
    () => {
        "UPDATE audit_heads SET seq = ?, hash = ?, time_us = ?, checkpoint_seq = ?, \
         checkpoint_time_us = ? WHERE chain = ?"
    };
}

/// The format-1 head update.
const SAVE_HEAD: &str = save_head!();

/// Inserts up to [`TAIL_ROWS`] format-2 rows, skipping the all-`NULL` rows
/// that pad it, stores the chain's new head (`3 x TAIL_ROWS` parameters for
/// the rows, then those of [`save_head!`]) and commits.
const INSERT_V2_TAIL_SAVE_HEAD_COMMIT: &str = concat!(
    "INSERT INTO audit_events (",
    record_columns!(),
    ") SELECT column1, column2, column3 FROM (VALUES ",
    rows_64!("(?,?,?)"),
    ") WHERE column1 IS NOT NULL; ",
    save_head!(),
    "; COMMIT"
);

/// The largest power of two that is at most `remaining` and
/// [`MAX_ROWS_PER_INSERT`] (`remaining > 0`).
fn chunk_rows(remaining: usize) -> usize {
    let capped = remaining.clamp(1, MAX_ROWS_PER_INSERT);
    1 << capped.ilog2()
}

/// The multi-row `INSERT` for exactly `rows` events (a power of two up to
/// [`MAX_ROWS_PER_INSERT`]) of `format`.
fn insert_query(format: EventFormat, rows: usize) -> Option<SqliteQuery<'static>> {
    Some(match (format, rows) {
        (EventFormat::V1, 1024) => sqlx::query(INSERT_V1_1024),
        (EventFormat::V1, 512) => sqlx::query(INSERT_V1_512),
        (EventFormat::V1, 256) => sqlx::query(INSERT_V1_256),
        (EventFormat::V1, 128) => sqlx::query(INSERT_V1_128),
        (EventFormat::V1, 64) => sqlx::query(INSERT_V1_64),
        (EventFormat::V1, 32) => sqlx::query(INSERT_V1_32),
        (EventFormat::V1, 16) => sqlx::query(INSERT_V1_16),
        (EventFormat::V1, 8) => sqlx::query(INSERT_V1_8),
        (EventFormat::V1, 4) => sqlx::query(INSERT_V1_4),
        (EventFormat::V1, 2) => sqlx::query(INSERT_V1_2),
        (EventFormat::V1, 1) => sqlx::query(INSERT_V1_1),
        (EventFormat::V2, 1024) => sqlx::query(INSERT_V2_1024),
        (EventFormat::V2, 512) => sqlx::query(INSERT_V2_512),
        (EventFormat::V2, 256) => sqlx::query(INSERT_V2_256),
        (EventFormat::V2, 128) => sqlx::query(INSERT_V2_128),
        (EventFormat::V2, 64) => sqlx::query(INSERT_V2_64),
        (EventFormat::V2, 32) => sqlx::query(INSERT_V2_32),
        (EventFormat::V2, 16) => sqlx::query(INSERT_V2_16),
        (EventFormat::V2, 8) => sqlx::query(INSERT_V2_8),
        (EventFormat::V2, 4) => sqlx::query(INSERT_V2_4),
        (EventFormat::V2, 2) => sqlx::query(INSERT_V2_2),
        (EventFormat::V2, 1) => sqlx::query(INSERT_V2_1),
        _ => return None,
    })
}

/// Writes a sealed batch's events in `format` (every field in format 1,
/// `(chain, seq, record)` in format 2) and the chain's new head, inside
/// the transaction the caller opened on `conn`. In format 2 the last
/// statement also commits that transaction.
pub(super) async fn write_sealed(
    conn: &mut SqliteConnection,
    format: EventFormat,
    chain: &str,
    sealed: &Sealed,
) -> Result<()> {
    if format == EventFormat::V1 {
        insert_chunks(conn, format, sealed, sealed.events.len()).await?;
        return bind_head(sqlx::query(SAVE_HEAD), &sealed.head, chain)
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(Error::db("update chain head"));
    }
    if sealed.records.len() != sealed.events.len() {
        return Err(Error::Internal {
            reason: "a sealed event has no record",
        });
    }
    let bulk = sealed.events.len() - sealed.events.len() % TAIL_ROWS;
    insert_chunks(conn, format, sealed, bulk).await?;
    let tail = sealed.events.iter().zip(&sealed.records).skip(bulk);
    let padding = TAIL_ROWS - tail.len();
    let query = tail.fold(sqlx::query(INSERT_V2_TAIL_SAVE_HEAD_COMMIT), bind_record);
    let query = (0..padding).fold(query, |q, _| {
        q.bind(None::<&str>).bind(None::<i64>).bind(None::<&str>)
    });
    bind_head(query, &sealed.head, chain)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(Error::db("insert events, update chain head, commit"))
}

/// Binds the parameters of [`save_head!`] to `head` of `chain`.
fn bind_head<'q>(query: SqliteQuery<'q>, head: &Head, chain: &'q str) -> SqliteQuery<'q> {
    query
        .bind(seq_to_sql(head.seq))
        .bind(head.hash.to_hex())
        .bind(head.time_us)
        .bind(seq_to_sql(head.checkpoint_seq))
        .bind(head.checkpoint_time_us)
        .bind(chain)
}

/// Inserts the first `count` events of `sealed` in multi-row `INSERT`s of
/// powers of two (in format 2, `count` is a multiple of [`TAIL_ROWS`]).
async fn insert_chunks(
    conn: &mut SqliteConnection,
    format: EventFormat,
    sealed: &Sealed,
    count: usize,
) -> Result<()> {
    let events = sealed.events.get(..count).unwrap_or_default();
    let mut start = 0;
    while let Some(rest) = events.get(start..).filter(|r| !r.is_empty()) {
        let rows = chunk_rows(rest.len());
        let (Some(chunk), Some(query)) = (rest.get(..rows), insert_query(format, rows)) else {
            return Err(no_statement());
        };
        let query = match format {
            EventFormat::V1 => chunk.iter().fold(query, bind_event),
            EventFormat::V2 => {
                let records = sealed.records.get(start..).unwrap_or_default();
                chunk.iter().zip(records).fold(query, bind_record)
            }
        };
        query
            .execute(&mut *conn)
            .await
            .map_err(Error::db("insert events"))?;
        start += rows;
    }
    Ok(())
}

fn no_statement() -> Error {
    Error::Internal {
        reason: "no INSERT statement for the chunk size",
    }
}

fn bind_record<'q>(
    query: SqliteQuery<'q>,
    (e, record): (&'q AuditEvent, &'q String),
) -> SqliteQuery<'q> {
    query
        .bind(e.chain.as_str())
        .bind(seq_to_sql(e.seq))
        .bind(record.as_str())
}

fn bind_event<'q>(query: SqliteQuery<'q>, e: &'q AuditEvent) -> SqliteQuery<'q> {
    query
        .bind(e.chain.as_str())
        .bind(seq_to_sql(e.seq))
        .bind(e.time.timestamp_micros())
        .bind(e.actor.as_str())
        .bind(e.run.as_deref())
        .bind(e.stage.as_deref())
        .bind(e.attempt.map(i64::from))
        .bind(e.action.as_str())
        .bind(e.store.as_deref())
        .bind(e.path.as_deref())
        .bind(e.decision.as_str())
        .bind(e.reason.as_deref())
        .bind(e.token_id_hmac.as_ref().map(|t| t.as_str()))
        .bind(e.origin.encode().into_owned())
        .bind(e.prev_hash.to_hex())
        .bind(e.hash.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_have_the_expected_placeholder_counts() {
        for (format, per_row) in [(EventFormat::V1, 16), (EventFormat::V2, 3)] {
            let mut rows = MAX_ROWS_PER_INSERT;
            while rows > 0 {
                let query = insert_query(format, rows).unwrap();
                let sql = sqlx::Execute::sql(query);
                let sql = sql.as_str();
                assert_eq!(sql.matches('?').count(), rows * per_row, "{rows} rows");
                assert_eq!(sql.matches("),(").count(), rows - 1, "{rows} rows");
                rows /= 2;
            }
            assert!(insert_query(format, 3).is_none());
        }
    }

    #[test]
    fn chunks_are_powers_of_two_covering_the_batch() {
        for n in [1, 2, 3, 63, 64, 65, 1000, 1024, 1025, 4096, 5000] {
            let (mut rest, mut statements) = (n, 0);
            while rest > 0 {
                let rows = chunk_rows(rest);
                assert!(rows.is_power_of_two() && rows <= rest.min(MAX_ROWS_PER_INSERT));
                rest -= rows;
                statements += 1;
            }
            assert!(statements <= n.div_ceil(MAX_ROWS_PER_INSERT) + 10, "{n}");
        }
    }
}
