//! The `RunStore` conformance suite, run against every backend: JSON files
//! in the state folder, and PostgreSQL when `WEIR_TEST_POSTGRES_URL` is set
//! (CI sets it; otherwise each PostgreSQL test prints a loud SKIPPED line
//! and passes).
//!
//! The suite is plain `async fn(&dyn RunStore)` helpers. It lives here, not
//! in weir-testkit, because `RunStore` is weir-engine's and weir-testkit
//! depends on no crate above the leaves.
//!
//! Every PostgreSQL test gets its own schema, dropped at the end, so tests
//! run in parallel without colliding.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use weir_auth::SecretString;
use weir_engine::Database;
use weir_engine::record::{
    CheckPoint, ContractCheck, FileRunStore, OutputRecord, PostgresRunStore, RunRecord, RunStatus,
    RunStore, StageRecord, StageState,
};

const ENV: &str = "WEIR_TEST_POSTGRES_URL";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 123_456_789).unwrap()
}

/// A finished two-stage run with id `run_id`.
fn record(run_id: &str, started: i64) -> RunRecord {
    RunRecord {
        run_id: run_id.to_owned(),
        pipeline: "customer_features".into(),
        source: "pipelines/customer_features.yaml".into(),
        principal: "svc-features".into(),
        status: RunStatus::Succeeded,
        started_at: at(started),
        finished_at: Some(at(started + 5)),
        stages: vec![
            StageRecord {
                name: "prepare".into(),
                state: StageState::Succeeded,
                attempts: 2,
                elapsed_ms: 1_234,
                rows_written: 10,
                outputs: vec![OutputRecord {
                    dataset: "clean".into(),
                    version: "v-01J0".into(),
                    rows: 10,
                }],
                checks: vec![ContractCheck {
                    dataset: "raw".into(),
                    on: CheckPoint::Read,
                    rows: 12,
                    bad: 2,
                    quarantine: Some("rejected".into()),
                }],
                error: None,
            },
            StageRecord {
                name: "train".into(),
                state: StageState::Failed,
                attempts: 1,
                // Beyond i64: a database must not narrow it.
                elapsed_ms: u64::MAX,
                rows_written: 0,
                outputs: Vec::new(),
                checks: Vec::new(),
                error: Some("command failed (exit status: 3); \"quoted\" \u{e9}".into()),
            },
        ],
    }
}

// ULIDs: 26 characters, sortable by start time.
const OLD: &str = "01HZZZZZZZZZZZZZZZZZZZZZZ1";
const MID: &str = "01J00000000000000000000000";
const NEW: &str = "01J00000000000000000000001";

/// A record saved is loaded back unchanged.
async fn save_then_load(store: &dyn RunStore) {
    let r = record(MID, 0);
    store.save(&r).await.unwrap();
    assert_eq!(store.load(MID).await.unwrap(), Some(r));
}

/// An id never saved is `None`, not an error; an empty store lists nothing.
async fn unknown_id_is_none(store: &dyn RunStore) {
    assert_eq!(store.list(None).await.unwrap(), Vec::new());
    assert_eq!(store.load(NEW).await.unwrap(), None);
    store.save(&record(MID, 0)).await.unwrap();
    assert_eq!(store.load(NEW).await.unwrap(), None);
}

/// Saving again replaces the record: one run, its latest state.
async fn save_overwrites(store: &dyn RunStore) {
    let mut r = record(MID, 0);
    r.status = RunStatus::Running;
    r.finished_at = None;
    store.save(&r).await.unwrap();
    assert_eq!(
        store.load(MID).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    let done = record(MID, 0);
    store.save(&done).await.unwrap();
    assert_eq!(store.load(MID).await.unwrap(), Some(done.clone()));
    assert_eq!(store.list(None).await.unwrap(), vec![done]);
}

/// Newest first (by run id), whatever the order of saving; `limit` keeps
/// the newest.
async fn list_is_newest_first(store: &dyn RunStore) {
    for (id, started) in [(MID, 10), (NEW, 20), (OLD, 0)] {
        store.save(&record(id, started)).await.unwrap();
    }
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(ids(store.list(None).await.unwrap()), [NEW, MID, OLD]);
    assert_eq!(ids(store.list(Some(2)).await.unwrap()), [NEW, MID]);
    assert_eq!(
        ids(store.list(Some(0)).await.unwrap()),
        Vec::<String>::new()
    );
}

/// Ids that are not 1 to 64 ASCII letters and digits are refused by every
/// method, and nothing is written.
async fn hostile_run_ids_are_refused(store: &dyn RunStore) {
    let long = "A".repeat(65);
    for id in [
        "",
        "../../../etc/passwd",
        "..",
        "a/b",
        "a\\b",
        "x'; DROP TABLE weir_runs; --",
        "x%2e%2e",
        "a\0b",
        "caf\u{e9}",
        " 01J0",
        &long,
    ] {
        let err = store.load(id).await.unwrap_err();
        assert!(
            matches!(err, weir_engine::Error::InvalidRunId { .. }),
            "load {id:?}: {err}"
        );
        let err = store.save(&record(id, 0)).await.unwrap_err();
        assert!(
            matches!(err, weir_engine::Error::InvalidRunId { .. }),
            "save {id:?}: {err}"
        );
    }
    assert_eq!(store.list(None).await.unwrap(), Vec::new());
    // The longest valid id is fine.
    store.save(&record(&"A".repeat(64), 0)).await.unwrap();
}

/// A NUL in a stage's error (a program's stderr) does not lose the record;
/// a database that cannot store NUL keeps U+FFFD in its place.
async fn nul_in_error_text_is_kept(store: &dyn RunStore) {
    let mut r = record(MID, 0);
    if let Some(stage) = r.stages.get_mut(1) {
        stage.error = Some("before\0after".into());
    }
    store.save(&r).await.unwrap();
    let back = store.load(MID).await.unwrap().unwrap();
    let error = back.stages[1].error.clone().unwrap();
    assert!(
        error == "before\0after" || error == "before\u{fffd}after",
        "{error:?}"
    );
}

/// A fresh schema on the test server, and a store in it.
struct Pg {
    url: String,
    schema: String,
    raw: PgPool,
}

impl Pg {
    async fn new() -> Option<Self> {
        let Ok(url) = std::env::var(ENV) else {
            eprintln!(
                "SKIPPED: set {ENV} (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL run-store tests"
            );
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "weir_runs_t_{}_{}_{}",
            std::process::id(),
            nanos,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let raw = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                PgConnectOptions::from_str(&url)
                    .unwrap()
                    .options([("search_path", schema.as_str())]),
            )
            .await
            .unwrap();
        Some(Self { url, schema, raw })
    }

    fn database(&self) -> Database {
        Database::new(SecretString::new(self.url.clone()), Some(&self.schema)).unwrap()
    }

    async fn store(&self) -> PostgresRunStore {
        PostgresRunStore::connect(&self.database()).await.unwrap()
    }

    async fn cleanup(self) {
        // Test-only DDL on a name this helper generated (digits and '_').
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&self.raw)
            .await
            .unwrap();
        self.raw.close().await;
    }
}

