//! The [`AuditSink`] conformance suite: every audit backend must pass it.
//!
//! Plain `async fn`s over a [`Harness`], which opens sinks on one backend
//! and tampers with its storage the way an attacker with database access
//! would. One `pub async fn` per property (append-only, gapless under
//! concurrency, durable after `append`, tampering detected, no secrets
//! stored, query filters), so each backend's test is named after it:
//!
//! ```text
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn sqlite_append_only() {
//!     weir_testkit::audit::append_only(&SqliteHarness::new()).await;
//! }
//! ```
//!
//! Like the object-store suites, these panic on the first broken
//! expectation.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures::future::join_all;
use weir_audit::{
    Action, AuditEvent, AuditKey, AuditSink, ChainId, Checkpoint, CheckpointSigner, DamageKind,
    Decision, Error, Filter, NewEvent, Origin, Page, Report, VerifyingKey, verify, verify_chain,
};

/// A change an attacker with write access to the database makes.
#[derive(Clone, Debug)]
pub enum Tamper {
    /// `UPDATE ... SET actor = ...` on one row, hash left alone.
    SetActor {
        /// The chain of the row.
        chain: ChainId,
        /// The seq of the row.
        seq: u64,
        /// The new actor.
        actor: String,
    },
    /// `DELETE` one row.
    Delete {
        /// The chain of the row.
        chain: ChainId,
        /// The seq of the row.
        seq: u64,
    },
    /// Exchange the seq of two rows.
    Swap {
        /// The chain of both rows.
        chain: ChainId,
        /// The seq of one row.
        a: u64,
        /// The seq of the other.
        b: u64,
    },
    /// Overwrite every column of the row at `(event.chain, event.seq)`.
    Replace {
        /// The forged row, stored at its own `(chain, seq)`.
        event: AuditEvent,
    },
    /// Insert a checkpoint row.
    InsertCheckpoint {
        /// The forged checkpoint.
        checkpoint: Checkpoint,
    },
}

/// What the suite needs from a backend.
///
/// # Contract
///
/// Every sink [`Harness::open`] returns writes to the same storage, which
/// outlives the sinks, and signs checkpoints with the key
/// [`Harness::verifying_key`] returns. [`Harness::tamper`] changes the
/// stored rows directly, the way an attacker with write access to the
/// database would (dropping the append-only triggers if it must).
///
/// # Errors
///
/// None: a harness panics when its backend fails, failing the test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A sink appending to `chain`, on the same storage every time.
    async fn open(&self, chain: &ChainId) -> Box<dyn AuditSink>;
    /// The key that verifies checkpoints of every sink `open` returns.
    fn verifying_key(&self) -> VerifyingKey;
    /// Applies `tamper` with raw SQL, bypassing the append-only triggers.
    async fn tamper(&self, tamper: Tamper);
    /// Tries a raw `UPDATE` without bypassing anything; true if refused.
    async fn raw_update_refused(&self, chain: &ChainId, seq: u64) -> bool;
}

fn chain(name: &str) -> ChainId {
    ChainId::parse(name).unwrap()
}

fn event(i: usize) -> NewEvent {
    NewEvent::new(
        format!("svc-{}", i % 3),
        Action::Read,
        Decision::Allow,
        Origin::Worker {
            host: "gpu-1".into(),
        },
    )
    .with_stage("01J0RUN", format!("stage-{}", i % 4), 1)
    .with_resource("lake", format!("raw/train/part-{i}.parquet"))
    .with_reason("grant train-readers")
}

async fn all_events(sink: &dyn AuditSink, chain: &ChainId) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    loop {
        let from = out.last().map_or(1, |e: &AuditEvent| e.seq + 1);
        let page = sink.events(chain, from, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

async fn fill(sink: &dyn AuditSink, n: usize) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(sink.append(event(i)).await.unwrap());
    }
    out
}

fn expect_damage(report: &Report, kind: DamageKind, seq: u64, what: &str) {
    let d = report
        .damage()
        .unwrap_or_else(|| panic!("{what}: tampering not detected"));
    assert_eq!((d.kind, d.seq), (kind, seq), "{what}: {d:?}");
}

/// Appends never change what is already stored, and the backend refuses a
/// plain `UPDATE` of a stored row.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn append_only(h: &dyn Harness) {
    let c = chain("append-only");
    let sink = h.open(&c).await;
    let first = fill(sink.as_ref(), 10).await;
    fill(sink.as_ref(), 10).await;
    assert_eq!(sink.events(&c, 1, 10).await.unwrap(), first);
    assert!(
        h.raw_update_refused(&c, 3).await,
        "stored rows must be append-only"
    );
    assert_eq!(sink.events(&c, 3, 1).await.unwrap()[0], first[2]);
}

