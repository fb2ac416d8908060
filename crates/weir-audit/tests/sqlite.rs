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
                // Format 2: the columns are computed from the record, so the
                // edit is made to the record itself.
                sqlx::query(
                    "UPDATE audit_events SET record = json_set(record, '$.actor', ?1) \
                     WHERE chain = ?2 AND seq = ?3",
                )
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
                sqlx::query("UPDATE audit_events SET record = ?1 WHERE chain = ?2 AND seq = ?3")
                    .bind(e.to_record().unwrap())
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
        sqlx::query("UPDATE audit_events SET record = '{}' WHERE chain = ?1 AND seq = ?2")
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
    let d = verify(&sink, &key)
        .await
        .unwrap()
        .damage()
        .cloned()
        .unwrap();
    assert_eq!(
        (d.kind, d.seq),
        (DamageKind::Truncated, 5),
        "the stored chain head still names seq 6"
    );
    // A careful attacker also winds the chain head back to seq 4.
    let fourth = sink.events(&c, 4, 1).await.unwrap().remove(0);
    sqlx::query("UPDATE audit_heads SET seq = 4, hash = ?1 WHERE chain = ?2")
        .bind(fourth.hash.to_string())
        .bind(c.as_str())
        .execute(&mut conn)
        .await
        .unwrap();
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
    sqlx::query(
        "UPDATE audit_events SET record = json_set(record, '$.decision', 'maybe') \
         WHERE chain = ?1 AND seq = 3",
    )
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

/// Text that needs JSON escaping (quotes, backslashes), SQL-looking text
/// and non-ASCII is stored in the record byte for byte: it reads back
/// equal, filters match it through the generated columns, and the chain
/// verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_keep_hostile_text_exactly() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("escapes").unwrap();
    let sink = h.open(&c).await;
    assert_eq!(sink_format(&h, &c).await, weir_audit::EventFormat::V2);
    let actor = r#"o'brien "the" \admin\ ünï"#;
    let path = r#"raw/it's "quoted"/a\b/$.actor/%_/日本.parquet"#;
    let reason = "'); DROP TABLE audit_events; -- \u{2028} end";
    let stored = sink
        .append(
            NewEvent::new(actor, Action::Read, Decision::Allow, Origin::Cli)
                .with_resource("lake", path)
                .with_reason(reason),
        )
        .await
        .unwrap();
    assert_eq!(
        (stored.actor.as_str(), stored.reason.as_deref()),
        (actor, Some(reason))
    );
    assert_eq!(sink.events(&c, 1, 10).await.unwrap(), vec![stored.clone()]);
    let found = sink
        .query(
            &weir_audit::Filter::all()
                .actor(actor)
                .path_prefix(r#"raw/it's "quoted""#),
            weir_audit::Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(found, vec![stored]);
    sink.checkpoint_now().await.unwrap();
    assert!(
        verify(sink.as_ref(), &h.signer.verifying_key())
            .await
            .unwrap()
            .is_ok()
    );
}

async fn sink_format(h: &SqliteHarness, c: &ChainId) -> weir_audit::EventFormat {
    let config = SinkConfig::new(c.clone(), Arc::clone(&h.signer));
    let sink = SqliteSink::open(&h.db, config).await.unwrap();
    let format = sink.format();
    sink.close().await.unwrap();
    format
}

/// An attacker who redefines a column of the fields view (here `actor` to
/// read the record's `store`) changes what queries show without touching a
/// hashed byte; one who adds a column to the events table could store
/// values beside the records. Verification reports either as a
/// restructured table, and no sink opens the file again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redefined_table_or_view_is_reported_and_refused() {
    let tampers = [
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = replace(sql, '''$.actor''', '''$.store''')
         WHERE type = 'view' AND name = 'audit_event_fields';",
        "ALTER TABLE audit_events ADD COLUMN note TEXT;",
    ];
    for tamper in tampers {
        let h = SqliteHarness::new();
        let c = ChainId::parse("restructured").unwrap();
        let sink = h.open(&c).await;
        for i in 0..3 {
            sink.append(ev(i)).await.unwrap();
        }
        let key = h.signer.verifying_key();
        assert!(verify(sink.as_ref(), &key).await.unwrap().is_ok());
        let mut conn = h.raw().await;
        sqlx::raw_sql(tamper).execute(&mut conn).await.unwrap();
        let report = verify(sink.as_ref(), &key).await.unwrap();
        let d = report.damage().unwrap();
        assert_eq!(
            (d.kind, d.seq),
            (DamageKind::Restructured, 0),
            "{tamper}: {d:?}"
        );
        let config = SinkConfig::new(c.clone(), Arc::clone(&h.signer));
        let err = SqliteSink::open(&h.db, config).await.err().unwrap();
        assert!(
            matches!(err, weir_audit::Error::Restructured { .. }),
            "{tamper}: {err:?}"
        );
    }
}

