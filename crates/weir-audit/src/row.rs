//! The stored row shape both SQL backends share, and its decoding.
//!
//! Decoding is strict: a row edited into something that is not a valid
//! event fails with [`Error::CorruptRow`] naming its seq, which the verifier
//! reports as an edit.

use chrono::DateTime;
use sqlx::sqlite::SqliteRow;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::audit_key::TokenIdHmac;
use crate::chain_id::ChainId;
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventFormat};
use crate::record::{self, Link};
use crate::sealer::{Head, head_from_columns};

/// The event columns, in insert/select order (a literal, so it can only be
/// joined into SQL with `concat!`, which takes no runtime values).
macro_rules! event_columns {
    () => {
        "chain, seq, time_us, actor, run, stage, attempt, action, store, path, decision, reason, token_id_hmac, origin, prev_hash, hash"
    };
}

/// The checkpoint columns, in insert/select order.
macro_rules! checkpoint_columns {
    () => {
        "chain, seq, hash, time_us, signature"
    };
}

/// The head columns read by the writer, in select order.
macro_rules! head_columns {
    () => {
        "seq, hash, time_us, checkpoint_seq, checkpoint_time_us"
    };
}

pub(crate) use {checkpoint_columns, event_columns, head_columns};

/// An event as stored (a format-1 row, or a format-2 record's fields),
/// before any validation.
pub(crate) struct RawEvent {
    pub(crate) chain: String,
    pub(crate) seq: i64,
    pub(crate) time_us: i64,
    pub(crate) actor: String,
    pub(crate) run: Option<String>,
    pub(crate) stage: Option<String>,
    pub(crate) attempt: Option<i64>,
    pub(crate) action: String,
    pub(crate) store: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) decision: String,
    pub(crate) reason: Option<String>,
    pub(crate) token_id_hmac: Option<String>,
    pub(crate) origin: String,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

impl RawEvent {
    /// Validates every field into an event of `format`.
    pub(crate) fn decode(self, format: EventFormat) -> Result<AuditEvent> {
        let seq = u64::try_from(self.seq)
            .ok()
            .filter(|s| *s >= 1)
            .ok_or(Error::corrupt(0, "seq", "is not a positive integer"))?;
        let bad = |column, reason| Error::corrupt(seq, column, reason);
        Ok(AuditEvent {
            format,
            chain: ChainId::parse(&self.chain).map_err(|_| bad("chain", "is not a chain id"))?,
            seq,
            time: DateTime::from_timestamp_micros(self.time_us)
                .ok_or(bad("time_us", "out of range"))?,
            actor: self.actor,
            run: self.run,
            stage: self.stage,
            attempt: self
                .attempt
                .map(u32::try_from)
                .transpose()
                .map_err(|_| bad("attempt", "out of range"))?,
            action: self.action.parse().map_err(|_| bad("action", "unknown"))?,
            store: self.store,
            path: self.path,
            decision: self
                .decision
                .parse()
                .map_err(|_| bad("decision", "unknown"))?,
            reason: self.reason,
            token_id_hmac: self
                .token_id_hmac
                .as_deref()
                .map(TokenIdHmac::from_hex)
                .transpose()
                .map_err(|_| bad("token_id_hmac", "is not an HMAC"))?,
            origin: self.origin.parse().map_err(|_| bad("origin", "unknown"))?,
            prev_hash: EventHash::from_hex(&self.prev_hash)
                .map_err(|_| bad("prev_hash", "is not a hash"))?,
            hash: EventHash::from_hex(&self.hash).map_err(|_| bad("hash", "is not a hash"))?,
        })
    }
}

/// A checkpoint row as the driver returns it.
struct RawCheckpoint {
    chain: String,
    seq: i64,
    hash: String,
    time_us: i64,
    signature: String,
}

impl RawCheckpoint {
    fn decode(self) -> Result<crate::checkpoint::Checkpoint> {
        let seq = u64::try_from(self.seq).map_err(|_| Error::corrupt(0, "seq", "negative"))?;
        crate::checkpoint::Checkpoint::from_stored(
            &self.chain,
            seq,
            &self.hash,
            self.time_us,
            &self.signature,
        )
        .map_err(|reason| Error::corrupt(seq, "checkpoint", reason))
    }
}

/// Decodes an event row selected with [`event_columns!`], for either driver.
///
/// A column of the wrong SQL type (SQLite is dynamically typed) is as
/// corrupt as a wrong value.
pub(crate) fn decode_event<'r, R>(row: &'r R) -> Result<AuditEvent>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = row
        .try_get(1)
        .map_err(|_| Error::corrupt(0, "seq", "not an integer"))?;
    let at = u64::try_from(seq).unwrap_or(0);
    let bad = |column: &'static str| move |_: sqlx::Error| Error::corrupt(at, column, "wrong type");
    RawEvent {
        chain: row.try_get(0).map_err(bad("chain"))?,
        seq,
        time_us: row.try_get(2).map_err(bad("time_us"))?,
        actor: row.try_get(3).map_err(bad("actor"))?,
        run: row.try_get(4).map_err(bad("run"))?,
        stage: row.try_get(5).map_err(bad("stage"))?,
        attempt: row.try_get(6).map_err(bad("attempt"))?,
        action: row.try_get(7).map_err(bad("action"))?,
        store: row.try_get(8).map_err(bad("store"))?,
        path: row.try_get(9).map_err(bad("path"))?,
        decision: row.try_get(10).map_err(bad("decision"))?,
        reason: row.try_get(11).map_err(bad("reason"))?,
        token_id_hmac: row.try_get(12).map_err(bad("token_id_hmac"))?,
        origin: row.try_get(13).map_err(bad("origin"))?,
        prev_hash: row.try_get(14).map_err(bad("prev_hash"))?,
        hash: row.try_get(15).map_err(bad("hash"))?,
    }
    .decode(EventFormat::V1)
}

