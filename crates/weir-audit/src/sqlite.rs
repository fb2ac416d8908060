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
use futures::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

use crate::chain_id::ChainId;
use crate::checkpoint::Checkpoint;
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventFormat, NewEvent};
use crate::filter::{Filter, Page, check_limit, seq_to_sql};
use crate::mirror::Mirror;
use crate::private_file::ensure_private_dir;
use crate::record::{self, Link};
use crate::row::{
    checkpoint_columns, decode_chain, decode_checkpoint, decode_event, decode_head,
    decode_head_mark, decode_link, decode_record, event_columns, head_columns,
};
use crate::sealer::{Sealed, Sealer};
use crate::sink::{AuditSink, SinkConfig};
use crate::writer::{Store, Writer};

/// File name used by [`SqliteSink::open_in_state_dir`].
pub const SQLITE_FILE_NAME: &str = "audit.db";

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

/// The format-2 stored columns, in select order.
macro_rules! record_columns {
    () => {
        "chain, seq, record"
    };
}

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
const SELECT_EVENTS_V1: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM audit_events WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3"
);
const SELECT_EVENTS_V2: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM audit_events WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3"
);
/// What verification reads of a format-2 row: no generated column.
const SELECT_RECORDS: &str =
    "SELECT seq, record FROM audit_events WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3";
/// Rows verification reads in one go (see [`SqliteSink::spawn_chunk`]).
const CHUNK: u32 = 512;
/// Up to `?3` rows of a chain from seq `?2` as one row: positions joined
/// by `,`, records joined by RS. The ordered, limited subquery is not
/// flattened into the aggregate, and `split_chunk` checks the order anyway.
const SELECT_RECORD_CHUNK: &str = "SELECT group_concat(seq, ','), group_concat(record, char(30)) \
     FROM (SELECT seq, record FROM audit_events WHERE chain = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3)";
const SELECT_HEAD: &str = "SELECT seq, hash FROM audit_heads WHERE chain = ?1";
const SELECT_CHECKPOINTS: &str = concat!(
    "SELECT ",
    checkpoint_columns!(),
    " FROM audit_checkpoints WHERE chain = ?1 ORDER BY seq"
);
const SELECT_CHAINS: &str = "SELECT chain FROM audit_heads UNION SELECT chain FROM audit_checkpoints \
     UNION SELECT DISTINCT chain FROM audit_events ORDER BY 1";
/// The filter of [`AuditSink::query`]; the same columns exist in format
/// 1's table and format 2's view.
macro_rules! query_where {
    () => {
        " WHERE \
     (?1 IS NULL OR chain = ?1) AND (?2 IS NULL OR actor = ?2) \
     AND (?3 IS NULL OR run = ?3) AND (?4 IS NULL OR stage = ?4) \
     AND (?5 IS NULL OR store = ?5) \
     AND (?6 IS NULL OR path = ?6 OR substr(path, 1, length(?6) + 1) = ?6 || '/') \
     AND (?7 IS NULL OR action = ?7) AND (?8 IS NULL OR decision = ?8) \
     AND (?9 IS NULL OR token_id_hmac = ?9) \
     AND (?10 IS NULL OR time_us >= ?10) AND (?11 IS NULL OR time_us < ?11) \
     AND (?12 IS NULL OR (chain, seq) > (?12, ?13)) \
     ORDER BY chain, seq LIMIT ?14"
    };
}
const QUERY_V1: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM audit_events",
    query_where!()
);
const QUERY_V2: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM audit_event_fields",
    query_where!()
);

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, <Sqlite as sqlx::Database>::Arguments>;

