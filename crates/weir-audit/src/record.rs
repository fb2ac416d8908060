//! The format-2 record: one event stored as the exact bytes that are hashed.
//!
//! # Why
//!
//! In format 1 an event is sixteen columns and its hash is taken over a
//! binary encoding of them, so verifying a row means fetching sixteen
//! values, rebuilding the event and encoding it again. In format 2 the row
//! holds one canonical JSON record and the event's hash is `SHA-256(record)`:
//! verifying a row means hashing the bytes it holds and reading four keys
//! from them. The queryable columns are SQLite `VIRTUAL` generated columns
//! extracted from the record, so they cannot be edited apart from it.
//!
//! # Record
//!
//! ```json
//! {"format":"weir-audit/event/v2","chain":"cli","seq":1,"time_us":1700000000123456,
//!  "actor":"svc-train","run":"01J0RUN","stage":"prepare","attempt":1,"action":"read",
//!  "store":"lake","path":"raw/part-0.parquet","decision":"allow","reason":null,
//!  "token_id_hmac":null,"origin":"cli","prev_hash":"000...000"}
//! ```
//!
//! (one line, no whitespace). Keys come in this order and every key is
//! present, `null` when absent; strings are escaped as `serde_json` escapes
//! them. The `format` value is the domain tag: no format-1 encoding starts
//! with `{`, so no record hashes like a format-1 event.
//!
//! # Decoding
//!
//! Strict: unknown or repeated keys, a wrong `format`, a chain or seq other
//! than the row's, and any field that does not parse make the row corrupt
//! ([`Error::CorruptRow`] with its seq), which verification reports as an
//! edit.

use std::borrow::Cow;

use chrono::DateTime;
use serde::Deserialize;

use crate::audit_key::{TokenIdHmac, is_lower_hex};
use crate::chain_id::ChainId;
use crate::digest::{EventHash, hash_bytes};
use crate::error::{Error, Result};
use crate::event::{Action, AuditEvent, Decision, EventFormat, Origin};
use crate::row::RawEvent;

mod canonical;
mod encode;

use encode::RecordWriter;

/// The `format` value of every format-2 record.
pub(crate) const RECORD_FORMAT: &str = "weir-audit/event/v2";

/// The record as read: borrowed from the row where no escape forces a copy.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn<'a> {
    #[serde(borrow)]
    format: Cow<'a, str>,
    #[serde(borrow)]
    chain: Cow<'a, str>,
    seq: u64,
    time_us: i64,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    run: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stage: Option<Cow<'a, str>>,
    attempt: Option<u32>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    store: Option<Cow<'a, str>>,
    #[serde(borrow)]
    path: Option<Cow<'a, str>>,
    #[serde(borrow)]
    decision: Cow<'a, str>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    token_id_hmac: Option<Cow<'a, str>>,
    #[serde(borrow)]
    origin: Cow<'a, str>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
}

/// Encodes `event` as its format-2 record (see [`encode::RecordWriter`]:
/// exactly the bytes `serde_json` writes for these keys in this order).
///
/// # Errors
///
/// None today; the `Result` is kept for encodings that can fail.
pub(crate) fn encode(event: &AuditEvent) -> Result<String> {
    let origin = event.origin.encode();
    let text = [
        event.chain.as_str(),
        &event.actor,
        event.run.as_deref().unwrap_or_default(),
        event.stage.as_deref().unwrap_or_default(),
        event.store.as_deref().unwrap_or_default(),
        event.path.as_deref().unwrap_or_default(),
        event.reason.as_deref().unwrap_or_default(),
        event.token_id_hmac.as_ref().map_or("", TokenIdHmac::as_str),
        &origin,
    ];
    let mut w = RecordWriter::with_room(text.iter().map(|t| t.len()).sum());
    w.str("format", RECORD_FORMAT);
    w.str("chain", event.chain.as_str());
    w.u64("seq", event.seq);
    w.i64("time_us", event.time.timestamp_micros());
    w.str("actor", &event.actor);
    w.opt_str("run", event.run.as_deref());
    w.opt_str("stage", event.stage.as_deref());
    w.opt_u32("attempt", event.attempt);
    w.str("action", event.action.as_str());
    w.opt_str("store", event.store.as_deref());
    w.opt_str("path", event.path.as_deref());
    w.str("decision", event.decision.as_str());
    w.opt_str("reason", event.reason.as_deref());
    w.opt_str(
        "token_id_hmac",
        event.token_id_hmac.as_ref().map(TokenIdHmac::as_str),
    );
    w.str("origin", &origin);
    w.hash("prev_hash", &event.prev_hash);
    Ok(w.finish())
}

