//! [`SqliteSink`]: the embedded backend (one file in the state directory).
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=FULL`: every commit
//! appends the transaction to the WAL and `fsync`s it before `COMMIT`
//! returns, so an acknowledged append survives a process crash *and* a power
//! loss. (`NORMAL` would only survive a process crash.) Group commit pays
//! that `fsync` once per batch rather than once per event, which is what
//! makes `FULL` affordable.
//!
//! # Concurrency
//!
//! One writer task per sink holds a dedicated connection and writes each
//! batch inside `BEGIN IMMEDIATE`, which takes SQLite's write lock before
//! the chain head is read; so even two processes appending to the same
//! chain in the same file cannot interleave sequence numbers. Readers use a
//! separate pool and never block the writer (WAL).
//!
//! # Queries
//!
//! Besides the `(chain, seq)` primary key the table has no index: every
//! filter is optional (`?n IS NULL OR column = ?n`), a shape SQLite cannot
//! answer from a secondary index, and each index would slow every durable
//! append. Queries scan; use [`PostgresSink`](crate::PostgresSink) for logs
//! too large for that.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

use crate::chain_id::ChainId;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, NewEvent};
use crate::filter::{Filter, Page, check_limit, seq_to_sql};
use crate::mirror::Mirror;
use crate::private_file::ensure_private_dir;
use crate::row::{
    checkpoint_columns, decode_chain, decode_checkpoint, decode_event, decode_head, event_columns,
    head_columns,
};
use crate::sealer::{Sealed, Sealer};
use crate::sink::{AuditSink, SinkConfig};
use crate::writer::{Store, Writer};

/// File name used by [`SqliteSink::open_in_state_dir`].
pub const SQLITE_FILE_NAME: &str = "audit.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    chain TEXT NOT NULL, seq INTEGER NOT NULL, time_us INTEGER NOT NULL,
    actor TEXT NOT NULL, run TEXT, stage TEXT, attempt INTEGER,
    action TEXT NOT NULL, store TEXT, path TEXT, decision TEXT NOT NULL,
    reason TEXT, token_id_hmac TEXT, origin TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
) WITHOUT ROWID;
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

/// Most rows one multi-row `INSERT` holds: 16 columns x 1024 rows is 16384
/// parameters, half SQLite's 32766 limit. A batch is written in chunks of
/// 1024, 512, ..., 1 rows, so it takes at most one statement per power of
/// two below the batch size (each statement is a round trip to the
/// connection's worker thread).
const MAX_ROWS_PER_INSERT: usize = 1024;
const _: () = assert!(
    MAX_ROWS_PER_INSERT * 16 <= 32_766,
    "too many bound parameters"
);

macro_rules! rows_1 {
    () => {
        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    };
}
macro_rules! rows_2 {
    () => {
        concat!(rows_1!(), ",", rows_1!())
    };
}
macro_rules! rows_4 {
    () => {
        concat!(rows_2!(), ",", rows_2!())
    };
}
macro_rules! rows_8 {
    () => {
        concat!(rows_4!(), ",", rows_4!())
    };
}
macro_rules! rows_16 {
    () => {
        concat!(rows_8!(), ",", rows_8!())
    };
}
macro_rules! rows_32 {
    () => {
        concat!(rows_16!(), ",", rows_16!())
    };
}
macro_rules! rows_64 {
    () => {
        concat!(rows_32!(), ",", rows_32!())
    };
}
macro_rules! rows_128 {
    () => {
        concat!(rows_64!(), ",", rows_64!())
    };
}
macro_rules! rows_256 {
    () => {
        concat!(rows_128!(), ",", rows_128!())
    };
}
macro_rules! rows_512 {
    () => {
        concat!(rows_256!(), ",", rows_256!())
    };
}
macro_rules! rows_1024 {
    () => {
        concat!(rows_512!(), ",", rows_512!())
    };
}

const INSERT_1024: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_1024!()
);
const INSERT_512: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_512!()
);
const INSERT_256: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_256!()
);
const INSERT_128: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_128!()
);
const INSERT_64: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_64!()
);
const INSERT_32: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_32!()
);
const INSERT_16: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_16!()
);
const INSERT_8: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_8!()
);
const INSERT_4: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_4!()
);
const INSERT_2: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_2!()
);
const INSERT_1: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") VALUES ",
    rows_1!()
);
const INSERT_CHECKPOINT: &str = concat!(
    "INSERT INTO audit_checkpoints (",
    checkpoint_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5)"
);
const ENSURE_HEAD: &str = "INSERT INTO audit_heads (chain, seq, hash, time_us, checkpoint_seq, checkpoint_time_us) \
     VALUES (?1, 0, ?2, ?3, 0, ?3) ON CONFLICT (chain) DO NOTHING";
const LOAD_HEAD: &str = concat!(
    "SELECT ",
    head_columns!(),
    " FROM audit_heads WHERE chain = ?1"
);
const SAVE_HEAD: &str = "UPDATE audit_heads SET seq = ?2, hash = ?3, time_us = ?4, \
     checkpoint_seq = ?5, checkpoint_time_us = ?6 WHERE chain = ?1";
const SELECT_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM audit_events WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3"
);
const SELECT_CHECKPOINTS: &str = concat!(
    "SELECT ",
    checkpoint_columns!(),
    " FROM audit_checkpoints WHERE chain = ?1 ORDER BY seq"
);
const SELECT_CHAINS: &str = "SELECT chain FROM audit_heads UNION SELECT chain FROM audit_checkpoints \
     UNION SELECT DISTINCT chain FROM audit_events ORDER BY 1";
const QUERY: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM audit_events WHERE \
     (?1 IS NULL OR chain = ?1) AND (?2 IS NULL OR actor = ?2) \
     AND (?3 IS NULL OR run = ?3) AND (?4 IS NULL OR stage = ?4) \
     AND (?5 IS NULL OR store = ?5) \
     AND (?6 IS NULL OR path = ?6 OR substr(path, 1, length(?6) + 1) = ?6 || '/') \
     AND (?7 IS NULL OR action = ?7) AND (?8 IS NULL OR decision = ?8) \
     AND (?9 IS NULL OR token_id_hmac = ?9) \
     AND (?10 IS NULL OR time_us >= ?10) AND (?11 IS NULL OR time_us < ?11) \
     AND (?12 IS NULL OR (chain, seq) > (?12, ?13)) \
     ORDER BY chain, seq LIMIT ?14"
);

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, <Sqlite as sqlx::Database>::Arguments>;

/// The embedded [`AuditSink`]: a SQLite file with group commit.
///
/// See the module docs for the durability argument.
pub struct SqliteSink {
    chain: ChainId,
    pool: SqlitePool,
    writer: Writer,
    path: PathBuf,
}

impl SqliteSink {
    /// Opens (creating if missing, mode 0600) the database at `db_file` and
    /// starts the writer for `config.chain`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], [`Error::Io`], [`Error::Database`].
    pub async fn open(db_file: &Path, config: SinkConfig) -> Result<Self> {
        config.validate()?;
        create_owner_only(db_file)?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(Error::db("configure"))?
            .filename(db_file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            // Rows a reader's worker thread may run ahead by: `verify` reads
            // pages of thousands, and every hand-off wakes a thread.
            .row_buffer_size(4096);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(Error::db("open"))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&mut conn)
            .await
            .map_err(Error::db("create schema"))?;
        sqlx::query(ENSURE_HEAD)
            .bind(config.chain.as_str())
            .bind(crate::digest::EventHash::GENESIS.to_hex())
            .bind(Utc::now().timestamp_micros())
            .execute(&mut conn)
            .await
            .map_err(Error::db("create chain head"))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(Error::db("open read pool"))?;
        let mirror = config.mirror.as_deref().map(Mirror::open).transpose()?;
        let sealer = Sealer::new(config.chain.clone(), config.signer, config.checkpoints);
        let writer = Writer::spawn(
            SqliteStore { conn },
            sealer,
            mirror,
            config.max_batch,
            config.queue_capacity,
            config.gather_window,
        );
        Ok(Self {
            chain: config.chain,
            pool,
            writer,
            path: db_file.to_path_buf(),
        })
    }

    /// Opens `<state_dir>/audit/audit.db` (directory created 0700).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and [`Error::InsecurePermissions`] if the
    /// directory is accessible beyond its owner.
    pub async fn open_in_state_dir(state_dir: &Path, config: SinkConfig) -> Result<Self> {
        let dir = state_dir.join("audit");
        ensure_private_dir(&dir)?;
        Self::open(&dir.join(SQLITE_FILE_NAME), config).await
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits everything queued, signs a final checkpoint, stops the writer
    /// and closes the connections.
    ///
    /// # Errors
    ///
    /// [`Error::CommitFailed`] if the final batch could not be written.
    pub async fn close(self) -> Result<()> {
        let result = self.writer.close().await;
        self.pool.close().await;
        result
    }
}

#[async_trait]
impl AuditSink for SqliteSink {
    fn chain(&self) -> &ChainId {
        &self.chain
    }

    async fn append(&self, event: NewEvent) -> Result<AuditEvent> {
        self.writer.append(event).await
    }

    async fn query(&self, filter: &Filter, page: Page) -> Result<Vec<AuditEvent>> {
        filter.validate()?;
        page.validate()?;
        let rows = sqlx::query(QUERY)
            .bind(filter.chain.as_ref().map(ChainId::as_str))
            .bind(filter.actor.as_deref())
            .bind(filter.run.as_deref())
            .bind(filter.stage.as_deref())
            .bind(filter.store.as_deref())
            .bind(filter.normalized_prefix())
            .bind(filter.action.map(|a| a.as_str()))
            .bind(filter.decision.map(|d| d.as_str()))
            .bind(filter.token_id_hmac.as_ref().map(|t| t.as_str()))
            .bind(filter.since.map(|t| t.timestamp_micros()))
            .bind(filter.until.map(|t| t.timestamp_micros()))
            .bind(page.after.as_ref().map(|c| c.chain.as_str()))
            .bind(page.after.as_ref().map(|c| seq_to_sql(c.seq)))
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("query events"))?;
        rows.iter().map(decode_event).collect()
    }

    async fn events(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>> {
        check_limit(limit)?;
        let rows = sqlx::query(SELECT_EVENTS)
            .bind(chain.as_str())
            .bind(seq_to_sql(from_seq))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("read events"))?;
        rows.iter().map(decode_event).collect()
    }

    async fn chains(&self) -> Result<Vec<ChainId>> {
        let rows = sqlx::query(SELECT_CHAINS)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("list chains"))?;
        rows.iter().map(decode_chain).collect()
    }

    async fn checkpoints(&self, chain: &ChainId) -> Result<Vec<Checkpoint>> {
        let rows = sqlx::query(SELECT_CHECKPOINTS)
            .bind(chain.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("read checkpoints"))?;
        rows.iter().map(decode_checkpoint).collect()
    }

    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>> {
        self.writer.checkpoint_now().await
    }
}

/// The writer task's connection.
struct SqliteStore {
    conn: SqliteConnection,
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(
        &mut self,
        sealer: &Sealer,
        batch: Vec<NewEvent>,
        force: bool,
    ) -> Result<Sealed> {
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(Error::db("begin"))?;
        let chain = sealer.chain().as_str();
        let row = sqlx::query(LOAD_HEAD)
            .bind(chain)
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::db("read chain head"))?;
        let head = decode_head(&row)?;
        let sealed = sealer.seal(&head, batch, Utc::now(), force)?;
        let mut rest = sealed.events.as_slice();
        while !rest.is_empty() {
            let rows = chunk_rows(rest.len());
            let internal = Error::Internal {
                reason: "no INSERT statement for the chunk size",
            };
            let (Some((chunk, tail)), Some(query)) =
                (rest.split_at_checked(rows), insert_query(rows))
            else {
                return Err(internal);
            };
            chunk
                .iter()
                .fold(query, bind_event)
                .execute(&mut *tx)
                .await
                .map_err(Error::db("insert events"))?;
            rest = tail;
        }
        if let Some(cp) = &sealed.checkpoint {
            sqlx::query(INSERT_CHECKPOINT)
                .bind(cp.chain.as_str())
                .bind(seq_to_sql(cp.seq))
                .bind(cp.hash.to_hex())
                .bind(cp.time.timestamp_micros())
                .bind(hex::encode(cp.signature))
                .execute(&mut *tx)
                .await
                .map_err(Error::db("insert checkpoint"))?;
        }
        let h = &sealed.head;
        sqlx::query(SAVE_HEAD)
            .bind(chain)
            .bind(seq_to_sql(h.seq))
            .bind(h.hash.to_hex())
            .bind(h.time_us)
            .bind(seq_to_sql(h.checkpoint_seq))
            .bind(h.checkpoint_time_us)
            .execute(&mut *tx)
            .await
            .map_err(Error::db("update chain head"))?;
        tx.commit().await.map_err(Error::db("commit"))?;
        Ok(sealed)
    }
}

/// The largest power of two that is at most `remaining` and
/// [`MAX_ROWS_PER_INSERT`] (`remaining > 0`).
fn chunk_rows(remaining: usize) -> usize {
    let capped = remaining.clamp(1, MAX_ROWS_PER_INSERT);
    1 << capped.ilog2()
}

/// The multi-row `INSERT` for exactly `rows` events (a power of two up to
/// [`MAX_ROWS_PER_INSERT`]).
fn insert_query(rows: usize) -> Option<SqliteQuery<'static>> {
    Some(match rows {
        1024 => sqlx::query(INSERT_1024),
        512 => sqlx::query(INSERT_512),
        256 => sqlx::query(INSERT_256),
        128 => sqlx::query(INSERT_128),
        64 => sqlx::query(INSERT_64),
        32 => sqlx::query(INSERT_32),
        16 => sqlx::query(INSERT_16),
        8 => sqlx::query(INSERT_8),
        4 => sqlx::query(INSERT_4),
        2 => sqlx::query(INSERT_2),
        1 => sqlx::query(INSERT_1),
        _ => return None,
    })
}

fn bind_event<'q>(query: SqliteQuery<'q>, e: &AuditEvent) -> SqliteQuery<'q> {
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

/// Creates `path` with mode 0600 if it does not exist, so the database and
/// its WAL (SQLite copies the mode) are never readable by others.
fn create_owner_only(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_have_the_expected_placeholder_counts() {
        let mut rows = MAX_ROWS_PER_INSERT;
        while rows > 0 {
            let query = insert_query(rows).unwrap();
            assert_eq!(
                sqlx::Execute::sql(query).as_str().matches('?').count(),
                rows * 16,
                "{rows} rows"
            );
            rows /= 2;
        }
        assert!(insert_query(3).is_none());
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
