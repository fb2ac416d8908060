//! [`PostgresSink`]: the backend for many machines.
//!
//! # Durability
//!
//! Every connection sets `synchronous_commit=on`, so `COMMIT` returns only
//! after the transaction's WAL is flushed on the primary (and on synchronous
//! standbys, if the server is configured with them). Group commit shares
//! that flush among every append of a batch.
//!
//! # Concurrency
//!
//! Each sink has one writer task. Its transaction starts with `SELECT ...
//! FOR UPDATE` on the chain's row in `audit_heads` (created when the sink
//! opens), so any number of sinks on any number of machines may share a
//! chain: they take turns, and seqs stay gapless. Different chains never
//! wait for each other.
//!
//! # Schema
//!
//! The tables live in the `schema` given to [`PostgresSink::connect`]
//! (created if missing) or else in the connection's default `search_path`.
//! The schema name is validated (`[a-z_][a-z0-9_]{0,62}`), passed as a
//! connection parameter and quoted by the server (`format('%I')`); it is
//! never spliced into SQL text. Requires PostgreSQL 11 or later.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::chain_id::ChainId;
use crate::checkpoint::Checkpoint;
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventFormat, NewEvent};
use crate::filter::{Filter, Page, check_limit, seq_to_sql};
use crate::mirror::Mirror;
use crate::row::{
    checkpoint_columns, decode_chain, decode_checkpoint, decode_event, decode_head, event_columns,
    head_columns,
};
use crate::sealer::{Sealed, Sealer};
use crate::sink::{AuditSink, SinkConfig};
use crate::writer::{Store, Writer};

/// Serializes schema creation among sinks starting at once.
const SCHEMA_LOCK: i64 = 0x7765_6972_6175_6431; // "weiraud1"

const CREATE_SCHEMA: &str = "DO $$ BEGIN
    IF coalesce(current_setting('weir.audit_schema', true), '') <> '' THEN
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', current_setting('weir.audit_schema', true));
    END IF;
END $$";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    chain TEXT NOT NULL, seq BIGINT NOT NULL, time_us BIGINT NOT NULL,
    actor TEXT NOT NULL, run TEXT, stage TEXT, attempt BIGINT,
    action TEXT NOT NULL, store TEXT, path TEXT, decision TEXT NOT NULL,
    reason TEXT, token_id_hmac TEXT, origin TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, time_us);
CREATE INDEX IF NOT EXISTS audit_events_run ON audit_events (run, stage);
CREATE INDEX IF NOT EXISTS audit_events_resource ON audit_events (store, path);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain TEXT NOT NULL, seq BIGINT NOT NULL, hash TEXT NOT NULL,
    time_us BIGINT NOT NULL, signature TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS audit_heads (
    chain TEXT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL,
    time_us BIGINT NOT NULL, checkpoint_seq BIGINT NOT NULL,
    checkpoint_time_us BIGINT NOT NULL
);
";

/// Restores any missing append-only trigger (taking no table lock when all
/// are present, so a sink opening never contends with writers).
const TRIGGERS: &str = "
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN RAISE EXCEPTION 'weir audit tables are append-only'; END $f$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass
                   AND tgname = 'audit_events_append_only') THEN
        CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass
                   AND tgname = 'audit_events_no_truncate') THEN
        CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
            FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit_checkpoints'::regclass
                   AND tgname = 'audit_checkpoints_append_only') THEN
        CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
            FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit_checkpoints'::regclass
                   AND tgname = 'audit_checkpoints_no_truncate') THEN
        CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
            FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    END IF;
END $$";

const ENSURE_HEAD: &str = "INSERT INTO audit_heads (chain, seq, hash, time_us, checkpoint_seq, checkpoint_time_us) \
     VALUES ($1, 0, $2, $3, 0, $3) ON CONFLICT (chain) DO NOTHING";
const LOCK_HEAD: &str = concat!(
    "SELECT ",
    head_columns!(),
    " FROM audit_heads WHERE chain = $1 FOR UPDATE"
);
const SAVE_HEAD: &str = "UPDATE audit_heads SET seq = $2, hash = $3, time_us = $4, \
     checkpoint_seq = $5, checkpoint_time_us = $6 WHERE chain = $1";
