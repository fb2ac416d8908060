//! Proving the log whole: hash links, gapless sequences and signed
//! checkpoints.
//!
//! For each chain the verifier checks, in seq order, that
//!
//! 1. seqs run 1, 2, 3, ... with no gap ([`DamageKind::Deleted`]) and never
//!    go backwards;
//! 2. each `prev_hash` is the previous event's `hash` — if it instead names a
//!    later event the rows were swapped ([`DamageKind::Reordered`]); if the
//!    event is itself consistent, its *predecessor* was rewritten with a
//!    recomputed hash ([`DamageKind::Edited`] at the predecessor);
//! 3. each `hash` is the SHA-256 of the event's fields
//!    ([`DamageKind::Edited`]);
//! 4. every checkpoint carries a valid Ed25519 signature
//!    ([`DamageKind::ForgedCheckpoint`]), and the event at its seq has its
//!    hash (otherwise [`DamageKind::Edited`], or [`DamageKind::Truncated`] at
//!    the last event), and no checkpoint lies beyond the last event
//!    ([`DamageKind::Truncated`]);
//! 5. the chain head the writer stored (read before the walk, so appends
//!    racing the verification do not count) names an event that exists and
//!    has that hash: an unsigned checkpoint that catches a naive edit of
//!    the last event ([`DamageKind::Edited`]) or removal of the tail
//!    ([`DamageKind::Truncated`]) where no signed checkpoint reaches yet;
//! 6. each event states the seq and chain it is stored under
//!    ([`DamageKind::Reordered`], [`DamageKind::Edited`]), and the storage's
//!    own definition is as the sink made it
//!    ([`DamageKind::Restructured`], reported at seq 0).
//!
//! The report names the first damaged seq.
//!
//! # Non-goals
//!
//! Events after the newest checkpoint are protected by the hash links only:
//! an attacker who can write the database can drop or rewrite that tail
//! undetected. Keep the checkpoint interval short and mirror checkpoints
//! ([`SinkConfig::with_mirror`](crate::SinkConfig::with_mirror),
//! [`verify_with_mirror`]) where deleting checkpoint rows is a threat.
//! Reordering is told apart from editing within a window of about two
//! verification pages (8192 events); swaps farther apart are reported as
//! edits.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;

use crate::chain_id::ChainId;
use crate::checkpoint::Checkpoint;
use crate::digest::EventHash;
use crate::error::{Error, Result};
use crate::event::AuditEvent;
use crate::record::Link;
use crate::sink::AuditSink;

/// Events fetched per round trip while verifying.
const PAGE: u32 = 4096;

/// What kind of damage was found.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DamageKind {
    /// A record's content no longer matches its hash, its successor's link
    /// or a signed checkpoint.
    Edited,
    /// A record is missing from the middle of a chain (a gap in seq).
    Deleted,
    /// Records are out of order.
    Reordered,
    /// Records are missing from the end of a chain (a signed checkpoint
    /// covers them).
    Truncated,
    /// A checkpoint's signature does not verify under the key.
    ForgedCheckpoint,
    /// The table holding the events was redefined, so what queries show
    /// may differ from what was hashed (reported at seq 0).
    Restructured,
}

/// The first damage found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The damaged chain.
    pub chain: ChainId,
    /// The first damaged seq (0 when the damage is to the storage itself
    /// rather than to an event).
    pub seq: u64,
    /// What kind of damage.
    pub kind: DamageKind,
    /// A short description for people.
    pub detail: &'static str,
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Every chain is whole.
    Ok {
        /// Chains checked.
        chains: u64,
        /// Events checked.
        events: u64,
        /// Valid checkpoints checked.
        checkpoints: u64,
    },
    /// Damage was found.
    Damaged(Damage),
}

