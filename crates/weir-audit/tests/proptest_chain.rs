//! Property tests: random event streams written through a real sink verify;
//! any single mutation of what is stored is detected, at the right seq.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use proptest::prelude::*;
use weir_audit::{
    Action, AuditEvent, AuditSink, ChainId, Checkpoint, CheckpointPolicy, CheckpointSigner,
    DamageKind, Decision, NewEvent, Origin, SinkConfig, SqliteSink, VerifyingKey, verify,
    verify_events,
};

fn arb_event() -> impl Strategy<Value = NewEvent> {
    (
        "[a-z][a-z0-9-]{0,11}",
        prop::option::of(("[A-Z0-9]{4,8}", "[a-z]{1,8}", 1u32..5)),
        prop::sample::select(Action::ALL.to_vec()),
        prop::sample::select(vec![Decision::Allow, Decision::Deny, Decision::None]),
        prop::option::of(("[a-z]{1,6}", "[a-z0-9/._-]{0,40}")),
        prop::option::of("[a-zA-Z ,:]{0,60}"),
        prop::sample::select(vec![
            Origin::Cli,
            Origin::Api,
            Origin::Worker {
                host: "gpu-1".into(),
            },
        ]),
    )
        .prop_map(
            |(actor, stage, action, decision, resource, reason, origin)| {
                let mut e = NewEvent::new(actor, action, decision, origin);
                if let Some((run, stage, attempt)) = stage {
                    e = e.with_stage(run, stage, attempt);
                }
                if let Some((store, path)) = resource {
                    e = e.with_resource(store, path);
                }
                if let Some(reason) = reason {
                    e = e.with_reason(reason);
                }
                e
            },
        )
}

#[derive(Clone, Debug)]
enum Mutation {
    EditField { at: usize, field: u8 },
    EditAndRehash { at: usize },
    Delete { at: usize },
    Swap { a: usize, b: usize },
    Truncate { keep: usize },
    ForgeCheckpoint { at: usize },
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..6).prop_map(|(at, field)| Mutation::EditField { at, field }),
        any::<usize>().prop_map(|at| Mutation::EditAndRehash { at }),
        any::<usize>().prop_map(|at| Mutation::Delete { at }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        any::<usize>().prop_map(|at| Mutation::ForgeCheckpoint { at }),
    ]
}

struct Stored {
    chain: ChainId,
    events: Vec<AuditEvent>,
    checkpoints: Vec<Checkpoint>,
    key: VerifyingKey,
}

/// Writes `stream` through a fresh SQLite sink (concurrently, so batches
/// vary), checks the stored log verifies, and returns it.
fn write(stream: Vec<NewEvent>, every: u64) -> Stored {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(CheckpointSigner::generate().unwrap());
        let chain = ChainId::parse("prop").unwrap();
        let policy = CheckpointPolicy::new(every, Duration::from_secs(3600)).unwrap();
        let config = SinkConfig::new(chain.clone(), Arc::clone(&signer)).with_checkpoints(policy);
        let sink = SqliteSink::open(&dir.path().join("a.db"), config)
            .await
            .unwrap();
        let n = stream.len();
        for r in join_all(stream.into_iter().map(|e| sink.append(e))).await {
            r.unwrap();
        }
        sink.checkpoint_now().await.unwrap();
        let key = signer.verifying_key();
        assert!(verify(&sink, &key).await.unwrap().is_ok());
        let events = sink.events(&chain, 1, 10_000).await.unwrap();
        assert_eq!(events.len(), n);
        let checkpoints = sink.checkpoints(&chain).await.unwrap();
        sink.close().await.unwrap();
        Stored {
            chain,
            events,
            checkpoints,
            key,
        }
    })
}

/// Applies `m`; returns the damage it must produce.
fn apply(s: &mut Stored, m: &Mutation) -> (DamageKind, u64) {
    let n = s.events.len();
    let last = n as u64;
    match *m {
        Mutation::EditField { at, field } => {
            let e = &mut s.events[at % n];
            match field {
                0 => e.actor.push('x'),
                1 => e.path = Some(format!("{}/x", e.path.clone().unwrap_or_default())),
                2 => {
                    e.decision = if e.decision == Decision::Allow {
                        Decision::Deny
                    } else {
                        Decision::Allow
                    }
                }
                3 => e.time += chrono::Duration::microseconds(1),
                4 => e.attempt = Some(e.attempt.map_or(7, |a| a + 1)),
                _ => e.reason = Some(format!("{} ", e.reason.clone().unwrap_or_default())),
            }
            (DamageKind::Edited, e.seq)
        }
        Mutation::EditAndRehash { at } => {
            let e = &mut s.events[at % n];
            e.actor.push('x');
            e.hash = e.compute_hash();
            let kind = if e.seq == last {
                DamageKind::Truncated
            } else {
                DamageKind::Edited
            };
            (kind, e.seq)
        }
        Mutation::Delete { at } => {
            let seq = s.events.remove(at % n).seq;
            let kind = if seq == last {
                DamageKind::Truncated
            } else {
                DamageKind::Deleted
            };
            (kind, seq)
        }
        Mutation::Swap { a, b } => {
            let a = a % (n - 1);
            let b = a + 1 + b % (n - 1 - a);
            s.events.swap(a, b);
            let (sa, sb) = (s.events[b].seq, s.events[a].seq);
            s.events[a].seq = sa;
            s.events[b].seq = sb;
            (DamageKind::Reordered, sa)
        }
        Mutation::Truncate { keep } => {
            let keep = keep % n;
            s.events.truncate(keep);
            (DamageKind::Truncated, keep as u64 + 1)
        }
        Mutation::ForgeCheckpoint { at } => {
            let i = at % s.checkpoints.len();
            s.checkpoints[i].signature[7] ^= 0x20;
            (DamageKind::ForgedCheckpoint, s.checkpoints[i].seq)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_streams_verify_and_any_single_mutation_is_detected(
        stream in prop::collection::vec(arb_event(), 2..40),
        every in 1u64..12,
        mutations in prop::collection::vec(arb_mutation(), 6),
    ) {
        let stored = write(stream, every);
        let ok = verify_events(&stored.chain, &stored.events, &stored.checkpoints, &stored.key);
        prop_assert!(ok.is_ok(), "{ok:?}");
        for m in &mutations {
            let mut s = Stored {
                chain: stored.chain.clone(),
                events: stored.events.clone(),
                checkpoints: stored.checkpoints.clone(),
                key: stored.key,
            };
            let (kind, seq) = apply(&mut s, m);
            let report = verify_events(&s.chain, &s.events, &s.checkpoints, &s.key);
            let damage = report.damage().map(|d| (d.kind, d.seq));
            prop_assert_eq!(damage, Some((kind, seq)), "{:?}", m);
        }
    }
}