const INSERT_EVENTS: &str = concat!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ") SELECT $1, u.* FROM UNNEST(",
    "$2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], ",
    "$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], ",
    "$16::text[]) AS u"
);
const INSERT_CHECKPOINT: &str = concat!(
    "INSERT INTO audit_checkpoints (",
    checkpoint_columns!(),
    ") VALUES ($1, $2, $3, $4, $5)"
);
const SELECT_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM audit_events WHERE chain = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
);
const SELECT_CHECKPOINTS: &str = concat!(
    "SELECT ",
    checkpoint_columns!(),
    " FROM audit_checkpoints WHERE chain = $1 ORDER BY seq"
);
/// The chain head, read without locking it (verification).
const SELECT_HEAD: &str = concat!(
    "SELECT ",
    head_columns!(),
    " FROM audit_heads WHERE chain = $1"
);
const SELECT_CHAINS: &str = "SELECT chain FROM audit_heads UNION SELECT chain FROM audit_checkpoints \
     UNION SELECT DISTINCT chain FROM audit_events ORDER BY 1";
const QUERY: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM audit_events WHERE \
     ($1::text IS NULL OR chain = $1) AND ($2::text IS NULL OR actor = $2) \
     AND ($3::text IS NULL OR run = $3) AND ($4::text IS NULL OR stage = $4) \
     AND ($5::text IS NULL OR store = $5) \
     AND ($6::text IS NULL OR path = $6 OR left(path, char_length($6) + 1) = $6 || '/') \
     AND ($7::text IS NULL OR action = $7) AND ($8::text IS NULL OR decision = $8) \
     AND ($9::text IS NULL OR token_id_hmac = $9) \
     AND ($10::int8 IS NULL OR time_us >= $10) AND ($11::int8 IS NULL OR time_us < $11) \
     AND ($12::text IS NULL OR (chain, seq) > ($12, $13::int8)) \
     ORDER BY chain, seq LIMIT $14"
);

/// The PostgreSQL [`AuditSink`], with group commit and per-chain row locks.
///
/// See the module docs for durability and concurrency.
pub struct PostgresSink {
    chain: ChainId,
    pool: PgPool,
    writer: Writer,
}

impl PostgresSink {
    /// Connects to `url`, creates `schema` (if given) and the tables if
    /// missing, and starts the writer for `config.chain`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a malformed URL or schema name (the URL
    /// is never echoed: it may hold a password); [`Error::Database`].
    pub async fn connect(url: &str, schema: Option<&str>, config: SinkConfig) -> Result<Self> {
        config.validate()?;
        let mut options = PgConnectOptions::from_str(url).map_err(|_| Error::InvalidConfig {
            reason: "invalid PostgreSQL URL",
        })?;
        options = options.options([("synchronous_commit", "on")]);
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            options = options.options([("search_path", schema), ("weir.audit_schema", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(Error::db("connect"))?;
        init_schema(&pool, &config.chain).await?;
        let mirror = config.mirror.as_deref().map(Mirror::open).transpose()?;
        let sealer = Sealer::new(
            EventFormat::V1,
            config.chain.clone(),
            config.signer,
            config.checkpoints,
        );
        let store = PgStore { pool: pool.clone() };
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
            pool,
            writer,
        })
    }

    /// Commits everything queued, signs a final checkpoint, stops the writer
    /// and closes the pool.
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

fn check_schema_name(schema: &str) -> Result<()> {
    let mut bytes = schema.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            reason: "schema must match [a-z_][a-z0-9_]{0,62}",
        })
    }
}