impl Report {
    /// Whether no damage was found.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok { .. })
    }

    /// The damage, if any.
    #[must_use]
    pub fn damage(&self) -> Option<&Damage> {
        match self {
            Self::Ok { .. } => None,
            Self::Damaged(d) => Some(d),
        }
    }
}

/// Verifies every chain of `sink` against checkpoints signed by `key`.
///
/// # Errors
///
/// Storage errors from the sink. Damage is a [`Report`], not an error.
pub async fn verify(sink: &dyn AuditSink, key: &VerifyingKey) -> Result<Report> {
    verify_with_mirror(sink, key, &[]).await
}

/// As [`verify`], also trusting the checkpoints in `mirror` (e.g. from
/// [`read_mirror`](crate::read_mirror)); a chain known only to the mirror
/// is checked too, so deleting a whole chain is caught.
///
/// # Errors
///
/// Storage errors from the sink.
pub async fn verify_with_mirror(
    sink: &dyn AuditSink,
    key: &VerifyingKey,
    mirror: &[Checkpoint],
) -> Result<Report> {
    let mut chains = sink.chains().await?;
    chains.extend(mirror.iter().map(|c| c.chain.clone()));
    chains.sort();
    chains.dedup();
    let (mut events, mut checkpoints) = (0, 0);
    for chain in &chains {
        match verify_chain(sink, key, chain, mirror).await? {
            Report::Ok {
                events: e,
                checkpoints: c,
                ..
            } => {
                events += e;
                checkpoints += c;
            }
            damaged @ Report::Damaged(_) => return Ok(damaged),
        }
    }
    Ok(Report::Ok {
        chains: u64::try_from(chains.len()).unwrap_or(u64::MAX),
        events,
        checkpoints,
    })
}

/// Verifies one chain; `extra` checkpoints (of any chain) are used besides
/// the stored ones.
///
/// # Errors
///
/// Storage errors from the sink.
pub async fn verify_chain(
    sink: &dyn AuditSink,
    key: &VerifyingKey,
    chain: &ChainId,
    extra: &[Checkpoint],
) -> Result<Report> {
    if let Some(detail) = sink.structure_damage().await? {
        let d = damage(chain, 0, DamageKind::Restructured, detail);
        return Ok(Report::Damaged(d));
    }
    let head = match sink.head(chain).await {
        Ok(head) => head,
        Err(Error::CorruptRow { .. }) => {
            let d = damage(
                chain,
                0,
                DamageKind::Edited,
                "the stored chain head does not decode",
            );
            return Ok(Report::Damaged(d));
        }
        Err(e) => return Err(e),
    };
    let mut checkpoints = match sink.checkpoints(chain).await {
        Ok(c) => c,
        Err(Error::CorruptRow { seq, .. }) => {
            let d = damage(
                chain,
                seq,
                DamageKind::ForgedCheckpoint,
                "stored checkpoint does not decode",
            );
            return Ok(Report::Damaged(d));
        }
        Err(e) => return Err(e),
    };
    checkpoints.extend(extra.iter().filter(|c| &c.chain == chain).cloned());
    let (mut walk, forged) = Walk::new(chain, &checkpoints, key);
    walk.head = head;
    let mut cur = fetch(sink, chain, 1).await?;
    let mut next = fetch_after(sink, chain, &cur).await?;
    let finding = loop {
        // Read the page after `next` while checking `cur`: the database (or
        // SQLite's worker thread) produces rows while this task checks them.
        let (after, finding) = tokio::join!(fetch_after(sink, chain, &next), async {
            walk_page(&mut walk, &cur, &next)
        });
        if finding.is_some() {
            break finding;
        }
        if next.links.is_empty() && next.corrupt.is_none() {
            break walk.finish();
        }
        cur = next;
        next = after?;
    };
    Ok(walk.report(earliest(forged, finding)))
}