/// 8 concurrent appenders x 500 events, over two sinks sharing one chain:
/// seqs are exactly 1..=4000, each returned once, and the chain verifies.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn gapless_under_concurrency(h: &dyn Harness) {
    let c = chain("concurrent");
    let sinks = [h.open(&c).await, h.open(&c).await];
    let tasks = (0..8).map(|t| {
        let sink = &sinks[t % 2];
        async move {
            let mut seqs = Vec::new();
            for i in 0..500 {
                seqs.push(sink.append(event(t * 1000 + i)).await.unwrap().seq);
            }
            seqs
        }
    });
    let returned: Vec<u64> = join_all(tasks).await.into_iter().flatten().collect();
    let unique: BTreeSet<u64> = returned.iter().copied().collect();
    assert_eq!(returned.len(), 4000);
    assert_eq!(
        unique,
        (1..=4000).collect::<BTreeSet<u64>>(),
        "gapless, no duplicates"
    );
    let stored = all_events(sinks[0].as_ref(), &c).await;
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=4000).collect::<Vec<_>>()
    );
    sinks[0].checkpoint_now().await.unwrap();
    let report = verify(sinks[0].as_ref(), &h.verifying_key()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// What `append` returned is read back, identical, by a fresh sink after the
/// first one is dropped without a clean shutdown.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn durable_after_append(h: &dyn Harness) {
    let c = chain("durable");
    let sink = h.open(&c).await;
    let appended: Vec<AuditEvent> = join_all((0..200).map(|i| sink.append(event(i))))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(sink);
    let reopened = h.open(&c).await;
    let mut stored = all_events(reopened.as_ref(), &c).await;
    let mut expected = appended;
    expected.sort_by_key(|e| e.seq);
    stored.truncate(expected.len());
    assert_eq!(stored, expected);
    let next = reopened.append(event(999)).await.unwrap();
    assert_eq!(next.seq, 201, "the chain continues after reopening");
    assert_eq!(next.prev_hash, expected.last().unwrap().hash);
}

/// Every kind of tampering is found, at the right seq.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn tampering_detected(h: &dyn Harness) {
    let key = h.verifying_key();
    let check = |name: &'static str| async move {
        let c = chain(name);
        let sink = h.open(&c).await;
        let events = fill(sink.as_ref(), 12).await;
        sink.checkpoint_now().await.unwrap();
        assert!(
            verify_chain(sink.as_ref(), &key, &c, &[])
                .await
                .unwrap()
                .is_ok()
        );
        (c, sink, events)
    };

    let (c, sink, _) = check("edit-field").await;
    h.tamper(Tamper::SetActor {
        chain: c.clone(),
        seq: 5,
        actor: "someone-else".into(),
    })
    .await;
    expect_damage(
        &verify_chain(sink.as_ref(), &key, &c, &[]).await.unwrap(),
        DamageKind::Edited,
        5,
        "field edited",
    );

    let (c, sink, _) = check("delete-middle").await;
    h.tamper(Tamper::Delete {
        chain: c.clone(),
        seq: 6,
    })
    .await;
    expect_damage(
        &verify_chain(sink.as_ref(), &key, &c, &[]).await.unwrap(),
        DamageKind::Deleted,
        6,
        "middle row deleted",
    );

    let (c, sink, _) = check("delete-tail").await;
    for seq in [10, 11, 12] {
        h.tamper(Tamper::Delete {
            chain: c.clone(),
            seq,
        })
        .await;
    }
    expect_damage(
        &verify_chain(sink.as_ref(), &key, &c, &[]).await.unwrap(),
        DamageKind::Truncated,
        10,
        "last rows deleted",
    );

    let (c, sink, _) = check("swap").await;
    h.tamper(Tamper::Swap {
        chain: c.clone(),
        a: 4,
        b: 7,
    })
    .await;
    expect_damage(
        &verify_chain(sink.as_ref(), &key, &c, &[]).await.unwrap(),
        DamageKind::Reordered,
        4,
        "rows swapped",
    );

    let (c, sink, events) = check("rehash-middle").await;
    let mut forged = events[4].clone();
    forged.decision = Decision::Deny;
    forged.hash = forged.compute_hash();
    h.tamper(Tamper::Replace { event: forged }).await;
    expect_damage(
        &verify_chain(sink.as_ref(), &key, &c, &[]).await.unwrap(),
        DamageKind::Edited,
        5,
        "row edited, hash recomputed",
    );

    let (c, sink, events) = check("rehash-tail").await;
    let mut forged = events[11].clone();
    forged.actor = "nobody".into();
    forged.hash = forged.compute_hash();
    h.tamper(Tamper::Replace { event: forged }).await;
    expect_damage(
        &verify_chain(sink.as_ref(), &key, &c, &[]).await.unwrap(),
        DamageKind::Truncated,
        12,
        "last row edited, hash recomputed",
    );

    let (c, sink, events) = check("forged-checkpoint").await;
    let mut cp = sink.checkpoints(&c).await.unwrap().pop().unwrap();
    cp.seq = 3;
    cp.hash = events[2].hash;
    h.tamper(Tamper::InsertCheckpoint { checkpoint: cp }).await;
    expect_damage(
        &verify_chain(sink.as_ref(), &key, &c, &[]).await.unwrap(),
        DamageKind::ForgedCheckpoint,
        3,
        "forged checkpoint",
    );

    let (c, sink, _) = check("other-key").await;
    let other = CheckpointSigner::generate().unwrap().verifying_key();
    let report = verify_chain(sink.as_ref(), &other, &c, &[]).await.unwrap();
    assert_eq!(
        report.damage().map(|d| d.kind),
        Some(DamageKind::ForgedCheckpoint)
    );
}

