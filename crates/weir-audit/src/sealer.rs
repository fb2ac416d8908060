//! Turning queued [`NewEvent`]s into chained [`AuditEvent`]s.
//!
//! Backends read the chain head inside their write transaction (under a
//! lock), hand it to [`Sealer::seal`], write what comes back and store the
//! new head in the same transaction. Sealing is pure, so both backends
//! chain, time-stamp and checkpoint identically.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::chain_id::ChainId;
use crate::checkpoint::{Checkpoint, CheckpointPolicy};
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventFormat, NewEvent};
use crate::signer::CheckpointSigner;

/// The stored state of a chain's tip (one row per chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Seq of the last event (0 before the first).
    pub(crate) seq: u64,
    /// Hash of the last event ([`EventHash::GENESIS`] before the first).
    pub(crate) hash: EventHash,
    /// Time of the last event or checkpoint, µs; times never go backwards.
    pub(crate) time_us: i64,
    /// Seq covered by the newest checkpoint (0 for none).
    pub(crate) checkpoint_seq: u64,
    /// When the newest checkpoint was signed (or the chain created), µs.
    pub(crate) checkpoint_time_us: i64,
}

impl Head {
    /// The head of a chain created at `now_us`.
    #[cfg(test)]
    pub(crate) fn empty(now_us: i64) -> Self {
        Self {
            seq: 0,
            hash: EventHash::GENESIS,
            time_us: now_us,
            checkpoint_seq: 0,
            checkpoint_time_us: now_us,
        }
    }
}

/// Rebuilds a head from its stored columns.
pub(crate) fn head_from_columns(
    seq: i64,
    hash: &str,
    time_us: i64,
    checkpoint_seq: i64,
    checkpoint_time_us: i64,
) -> Result<Head> {
    let bad = |reason| Error::corrupt(0, "audit_heads", reason);
    Ok(Head {
        seq: u64::try_from(seq).map_err(|_| bad("seq out of range"))?,
        hash: EventHash::from_hex(hash).map_err(|_| bad("hash is not a hash"))?,
        time_us,
        checkpoint_seq: u64::try_from(checkpoint_seq)
            .map_err(|_| bad("checkpoint_seq out of range"))?,
        checkpoint_time_us,
    })
}

/// What one transaction must write.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) events: Vec<AuditEvent>,
    /// In [`EventFormat::V2`], each event's stored record (same order).
    pub(crate) records: Vec<String>,
    pub(crate) checkpoint: Option<Checkpoint>,
    pub(crate) head: Head,
}

/// Chains, time-stamps and checkpoints one writer's events.
#[derive(Clone, Debug)]
pub(crate) struct Sealer {
    format: EventFormat,
    chain: ChainId,
    signer: Arc<CheckpointSigner>,
    policy: CheckpointPolicy,
}

impl Sealer {
    pub(crate) fn new(
        format: EventFormat,
        chain: ChainId,
        signer: Arc<CheckpointSigner>,
        policy: CheckpointPolicy,
    ) -> Self {
        Self {
            format,
            chain,
            signer,
            policy,
        }
    }

    pub(crate) fn chain(&self) -> &ChainId {
        &self.chain
    }

    pub(crate) fn policy(&self) -> CheckpointPolicy {
        self.policy
    }

    /// Seals `batch` after `head` at `now`; signs a checkpoint if one is due
    /// (or `force`d) and any event is not yet covered.
    pub(crate) fn seal(
        &self,
        head: &Head,
        batch: Vec<NewEvent>,
        now: DateTime<Utc>,
        force: bool,
    ) -> Result<Sealed> {
        // Never earlier than the last stored time: a stepped-back clock must
        // not make the log run backwards.
        let time_us = now.timestamp_micros().max(head.time_us);
        let time = DateTime::from_timestamp_micros(time_us).ok_or(Error::Internal {
            reason: "time out of range",
        })?;
        let mut next = head.clone();
        next.time_us = time_us;
        let mut events = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(match self.format {
            EventFormat::V1 => 0,
            EventFormat::V2 => batch.len(),
        });
        for new in batch {
            next.seq = next
                .seq
                .checked_add(1)
                .filter(|s| i64::try_from(*s).is_ok())
                .ok_or(Error::Internal {
                    reason: "chain sequence exhausted",
                })?;
            let (event, record) = AuditEvent::seal(
                self.format,
                self.chain.clone(),
                next.seq,
                time,
                next.hash,
                new,
            )?;
            next.hash = event.hash;
            events.push(event);
            records.extend(record);
        }
        let checkpoint = self.checkpoint_if_due(&mut next, time, force);
        Ok(Sealed {
            events,
            records,
            checkpoint,
            head: next,
        })
    }

