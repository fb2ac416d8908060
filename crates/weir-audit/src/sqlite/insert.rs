//! Writing a sealed batch and its new chain head on the writer's
//! connection: multi-row `INSERT`s of 1024 rows while 1024 or more remain,
//! then at most one each of 512, 256, ..., 1 rows (one prepared statement
//! per size), then the head's `UPDATE`. A batch of 17 events is two
//! `INSERT`s; each statement's cost in SQLite's VM is mostly per row.
//!
//! All text is static, one constant per size and format, prepared once
//! per connection (rusqlite's statement cache) and bound by position.

use rusqlite::{CachedStatement, Connection, ToSql};

use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventFormat};
use crate::filter::seq_to_sql;
use crate::row::event_columns;
use crate::sealer::{Head, Sealed};

/// Most rows one format-1 multi-row `INSERT` holds: 16 columns x 1024 rows
/// is 16384 parameters, half SQLite's 32766 limit. A batch is written in
/// chunks of 1024 rows, then at most one chunk each of 512, ..., 1 rows.
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

/// Stores a chain's new head; parameters `seq, hash, time_us,
/// checkpoint_seq, checkpoint_time_us, chain`.
const SAVE_HEAD: &str = "UPDATE audit_heads SET seq = ?1, hash = ?2, time_us = ?3, \
     checkpoint_seq = ?4, checkpoint_time_us = ?5 WHERE chain = ?6";

/// Prepared statements the writer's connection keeps: one `INSERT` per
/// chunk size, plus the head's read and update and the checkpoint insert.
pub(super) const STATEMENTS: usize = 16;

/// The largest power of two that is at most `remaining` and
/// [`MAX_ROWS_PER_INSERT`] (`remaining > 0`).
fn chunk_rows(remaining: usize) -> usize {
    let capped = remaining.clamp(1, MAX_ROWS_PER_INSERT);
    1 << capped.ilog2()
}

/// The multi-row `INSERT` for exactly `rows` events (a power of two up to
/// [`MAX_ROWS_PER_INSERT`]) of `format`, prepared once on `conn`.
fn insert_statement(
    conn: &Connection,
    format: EventFormat,
    rows: usize,
) -> Option<rusqlite::Result<CachedStatement<'_>>> {
    Some(match (format, rows) {
        (EventFormat::V1, 1024) => conn.prepare_cached(INSERT_V1_1024),
        (EventFormat::V1, 512) => conn.prepare_cached(INSERT_V1_512),
        (EventFormat::V1, 256) => conn.prepare_cached(INSERT_V1_256),
        (EventFormat::V1, 128) => conn.prepare_cached(INSERT_V1_128),
        (EventFormat::V1, 64) => conn.prepare_cached(INSERT_V1_64),
        (EventFormat::V1, 32) => conn.prepare_cached(INSERT_V1_32),
        (EventFormat::V1, 16) => conn.prepare_cached(INSERT_V1_16),
        (EventFormat::V1, 8) => conn.prepare_cached(INSERT_V1_8),
        (EventFormat::V1, 4) => conn.prepare_cached(INSERT_V1_4),
        (EventFormat::V1, 2) => conn.prepare_cached(INSERT_V1_2),
        (EventFormat::V1, 1) => conn.prepare_cached(INSERT_V1_1),
        (EventFormat::V2, 1024) => conn.prepare_cached(INSERT_V2_1024),
        (EventFormat::V2, 512) => conn.prepare_cached(INSERT_V2_512),
        (EventFormat::V2, 256) => conn.prepare_cached(INSERT_V2_256),
        (EventFormat::V2, 128) => conn.prepare_cached(INSERT_V2_128),
        (EventFormat::V2, 64) => conn.prepare_cached(INSERT_V2_64),
        (EventFormat::V2, 32) => conn.prepare_cached(INSERT_V2_32),
        (EventFormat::V2, 16) => conn.prepare_cached(INSERT_V2_16),
        (EventFormat::V2, 8) => conn.prepare_cached(INSERT_V2_8),
        (EventFormat::V2, 4) => conn.prepare_cached(INSERT_V2_4),
        (EventFormat::V2, 2) => conn.prepare_cached(INSERT_V2_2),
        (EventFormat::V2, 1) => conn.prepare_cached(INSERT_V2_1),
        _ => return None,
    })
}

/// Writes a sealed batch's events in `format` (every field in format 1,
/// `(chain, seq, record)` in format 2) and the chain's new head, inside
/// the transaction the caller holds on `conn`.
pub(super) fn write_sealed(
    conn: &Connection,
    format: EventFormat,
    chain: &str,
    sealed: &Sealed,
) -> Result<()> {
    if format == EventFormat::V2 && sealed.records.len() != sealed.events.len() {
        return Err(Error::Internal {
            reason: "a sealed event has no record",
        });
    }
    insert_events(conn, format, sealed)?;
    save_head(conn, &sealed.head, chain)
}

