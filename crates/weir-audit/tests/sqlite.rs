//! The conformance suite and backend-specific checks against [`SqliteSink`].

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Connection, SqliteConnection};
use weir_audit::{
    Action, AuditSink, ChainId, CheckpointPolicy, CheckpointSigner, DamageKind, Decision,
    FailingSink, NewEvent, Origin, SinkConfig, SqliteSink, VerifyingKey, read_mirror, verify,
    verify_with_mirror,
};
use weir_testkit::audit::{self as conformance, Harness, Tamper};

struct SqliteHarness {
    _dir: tempfile::TempDir,
    db: PathBuf,
    signer: Arc<CheckpointSigner>,
}

impl SqliteHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.db");
        Self {
            _dir: dir,
            db,
            signer: Arc::new(CheckpointSigner::generate().unwrap()),
        }
    }

    async fn raw(&self) -> SqliteConnection {
        let url = format!("sqlite://{}", self.db.display());
        SqliteConnection::connect(&url).await.unwrap()
    }
}

const DROP_TRIGGERS: &str = "DROP TRIGGER IF EXISTS audit_events_no_update;
DROP TRIGGER IF EXISTS audit_events_no_delete;
DROP TRIGGER IF EXISTS audit_checkpoints_no_update;
DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;";

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self, chain: &ChainId) -> Box<dyn AuditSink> {
        let config = SinkConfig::new(chain.clone(), Arc::clone(&self.signer));
        Box::new(SqliteSink::open(&self.db, config).await.unwrap())
    }

    fn verifying_key(&self) -> VerifyingKey {
        self.signer.verifying_key()
    }

    async fn tamper(&self, tamper: Tamper) {
        let mut conn = self.raw().await;
        sqlx::raw_sql(DROP_TRIGGERS)
            .execute(&mut conn)
            .await
            .unwrap();
        let seq = |s: u64| i64::try_from(s).unwrap();
        match tamper {
            Tamper::SetActor {
                chain,
                seq: s,
                actor,
            } => {
                sqlx::query("UPDATE audit_events SET actor = ?1 WHERE chain = ?2 AND seq = ?3")
                    .bind(actor)
                    .bind(chain.as_str())
                    .bind(seq(s))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Tamper::Delete { chain, seq: s } => {
                sqlx::query("DELETE FROM audit_events WHERE chain = ?1 AND seq = ?2")
                    .bind(chain.as_str())
                    .bind(seq(s))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Tamper::Swap { chain, a, b } => {
                for (from, to) in [(seq(a), -1), (seq(b), seq(a)), (-1, seq(b))] {
                    sqlx::query("UPDATE audit_events SET seq = ?1 WHERE chain = ?2 AND seq = ?3")
                        .bind(to)
                        .bind(chain.as_str())
                        .bind(from)
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
            }
            Tamper::Replace { event: e } => {
                sqlx::query(
                    "UPDATE audit_events SET time_us = ?1, actor = ?2, run = ?3, stage = ?4, \
                     attempt = ?5, action = ?6, store = ?7, path = ?8, decision = ?9, reason = ?10, \
                     token_id_hmac = ?11, origin = ?12, prev_hash = ?13, hash = ?14 \
                     WHERE chain = ?15 AND seq = ?16",
                )
                .bind(e.time.timestamp_micros())
                .bind(&e.actor)
                .bind(&e.run)
                .bind(&e.stage)
                .bind(e.attempt.map(i64::from))
                .bind(e.action.as_str())
                .bind(&e.store)
                .bind(&e.path)
                .bind(e.decision.as_str())
                .bind(&e.reason)
                .bind(e.token_id_hmac.as_ref().map(|t| t.as_str().to_owned()))
                .bind(e.origin.encode().into_owned())
                .bind(e.prev_hash.to_hex())
                .bind(e.hash.to_hex())
                .bind(e.chain.as_str())
                .bind(seq(e.seq))
                .execute(&mut conn)
                .await
                .unwrap();
            }
            Tamper::InsertCheckpoint { checkpoint: cp } => {
                sqlx::query(
                    "INSERT INTO audit_checkpoints (chain, seq, hash, time_us, signature) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .bind(cp.chain.as_str())
                .bind(seq(cp.seq))
                .bind(cp.hash.to_hex())
                .bind(cp.time.timestamp_micros())
                .bind(hex_encode(&cp.signature))
                .execute(&mut conn)
                .await
                .unwrap();
            }
        }
    }

    async fn raw_update_refused(&self, chain: &ChainId, seq: u64) -> bool {
        let mut conn = self.raw().await;
        sqlx::query("UPDATE audit_events SET actor = 'x' WHERE chain = ?1 AND seq = ?2")
            .bind(chain.as_str())
            .bind(i64::try_from(seq).unwrap())
            .execute(&mut conn)
            .await
            .is_err()
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_append_only() {
    conformance::append_only(&SqliteHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_gapless_under_concurrency() {
    conformance::gapless_under_concurrency(&SqliteHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_durable_after_append() {
    conformance::durable_after_append(&SqliteHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tampering_detected() {
    conformance::tampering_detected(&SqliteHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_no_secrets_stored() {
    conformance::no_secrets_stored(&SqliteHarness::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_query_filters() {
    conformance::query_filters(&SqliteHarness::new()).await;
}

fn ev(i: u32) -> NewEvent {
    NewEvent::new("svc", Action::Write, Decision::Allow, Origin::Cli)
        .with_resource("lake", format!("out/{i}"))
}

#[tokio::test]
async fn database_and_keys_are_owner_only() {
    use std::os::unix::fs::MetadataExt;
    let state = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::open_or_create(state.path()).unwrap());
    let config = SinkConfig::new(ChainId::parse("cli").unwrap(), signer);
    let sink = SqliteSink::open_in_state_dir(state.path(), config)
        .await
        .unwrap();
    sink.append(ev(1)).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(sink.path()), 0o600);
    assert_eq!(mode(&state.path().join("audit")), 0o700);
    assert_eq!(mode(&state.path().join("keys/audit")), 0o700);
    assert_eq!(mode(&state.path().join("keys/audit/checkpoint.key")), 0o600);
    sink.close().await.unwrap();
}

#[tokio::test]
async fn close_signs_a_final_checkpoint_and_refuses_later_appends() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("closing").unwrap();
    let config = SinkConfig::new(c.clone(), Arc::clone(&h.signer));
    let sink = SqliteSink::open(&h.db, config.clone()).await.unwrap();
    let last = sink.append(ev(1)).await.unwrap();
    sink.close().await.unwrap();
    let sink = SqliteSink::open(&h.db, config).await.unwrap();
    let cps = sink.checkpoints(&c).await.unwrap();
    assert_eq!(
        cps.last().map(|cp| (cp.seq, cp.hash)),
        Some((last.seq, last.hash))
    );
}

#[tokio::test]
async fn checkpoints_follow_the_event_count_policy() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("policy").unwrap();
    let policy = CheckpointPolicy::new(5, std::time::Duration::from_secs(3600)).unwrap();
    let config = SinkConfig::new(c.clone(), Arc::clone(&h.signer)).with_checkpoints(policy);
    let sink = SqliteSink::open(&h.db, config).await.unwrap();
    for i in 0..12 {
        sink.append(ev(i)).await.unwrap();
    }
    let seqs: Vec<u64> = sink
        .checkpoints(&c)
        .await
        .unwrap()
        .iter()
        .map(|cp| cp.seq)
        .collect();
    assert_eq!(seqs, vec![5, 10]);
}

#[tokio::test]
async fn checkpoints_follow_the_time_policy() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("timed").unwrap();
    let policy = CheckpointPolicy::new(1_000_000, std::time::Duration::from_millis(50)).unwrap();
    let config = SinkConfig::new(c.clone(), Arc::clone(&h.signer)).with_checkpoints(policy);
    let sink = SqliteSink::open(&h.db, config).await.unwrap();
    let e = sink.append(ev(1)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cps = sink.checkpoints(&c).await.unwrap();
    assert_eq!(
        cps.last().map(|cp| cp.seq),
        Some(e.seq),
        "idle writer still checkpoints"
    );
}

#[tokio::test]
async fn mirror_catches_deleted_checkpoints_and_tail() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("mirrored").unwrap();
    let mirror = h._dir.path().join("checkpoints.jsonl");
    let config = SinkConfig::new(c.clone(), Arc::clone(&h.signer)).with_mirror(&mirror);
    let sink = SqliteSink::open(&h.db, config).await.unwrap();
    for i in 0..6 {
        sink.append(ev(i)).await.unwrap();
    }
    sink.checkpoint_now().await.unwrap();
    // The attacker removes the tail and every checkpoint row.
    let mut conn = h.raw().await;
    sqlx::raw_sql(DROP_TRIGGERS)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE chain = ?1 AND seq > 4")
        .bind(c.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_checkpoints WHERE chain = ?1")
        .bind(c.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    let key = h.signer.verifying_key();
    assert!(
        verify(&sink, &key).await.unwrap().is_ok(),
        "invisible without the mirror"
    );
    let mirrored = read_mirror(&mirror).unwrap();
    let report = verify_with_mirror(&sink, &key, &mirrored).await.unwrap();
    let d = report.damage().unwrap();
    assert_eq!((d.kind, d.seq), (DamageKind::Truncated, 5));
}

#[tokio::test]
async fn corrupted_column_is_reported_as_an_edit() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("corrupt").unwrap();
    let sink = h.open(&c).await;
    for i in 0..5 {
        sink.append(ev(i)).await.unwrap();
    }
    let mut conn = h.raw().await;
    sqlx::raw_sql(DROP_TRIGGERS)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET decision = 'maybe' WHERE chain = ?1 AND seq = 3")
        .bind(c.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
    let report = verify(sink.as_ref(), &h.signer.verifying_key())
        .await
        .unwrap();
    let d = report.damage().unwrap();
    assert_eq!((d.kind, d.seq), (DamageKind::Edited, 3));
}

#[tokio::test]
async fn failing_sink_fails_the_kth_append_only() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("faulty").unwrap();
    let config = SinkConfig::new(c.clone(), Arc::clone(&h.signer));
    let sink = FailingSink::new(SqliteSink::open(&h.db, config).await.unwrap(), 2);
    assert_eq!(sink.append(ev(1)).await.unwrap().seq, 1);
    assert!(matches!(
        sink.append(ev(2)).await,
        Err(weir_audit::Error::Injected { append: 2 })
    ));
    assert_eq!(
        sink.append(ev(3)).await.unwrap().seq,
        2,
        "the failed event was never written"
    );
    assert_eq!(sink.appends(), 3);
    let dead = FailingSink::from_kth(sink, 1);
    assert!(dead.append(ev(4)).await.is_err());
    assert!(dead.append(ev(5)).await.is_err());
}

/// Thousands of appends queued at once commit as large batches, written
/// with multi-row INSERTs of 1024, 512, ... rows; every one comes back in
/// order, and the chain verifies across many verification pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_commit_whole_and_verify() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("large").unwrap();
    let sink = h.open(&c).await;
    let appends = (0..5_000).map(|i| sink.append(ev(i)));
    let mut seqs: Vec<u64> = futures::future::join_all(appends)
        .await
        .into_iter()
        .map(|r| r.unwrap().seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=5_000).collect::<Vec<_>>());
    let stored = sink.events(&c, 1000, 2000).await.unwrap();
    assert_eq!(stored.len(), 2000);
    assert!(stored.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    sink.checkpoint_now().await.unwrap();
    let report = verify(sink.as_ref(), &h.signer.verifying_key())
        .await
        .unwrap();
    assert!(
        matches!(
            report,
            weir_audit::Report::Ok {
                chains: 1,
                events: 5_000,
                checkpoints: 1..
            }
        ),
        "{report:?}"
    );
}