/// What verification needs of one stored row: where it is stored, what
/// it links to and what it hashes to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// The seq the row is stored under.
    pub position: u64,
    /// The seq the event itself states (equal to `position` unless rows
    /// were moved).
    pub seq: u64,
    /// Whether the event names the chain it is stored in.
    pub in_chain: bool,
    /// The hash the event links to.
    pub prev_hash: EventHash,
    /// The event's hash: the stored one in format 1, `SHA-256(record)` in
    /// format 2.
    pub hash: EventHash,
    /// Whether the stored hash matches the event's content. Always true in
    /// format 2, where the hash is computed from the stored bytes and an
    /// edit shows as a broken link instead.
    pub consistent: bool,
}

impl Link {
    /// The link of an event already decoded (any format): its hash is
    /// recomputed from its fields.
    #[must_use]
    pub fn of_event(chain: &ChainId, event: &AuditEvent) -> Self {
        Self {
            position: event.seq,
            seq: event.seq,
            in_chain: &event.chain == chain,
            prev_hash: event.prev_hash,
            hash: event.hash,
            consistent: event.compute_hash() == event.hash,
        }
    }

    /// [`of_event`](Self::of_event) for each of `events`.
    #[must_use]
    pub fn of_events(chain: &ChainId, events: &[AuditEvent]) -> Vec<Self> {
        events.iter().map(|e| Self::of_event(chain, e)).collect()
    }
}

/// The link of the record stored at `(chain, position)`, checking the
/// record strictly without building an event.
///
/// A record in exactly the form [`encode`] writes is read by
/// [`canonical::fields`] (no allocation, several times faster than a JSON
/// parser); anything else, damaged or merely unusual, goes through the
/// same strict `serde_json` reading as [`decode`], so the fast path can
/// neither refuse a good record nor accept one [`decode`] would refuse.
pub(crate) fn link(chain: &ChainId, position: i64, record: &str) -> Result<Link> {
    let position = stored_seq(position)?;
    if let Some(f) = canonical::fields(record).filter(|f| f.valid_in(chain)) {
        return Ok(Link {
            position,
            seq: f.seq,
            in_chain: true,
            prev_hash: f.prev_hash,
            hash: hash_bytes(record.as_bytes()),
            consistent: true,
        });
    }
    link_strict(chain, position, record)
}

/// [`link`] through the strict `serde_json` reading.
fn link_strict(chain: &ChainId, position: u64, record: &str) -> Result<Link> {
    let fields = parse(position, record)?;
    check(position, &fields)?;
    Ok(Link {
        position,
        seq: fields.seq,
        in_chain: fields.chain == chain.as_str(),
        prev_hash: prev_hash(position, &fields)?,
        hash: hash_bytes(record.as_bytes()),
        consistent: true,
    })
}

/// Decodes the record stored at `(chain, position)` into an event.
pub(crate) fn decode(chain: &str, position: i64, record: &str) -> Result<AuditEvent> {
    let position = stored_seq(position)?;
    let fields = parse(position, record)?;
    check(position, &fields)?;
    let bad = |column, reason| Error::corrupt(position, column, reason);
    if fields.chain != chain || fields.seq != position {
        return Err(bad("record", "names another chain or seq than its row"));
    }
    // The same conversions as a format-1 row, so both formats decode alike.
    RawEvent {
        chain: fields.chain.into_owned(),
        seq: i64::try_from(fields.seq).map_err(|_| bad("seq", "out of range"))?,
        time_us: fields.time_us,
        actor: fields.actor.into_owned(),
        run: fields.run.map(Cow::into_owned),
        stage: fields.stage.map(Cow::into_owned),
        attempt: fields.attempt.map(i64::from),
        action: fields.action.into_owned(),
        store: fields.store.map(Cow::into_owned),
        path: fields.path.map(Cow::into_owned),
        decision: fields.decision.into_owned(),
        reason: fields.reason.map(Cow::into_owned),
        token_id_hmac: fields.token_id_hmac.map(Cow::into_owned),
        origin: fields.origin.into_owned(),
        prev_hash: fields.prev_hash.into_owned(),
        hash: hash_bytes(record.as_bytes()).to_hex(),
    }
    .decode(EventFormat::V2)
}

