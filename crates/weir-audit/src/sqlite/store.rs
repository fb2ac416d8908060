//! The SQLite log's write transaction, on a connection the writer's thread
//! owns.
//!
//! The writer runs on a thread of its own (see [`Store::own_thread`]) and
//! calls SQLite directly through rusqlite: each statement is a function
//! call on that thread. (Through sqlx, each statement was a hand-off to
//! the connection's worker thread and back, two thread wake-ups per
//! statement; under load that was a third of the log's CPU.) Readers keep
//! using sqlx's pool.
//!
//! # Guarantees
//! - **One transaction per batch:** `BEGIN IMMEDIATE` takes SQLite's write
//!   lock before the chain head is read, so even another process appending
//!   to the same chain in the same file cannot interleave sequence numbers.
//! - **All or nothing:** any error before `COMMIT` returns drops the
//!   transaction, which rolls it back; the next batch re-reads the head.
//!   (Should that `ROLLBACK` itself fail, the transaction stays open and
//!   every later `BEGIN IMMEDIATE` fails: appends fail, nothing is
//!   written.)
//! - **Durable before answered:** the connection runs at
//!   `synchronous = NORMAL` and reports [`Durability::AfterSync`] on the
//!   WAL, so the writer's sync stage answers a batch only after an `fsync`
//!   of the WAL that began after its commit returned.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::LOAD_HEAD;
use super::insert::{STATEMENTS, write_sealed};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::event::{EventFormat, NewEvent};
use crate::filter::seq_to_sql;
use crate::row::checkpoint_columns;
use crate::sealer::{Head, Sealed, Sealer, head_from_columns};
use crate::writer::{Durability, Store, WalFile};

const INSERT_CHECKPOINT: &str = concat!(
    "INSERT INTO audit_checkpoints (",
    checkpoint_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5)"
);
/// Sets WAL mode (already set when the schema was made; it persists in
/// the file) and returns the mode now in force.
const JOURNAL_MODE_WAL: &str = "PRAGMA journal_mode = WAL";
/// The sync stage makes each commit durable (see the module docs).
const SYNCHRONOUS_NORMAL: &str = "PRAGMA synchronous = NORMAL";

/// The SQLite log's [`Store`]: the writer's own connection.
pub(super) struct SqliteStore {
    conn: Connection,
    format: EventFormat,
    wal: Arc<WalFile>,
}

impl SqliteStore {
    /// Opens the writer's connection to `db_file`, whose schema and chain
    /// head already exist, in WAL mode with `synchronous = NORMAL`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] if the file cannot be opened or configured, or
    /// is not in WAL mode (its `fsync` would then not be the one that
    /// makes a commit durable).
    pub(super) fn open(db_file: &Path, format: EventFormat, busy: Duration) -> Result<Self> {
        let conn = Connection::open_with_flags(
            db_file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(Error::sqlite("open the writer's connection"))?;
        conn.busy_timeout(busy)
            .map_err(Error::sqlite("configure the writer"))?;
        let mode: String = conn
            .query_row(JOURNAL_MODE_WAL, [], |row| row.get(0))
            .map_err(Error::sqlite("set WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Database {
                operation: "set WAL mode",
                source: Arc::new(std::io::Error::other(
                    "the audit database cannot use a write-ahead log",
                )),
            });
        }
        conn.execute_batch(SYNCHRONOUS_NORMAL)
            .map_err(Error::sqlite("configure the writer"))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(Self {
            conn,
            format,
            wal: Arc::new(WalFile::of_database(db_file)),
        })
    }

    /// One batch in one transaction (see the module's guarantees).
    fn commit_now(&mut self, sealer: &Sealer, batch: Vec<NewEvent>, force: bool) -> Result<Sealed> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::sqlite("begin"))?;
        let chain = sealer.chain().as_str();
        let head = load_head(&tx, chain)?;
        let sealed = sealer.seal(&head, batch, Utc::now(), force)?;
        if let Some(cp) = &sealed.checkpoint {
            insert_checkpoint(&tx, cp)?;
        }
        write_sealed(&tx, self.format, chain, &sealed)?;
        tx.commit().map_err(Error::sqlite("commit"))?;
        Ok(sealed)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(
        &mut self,
        sealer: &Sealer,
        batch: Vec<NewEvent>,
        force: bool,
    ) -> Result<Sealed> {
        // Blocks this thread, which is the writer's own.
        self.commit_now(sealer, batch, force)
    }

    fn durability(&self) -> Durability {
        Durability::AfterSync(Arc::clone(&self.wal) as _)
    }

    fn own_thread(&self) -> bool {
        // Required: `commit` blocks the thread it runs on.
        true
    }
}

/// Reads `chain`'s head inside the caller's transaction.
fn load_head(conn: &Connection, chain: &str) -> Result<Head> {
    let columns = conn
        .prepare_cached(LOAD_HEAD)
        .and_then(|mut statement| {
            let mut rows = statement.query([chain])?;
            let row = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..) => {
                Error::corrupt(0, "audit_heads", "does not decode")
            }
            other => Error::sqlite("read chain head")(other),
        })?;
    let (seq, hash, time_us, checkpoint_seq, checkpoint_time_us) = columns;
    head_from_columns(seq, &hash, time_us, checkpoint_seq, checkpoint_time_us)
}

fn insert_checkpoint(conn: &Connection, cp: &Checkpoint) -> Result<()> {
    conn.prepare_cached(INSERT_CHECKPOINT)
        .and_then(|mut statement| {
            statement.execute((
                cp.chain.as_str(),
                seq_to_sql(cp.seq),
                cp.hash.to_hex(),
                cp.time.timestamp_micros(),
                hex::encode(cp.signature),
            ))
        })
        .map(drop)
        .map_err(Error::sqlite("insert checkpoint"))
}