/// A log of 1,500 events (three verification chunks) on which `edit` was
/// run with `?1` = `seq`, its triggers dropped first.
async fn tampered_log_of_1500(
    chain: &str,
    edit: &'static str,
    seq: i32,
) -> (SqliteHarness, Box<dyn AuditSink>) {
    let h = SqliteHarness::new();
    let sink = h.open(&ChainId::parse(chain).unwrap()).await;
    futures::future::join_all((0..1_500).map(|i| sink.append(ev(i))))
        .await
        .into_iter()
        .for_each(|r| assert!(r.is_ok()));
    let mut conn = h.raw().await;
    sqlx::raw_sql(DROP_TRIGGERS)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(edit)
        .bind(i64::from(seq))
        .execute(&mut conn)
        .await
        .unwrap();
    (h, sink)
}

/// Verification reads rows in chunks joined by the byte 0x1E; a record
/// edited to hold that byte, or a plain edit chunks away from the start,
/// is still named exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_is_named_exactly_in_any_chunk() {
    let edits = [
        (
            1_100,
            "UPDATE audit_events SET record = json_set(record, '$.actor', 'x') WHERE seq = ?1",
        ),
        (
            700,
            "UPDATE audit_events SET record = record || char(30) || '{}' WHERE seq = ?1",
        ),
        (
            3,
            "UPDATE audit_events SET record = char(30) WHERE seq = ?1",
        ),
        (1_499, "UPDATE audit_events SET seq = 2000 WHERE seq = ?1"),
    ];
    for (seq, edit) in edits {
        let (h, sink) = tampered_log_of_1500("chunks", edit, seq).await;
        let report = verify(sink.as_ref(), &h.signer.verifying_key())
            .await
            .unwrap();
        let d = report.damage().unwrap();
        let seq = u64::try_from(seq).unwrap();
        let expected = if edit.contains("SET seq") {
            (DamageKind::Deleted, seq)
        } else {
            (DamageKind::Edited, seq)
        };
        assert_eq!((d.kind, d.seq), expected, "{edit}: {d:?}");
    }
}