/// The rows of a chunk read as `group_concat(seq, ',')` and
/// `group_concat(record, char(30))`: `(position, record)` pairs in
/// increasing position. `None` if the two lists disagree in length, a
/// position is not a positive integer or positions do not increase: only
/// tampering can cause that (JSON text never holds the byte 0x1E), and the
/// caller then reads the rows one by one to name the damaged one.
pub(crate) fn split_chunk<'a>(positions: &str, records: &'a str) -> Option<Vec<(u64, &'a str)>> {
    let mut out = Vec::with_capacity(512);
    let mut records = records.split('\u{1e}');
    let mut previous = 0;
    for position in positions.split(',') {
        let position: u64 = position.parse().ok().filter(|p| *p > previous)?;
        out.push((position, records.next()?));
        previous = position;
    }
    records.next().is_none().then_some(out)
}

/// How many positions a chunk's `group_concat(seq, ',')` lists and the
/// last one; `None` if the last is not an integer.
pub(crate) fn chunk_extent(positions: &str) -> Option<(u32, u64)> {
    let count = positions.bytes().filter(|b| *b == b',').count() + 1;
    let last = positions.rsplit(',').next()?.parse().ok()?;
    Some((u32::try_from(count).ok()?, last))
}

/// The links of a chunk ([`split_chunk`]); `None` if it does not split.
pub(crate) fn chunk_links(
    chain: &ChainId,
    positions: &str,
    records: &str,
) -> Option<Result<Vec<Link>>> {
    let rows = split_chunk(positions, records)?;
    Some(
        rows.into_iter()
            .map(|(position, record)| {
                let position = i64::try_from(position)
                    .map_err(|_| Error::corrupt(0, "seq", "out of range"))?;
                link(chain, position, record)
            })
            .collect(),
    )
}

fn stored_seq(position: i64) -> Result<u64> {
    u64::try_from(position)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or(Error::corrupt(0, "seq", "is not a positive integer"))
}

fn parse(position: u64, record: &str) -> Result<RecordIn<'_>> {
    serde_json::from_str(record)
        .map_err(|_| Error::corrupt(position, "record", "is not a weir event record"))
}

/// Every check [`decode`] makes that needs no allocation.
fn check(position: u64, f: &RecordIn<'_>) -> Result<()> {
    if f.format != RECORD_FORMAT {
        return Err(Error::corrupt(position, "record", "has an unknown format"));
    }
    ChainId::parse(&f.chain).map_err(|_| Error::corrupt(position, "chain", "is not a chain id"))?;
    check_values(
        position,
        f.time_us,
        &f.actor,
        &f.action,
        &f.decision,
        f.token_id_hmac.as_deref(),
        &f.origin,
    )
}

/// The field checks every reading of a record makes, strict or canonical
/// (so the two cannot drift apart). Allocates nothing for `cli`/`api`
/// origins.
fn check_values(
    position: u64,
    time_us: i64,
    actor: &str,
    action: &str,
    decision: &str,
    token_id_hmac: Option<&str>,
    origin: &str,
) -> Result<()> {
    let bad = |column, reason| Error::corrupt(position, column, reason);
    DateTime::from_timestamp_micros(time_us).ok_or(bad("time_us", "out of range"))?;
    if actor.is_empty() {
        return Err(bad("actor", "is empty"));
    }
    parse_action(position, action)?;
    parse_decision(position, decision)?;
    if token_id_hmac.is_some_and(|t| !is_lower_hex(t, 64)) {
        return Err(bad("token_id_hmac", "is not an HMAC"));
    }
    origin
        .parse::<Origin>()
        .map_err(|_| bad("origin", "unknown"))?;
    Ok(())
}

fn parse_action(position: u64, action: &str) -> Result<Action> {
    action
        .parse()
        .map_err(|_| Error::corrupt(position, "action", "unknown"))
}

fn parse_decision(position: u64, decision: &str) -> Result<Decision> {
    decision
        .parse()
        .map_err(|_| Error::corrupt(position, "decision", "unknown"))
}

fn prev_hash(position: u64, f: &RecordIn<'_>) -> Result<EventHash> {
    EventHash::from_hex(&f.prev_hash)
        .map_err(|_| Error::corrupt(position, "prev_hash", "is not a hash"))
}

#[cfg(test)]
mod tests;
