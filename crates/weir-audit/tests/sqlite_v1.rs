//! A log written in format 1 (before records) still opens, verifies, grows
//! in its own format and shows tampering. The fixture was written by the
//! format-1 sink itself (see `tests/fixtures/v1/README.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::{Connection, SqliteConnection};
use weir_audit::{
    Action, AuditSink, ChainId, CheckpointSigner, DamageKind, Decision, EventFormat, Filter,
    NewEvent, Origin, Page, Report, SinkConfig, SqliteSink, VerifyingKey, verify,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// A private copy of the fixture log (verification must not depend on
/// writing to the repository) and the key its checkpoints were signed with.
fn copy_fixture() -> (tempfile::TempDir, PathBuf, VerifyingKey) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    std::fs::copy(fixture_dir().join("audit.db"), &db).unwrap();
    let hex = std::fs::read_to_string(fixture_dir().join("checkpoint.pub.hex")).unwrap();
    let bytes: [u8; 32] = hex::decode(hex.trim()).unwrap().try_into().unwrap();
    (dir, db, VerifyingKey::from_bytes(&bytes).unwrap())
}

async fn open(db: &Path) -> SqliteSink {
    // A new signer: the fixture's was thrown away, and a sink signs with
    // the key of its own era.
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let config = SinkConfig::new(ChainId::parse("cli").unwrap(), signer);
    SqliteSink::open(db, config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_log_opens_and_verifies() {
    let (_dir, db, key) = copy_fixture();
    let sink = open(&db).await;
    assert_eq!(sink.format(), EventFormat::V1);
    let report = verify(&sink, &key).await.unwrap();
    assert_eq!(
        report,
        Report::Ok {
            chains: 1,
            events: 25,
            checkpoints: 3
        }
    );
    let chain = ChainId::parse("cli").unwrap();
    let events = sink.events(&chain, 1, 100).await.unwrap();
    assert_eq!(events.len(), 25);
    assert!(events.iter().all(|e| e.format == EventFormat::V1));
    let denied = sink
        .query(&Filter::all().decision(Decision::Deny), Page::first(100))
        .await
        .unwrap();
    assert_eq!(
        denied.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![7, 14, 21]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_log_grows_in_format_1() {
    let (_dir, db, old_key) = copy_fixture();
    let sink = open(&db).await;
    let added = sink
        .append(NewEvent::new(
            "svc",
            Action::Read,
            Decision::Allow,
            Origin::Cli,
        ))
        .await
        .unwrap();
    assert_eq!((added.seq, added.format), (26, EventFormat::V1));
    assert_eq!(added.compute_hash(), added.hash);
    sink.close().await.unwrap();

    let sink = open(&db).await;
    assert_eq!(sink.format(), EventFormat::V1);
    let chain = ChainId::parse("cli").unwrap();
    assert_eq!(sink.events(&chain, 26, 1).await.unwrap(), vec![added]);
    // The new checkpoint is signed by the new era's key, so the old key
    // calls it forged: a reminder that verification needs every era's key.
    let report = verify(&sink, &old_key).await.unwrap();
    assert_eq!(
        report.damage().map(|d| (d.kind, d.seq)),
        Some((DamageKind::ForgedCheckpoint, 26))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_a_format_1_log_is_found() {
    let (_dir, db, key) = copy_fixture();
    let sink = open(&db).await;
    let mut raw = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER audit_events_no_update;
         UPDATE audit_events SET decision = 'allow' WHERE chain = 'cli' AND seq = 14",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    let report = verify(&sink, &key).await.unwrap();
    let d = report.damage().unwrap();
    assert_eq!((d.kind, d.seq), (DamageKind::Edited, 14), "{d:?}");
}