/// A row moved under a seq that is not an integer (SQLite stores what it
/// is given) sorts after every other row. Verification cannot place it in
/// the chain and fails with an error naming the column and the position
/// after the last row it read, rather than passing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_that_is_not_an_integer_fails_verification() {
    let (h, sink) = tampered_log_of_1500(
        "text-seq",
        "UPDATE audit_events SET seq = 'x' WHERE seq = ?1",
        1_200,
    )
    .await;
    match verify(sink.as_ref(), &h.signer.verifying_key()).await {
        Err(weir_audit::Error::CorruptRow {
            seq: 1_501,
            column: "seq",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// Batches around the sizes of the multi-row `INSERT`s (powers of two) are
/// written whole: no `NULL` row is stored, no event is lost, and the chain
/// verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_around_the_insert_chunk_sizes_commit_whole() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("tails").unwrap();
    let sink = h.open(&c).await;
    let mut total = 0;
    for n in [1, 2, 63, 64, 65, 127, 128, 129, 192, 193] {
        let appends = (0..n).map(|i| sink.append(ev(i)));
        for result in futures::future::join_all(appends).await {
            result.unwrap();
        }
        total += u64::from(n);
    }
    let mut conn = h.raw().await;
    let (rows, nulls): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE record IS NULL) FROM audit_events")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((rows, nulls), (i64::try_from(total).unwrap(), 0));
    sink.checkpoint_now().await.unwrap();
    let report = verify(sink.as_ref(), &h.signer.verifying_key())
        .await
        .unwrap();
    assert!(
        matches!(report, weir_audit::Report::Ok { events, .. } if events == total),
        "{report:?}"
    );
}

/// A commit that fails inside the database (here a trigger refuses one
/// event) fails its appends, writes none of its batch and leaves no
/// transaction open: the next append continues the chain without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_rolls_back_and_the_chain_continues() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("rollback").unwrap();
    let sink = h.open(&c).await;
    assert_eq!(sink.append(ev(1)).await.unwrap().seq, 1);
    let mut conn = h.raw().await;
    sqlx::raw_sql(
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON audit_events \
         WHEN NEW.record LIKE '%\"actor\":\"boom\"%' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let boom = NewEvent::new("boom", Action::Read, Decision::Allow, Origin::Cli);
    let err = sink.append(boom).await.unwrap_err();
    assert!(
        matches!(err, weir_audit::Error::CommitFailed { .. }),
        "{err:?}"
    );
    sqlx::raw_sql("DROP TRIGGER refuse_boom")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(sink.append(ev(2)).await.unwrap().seq, 2, "no gap");
    let paths: Vec<Option<String>> = sink
        .events(&c, 1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, [Some("out/1".to_owned()), Some("out/2".to_owned())]);
    let report = verify(sink.as_ref(), &h.signer.verifying_key())
        .await
        .unwrap();
    assert!(
        matches!(report, weir_audit::Report::Ok { events: 2, .. }),
        "{report:?}"
    );
}

/// If the WAL cannot be synced (here it was removed under the sink), the
/// append is not acknowledged and the sink stops: every later append fails
/// too, instead of going on without durability.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_that_cannot_be_synced_stops_the_sink() {
    let h = SqliteHarness::new();
    let c = ChainId::parse("unsynced").unwrap();
    let sink = h.open(&c).await;
    sink.append(ev(1)).await.unwrap();
    let mut wal = h.db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::remove_file(&wal).unwrap();
    for i in 2..5 {
        let err = sink.append(ev(i)).await.unwrap_err();
        assert!(
            matches!(err, weir_audit::Error::SyncFailed { .. }),
            "{err:?}"
        );
    }
}

/// A chain head edited outside weir so that it no longer decodes (a text
/// seq, a hash that is not one, a negative seq) fails the append as a
/// corrupt `audit_heads` row, never a panic, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_row_that_does_not_decode_fails_the_append_and_writes_nothing() {
    for tamper in [
        "UPDATE audit_heads SET seq = 'x'",
        "UPDATE audit_heads SET hash = 'not a hash'",
        "UPDATE audit_heads SET seq = -1",
        "UPDATE audit_heads SET checkpoint_time_us = 'soon'",
    ] {
        let h = SqliteHarness::new();
        let c = ChainId::parse("heads").unwrap();
        let sink = h.open(&c).await;
        sink.append(ev(0)).await.unwrap();
        let mut conn = h.raw().await;
        sqlx::raw_sql(tamper).execute(&mut conn).await.unwrap();
        let err = sink.append(ev(1)).await.unwrap_err();
        let weir_audit::Error::CommitFailed { source } = &err else {
            panic!("{tamper}: {err:?}");
        };
        assert!(
            matches!(
                **source,
                weir_audit::Error::CorruptRow {
                    column: "audit_heads",
                    ..
                }
            ),
            "{tamper}: {source:?}"
        );
        let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_events")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, 1, "{tamper}: nothing written");
    }
}
