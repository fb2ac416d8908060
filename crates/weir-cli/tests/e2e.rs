//! End-to-end: the `weir` binary runs the example pipeline in a temporary
//! folder, and every output is read back with the `parquet` crate.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A copy of the example pipeline and its raw data in a fresh folder.
fn example_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::create_dir_all(dir.path().join("examples/data/raw")).unwrap();
    std::fs::copy(
        root.join("policies/customer_features.yaml"),
        dir.path().join("policies/customer_features.yaml"),
    )
    .unwrap();
    std::fs::copy(
        root.join("pipelines/customer_features.yaml"),
        dir.path().join("pipelines/customer_features.yaml"),
    )
    .unwrap();
    for f in ["customers.csv", "orders.csv"] {
        std::fs::copy(
            root.join("examples/data/raw").join(f),
            dir.path().join("examples/data/raw").join(f),
        )
        .unwrap();
    }
    dir
}

fn weir(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env("WEIR_STATE_DIR", dir.join(".weir"))
        .env_remove("WEIR_DATABASE_URL")
        .env_remove("WEIR_DATABASE_SCHEMA")
        .env_remove("WEIR_LOG")
        .output()
        .unwrap()
}

fn run_json(dir: &Path, pipeline: &str) -> (Output, serde_json::Value) {
    let out = weir(dir, &["run", pipeline, "--output", "json"]);
    let record = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, record)
}

/// Reads the current version of a dataset through its manifest.
fn read_dataset(data: &Path, path: &str) -> Vec<RecordBatch> {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join(path).join("_weir/manifest.json")).unwrap(),
    )
    .unwrap();
    let version = manifest["version"].as_str().unwrap();
    let mut batches = Vec::new();
    for f in manifest["files"].as_array().unwrap() {
        let file = File::open(
            data.join(path)
                .join(version)
                .join(f["name"].as_str().unwrap()),
        )
        .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn columns(batches: &[RecordBatch]) -> Vec<(String, DataType)> {
    batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

/// What the cleaning stages should keep, computed independently from the CSVs.
struct Expected {
    customers: HashSet<String>,
    orders: usize,
}

fn expected(data: &Path) -> Expected {
    let text = std::fs::read_to_string(data.join("raw/customers.csv")).unwrap();
    let mut customers = HashSet::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let age: i64 = f[4].parse().unwrap_or(-1);
        if !f[1].trim().is_empty() && (18..=100).contains(&age) {
            customers.insert(f[0].to_owned());
        }
    }
    let text = std::fs::read_to_string(data.join("raw/orders.csv")).unwrap();
    let orders = text
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[3].parse::<f64>().unwrap() > 0.0 && (f[4] == "completed" || f[4] == "refunded")
        })
        .count();
    Expected { customers, orders }
}