/// Credentials are refused and nothing of them is stored; token ids are
/// stored only as HMACs, and an auditor can look them up with the key.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn no_secrets_stored(h: &dyn Harness) {
    let c = chain("secrets");
    let sink = h.open(&c).await;
    let jwt = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJzdmMtdHJhaW4ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc";
    let attempts = [
        event(0).with_reason(format!("Bearer {jwt}")),
        event(0).with_resource("lake", format!("raw/{jwt}")),
        NewEvent::new(jwt, Action::Read, Decision::Allow, Origin::Api),
        event(0).with_stage(jwt, "s", 1),
    ];
    for attempt in attempts {
        let err = sink.append(attempt).await.unwrap_err();
        assert!(matches!(err, Error::InvalidEvent { .. }), "{err:?}");
        assert!(
            !format!("{err} {err:?}").contains(jwt),
            "errors never echo the value"
        );
    }
    assert!(
        sink.events(&c, 1, 10).await.unwrap().is_empty(),
        "nothing was stored"
    );

    let key = AuditKey::generate().unwrap();
    let jti = "01J0TOKENID";
    let stored = sink
        .append(event(1).with_token(key.token_id_hmac(jti)))
        .await
        .unwrap();
    let json = serde_json::to_string(&stored).unwrap();
    assert!(!json.contains(jti), "raw token id never stored");
    let found = sink
        .query(
            &Filter::all().chain(c.clone()).token(key.token_id_hmac(jti)),
            Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(found, vec![stored]);
    assert_eq!(
        found[0].token_id_hmac.as_ref().unwrap().as_str(),
        key.hash_value(jti)
    );
}

/// Filters match exactly, the path prefix is segment-aware, hostile filter
/// values are plain data, and paging walks every event once.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn query_filters(h: &dyn Harness) {
    let c = chain("query");
    let sink = h.open(&c).await;
    let base = |actor: &str, path: &str, decision| {
        NewEvent::new(actor, Action::Read, decision, Origin::Cli).with_resource("lake", path)
    };
    sink.append(base("alice", "data/train", Decision::Allow))
        .await
        .unwrap();
    sink.append(base("alice", "data/train/a.parquet", Decision::Allow))
        .await
        .unwrap();
    sink.append(base("bob", "data/training/b.parquet", Decision::Deny))
        .await
        .unwrap();
    sink.append(base("bob", "data/test/c.parquet", Decision::Allow).with_run("r1"))
        .await
        .unwrap();
    let (sink_ref, c_ref) = (&sink, &c);
    let q = move |f: Filter| async move {
        sink_ref
            .query(&f.chain(c_ref.clone()), Page::first(100))
            .await
            .unwrap()
    };
    assert_eq!(
        q(Filter::all().path_prefix("data/train")).await.len(),
        2,
        "segment-aware"
    );
    assert_eq!(q(Filter::all().path_prefix("data/train/")).await.len(), 2);
    assert_eq!(q(Filter::all().path_prefix("data")).await.len(), 4);
    assert_eq!(
        q(Filter::all().actor("bob").decision(Decision::Deny))
            .await
            .len(),
        1
    );
    assert_eq!(q(Filter::all().run("r1")).await.len(), 1);
    assert_eq!(q(Filter::all().action(Action::Write)).await.len(), 0);
    assert_eq!(
        q(Filter::all().actor("alice' OR '1'='1")).await.len(),
        0,
        "injection is data"
    );
    assert_eq!(
        q(Filter::all().path_prefix("data/%")).await.len(),
        0,
        "no LIKE wildcards"
    );
    assert_eq!(
        q(Filter::all().path_prefix("data/_rain")).await.len(),
        0,
        "no LIKE wildcards"
    );
    let first = q(Filter::all()).await;
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::days(1);
    assert_eq!(
        q(Filter::all().between(old, now + chrono::Duration::seconds(5)))
            .await
            .len(),
        4
    );
    assert_eq!(
        q(Filter::all().between(old, first[0].time)).await.len(),
        0,
        "until is exclusive"
    );

    let mut seen = Vec::new();
    let mut page = Page::first(3);
    loop {
        let got = sink
            .query(&Filter::all().chain(c.clone()), page.clone())
            .await
            .unwrap();
        let Some(last) = got.last() else { break };
        page = Page::after(last, 3);
        seen.extend(got.iter().map(|e| e.seq));
    }
    assert_eq!(seen, vec![1, 2, 3, 4]);
    assert!(sink.query(&Filter::all(), Page::first(0)).await.is_err());
}
