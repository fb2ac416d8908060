//! [`SqliteSink`]: the embedded backend (one file in the state directory).
//!
//! # Durability
//!
//! The database runs in WAL mode. An append is acknowledged only once its
//! transaction is in the WAL *and* the WAL has been `fsync`ed, so it
//! survives a process crash and a power loss. The writer's connection uses
//! `synchronous=NORMAL`, so its `COMMIT` returns before that `fsync`, which
//! the writer's [sync stage](crate::writer) then runs: one batch's `fsync`
//! overlaps the next batch's transaction instead of holding the write lock
//! (what `synchronous=FULL` would do). SQLite still syncs the WAL before
//! each checkpoint into the database file and the database file after it.
//! Group commit pays each `fsync` once per batch, not once per event.
//!
//! A reader (a query, `verify`, another process) may see a batch in the
//! short time between its commit and its `fsync`. A power loss in that
//! time removes it together with everything after it (SQLite's WAL
//! recovery keeps a prefix), so the chain stays whole; nothing removed was
//! ever acknowledged to its appender, and no checkpoint naming it reached
//! the mirror file.
//!
//! # Concurrency
//!
//! One writer task per sink, on a thread of its own, holds a dedicated
//! connection (rusqlite, called directly on that thread: see the `store`
//! module) and writes each batch inside `BEGIN IMMEDIATE`, which takes
//! SQLite's write lock before the chain head is read; so even two
//! processes appending to the same chain in the same file cannot
//! interleave sequence numbers. Readers use a separate pool and never
//! block the writer (WAL).
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
use sqlx::Connection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};

use crate::chain_id::ChainId;
use crate::checkpoint::Checkpoint;
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventFormat, NewEvent};
use crate::filter::{Filter, Page, check_limit, seq_to_sql};
use crate::mirror::Mirror;
use crate::private_file::ensure_private_dir;
use crate::record::Link;
use crate::row::{
    checkpoint_columns, decode_chain, decode_checkpoint, decode_event, decode_head, decode_record,
    event_columns, head_columns,
};
use crate::sealer::Sealer;
use crate::sink::{AuditSink, SinkConfig};
use crate::writer::Writer;

/// How long a connection waits for another one's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// File name used by [`SqliteSink::open_in_state_dir`].
pub const SQLITE_FILE_NAME: &str = "audit.db";

/// The format-2 stored columns, in select order.
macro_rules! record_columns {
    () => {
        "chain, seq, record"
    };
}

mod chunks;
mod insert;
mod schema;
mod store;

use schema::{ensure_schema, v2_structure_damage};
use store::SqliteStore;

const ENSURE_HEAD: &str = "INSERT INTO audit_heads (chain, seq, hash, time_us, checkpoint_seq, checkpoint_time_us) \
     VALUES (?1, 0, ?2, ?3, 0, ?3) ON CONFLICT (chain) DO NOTHING";
const LOAD_HEAD: &str = concat!(
    "SELECT ",
    head_columns!(),
    " FROM audit_heads WHERE chain = ?1"
);
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
            .busy_timeout(BUSY_TIMEOUT)
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
        conn.close()
            .await
            .map_err(Error::db("close the set-up connection"))?;
        // From here on the writer's sync stage makes each commit durable
        // (see "Durability" above).
        let store = {
            // Opening may wait for another connection's lock.
            let db_file = db_file.to_path_buf();
            tokio::task::spawn_blocking(move || SqliteStore::open(&db_file, format, BUSY_TIMEOUT))
                .await
                .map_err(|_| Error::Internal {
                    reason: "opening the audit writer's connection failed",
                })??
        };
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
            store,
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
            return Ok(Link::of_events(chain, &events));
        }
        self.links_in_chunks(chain, from_seq, limit).await
    }

    async fn head(&self, chain: &ChainId) -> Result<Option<(u64, EventHash)>> {
        let row = sqlx::query(LOAD_HEAD)
            .bind(chain.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db("read chain head"))?;
        Ok(row
            .as_ref()
            .map(decode_head)
            .transpose()?
            .map(|h| (h.seq, h.hash)))
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