#[test]
fn example_pipeline_end_to_end_is_correct_and_repeatable() {
    let dir = example_workspace();
    let data = dir.path().join("examples/data");
    let (out, record) = run_json(dir.path(), "pipelines/customer_features.yaml");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(record["status"], "succeeded");

    let want = expected(&data);
    let customers = read_dataset(&data, "curated/customers");
    assert_eq!(rows(&customers), want.customers.len());
    assert_eq!(
        columns(&customers)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        [
            "customer_id",
            "email",
            "country",
            "signup_date",
            "age",
            "plan"
        ]
    );
    assert_eq!(columns(&customers)[3].1, DataType::Date32);
    assert_eq!(columns(&customers)[4].1, DataType::Int32);

    let orders = read_dataset(&data, "curated/orders");
    assert_eq!(rows(&orders), want.orders);
    assert!(matches!(columns(&orders)[2].1, DataType::Timestamp(_, _)));
    assert_eq!(columns(&orders)[3].1, DataType::Float64);

    let features = read_dataset(&data, "features/customer_features");
    assert_eq!(rows(&features), want.customers.len());
    let names: Vec<String> = columns(&features).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "country",
            "age",
            "order_count",
            "total_spend",
            "avg_order_value",
            "refund_count",
            "days_since_last_order",
            "label_paid"
        ]
    );

    let train = read_dataset(&data, "splits/train");
    let test = read_dataset(&data, "splits/test");
    let in_train = want
        .customers
        .iter()
        .filter(|c| {
            weir_engine::udf::bucket(c.as_bytes(), weir_engine::split::SPLIT_BUCKETS) < 800_000
        })
        .count();
    assert_eq!(rows(&train), in_train);
    assert_eq!(rows(&test), want.customers.len() - in_train);
    assert_eq!(columns(&train), columns(&features));

    // Stage records carry the same row counts.
    let stages = record["stages"].as_array().unwrap();
    let rows_of = |name: &str| {
        stages.iter().find(|s| s["name"] == name).unwrap()["rows_written"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows_of("split") as usize, want.customers.len());

    // A second run produces identical content (as a new version).
    let (out2, record2) = run_json(dir.path(), "pipelines/customer_features.yaml");
    assert!(out2.status.success());
    assert_ne!(record["run_id"], record2["run_id"]);
    for path in [
        "curated/customers",
        "curated/orders",
        "features/customer_features",
        "splits/train",
        "splits/test",
    ] {
        let again = read_dataset(&data, path);
        let first = match path {
            "curated/customers" => &customers,
            "curated/orders" => &orders,
            "features/customer_features" => &features,
            "splits/train" => &train,
            _ => &test,
        };
        let a = arrow::compute::concat_batches(&first[0].schema(), first).unwrap();
        let b = arrow::compute::concat_batches(&again[0].schema(), &again).unwrap();
        assert_eq!(a, b, "{path} differs between runs");
    }

    // The run is listed and can be shown.
    let list = weir(dir.path(), &["runs", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(record2["run_id"].as_str().unwrap()));
}

const FAILING: &str = r#"
name: failing
principal: svc-test
stores: { lake: { url: ../data } }
datasets:
  src: { store: lake, path: raw/src.csv }
  bad_out: { store: lake, path: out/bad }
  after_bad: { store: lake, path: out/after_bad }
  good_out: { store: lake, path: out/good }
stages:
  - name: bad
    kind: sql
    inputs: [src]
    outputs: [bad_out]
    sql: SELECT no_such_column FROM src
  - name: after-bad
    kind: sql
    inputs: [bad_out]
    outputs: [after_bad]
    sql: SELECT * FROM bad_out
  - name: good
    kind: sql
    inputs: [src]
    outputs: [good_out]
    sql: SELECT id, v * 2 AS v2 FROM src ORDER BY id
"#;

const FAILING_POLICY: &str = r#"
version: 1
stores: { lake: { url: ../data } }
principals: { svc-test: { kind: service } }
grants:
  - id: read-raw
    principal: svc-test
    effect: allow
    actions: [read]
    resources: [{ store: lake, path: "raw/**" }]
  - id: write-out
    principal: svc-test
    effect: allow
    actions: [read, write, delete]
    resources: [{ store: lake, path: "out/**" }]
"#;

fn failing_workspace(sql_for_bad: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("p")).unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/test.yaml"), FAILING_POLICY).unwrap();
    std::fs::create_dir_all(dir.path().join("data/raw")).unwrap();
    std::fs::write(
        dir.path().join("data/raw/src.csv"),
        "id,v\n1,10\n2,20\n3,30\n",
    )
    .unwrap();
    let text = match sql_for_bad {
        Some(sql) => FAILING.replace("SELECT no_such_column FROM src", sql),
        None => FAILING.to_owned(),
    };
    std::fs::write(dir.path().join("p/failing.yaml"), text).unwrap();
    dir
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn failing_sql_stage_fails_the_run_names_the_stage_and_leaves_no_partial_output() {
    let dir = failing_workspace(None);
    let out = weir(dir.path(), &["run", "p/failing.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stage `bad` failed"), "{stdout}");
    assert!(
        stdout.contains("no_such_column"),
        "DataFusion's message is shown: {stdout}"
    );
    assert!(
        stdout.contains("after-bad") && stdout.contains("skipped"),
        "{stdout}"
    );
    // No partial files for the failed stage; the independent stage completed.
    assert!(files_under(&dir.path().join("data/out/bad")).is_empty());
    assert!(files_under(&dir.path().join("data/out/after_bad")).is_empty());
    assert_eq!(rows(&read_dataset(&dir.path().join("data"), "out/good")), 3);
}

#[test]
fn a_failed_rerun_leaves_the_previous_version_intact() {
    let dir = failing_workspace(Some("SELECT id FROM src ORDER BY id"));
    let out = weir(dir.path(), &["run", "p/failing.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = dir.path().join("data");
    let before = std::fs::read(data.join("out/bad/_weir/manifest.json")).unwrap();
    let files_before = files_under(&data.join("out/bad"));

    // Same output, now failing at runtime (division by zero on every row).
    let text = std::fs::read_to_string(dir.path().join("p/failing.yaml"))
        .unwrap()
        .replace(
            "SELECT id FROM src ORDER BY id",
            "SELECT CAST('x' AS INT) AS id FROM src",
        );
    std::fs::write(dir.path().join("p/failing.yaml"), text).unwrap();
    let out = weir(dir.path(), &["run", "p/failing.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        std::fs::read(data.join("out/bad/_weir/manifest.json")).unwrap(),
        before
    );
    assert_eq!(files_under(&data.join("out/bad")), files_before);
    assert_eq!(rows(&read_dataset(&data, "out/bad")), 3);
}

#[test]
fn invalid_pipeline_exits_2_and_runs_nothing() {
    let dir = failing_workspace(None);
    let text = std::fs::read_to_string(dir.path().join("p/failing.yaml"))
        .unwrap()
        .replace(
            "inputs: [src]\n    outputs: [good_out]",
            "input: [src]\n    outputs: [good_out]",
        );
    std::fs::write(dir.path().join("p/failing.yaml"), text).unwrap();
    let out = weir(dir.path(), &["run", "p/failing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field `input`"), "{stderr}");
    assert!(stderr.contains("did you mean `inputs`?"), "{stderr}");
    assert!(!dir.path().join(".weir/runs").exists());
}

#[test]
fn plan_and_graph_describe_the_example() {
    let root = repo_root();
    let out = weir(&root, &["plan", "pipelines/customer_features.yaml"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 stage(s) in 3 level(s)"), "{text}");
    // The column grant narrows what `features` reads of curated customers.
    assert!(
        text.contains(
            "input  lake:curated/customers/**  read<-customer-features-curated columns deny [email]"
        ),
        "{text}"
    );
    assert!(
        text.contains("reads  raw_customers (lake:raw/customers.csv)"),
        "{text}"
    );
    let dot = weir(
        &root,
        &[
            "graph",
            "pipelines/customer_features.yaml",
            "--format",
            "dot",
        ],
    );
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.starts_with("digraph \"customer-features\""));
    assert!(dot.contains("\"ds:customers\" -> \"stage:features\""));
    let mermaid = weir(
        &root,
        &[
            "graph",
            "pipelines/customer_features.yaml",
            "--format",
            "mermaid",
        ],
    );
    assert!(String::from_utf8_lossy(&mermaid.stdout).contains("d_customer_features --> s_split"));
}

/// The example policy with one grant (by id) removed.
fn without_grant(policy: &str, id: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in policy.lines() {
        if line.starts_with("  - id: ") {
            skipping = line.trim_end().ends_with(id);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn removing_any_grant_the_example_needs_makes_plan_and_run_fail_and_name_it() {
    let policy =
        std::fs::read_to_string(repo_root().join("policies/customer_features.yaml")).unwrap();
    let ids: Vec<String> = policy
        .lines()
        .filter_map(|l| l.strip_prefix("  - id: ").map(|id| id.trim().to_owned()))
        .collect();
    assert!(ids.len() >= 2, "{ids:?}");
    // Column grants narrow access; none is needed for it.
    let narrowing = "customer-features-no-email";
    assert!(ids.iter().any(|id| id == narrowing), "{ids:?}");
    for id in ids.iter().filter(|id| *id != narrowing) {
        let dir = example_workspace();
        std::fs::write(
            dir.path().join("policies/customer_features.yaml"),
            without_grant(&policy, id),
        )
        .unwrap();
        for cmd in ["plan", "run"] {
            let out = weir(dir.path(), &[cmd, "pipelines/customer_features.yaml"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{cmd} without `{id}`: {stderr}");
            assert!(stderr.contains("plan denied"), "{stderr}");
            assert!(stderr.contains("no grant allows it"), "{stderr}");
            // A grant ready to paste names the principal and the missing path.
            assert!(
                stderr.contains("principal: svc-customer-features"),
                "{stderr}"
            );
            assert!(stderr.contains("effect: allow"), "{stderr}");
        }
        // Nothing ran: no run record, no outputs.
        assert!(!dir.path().join(".weir/runs").exists());
        assert!(!dir.path().join("examples/data/curated").exists());
    }
}

#[test]
fn a_pipeline_that_calls_another_folder_lake_gets_no_grants() {
    let dir = example_workspace();
    let path = dir.path().join("pipelines/customer_features.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let text = original.replace(
        "url: \"${WEIR_LAKE_URL:-../examples/data}\"",
        "url: ../elsewhere",
    );
    assert_ne!(
        text, original,
        "the example's store url changed; update this test"
    );
    std::fs::write(&path, text).unwrap();
    let out = weir(dir.path(), &["plan", "pipelines/customer_features.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!dir.path().join("elsewhere").exists());
}

fn audit_json(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "query", "--output", "json", "--limit", "10000"];
    all.extend_from_slice(args);
    let out = weir(dir, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

#[test]
fn every_access_of_a_run_is_audited_and_the_log_verifies() {
    let dir = example_workspace();
    let (out, record) = run_json(dir.path(), "pipelines/customer_features.yaml");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = record["run_id"].as_str().unwrap();

    let events = audit_json(dir.path(), &["--run", run_id]);
    let count = |action: &str| events.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("run_start"), 1);
    assert_eq!(count("run_finish"), 1);
    assert_eq!(count("token_mint"), 4, "one token per stage attempt");
    assert_eq!(count("token_revoke"), 4, "every token revoked at run end");
    // Each stage writes exactly two objects per output: its data file and
    // its manifest.
    for (stage, outputs) in [
        ("clean-customers", 1),
        ("clean-orders", 1),
        ("features", 1),
        ("split", 2),
    ] {
        let writes = audit_json(
            dir.path(),
            &["--run", run_id, "--stage", stage, "--action", "write"],
        );
        assert_eq!(writes.len(), 2 * outputs, "{stage}: {writes:?}");
        assert!(writes.iter().all(|e| e["decision"] == "allow"));
    }
    // Every access event is an allow inside the stage's own declared datasets.
    for e in events
        .iter()
        .filter(|e| ["read", "write", "delete", "list"].contains(&e["action"].as_str().unwrap()))
    {
        assert_eq!(e["decision"], "allow", "{e}");
        assert_eq!(e["actor"], "svc-customer-features");
        assert!(e["token_id_hmac"].as_str().unwrap().len() == 64);
    }
    // Filters narrow exactly: reads of the raw orders file come only from clean-orders.
    let raw_reads = audit_json(
        dir.path(),
        &["--path-prefix", "raw/orders.csv", "--action", "read"],
    );
    assert!(!raw_reads.is_empty());
    assert!(raw_reads.iter().all(|e| e["stage"] == "clean-orders"));

    let verify = weir(dir.path(), &["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let verified = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(verified.starts_with("OK:"), "{verified}");
    // The run's end sealed its tail: a short-lived `weir run` still leaves a
    // signed checkpoint, so cutting events off the end would be detected.
    assert!(
        !verified.contains(" 0 signed checkpoint(s)"),
        "no checkpoint after the run: {verified}"
    );

    // No token ever reaches the log or the output.
    let all = String::from_utf8_lossy(
        &weir(
            dir.path(),
            &["audit", "query", "--output", "csv", "--limit", "10000"],
        )
        .stdout,
    )
    .to_string();
    assert!(!all.contains("eyJ"), "a JWT leaked into the audit log");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("eyJ"));

    // Export for DuckDB/pandas.
    let export = weir(
        dir.path(),
        &[
            "audit",
            "export",
            "--format",
            "parquet",
            "--out",
            "audit.parquet",
        ],
    );
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let file = File::open(dir.path().join("audit.parquet")).unwrap();
    let rows: usize = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, audit_json(dir.path(), &[]).len());
}

#[test]
fn plan_denials_are_audited_and_access_review_finds_unused_grants() {
    let dir = example_workspace();
    // An extra, never-used grant, and a run to produce usage.
    let policy_path = dir.path().join("policies/customer_features.yaml");
    let mut policy = std::fs::read_to_string(&policy_path).unwrap();
    policy.push_str(
        "\n  - id: unused-archive\n    principal: svc-customer-features\n    effect: allow\n    actions: [read]\n    resources:\n      - { store: lake, path: \"archive/**\" }\n",
    );
    std::fs::write(&policy_path, &policy).unwrap();
    let (out, _) = run_json(dir.path(), "pipelines/customer_features.yaml");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let review = weir(
        dir.path(),
        &["access", "review", "--since", "1d", "--output", "json"],
    );
    assert!(
        review.status.success(),
        "{}",
        String::from_utf8_lossy(&review.stderr)
    );
    let review: serde_json::Value = serde_json::from_slice(&review.stdout).unwrap();
    assert_eq!(review["never_used"], serde_json::json!(["unused-archive"]));
    assert!(
        review["suggested_policy"]
            .as_str()
            .unwrap()
            .contains("`unused-archive` was never used")
    );
    assert_eq!(
        audit_json(dir.path(), &["--action", "access_review"]).len(),
        1,
        "the review is recorded"
    );

    // Remove a needed grant: the run is refused and the denial is in the log.
    std::fs::write(
        &policy_path,
        without_grant(&policy, "customer-features-read-raw"),
    )
    .unwrap();
    let out = weir(dir.path(), &["run", "pipelines/customer_features.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    let denied = audit_json(
        dir.path(),
        &["--action", "plan_denied", "--decision", "deny"],
    );
    assert_eq!(denied.len(), 2, "{denied:?}");
}

#[test]
fn serve_refuses_a_plain_http_jwks_url_to_another_host_at_start_up() {
    let ws = example_workspace();
    let out = weir(
        ws.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwks",
            "http://idp.example.com/.well-known/jwks.json",
            "--jwks-issuer",
            "https://idp.example.com",
            "--jwks-audience",
            "weir-api",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("plain http is allowed only to a loopback host"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("jwks.json"),
        "no URL path in errors: {stderr}"
    );
}

#[test]
fn keys_rotate_api_makes_a_new_api_key_active_and_keeps_the_old_one() {
    let ws = example_workspace();
    let file = ws.path().join(".weir/keys/api/api-keys.json");
    let read =
        || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap() };
    let out = weir(ws.path(), &["keys", "rotate", "--api"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = read();
    let out = weir(ws.path(), &["keys", "rotate", "--api"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = read();
    assert_ne!(first["active"], second["active"]);
    let kids: Vec<&str> = second["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&first["active"].as_str().unwrap()),
        "{kids:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rotated API token key"), "{stdout}");
}

/// Runs `sql` against the embedded audit log of the workspace `dir`, as an
/// attacker with write access to the file would.
fn tamper_audit_log(dir: &Path, sql: &'static str) {
    use sqlx::Connection;
    let db = dir.join(".weir/audit/audit.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    });
}

#[test]
fn audit_verify_names_an_edited_event_and_refuses_a_redefined_log() {
    let dir = example_workspace();
    let (out, _) = run_json(dir.path(), "pipelines/customer_features.yaml");
    assert!(out.status.success());

    tamper_audit_log(
        dir.path(),
        "DROP TRIGGER audit_events_no_update;
         UPDATE audit_events SET record = json_set(record, '$.decision', 'deny') WHERE seq = 3;",
    );
    let verify = weir(dir.path(), &["audit", "verify"]);
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(!verify.status.success(), "{text}");
    assert!(
        text.starts_with("DAMAGED: chain `local` at seq 3: Edited"),
        "{text}"
    );

    // A column of the fields view redefined to show another field: weir
    // refuses to open the log at all, and says why.
    tamper_audit_log(
        dir.path(),
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = replace(sql, '''$.decision''', '''$.action''')
         WHERE type = 'view' AND name = 'audit_event_fields';",
    );
    let verify = weir(dir.path(), &["audit", "verify"]);
    let err = String::from_utf8_lossy(&verify.stderr).to_string();
    assert!(!verify.status.success());
    assert!(err.contains("restructured outside weir"), "{err}");
}