/// Decodes a format-2 row selected as `chain, seq, record`.
pub(crate) fn decode_record(row: &SqliteRow) -> Result<AuditEvent> {
    let (seq, record) = seq_and_record(row, 1, 2)?;
    let chain: &str = row
        .try_get(0)
        .map_err(|_| Error::corrupt(u64::try_from(seq).unwrap_or(0), "chain", "wrong type"))?;
    record::decode(chain, seq, record)
}

/// What verification needs of a format-2 row selected as `seq, record`
/// from `chain`.
pub(crate) fn decode_link(chain: &ChainId, row: &SqliteRow) -> Result<Link> {
    let (seq, record) = seq_and_record(row, 0, 1)?;
    record::link(chain, seq, record)
}

/// The seq and record columns of a format-2 row, by index.
fn seq_and_record(row: &SqliteRow, seq_at: usize, record_at: usize) -> Result<(i64, &str)> {
    let seq: i64 = row
        .try_get(seq_at)
        .map_err(|_| Error::corrupt(0, "seq", "not an integer"))?;
    let record: &str = row
        .try_get(record_at)
        .map_err(|_| Error::corrupt(u64::try_from(seq).unwrap_or(0), "record", "wrong type"))?;
    Ok((seq, record))
}

/// Decodes a checkpoint row selected with [`checkpoint_columns!`].
pub(crate) fn decode_checkpoint<'r, R>(row: &'r R) -> Result<crate::checkpoint::Checkpoint>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = row
        .try_get(1)
        .map_err(|_| Error::corrupt(0, "checkpoint", "seq not an integer"))?;
    let bad = |_| Error::corrupt(u64::try_from(seq).unwrap_or(0), "checkpoint", "wrong type");
    RawCheckpoint {
        chain: row.try_get(0).map_err(bad)?,
        seq,
        hash: row.try_get(2).map_err(bad)?,
        time_us: row.try_get(3).map_err(bad)?,
        signature: row.try_get(4).map_err(bad)?,
    }
    .decode()
}

/// Decodes a head row selected with [`head_columns!`].
pub(crate) fn decode_head<'r, R>(row: &'r R) -> Result<Head>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let bad = |_| Error::corrupt(0, "audit_heads", "does not decode");
    let hash: String = row.try_get(1).map_err(bad)?;
    head_from_columns(
        row.try_get(0).map_err(bad)?,
        &hash,
        row.try_get(2).map_err(bad)?,
        row.try_get(3).map_err(bad)?,
        row.try_get(4).map_err(bad)?,
    )
}

/// Decodes one chain id column.
pub(crate) fn decode_chain<'r, R>(row: &'r R) -> Result<ChainId>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = row
        .try_get(0)
        .map_err(|_| Error::corrupt(0, "chain", "not text"))?;
    ChainId::parse(&id).map_err(|_| Error::corrupt(0, "chain", "not a chain id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawEvent {
        RawEvent {
            chain: "cli".into(),
            seq: 1,
            time_us: 1,
            actor: "a".into(),
            run: None,
            stage: None,
            attempt: Some(1),
            action: "read".into(),
            store: None,
            path: None,
            decision: "allow".into(),
            reason: None,
            token_id_hmac: None,
            origin: "cli".into(),
            prev_hash: "0".repeat(64),
            hash: "1".repeat(64),
        }
    }

    #[test]
    fn valid_row_decodes() {
        let e = raw().decode(EventFormat::V1).unwrap();
        assert_eq!((e.seq, e.attempt), (1, Some(1)));
    }

    #[test]
    fn edited_columns_are_reported_as_corrupt_with_their_seq() {
        let mut r = raw();
        r.decision = "maybe".into();
        assert!(matches!(
            r.decode(EventFormat::V1),
            Err(Error::CorruptRow {
                seq: 1,
                column: "decision",
                ..
            })
        ));
        let mut r = raw();
        r.seq = -4;
        assert!(matches!(
            r.decode(EventFormat::V1),
            Err(Error::CorruptRow {
                seq: 0,
                column: "seq",
                ..
            })
        ));
        let mut r = raw();
        r.hash = "xyz".into();
        assert!(matches!(
            r.decode(EventFormat::V1),
            Err(Error::CorruptRow { column: "hash", .. })
        ));
        let mut r = raw();
        r.attempt = Some(-1);
        assert!(matches!(
            r.decode(EventFormat::V1),
            Err(Error::CorruptRow {
                column: "attempt",
                ..
            })
        ));
    }

    #[test]
    fn column_lists_agree_in_length() {
        assert_eq!(event_columns!().split(", ").count(), 16);
        assert_eq!(checkpoint_columns!().split(", ").count(), 5);
        assert_eq!(head_columns!().split(", ").count(), 5);
    }
}