macro_rules! conformance {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn files() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(&FileRunStore::new(dir.path())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(pg) = Pg::new().await else {
                    return;
                };
                let store = pg.store().await;
                super::$name(&store).await;
                store.close().await;
                pg.cleanup().await;
            }
        }
    };
}

conformance!(save_then_load);
conformance!(unknown_id_is_none);
conformance!(save_overwrites);
conformance!(list_is_newest_first);
conformance!(hostile_run_ids_are_refused);
conformance!(nul_in_error_text_is_kept);

#[tokio::test]
async fn files_are_json_under_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileRunStore::new(dir.path());
    store.save(&record(MID, 0)).await.unwrap();
    let path = dir.path().join("runs").join(format!("{MID}.json"));
    assert_eq!(store.path(MID).unwrap(), path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"pipeline\": \"customer_features\""));
    // A stray file is not a run.
    std::fs::write(dir.path().join("runs/notes.txt"), "x").unwrap();
    std::fs::write(dir.path().join("runs/bad id.json"), "{}").unwrap();
    assert_eq!(store.list(None).await.unwrap().len(), 1);
}

/// The indexed columns follow the record, and every store and audit sink
/// opening a fresh schema at once set it up exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_columns_and_concurrent_setup() {
    let Some(pg) = Pg::new().await else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let db = pg.database();
    let opened = futures::future::join_all((0..4).map(|_| PostgresRunStore::connect(&db))).await;
    let audit = weir_engine::Audit::open(state.path(), Some(&db), weir_audit::Origin::Cli)
        .await
        .unwrap();
    let stores: Vec<PostgresRunStore> = opened.into_iter().map(Result::unwrap).collect();
    let mut running = record(MID, 0);
    running.status = RunStatus::Running;
    running.finished_at = None;
    stores[0].save(&running).await.unwrap();
    stores[1].save(&record(MID, 0)).await.unwrap();
    let row: (String, String, String, Option<String>) = sqlx::query_as(
        "SELECT pipeline, status, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), \
         finished_at::text FROM weir_runs WHERE run_id = $1",
    )
    .bind(MID)
    .fetch_one(&pg.raw)
    .await
    .unwrap();
    assert_eq!(row.0, "customer_features");
    assert_eq!(row.1, "succeeded");
    assert_eq!(row.2, "2023-11-14T22:13:20.123456");
    assert!(row.3.is_some());
    assert_eq!(audit.sink().chain().as_str().split(':').next(), Some("cli"));
    for s in &stores {
        s.close().await;
    }
    drop(audit);
    pg.cleanup().await;
}

/// Nothing is ever echoed from the URL: not its password, not the URL.
#[tokio::test]
async fn postgres_errors_never_echo_the_url() {
    // A name that never resolves fails at once (a refused connection would
    // be retried until the pool's timeout).
    let url = "postgres://weir:hunter2@weir-test.invalid:5432/nowhere";
    let db = Database::new(SecretString::new(url.to_owned()), None).unwrap();
    let err = PostgresRunStore::connect(&db).await.unwrap_err();
    let text = format!("{err} {err:?} {db:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains(url), "{text}");
    assert!(text.contains("weir-test.invalid"), "names the host: {text}");
    let state = tempfile::tempdir().unwrap();
    let err = weir_engine::Audit::open(state.path(), Some(&db), weir_audit::Origin::Cli)
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

/// Every SQL statement in weir-engine's sources that use sqlx is static text
/// with bound values (security invariant 8, as in weir-audit).
#[test]
fn every_sql_statement_is_static_and_parameterized() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let scan = weir_testkit::sql::scan_dir(&src, |_, text| text.contains("sqlx"));
    let names: Vec<String> = scan
        .files
        .iter()
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("postgres.rs")),
        "scanned the PostgreSQL run store: {names:?}"
    );
    assert!(scan.calls >= 5, "saw the SQL calls ({})", scan.calls);
    assert!(
        scan.problems.is_empty(),
        "non-parameterized SQL:\n{}",
        scan.problems.join("\n")
    );
    // The rules can fail.
    assert!(!weir_testkit::sql::check("sqlx::query(&format!(\"x {id}\"))").is_empty());
}