    fn checkpoint_if_due(
        &self,
        head: &mut Head,
        time: DateTime<Utc>,
        force: bool,
    ) -> Option<Checkpoint> {
        if head.seq <= head.checkpoint_seq {
            return None;
        }
        let every_us = i64::try_from(self.policy.every().as_micros()).unwrap_or(i64::MAX);
        let due = force
            || head.seq - head.checkpoint_seq >= self.policy.every_events()
            || head.time_us.saturating_sub(head.checkpoint_time_us) >= every_us;
        if !due {
            return None;
        }
        head.checkpoint_seq = head.seq;
        head.checkpoint_time_us = head.time_us;
        Some(Checkpoint::sign(
            &self.signer,
            self.chain.clone(),
            head.seq,
            head.hash,
            time,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::{Action, Decision, Origin};

    fn sealer(every_events: u64) -> Sealer {
        Sealer::new(
            EventFormat::V2,
            ChainId::parse("w1").unwrap(),
            Arc::new(CheckpointSigner::generate().unwrap()),
            CheckpointPolicy::new(every_events, Duration::from_secs(60)).unwrap(),
        )
    }

    fn batch(n: usize) -> Vec<NewEvent> {
        (0..n)
            .map(|i| NewEvent::new(format!("a{i}"), Action::Read, Decision::Allow, Origin::Cli))
            .collect()
    }

    fn at(us: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(us).unwrap()
    }

    #[test]
    fn seals_a_gapless_linked_chain() {
        let s = sealer(1000);
        let first = s.seal(&Head::empty(0), batch(3), at(10), false).unwrap();
        let second = s.seal(&first.head, batch(2), at(20), false).unwrap();
        let all: Vec<_> = first.events.iter().chain(&second.events).collect();
        let mut prev = EventHash::GENESIS;
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
            assert_eq!(e.prev_hash, prev);
            assert_eq!(e.compute_hash(), e.hash);
            prev = e.hash;
        }
        assert_eq!(second.head.seq, 5);
        assert_eq!(second.head.hash, prev);
        let records: Vec<_> = first.records.iter().chain(&second.records).collect();
        assert_eq!(records.len(), 5, "one stored record per format-2 event");
        for (e, r) in all.iter().zip(records) {
            assert_eq!(crate::digest::hash_bytes(r.as_bytes()), e.hash);
        }
    }

    #[test]
    fn clock_stepping_back_never_reorders_time() {
        let s = sealer(1000);
        let first = s.seal(&Head::empty(0), batch(1), at(1_000), false).unwrap();
        let second = s.seal(&first.head, batch(1), at(5), false).unwrap();
        assert_eq!(second.events[0].time, at(1_000));
    }

    #[test]
    fn checkpoint_after_every_events() {
        let s = sealer(4);
        let a = s.seal(&Head::empty(0), batch(3), at(1), false).unwrap();
        assert!(a.checkpoint.is_none());
        let b = s.seal(&a.head, batch(2), at(2), false).unwrap();
        let cp = b.checkpoint.unwrap();
        assert_eq!((cp.seq, cp.hash), (5, b.head.hash));
        assert_eq!(b.head.checkpoint_seq, 5);
        assert!(cp.verify(&s.signer.verifying_key()));
    }

    #[test]
    fn checkpoint_after_interval_and_on_force_only_if_new_events() {
        let s = sealer(1000);
        let a = s.seal(&Head::empty(0), batch(1), at(1), false).unwrap();
        assert!(a.checkpoint.is_none());
        let b = s.seal(&a.head, vec![], at(61_000_001), false).unwrap();
        assert_eq!(b.checkpoint.unwrap().seq, 1);
        let c = s.seal(&b.head, vec![], at(61_000_002), true).unwrap();
        assert!(c.checkpoint.is_none(), "nothing new to cover");
        let d = s.seal(&c.head, batch(1), at(61_000_003), true).unwrap();
        assert_eq!(d.checkpoint.unwrap().seq, 2);
    }
}