async fn init_schema(pool: &PgPool, chain: &ChainId) -> Result<()> {
    let mut tx = pool.begin().await.map_err(Error::db("begin"))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(Error::db("lock schema"))?;
    sqlx::raw_sql(CREATE_SCHEMA)
        .execute(&mut *tx)
        .await
        .map_err(Error::db("create schema"))?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('audit_heads') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::db("inspect schema"))?;
    if !exists {
        sqlx::raw_sql(SCHEMA)
            .execute(&mut *tx)
            .await
            .map_err(Error::db("create tables"))?;
    }
    sqlx::raw_sql(TRIGGERS)
        .execute(&mut *tx)
        .await
        .map_err(Error::db("create triggers"))?;
    sqlx::query(ENSURE_HEAD)
        .bind(chain.as_str())
        .bind(EventHash::GENESIS.to_hex())
        .bind(Utc::now().timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(Error::db("create chain head"))?;
    tx.commit().await.map_err(Error::db("commit schema"))
}

#[async_trait]
impl AuditSink for PostgresSink {
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

    async fn head(&self, chain: &ChainId) -> Result<Option<(u64, EventHash)>> {
        let row = sqlx::query(SELECT_HEAD)
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

/// The writer task's side: one transaction per batch.
struct PgStore {
    pool: PgPool,
}

/// A batch as one array per column, for `UNNEST`.
#[derive(Default)]
struct Columns {
    seq: Vec<i64>,
    time_us: Vec<i64>,
    actor: Vec<String>,
    run: Vec<Option<String>>,
    stage: Vec<Option<String>>,
    attempt: Vec<Option<i64>>,
    action: Vec<&'static str>,
    store: Vec<Option<String>>,
    path: Vec<Option<String>>,
    decision: Vec<&'static str>,
    reason: Vec<Option<String>>,
    token_id_hmac: Vec<Option<String>>,
    origin: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

impl Columns {
    fn of(events: &[AuditEvent]) -> Self {
        let mut c = Self::default();
        for e in events {
            c.seq.push(seq_to_sql(e.seq));
            c.time_us.push(e.time.timestamp_micros());
            c.actor.push(e.actor.clone());
            c.run.push(e.run.clone());
            c.stage.push(e.stage.clone());
            c.attempt.push(e.attempt.map(i64::from));
            c.action.push(e.action.as_str());
            c.store.push(e.store.clone());
            c.path.push(e.path.clone());
            c.decision.push(e.decision.as_str());
            c.reason.push(e.reason.clone());
            c.token_id_hmac
                .push(e.token_id_hmac.as_ref().map(|t| t.as_str().to_owned()));
            c.origin.push(e.origin.encode().into_owned());
            c.prev_hash.push(e.prev_hash.to_hex());
            c.hash.push(e.hash.to_hex());
        }
        c
    }
}

#[async_trait]
impl Store for PgStore {
    async fn commit(
        &mut self,
        sealer: &Sealer,
        batch: Vec<NewEvent>,
        force: bool,
    ) -> Result<Sealed> {
        let chain = sealer.chain().as_str();
        let mut tx = self.pool.begin().await.map_err(Error::db("begin"))?;
        let row = sqlx::query(LOCK_HEAD)
            .bind(chain)
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::db("lock chain head"))?;
        let sealed = sealer.seal(&decode_head(&row)?, batch, Utc::now(), force)?;
        if !sealed.events.is_empty() {
            let c = Columns::of(&sealed.events);
            sqlx::query::<Postgres>(INSERT_EVENTS)
                .bind(chain)
                .bind(c.seq)
                .bind(c.time_us)
                .bind(c.actor)
                .bind(c.run)
                .bind(c.stage)
                .bind(c.attempt)
                .bind(c.action)
                .bind(c.store)
                .bind(c.path)
                .bind(c.decision)
                .bind(c.reason)
                .bind(c.token_id_hmac)
                .bind(c.origin)
                .bind(c.prev_hash)
                .bind(c.hash)
                .execute(&mut *tx)
                .await
                .map_err(Error::db("insert events"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["weir", "_x", "weir_audit_t_1"] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Weir",
            "1x",
            "a-b",
            "a\"; DROP SCHEMA public; --",
            &"a".repeat(64),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unnest_insert_binds_every_column() {
        assert_eq!(INSERT_EVENTS.matches("[]").count(), 15);
        assert_eq!(event_columns!().split(", ").count(), 16);
    }
}