/// The embedded [`AuditSink`]: a SQLite file with group commit.
///
/// See the module docs for the durability argument.
pub struct SqliteSink {
    chain: ChainId,
    format: EventFormat,
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
        let format = ensure_schema(&mut conn).await?;
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
        let sealer = Sealer::new(
            format,
            config.chain.clone(),
            config.signer,
            config.checkpoints,
        );
        let writer = Writer::spawn(
            SqliteStore { conn, format },
            sealer,
            mirror,
            config.max_batch,
            config.queue_capacity,
            config.gather_window,
        );
        Ok(Self {
            chain: config.chain,
            format,
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

    /// The format of this log: [`EventFormat::V2`] for every log created
    /// by this release, [`EventFormat::V1`] for one created before.
    #[must_use]
    pub fn format(&self) -> EventFormat {
        self.format
    }

    /// Starts reading up to `limit` (at most [`CHUNK`]) format-2 rows of
    /// `chain` from `from_seq` as one row: their positions joined by `,`
    /// and their records joined by RS (0x1E, a byte no JSON text holds).
    /// One value per chunk crosses from SQLite instead of two per row.
    fn spawn_chunk(
        &self,
        chain: &ChainId,
        from_seq: u64,
        limit: u32,
    ) -> tokio::task::JoinHandle<std::result::Result<Option<(String, String)>, sqlx::Error>> {
        let pool = self.pool.clone();
        let chain = chain.as_str().to_owned();
        tokio::spawn(async move {
            let row: (Option<String>, Option<String>) = sqlx::query_as(SELECT_RECORD_CHUNK)
                .bind(chain)
                .bind(seq_to_sql(from_seq))
                .bind(i64::from(limit))
                .fetch_one(&pool)
                .await?;
            Ok(row.0.zip(row.1))
        })
    }

    /// The links of up to `limit` format-2 rows, read and checked one row
    /// at a time (exact about which row is damaged).
    async fn links_by_row(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<Link>> {
        let mut rows = sqlx::query(SELECT_RECORDS)
            .bind(chain.as_str())
            .bind(seq_to_sql(from_seq))
            .bind(i64::from(limit))
            .fetch(&self.pool);
        let mut links: Vec<Link> = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(Error::db("read events"))? {
            // A row whose seq itself does not decode is named by where it
            // lies: after the last good one.
            let after = links.last().map_or(from_seq, |l| l.position + 1);
            links.push(decode_link(chain, &row).map_err(|e| e.at_seq_if_unknown(after))?);
        }
        Ok(links)
    }

    fn decode_rows(&self, rows: &[SqliteRow]) -> Result<Vec<AuditEvent>> {
        match self.format {
            EventFormat::V1 => rows.iter().map(decode_event).collect(),
            EventFormat::V2 => rows.iter().map(decode_record).collect(),
        }
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
        let query = match self.format {
            EventFormat::V1 => sqlx::query(QUERY_V1),
            EventFormat::V2 => sqlx::query(QUERY_V2),
        };
        let rows = query
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
        self.decode_rows(&rows)
    }

    async fn events(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<AuditEvent>> {
        check_limit(limit)?;
        let query = match self.format {
            EventFormat::V1 => sqlx::query(SELECT_EVENTS_V1),
            EventFormat::V2 => sqlx::query(SELECT_EVENTS_V2),
        };
        let rows = query
            .bind(chain.as_str())
            .bind(seq_to_sql(from_seq))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("read events"))?;
        self.decode_rows(&rows)
    }

    async fn links(&self, chain: &ChainId, from_seq: u64, limit: u32) -> Result<Vec<Link>> {
        check_limit(limit)?;
        if self.format == EventFormat::V1 {
            let events = self.events(chain, from_seq, limit).await?;
            return Ok(events.iter().map(|e| Link::of_event(chain, e)).collect());
        }
        // Chunks are read one after another (each starts after the last
        // seq of the one before); each is hashed while SQLite reads the
        // next. (Hashing on other threads as well was slower on two cores:
        // it takes the core the reading thread needs.)
        let mut links = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
        let mut read: u32 = 0;
        // Where the chunk being awaited starts.
        let mut start = from_seq;
        let mut next = Some(self.spawn_chunk(chain, start, limit.min(CHUNK)));
        while let Some(handle) = next.take() {
            let Some((positions, records)) = handle
                .await
                .map_err(|_| task_failed())?
                .map_err(Error::db("read events"))?
            else {
                break;
            };
            let room = (limit - read).min(CHUNK);
            let Some((count, last)) = record::chunk_extent(&positions) else {
                // Only tampering makes a position no integer: read this
                // chunk row by row, which names the row, and stop there.
                links.extend(self.links_by_row(chain, start, room).await?);
                break;
            };
            let this_chunk = start;
            read = read.saturating_add(count).min(limit);
            if count == CHUNK && read < limit {
                start = last + 1;
                next = Some(self.spawn_chunk(chain, start, (limit - read).min(CHUNK)));
            }
            match record::chunk_links(chain, &positions, &records) {
                Some(chunk) => links.extend(chunk?),
                None => {
                    // A record holding the separator (only tampering puts
                    // it there): read the chunk row by row.
                    links.extend(self.links_by_row(chain, this_chunk, room).await?);
                    break;
                }
            }
        }
        Ok(links)
    }

    async fn head(&self, chain: &ChainId) -> Result<Option<(u64, EventHash)>> {
        let row = sqlx::query(SELECT_HEAD)
            .bind(chain.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db("read chain head"))?;
        row.as_ref().map(decode_head_mark).transpose()
    }

    async fn structure_damage(&self) -> Result<Option<&'static str>> {
        if self.format == EventFormat::V1 {
            // Format 1 hashes the columns themselves: no definition can make
            // them show other values than those hashed.
            return Ok(None);
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(Error::db("read the table definition"))?;
        Ok(v2_structure_damage(&mut conn).await?)
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

fn task_failed() -> Error {
    Error::Internal {
        reason: "audit read task failed",
    }
}

/// The writer task's connection.
struct SqliteStore {
    conn: SqliteConnection,
    format: EventFormat,
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
        match self.format {
            EventFormat::V1 => insert_events(&mut tx, &sealed.events).await?,
            EventFormat::V2 => insert_records(&mut tx, &sealed.events, &sealed.records).await?,
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

type Tx<'c> = sqlx::Transaction<'c, Sqlite>;

/// Writes format-1 rows in multi-row `INSERT`s.
async fn insert_events(tx: &mut Tx<'_>, events: &[AuditEvent]) -> Result<()> {
    let mut rest = events;
    while !rest.is_empty() {
        let rows = chunk_rows(rest.len());
        let (Some((chunk, tail)), Some(query)) = (
            rest.split_at_checked(rows),
            insert_query(EventFormat::V1, rows),
        ) else {
            return Err(no_statement());
        };
        chunk
            .iter()
            .fold(query, bind_event)
            .execute(&mut **tx)
            .await
            .map_err(Error::db("insert events"))?;
        rest = tail;
    }
    Ok(())
}

/// Writes format-2 rows (chain, seq, record) in multi-row `INSERT`s.
async fn insert_records(tx: &mut Tx<'_>, events: &[AuditEvent], records: &[String]) -> Result<()> {
    if events.len() != records.len() {
        return Err(Error::Internal {
            reason: "a sealed event has no record",
        });
    }
    let (mut events, mut records) = (events, records);
    while !events.is_empty() {
        let rows = chunk_rows(events.len());
        let (Some((chunk, rest)), Some((chunk_records, rest_records)), Some(query)) = (
            events.split_at_checked(rows),
            records.split_at_checked(rows),
            insert_query(EventFormat::V2, rows),
        ) else {
            return Err(no_statement());
        };
        chunk
            .iter()
            .zip(chunk_records)
            .fold(query, |q, (e, record)| {
                q.bind(e.chain.as_str())
                    .bind(seq_to_sql(e.seq))
                    .bind(record.as_str())
            })
            .execute(&mut **tx)
            .await
            .map_err(Error::db("insert events"))?;
        (events, records) = (rest, rest_records);
    }
    Ok(())
}

fn no_statement() -> Error {
    Error::Internal {
        reason: "no INSERT statement for the chunk size",
    }
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

/// Finds the log's format, creating a format-2 log in an empty file. The
/// check and the creation happen under SQLite's write lock, so two
/// processes opening a new file at once agree.
///
/// # Errors
///
/// [`Error::Restructured`] if the file holds an events table or view weir
/// did not define: weir will not append to it.
async fn ensure_schema(conn: &mut SqliteConnection) -> Result<EventFormat> {
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
async fn v2_structure_damage(conn: &mut SqliteConnection) -> Result<Option<&'static str>> {
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