/// Stores `head` as `chain`'s head.
fn save_head(conn: &Connection, head: &Head, chain: &str) -> Result<()> {
    let params: [&dyn ToSql; 6] = [
        &seq_to_sql(head.seq),
        &head.hash.to_hex(),
        &head.time_us,
        &seq_to_sql(head.checkpoint_seq),
        &head.checkpoint_time_us,
        &chain,
    ];
    conn.prepare_cached(SAVE_HEAD)
        .and_then(|mut statement| statement.execute(params.as_slice()))
        .map(drop)
        .map_err(Error::sqlite("update chain head"))
}

/// Inserts every event of `sealed` in multi-row `INSERT`s of powers of two.
fn insert_events(conn: &Connection, format: EventFormat, sealed: &Sealed) -> Result<()> {
    let events = sealed.events.as_slice();
    let mut start = 0;
    while let Some(rest) = events.get(start..).filter(|r| !r.is_empty()) {
        let rows = chunk_rows(rest.len());
        let (Some(chunk), Some(statement)) =
            (rest.get(..rows), insert_statement(conn, format, rows))
        else {
            return Err(no_statement());
        };
        let mut statement = statement.map_err(Error::sqlite("prepare insert"))?;
        let bound = match format {
            EventFormat::V1 => bind_all(&mut statement, chunk.iter(), bind_event),
            EventFormat::V2 => {
                let records = sealed.records.get(start..).unwrap_or_default();
                bind_all(&mut statement, chunk.iter().zip(records), bind_record)
            }
        };
        bound
            .and_then(|()| statement.raw_execute())
            .map_err(Error::sqlite("insert events"))?;
        start += rows;
    }
    Ok(())
}

fn no_statement() -> Error {
    Error::Internal {
        reason: "no INSERT statement for the chunk size",
    }
}

/// Binds `rows` one after another, each with `bind` from the parameter
/// after the last one bound.
fn bind_all<T>(
    statement: &mut CachedStatement<'_>,
    mut rows: impl Iterator<Item = T>,
    bind: fn(&mut Binder<'_, '_>, T) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut binder = Binder { statement, next: 1 };
    rows.try_for_each(|row| bind(&mut binder, row))
}

/// Binds parameters by position, in order.
struct Binder<'s, 'c> {
    statement: &'s mut CachedStatement<'c>,
    next: usize,
}

impl Binder<'_, '_> {
    fn bind(&mut self, value: impl ToSql) -> rusqlite::Result<&mut Self> {
        self.statement.raw_bind_parameter(self.next, value)?;
        self.next += 1;
        Ok(self)
    }
}

fn bind_record(
    b: &mut Binder<'_, '_>,
    (e, record): (&AuditEvent, &String),
) -> rusqlite::Result<()> {
    b.bind(e.chain.as_str())?
        .bind(seq_to_sql(e.seq))?
        .bind(record.as_str())
        .map(drop)
}

fn bind_event(b: &mut Binder<'_, '_>, e: &AuditEvent) -> rusqlite::Result<()> {
    b.bind(e.chain.as_str())?
        .bind(seq_to_sql(e.seq))?
        .bind(e.time.timestamp_micros())?
        .bind(e.actor.as_str())?
        .bind(e.run.as_deref())?
        .bind(e.stage.as_deref())?
        .bind(e.attempt.map(i64::from))?
        .bind(e.action.as_str())?
        .bind(e.store.as_deref())?
        .bind(e.path.as_deref())?
        .bind(e.decision.as_str())?
        .bind(e.reason.as_deref())?
        .bind(e.token_id_hmac.as_ref().map(|t| t.as_str()))?
        .bind(e.origin.encode().as_ref())?
        .bind(e.prev_hash.to_hex())?
        .bind(e.hash.to_hex())
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables with the columns of each format (types do not matter to
    /// the statements' parameters).
    const V1_TABLE: &str = concat!("CREATE TABLE audit_events (", event_columns!(), ")");
    const V2_TABLE: &str = concat!("CREATE TABLE audit_events (", record_columns!(), ")");

    #[test]
    fn multi_row_inserts_have_the_expected_parameter_counts() {
        for (format, per_row) in [(EventFormat::V1, 16), (EventFormat::V2, 3)] {
            let conn = Connection::open_in_memory().unwrap();
            match format {
                EventFormat::V1 => conn.execute_batch(V1_TABLE).unwrap(),
                EventFormat::V2 => conn.execute_batch(V2_TABLE).unwrap(),
            }
            let mut rows = MAX_ROWS_PER_INSERT;
            while rows > 0 {
                let statement = insert_statement(&conn, format, rows).unwrap().unwrap();
                assert_eq!(statement.parameter_count(), rows * per_row, "{rows} rows");
                rows /= 2;
            }
            assert!(insert_statement(&conn, format, 3).is_none());
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
