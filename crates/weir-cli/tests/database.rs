//! End to end with `--database`: `weir run` records its run and audit trail
//! in PostgreSQL, and `weir runs` and `weir audit` with the same option see
//! them; nothing goes to the state folder but keys.
//!
//! Needs `WEIR_TEST_POSTGRES_URL` (CI sets it); otherwise it prints a loud
//! SKIPPED line and passes. Each test uses its own schema
//! (`--database-schema`), dropped at the end, so tests run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

const ENV: &str = "WEIR_TEST_POSTGRES_URL";
const PASSWORD: &str = "hunter2-db-secret";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example pipeline, its policy and raw data in a fresh folder.
fn example_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    for sub in ["pipelines", "policies", "examples/data/raw"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for f in [
        "policies/customer_features.yaml",
        "pipelines/customer_features.yaml",
        "examples/data/raw/customers.csv",
        "examples/data/raw/orders.csv",
    ] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

/// `url` with a password added (the test server trusts every local
/// connection, so any password works), to prove it is never printed.
fn with_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => {
            format!("{scheme}://{user}:{PASSWORD}@{host}")
        }
        _ => url.to_owned(),
    }
}

struct Db {
    url: String,
    schema: String,
    raw: PgPool,
}

impl Db {
    async fn new() -> Option<Self> {
        let Ok(url) = std::env::var(ENV) else {
            eprintln!(
                "SKIPPED: set {ENV} (e.g. postgres://postgres@127.0.0.1:5432/test) to run `weir --database` end to end"
            );
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("weir_cli_t_{}_{nanos}", std::process::id());
        let raw = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                PgConnectOptions::from_str(&url)
                    .unwrap()
                    .options([("search_path", schema.as_str())]),
            )
            .await
            .unwrap();
        Some(Self {
            url: with_password(&url),
            schema,
            raw,
        })
    }

    /// Runs `weir` in `dir` against this database, with the state folder
    /// `dir/.weir`.
    fn weir(&self, dir: &Path, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["--database", &self.url, "--database-schema", &self.schema])
            .args(args)
            .current_dir(dir)
            .env("WEIR_STATE_DIR", dir.join(".weir"))
            .env_remove("WEIR_DATABASE_URL")
            .env_remove("WEIR_DATABASE_SCHEMA")
            .env_remove("WEIR_LOG")
            .output()
            .unwrap();
        assert_no_password(&out);
        out
    }

    async fn cleanup(self) {
        // Test-only DDL on a name this test generated (digits and '_').
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&self.raw)
            .await
            .unwrap();
        self.raw.close().await;
    }
}

fn assert_no_password(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_records_and_audit_go_to_the_database() {
    let Some(db) = Db::new().await else {
        return;
    };
    let dir = example_workspace();
    let root = dir.path();

    let record: serde_json::Value = serde_json::from_str(&ok(&db.weir(
        root,
        &[
            "run",
            "pipelines/customer_features.yaml",
            "--output",
            "json",
        ],
    )))
    .unwrap();
    assert_eq!(record["status"], "succeeded");
    let run_id = record["run_id"].as_str().unwrap().to_owned();

    // Keys stay in the state folder; the record and the log do not.
    let state = root.join(".weir");
    assert!(state.join("keys").is_dir());
    assert!(!state.join("runs").exists(), "no run record files");
    assert!(!state.join("audit").exists(), "no SQLite audit log");

    // The table holds the record and its indexed columns.
    let (pipeline, status): (String, String) =
        sqlx::query_as("SELECT pipeline, status FROM weir_runs WHERE run_id = $1")
            .bind(&run_id)
            .fetch_one(&db.raw)
            .await
            .unwrap();
    assert_eq!(
        (pipeline.as_str(), status.as_str()),
        ("customer-features", "succeeded")
    );

    // `weir runs` reads it from the database.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&db.weir(root, &["runs", "list", "--output", "json"]))).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert_eq!(ids, [run_id.as_str()]);
    let show = ok(&db.weir(root, &["runs", "show", &run_id]));
    assert!(
        show.contains("table weir_runs in the database at"),
        "{show}"
    );
    assert!(show.contains("succeeded"), "{show}");

    // The audit log is in the database, on this machine's CLI chain, whole.
    let events: Vec<serde_json::Value> = serde_json::from_str(&ok(&db.weir(
        root,
        &[
            "audit", "query", "--run", &run_id, "--output", "json", "--limit", "1000",
        ],
    )))
    .unwrap();
    let count = |action: &str| events.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("run_start"), 1);
    assert_eq!(count("run_finish"), 1);
    assert!(count("write") >= 10, "every guarded write is recorded");
    assert!(
        events
            .iter()
            .all(|e| e["chain"].as_str().unwrap().starts_with("cli:")),
        "{events:?}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE run = $1")
        .bind(&run_id)
        .fetch_one(&db.raw)
        .await
        .unwrap();
    assert_eq!(usize::try_from(stored).unwrap(), events.len());
    let verify = ok(&db.weir(root, &["audit", "verify"]));
    assert!(verify.starts_with("OK: "), "{verify}");
    assert!(!verify.starts_with("OK: 0 events"), "{verify}");

    // Without --database the state folder is empty of runs: two different places.
    let embedded = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["runs", "list"])
        .current_dir(root)
        .env("WEIR_STATE_DIR", &state)
        .env_remove("WEIR_DATABASE_URL")
        .output()
        .unwrap();
    assert!(ok(&embedded).contains("no runs in"));

    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_in_the_database_is_detected() {
    let Some(db) = Db::new().await else {
        return;
    };
    let dir = example_workspace();
    let root = dir.path();
    ok(&db.weir(
        root,
        &[
            "run",
            "pipelines/customer_features.yaml",
            "--output",
            "json",
        ],
    ));
    // An event of the run is edited behind weir's back (triggers off first,
    // as an attacker with the database's owner rights could).
    sqlx::raw_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        .execute(&db.raw)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
        .execute(&db.raw)
        .await
        .unwrap();
    let out = db.weir(root, &["audit", "verify"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("DAMAGED: chain `cli:"), "{text}");
    db.cleanup().await;
}

#[test]
fn an_unreachable_database_is_named_by_host_only() {
    let dir = example_workspace();
    let url = format!("postgres://weir:{PASSWORD}@weir-test.invalid:5432/weir");
    for args in [vec!["runs", "list"], vec!["audit", "verify"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(&args)
            .current_dir(dir.path())
            .env("WEIR_STATE_DIR", dir.path().join(".weir"))
            .env("WEIR_DATABASE_URL", &url)
            .env_remove("WEIR_DATABASE_SCHEMA")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert_no_password(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the database at weir-test.invalid"), "{err}");
        assert!(!err.contains("postgres://"), "{err}");
    }
    // A malformed URL or another scheme is refused without echoing it.
    for bad in [
        format!("mysql://weir:{PASSWORD}@h/weir"),
        format!("postgres://weir:{PASSWORD}@[h/weir"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["--database", &bad, "runs", "list"])
            .current_dir(dir.path())
            .env("WEIR_STATE_DIR", dir.path().join(".weir"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert_no_password(&out);
        assert!(String::from_utf8_lossy(&out.stderr).contains("--database"));
    }
    // `--help` does not show the value of WEIR_DATABASE_URL.
    let help = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("--help")
        .env("WEIR_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--database"));
    assert_no_password(&help);
}