/// The page after `page`, or nothing if `page` was the last (short, or
/// ended at a row that does not decode).
async fn fetch_after(sink: &dyn AuditSink, chain: &ChainId, page: &Fetched) -> Result<Fetched> {
    match (&page.corrupt, page.links.last()) {
        (None, Some(last)) if page.links.len() == PAGE as usize => {
            fetch(sink, chain, last.position + 1).await
        }
        _ => Ok(Fetched::default()),
    }
}

/// Verifies events and checkpoints already in memory (an export, a test):
/// `events` must be the whole chain in seq order.
#[must_use]
pub fn verify_events(
    chain: &ChainId,
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> Report {
    let (mut walk, forged) = Walk::new(chain, checkpoints, key);
    let page = Fetched {
        links: Link::of_events(chain, events),
        corrupt: None,
    };
    let finding = walk_page(&mut walk, &page, &Fetched::default()).or_else(|| walk.finish());
    walk.report(earliest(forged, finding))
}

/// One page of links, and the seq of a row that failed to decode after them.
#[derive(Default)]
struct Fetched {
    links: Vec<Link>,
    corrupt: Option<u64>,
}

async fn fetch(sink: &dyn AuditSink, chain: &ChainId, from: u64) -> Result<Fetched> {
    match sink.links(chain, from, PAGE).await {
        Ok(links) => Ok(Fetched {
            links,
            corrupt: None,
        }),
        Err(Error::CorruptRow { seq, .. }) => {
            // Verify what precedes the undecodable row, then report it.
            let corrupt = seq.max(from);
            let before = u32::try_from(corrupt - from).unwrap_or(PAGE).min(PAGE);
            let links = if before == 0 {
                Vec::new()
            } else {
                sink.links(chain, from, before).await?
            };
            Ok(Fetched {
                links,
                corrupt: Some(corrupt),
            })
        }
        Err(e) => Err(e),
    }
}

fn walk_page(walk: &mut Walk<'_>, cur: &Fetched, next: &Fetched) -> Option<Damage> {
    let tail_known = cur.corrupt.is_none() && next.corrupt.is_none() && next.links.is_empty();
    for (i, link) in cur.links.iter().enumerate() {
        let rest = cur.links.get(i + 1..).unwrap_or_default();
        let ahead = |h: &EventHash| rest.iter().chain(&next.links).any(|l| l.hash == *h);
        let is_last = tail_known && rest.is_empty();
        if let Some(d) = walk.step(link, ahead, is_last) {
            return Some(d);
        }
    }
    cur.corrupt.map(|seq| {
        damage(
            walk.chain,
            seq,
            DamageKind::Edited,
            "stored row does not decode",
        )
    })
}

fn damage(chain: &ChainId, seq: u64, kind: DamageKind, detail: &'static str) -> Damage {
    Damage {
        chain: chain.clone(),
        seq,
        kind,
        detail,
    }
}

fn earliest(a: Option<Damage>, b: Option<Damage>) -> Option<Damage> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.seq < a.seq { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The state of a walk along one chain.
struct Walk<'a> {
    chain: &'a ChainId,
    /// The seq the next event must have.
    expected: u64,
    /// The hash the next event must link to.
    prev: EventHash,
    /// Validly signed checkpoints: seq -> hash.
    anchors: BTreeMap<u64, EventHash>,
    /// The stored chain head (seq, hash), read before the walk.
    head: Option<(u64, EventHash)>,
    events: u64,
}

impl<'a> Walk<'a> {
    /// Checks every checkpoint's signature; returns the walk and the
    /// earliest forged checkpoint.
    fn new(
        chain: &'a ChainId,
        checkpoints: &[Checkpoint],
        key: &VerifyingKey,
    ) -> (Self, Option<Damage>) {
        let mut anchors = BTreeMap::new();
        let mut forged = None;
        for cp in checkpoints.iter().filter(|c| &c.chain == chain) {
            if cp.verify(key) {
                anchors.insert(cp.seq, cp.hash);
            } else {
                let d = damage(
                    chain,
                    cp.seq,
                    DamageKind::ForgedCheckpoint,
                    "checkpoint signature is invalid",
                );
                forged = earliest(forged, Some(d));
            }
        }
        let walk = Self {
            chain,
            expected: 1,
            prev: EventHash::GENESIS,
            anchors,
            head: None,
            events: 0,
        };
        (walk, forged)
    }

    fn step(
        &mut self,
        l: &Link,
        ahead: impl Fn(&EventHash) -> bool,
        is_last: bool,
    ) -> Option<Damage> {
        let found = |seq, kind, detail| Some(damage(self.chain, seq, kind, detail));
        if l.position > self.expected {
            return found(self.expected, DamageKind::Deleted, "gap in the sequence");
        }
        if l.position < self.expected {
            return found(l.position, DamageKind::Reordered, "sequence out of order");
        }
        if l.seq != l.position {
            return found(
                l.position,
                DamageKind::Reordered,
                "event is stored under another seq than its own",
            );
        }
        if !l.in_chain {
            return found(l.seq, DamageKind::Edited, "event names another chain");
        }
        if l.prev_hash != self.prev {
            if ahead(&l.prev_hash) {
                return found(l.seq, DamageKind::Reordered, "event links to a later event");
            }
            if l.consistent && l.seq > 1 {
                return found(
                    l.seq - 1,
                    DamageKind::Edited,
                    "rewritten: its successor does not link to it",
                );
            }
            return found(
                l.seq,
                DamageKind::Edited,
                "prev_hash does not link to the previous event",
            );
        }
        if !l.consistent {
            return found(
                l.seq,
                DamageKind::Edited,
                "hash does not match the event's fields",
            );
        }
        if self
            .anchors
            .get(&l.seq)
            .is_some_and(|anchor| *anchor != l.hash)
        {
            return if is_last {
                found(
                    l.seq,
                    DamageKind::Truncated,
                    "last event differs from the signed checkpoint at its seq",
                )
            } else {
                found(
                    l.seq,
                    DamageKind::Edited,
                    "event differs from the signed checkpoint at its seq",
                )
            };
        }
        if self
            .head
            .is_some_and(|(seq, hash)| seq == l.seq && hash != l.hash)
        {
            return found(
                l.seq,
                DamageKind::Edited,
                "event differs from the chain head the writer stored",
            );
        }
        self.prev = l.hash;
        self.expected += 1;
        self.events += 1;
        None
    }

    fn finish(&self) -> Option<Damage> {
        let last_anchor = self.anchors.keys().next_back().copied().unwrap_or(0);
        if last_anchor >= self.expected {
            return Some(damage(
                self.chain,
                self.expected,
                DamageKind::Truncated,
                "a signed checkpoint covers events that are gone",
            ));
        }
        let head_seq = self.head.map_or(0, |(seq, _)| seq);
        (head_seq >= self.expected).then(|| {
            damage(
                self.chain,
                self.expected,
                DamageKind::Truncated,
                "the chain head the writer stored covers events that are gone",
            )
        })
    }

    fn report(&self, finding: Option<Damage>) -> Report {
        match finding {
            Some(d) => Report::Damaged(d),
            None => Report::Ok {
                chains: 1,
                events: self.events,
                checkpoints: u64::try_from(self.anchors.len()).unwrap_or(u64::MAX),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::checkpoint::CheckpointPolicy;
    use crate::event::{Action, Decision, NewEvent, Origin};
    use crate::sealer::{Head, Sealer};
    use crate::signer::CheckpointSigner;

    struct Fixture {
        chain: ChainId,
        events: Vec<AuditEvent>,
        checkpoints: Vec<Checkpoint>,
        key: VerifyingKey,
    }

    /// Ten events with checkpoints at 5 and 10.
    fn fixture() -> Fixture {
        let signer = Arc::new(CheckpointSigner::generate().unwrap());
        let key = signer.verifying_key();
        let chain = ChainId::parse("w").unwrap();
        let policy = CheckpointPolicy::new(5, Duration::from_secs(3600)).unwrap();
        let sealer = Sealer::new(crate::event::EventFormat::V1, chain.clone(), signer, policy);
        let mut head = Head::empty(Utc::now().timestamp_micros());
        let (mut events, mut checkpoints) = (Vec::new(), Vec::new());
        for i in 0..10 {
            let new = NewEvent::new(format!("a{i}"), Action::Read, Decision::Allow, Origin::Cli);
            let sealed = sealer.seal(&head, vec![new], Utc::now(), false).unwrap();
            head = sealed.head;
            events.extend(sealed.events);
            checkpoints.extend(sealed.checkpoint);
        }
        assert_eq!(
            checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![5, 10]
        );
        Fixture {
            chain,
            events,
            checkpoints,
            key,
        }
    }

    fn check(f: &Fixture) -> Option<(DamageKind, u64)> {
        verify_events(&f.chain, &f.events, &f.checkpoints, &f.key)
            .damage()
            .map(|d| (d.kind, d.seq))
    }

    #[test]
    fn intact_chain_verifies() {
        let f = fixture();
        let report = verify_events(&f.chain, &f.events, &f.checkpoints, &f.key);
        assert_eq!(
            report,
            Report::Ok {
                chains: 1,
                events: 10,
                checkpoints: 2
            }
        );
    }

    #[test]
    fn edited_field_is_found() {
        let mut f = fixture();
        f.events[3].path = Some("secret/elsewhere".into());
        assert_eq!(check(&f), Some((DamageKind::Edited, 4)));
    }

    #[test]
    fn rehashed_row_is_found_by_its_successor() {
        let mut f = fixture();
        f.events[2].decision = Decision::Deny;
        f.events[2].hash = f.events[2].compute_hash();
        assert_eq!(check(&f), Some((DamageKind::Edited, 3)));
    }

    #[test]
    fn rewritten_suffix_is_found_by_the_next_checkpoint() {
        let mut f = fixture();
        f.events[6].actor = "mallory".into();
        for i in 6..10 {
            if i > 6 {
                f.events[i].prev_hash = f.events[i - 1].hash;
            }
            f.events[i].hash = f.events[i].compute_hash();
        }
        assert_eq!(check(&f), Some((DamageKind::Truncated, 10)));
        f.events.pop();
        f.events[8].hash = f.events[8].compute_hash();
        assert_eq!(check(&f), Some((DamageKind::Truncated, 10)));
    }

    #[test]
    fn gap_is_a_deletion_and_tail_loss_a_truncation() {
        let mut f = fixture();
        f.events.remove(4);
        assert_eq!(check(&f), Some((DamageKind::Deleted, 5)));
        let mut f = fixture();
        f.events.truncate(8);
        assert_eq!(check(&f), Some((DamageKind::Truncated, 9)));
        let mut f = fixture();
        f.events.clear();
        assert_eq!(check(&f), Some((DamageKind::Truncated, 1)));
    }

    #[test]
    fn swapped_rows_are_reordered() {
        let mut f = fixture();
        f.events.swap(2, 3);
        f.events[2].seq = 3;
        f.events[3].seq = 4;
        assert_eq!(check(&f), Some((DamageKind::Reordered, 3)));
    }

    #[test]
    fn forged_checkpoint_is_found_even_with_intact_events() {
        let mut f = fixture();
        f.checkpoints[0].signature[0] ^= 1;
        assert_eq!(check(&f), Some((DamageKind::ForgedCheckpoint, 5)));
    }

    #[test]
    fn first_damage_wins() {
        let mut f = fixture();
        f.checkpoints[1].signature[0] ^= 1;
        f.events[1].actor = "x".into();
        assert_eq!(check(&f), Some((DamageKind::Edited, 2)));
    }
}
