//! Data contracts, `validate` and `split` stages, and column grants, end to
//! end through [`Engine::run`] with a real policy, a local audit log and
//! the local filesystem as the data lake.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;
use weir_engine::record::{CheckPoint, RunRecord, StageState};
use weir_engine::{Audit, Engine, EngineConfig, Security, dataset};

/// A value only a sensitive column holds: it must never surface.
const SECRET_EMAIL: &str = "canary-7c1f@example.com";

const CUSTOMERS: &str = "\
id,email,age,plan,note
1,a@example.com,30,free,ok
2,canary-7c1f@example.com,17,pro,ok
3,c@example.com,40,gold,ok
4,not-an-email,50,free,ok
5,e@example.com,60,free,this note is far too long
5,f@example.com,61,pro,dup
7,,70,free,ok
8,h@example.com,80,pro,ok
";

fn contract(on_violation: &str) -> String {
    format!(
        r#"
      on_violation: {on_violation}
      primary_key: [id]
      columns:
        id: int64
        email: {{ type: string, nullable: false, sensitive: true, regex: '^[^@]+@[^@]+$' }}
        age: {{ type: int64, range: {{ min: 18, max: 100 }} }}
        plan: {{ type: string, allowed: [free, pro] }}
        note: {{ type: string, max_length: 10 }}"#
    )
}

const POLICY: &str = r#"
version: 1
stores: { lake: { url: ./lake } }
principals: { svc-t: { kind: service } }
grants:
  - id: read-raw
    principal: svc-t
    effect: allow
    actions: [read]
    resources: [{ store: lake, path: "raw/**" }]
  - id: write-out
    principal: svc-t
    effect: allow
    actions: [read, write, delete]
    resources: [{ store: lake, path: "out/**" }]
"#;

struct Run {
    dir: tempfile::TempDir,
    record: RunRecord,
}

impl Run {
    fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    fn stage(&self, name: &str) -> &weir_engine::record::StageRecord {
        self.record
            .stages
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stage {name}"))
    }

    fn error(&self, name: &str) -> String {
        self.stage(name).error.clone().unwrap_or_default()
    }

    fn assert_succeeded(&self, name: &str) {
        assert_eq!(
            self.stage(name).state,
            StageState::Succeeded,
            "{}",
            self.error(name)
        );
    }

    /// Every row of the current version of the dataset at `path`.
    async fn rows(&self, path: &str) -> Vec<RecordBatch> {
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(self.lake()).unwrap());
        let files = dataset::current_files(store.clone(), "d", &ObjectPath::from(path))
            .await
            .unwrap();
        let mut out = Vec::new();
        for f in files {
            let bytes = store.get(&f).await.unwrap().bytes().await.unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap()
                    .build()
                    .unwrap();
            out.extend(reader.map(Result::unwrap));
        }
        out
    }

    async fn ids(&self, path: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        for b in self.rows(path).await {
            let col = arrow::compute::cast(
                b.column_by_name("id").unwrap(),
                &arrow::datatypes::DataType::Int64,
            )
            .unwrap();
            ids.extend(col.as_primitive::<Int64Type>().iter().flatten());
        }
        ids
    }

    /// Every audit event, as debug text.
    async fn audit_text(&self) -> String {
        let state = self.dir.path().join("state");
        let audit = Audit::open_local(&state).await.unwrap();
        let events = audit
            .sink()
            .query(&weir_audit::Filter::all(), weir_audit::Page::first(1000))
            .await
            .unwrap();
        format!("{events:?}")
    }
}

async fn run(pipeline: &str, policy: &str, files: &[(&str, &[u8])]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let path = dir.path().join("lake").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let text = format!(
        "version: 1\nname: t\nprincipal: svc-t\nstores: {{ lake: {{ url: ./lake }} }}\n{pipeline}"
    );
    let pipeline = match weir_spec::load_str("t.yaml", &text, dir.path()) {
        Ok(loaded) => loaded.pipeline,
        Err(e) => panic!("{text}\n{e}"),
    };
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let policies = weir_policy::PolicySet::load_str("p.yaml", policy, dir.path()).unwrap();
    let audit = Audit::open_local(&state).await.unwrap();
    let security = Arc::new(Security::open(&state, policies, audit).unwrap());
    let engine = Engine::new(EngineConfig {
        state_dir: state,
        partitions: 2,
    });
    let record = engine
        .run(Arc::new(pipeline), security, CancellationToken::new(), None)
        .await
        .unwrap();
    Run { dir, record }
}

#[tokio::test]
async fn a_violation_fails_the_stage_with_a_precise_report_and_no_sensitive_value() {
    let pipeline = format!(
        r#"datasets:
  raw:
    store: lake
    path: raw/customers.csv
    contract:{}
  clean: {{ store: lake, path: out/clean }}
stages:
  - name: clean
    kind: sql
    inputs: [raw]
    outputs: [clean]
    sql: SELECT * FROM raw
"#,
        contract("fail")
    );
    let run = run(
        &pipeline,
        POLICY,
        &[("raw/customers.csv", CUSTOMERS.as_bytes())],
    )
    .await;
    assert_eq!(run.stage("clean").state, StageState::Failed);
    let error = run.error("clean");
    for expected in [
        "`raw`",
        "age",
        "range",
        "plan",
        "allowed",
        "email",
        "regex",
        "note",
        "max_length",
        "id",
    ] {
        assert!(error.contains(expected), "missing {expected}: {error}");
    }
    // Row numbers are 0-based in file order: age 17 is row 1.
    assert!(error.contains('1'), "{error}");
    assert!(!error.contains(SECRET_EMAIL), "{error}");
    assert!(!error.contains("not-an-email"), "sensitive: {error}");
    let audit = run.audit_text().await;
    assert!(audit.contains("ContractCheck"), "{audit}");
    assert!(!audit.contains(SECRET_EMAIL), "{audit}");
    // Nothing was committed.
    assert!(!run.lake().join("out/clean/_weir").exists());
}

#[tokio::test]
async fn a_validate_stage_quarantines_exactly_the_bad_rows() {
    let pipeline = format!(
        r#"datasets:
  raw:
    store: lake
    path: raw/customers.csv
    contract:{}
      quarantine: rejected
  valid: {{ store: lake, path: out/valid }}
  rejected: {{ store: lake, path: out/rejected }}
stages:
  - name: check
    kind: validate
    inputs: [raw]
    outputs: [valid, rejected]
"#,
        contract("quarantine")
    );
    let run = run(
        &pipeline,
        POLICY,
        &[("raw/customers.csv", CUSTOMERS.as_bytes())],
    )
    .await;
    run.assert_succeeded("check");
    // Bad: 2 (age 17), 3 (plan gold), 4 (email), 5 (note too long),
    // the second 5 (duplicate key), 7 (null email).
    assert_eq!(run.ids("out/valid").await, vec![1, 8]);
    let rejected = run.rows("out/rejected").await;
    let rows: usize = rejected.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 6);
    let batch = arrow::compute::concat_batches(&rejected[0].schema(), &rejected).unwrap();
    let row_numbers: Vec<u64> = batch
        .column_by_name("weir_row")
        .unwrap()
        .as_primitive::<arrow::datatypes::UInt64Type>()
        .values()
        .to_vec();
    assert_eq!(row_numbers, vec![1, 2, 3, 4, 5, 6]);
    let why = batch
        .column_by_name("weir_violations")
        .unwrap()
        .as_string::<i32>();
    assert!(why.value(0).contains("age:range"), "{}", why.value(0));
    assert!(why.value(1).contains("plan:allowed"), "{}", why.value(1));
    assert!(why.value(2).contains("email:regex"), "{}", why.value(2));
    assert!(why.value(3).contains("note:max_length"), "{}", why.value(3));
    assert!(why.value(4).contains("id:"), "{}", why.value(4));
    assert!(why.value(5).contains("email:not_null"), "{}", why.value(5));
    let checks = &run.stage("check").checks;
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].on, CheckPoint::Read);
    assert_eq!((checks[0].rows, checks[0].bad), (8, 6));
    assert_eq!(checks[0].quarantine.as_deref(), Some("rejected"));
    let audit = run.audit_text().await;
    assert!(audit.contains("6 quarantined"), "{audit}");
}

#[tokio::test]
async fn an_output_that_breaks_its_contract_is_not_committed_or_is_quarantined() {
    let out_contract = |mode: &str, extra: &str| {
        format!(
            r#"datasets:
  raw: {{ store: lake, path: raw/customers.csv }}
  adults:
    store: lake
    path: out/adults
    contract:
      on_violation: {mode}{extra}
      columns:
        id: int64
        age: {{ type: int64, range: {{ min: 18 }} }}
  young: {{ store: lake, path: out/young }}
stages:
  - name: pick
    kind: sql
    inputs: [raw]
    outputs: [adults{}]
    sql: SELECT id, age FROM raw
"#,
            if mode == "quarantine" { ", young" } else { "" }
        )
    };
    let run1 = run(
        &out_contract("fail", ""),
        POLICY,
        &[("raw/customers.csv", CUSTOMERS.as_bytes())],
    )
    .await;
    assert_eq!(run1.stage("pick").state, StageState::Failed);
    assert!(
        run1.error("pick").contains("on write"),
        "{}",
        run1.error("pick")
    );
    assert!(run1.error("pick").contains("age"), "{}", run1.error("pick"));
    assert!(!run1.lake().join("out/adults/_weir").exists());

    let run2 = run(
        &out_contract("quarantine", "\n      quarantine: young"),
        POLICY,
        &[("raw/customers.csv", CUSTOMERS.as_bytes())],
    )
    .await;
    run2.assert_succeeded("pick");
    let adults = run2.ids("out/adults").await;
    assert_eq!(adults.len(), 7, "{adults:?}");
    assert!(!adults.contains(&2));
    assert_eq!(run2.ids("out/young").await, vec![2]);
    assert_eq!(run2.stage("pick").checks[0].on, CheckPoint::Write);
}

#[tokio::test]
async fn malformed_csv_rows_are_reported_with_their_line_numbers() {
    let csv = "id,age\n1,30\n2,thirty\n3,40\n\"4\",\n5,5.5\n";
    let pipeline = r#"datasets:
  raw:
    store: lake
    path: raw/people.csv
    contract:
      columns: { id: int64, age: int64 }
  out: { store: lake, path: out/people }
stages:
  - name: load
    kind: sql
    inputs: [raw]
    outputs: [out]
    sql: SELECT * FROM raw
"#;
    let run = run(pipeline, POLICY, &[("raw/people.csv", csv.as_bytes())]).await;
    assert_eq!(run.stage("load").state, StageState::Failed);
    let error = run.error("load");
    assert!(error.contains("line 3"), "{error}");
    assert!(error.contains("line 6"), "{error}");
    assert!(
        !error.contains("line 5"),
        "an empty field is a null: {error}"
    );
}

#[tokio::test]
async fn split_is_deterministic_disjoint_and_complete() {
    let mut csv = String::from("id,customer\n");
    for i in 0..1000 {
        csv.push_str(&format!("{i},cust-{}\n", i % 250));
    }
    let pipeline = r#"datasets:
  raw: { store: lake, path: raw/rows.csv }
  train: { store: lake, path: out/train }
  test: { store: lake, path: out/test }
stages:
  - name: split
    kind: split
    inputs: [raw]
    outputs: [train, test]
    key: customer
    ratios: { train: 0.8, test: 0.2 }
"#;
    let run = run(pipeline, POLICY, &[("raw/rows.csv", csv.as_bytes())]).await;
    run.assert_succeeded("split");
    let train = run.ids("out/train").await;
    let test = run.ids("out/test").await;
    assert_eq!(train.len() + test.len(), 1000);
    let all: BTreeSet<i64> = train.iter().chain(&test).copied().collect();
    assert_eq!(all.len(), 1000);
    for id in &train {
        let key = format!("cust-{}", id % 250);
        assert!(weir_engine::udf::bucket(key.as_bytes(), 1_000_000) < 800_000);
    }
    for id in &test {
        let key = format!("cust-{}", id % 250);
        assert!(weir_engine::udf::bucket(key.as_bytes(), 1_000_000) >= 800_000);
    }
    // Roughly 80/20 by customer (250 keys).
    assert!((650..950).contains(&train.len()), "{}", train.len());
}

const PEOPLE: &str = "\
id,name,email,ssn,dept
1,Ann,ann@example.com,111-11-1111,eng
2,Bo,bo@example.com,222-22-2222,ops
3,Cy,ann@example.com,333-33-3333,eng
";

/// Analysts may read `raw/people.csv` without `ssn`, with `email` hashed
/// and `name` redacted; `dept` rows come from a second, unrestricted file.
const COLUMN_POLICY: &str = r#"
version: 1
stores: { lake: { url: ./lake } }
principals: { svc-t: { kind: service } }
grants:
  - id: people-no-ssn
    principal: svc-t
    effect: allow
    actions: [read]
    resources: [{ store: lake, path: "raw/people.csv/**" }]
    columns: { deny: [ssn], mask: { email: hash, name: redact } }
  - id: read-depts
    principal: svc-t
    effect: allow
    actions: [read]
    resources: [{ store: lake, path: "raw/depts.csv/**" }]
  - id: write-out
    principal: svc-t
    effect: allow
    actions: [read, write, delete]
    resources: [{ store: lake, path: "out/**" }]
"#;

async fn people_stage(stage: &str) -> Run {
    let pipeline = format!(
        "datasets:\n  people: {{ store: lake, path: raw/people.csv }}\n  depts: {{ store: lake, path: raw/depts.csv }}\n  out: {{ store: lake, path: out/x }}\nstages:\n{stage}"
    );
    run(
        &pipeline,
        COLUMN_POLICY,
        &[
            ("raw/people.csv", PEOPLE.as_bytes()),
            ("raw/depts.csv", b"dept,floor\neng,3\nops,1\n"),
        ],
    )
    .await
}

fn sql_stage(sql: &str) -> String {
    format!(
        "  - name: q\n    kind: sql\n    inputs: [people, depts]\n    outputs: [out]\n    sql: \"{sql}\"\n"
    )
}

#[tokio::test]
async fn a_query_naming_a_denied_column_fails_naming_the_column_and_the_grant() {
    for sql in [
        "SELECT ssn FROM people",
        "SELECT id FROM people WHERE ssn = '111-11-1111'",
        "WITH p AS (SELECT * FROM people) SELECT ssn FROM p",
        "SELECT x.ssn FROM (SELECT * FROM people) x",
        "SELECT d.floor, p.ssn FROM people p JOIN depts d ON p.dept = d.dept",
    ] {
        let run = people_stage(&sql_stage(sql)).await;
        assert_eq!(run.stage("q").state, StageState::Failed, "{sql}");
        let error = run.error("q");
        assert!(error.contains("ssn"), "{sql}: {error}");
        if !sql.starts_with("WITH") && !sql.contains("x.ssn") {
            assert!(error.contains("people-no-ssn"), "{sql}: {error}");
        }
        assert!(!error.contains("111-11-1111"), "{sql}: {error}");
    }
}

#[tokio::test]
async fn select_star_a_cte_a_subquery_and_a_join_never_reveal_hidden_or_masked_values() {
    for sql in [
        "SELECT * FROM people",
        "WITH p AS (SELECT * FROM people) SELECT * FROM p",
        "SELECT * FROM (SELECT * FROM people) x",
        "SELECT p.*, d.floor FROM people p JOIN depts d ON p.dept = d.dept",
    ] {
        let run = people_stage(&sql_stage(sql)).await;
        run.assert_succeeded("q");
        let batches = run.rows("out/x").await;
        let schema = batches[0].schema();
        assert!(schema.field_with_name("ssn").is_err(), "{sql}: {schema:?}");
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        for secret in ["111-11-1111", "ann@example.com", "Ann", "Bo"] {
            assert!(!text.contains(secret), "{sql}: {secret} in\n{text}");
        }
    }
}

#[tokio::test]
async fn masked_output_is_checked_value_by_value() {
    use hmac::{Hmac, Mac};
    let run = people_stage(&sql_stage("SELECT id, name, email FROM people ORDER BY id")).await;
    run.assert_succeeded("q");
    let batch = arrow::compute::concat_batches(
        &run.rows("out/x").await[0].schema(),
        &run.rows("out/x").await,
    )
    .unwrap();
    let names = batch.column_by_name("name").unwrap();
    let names = arrow::compute::cast(names, &arrow::datatypes::DataType::Utf8).unwrap();
    let names = names.as_string::<i32>();
    assert!(names.iter().all(|n| n == Some("[redacted]")), "{names:?}");
    // hash = hex(HMAC-SHA256(pipeline key, value)); pipeline key =
    // HMAC-SHA256(master, "weir mask key v1\0" ‖ principal "/" pipeline).
    let master = std::fs::read(run.dir.path().join("state/keys/mask/mask-key")).unwrap();
    let mut derive = Hmac::<sha2::Sha256>::new_from_slice(&master).unwrap();
    derive.update(b"weir mask key v1\0svc-t/t");
    let key = derive.finalize().into_bytes();
    let expected = |value: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(value.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let emails = arrow::compute::cast(
        batch.column_by_name("email").unwrap(),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    let emails = emails.as_string::<i32>();
    let want = [
        expected("ann@example.com"),
        expected("bo@example.com"),
        expected("ann@example.com"),
    ];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(emails.value(i), w, "row {i}");
    }
    // Same value, same hash: joins on a masked column still work.
    assert_eq!(emails.value(0), emails.value(2));
}

#[tokio::test]
async fn a_command_sees_only_the_permitted_columns_of_a_materialized_input() {
    let run = people_stage(
        r#"  - name: q
    kind: command
    inputs: [people]
    outputs: [out]
    run: ["/bin/sh", "-c", "cat \"$WEIR_INPUT_PEOPLE\"/* > \"$WEIR_OUTPUT_OUT/seen.csv\""]
"#,
    )
    .await;
    run.assert_succeeded("q");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(run.lake()).unwrap());
    let files = dataset::current_files(store.clone(), "out", &ObjectPath::from("out/x"))
        .await
        .unwrap();
    let seen = store.get(&files[0]).await.unwrap().bytes().await.unwrap();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("id,name,email,dept"), "{seen}");
    assert!(!seen.contains("111-11-1111"), "{seen}");
    assert!(!seen.contains("ann@example.com"), "{seen}");
    assert!(seen.contains("[redacted]"), "{seen}");
}

/// `people` with a contract that quarantines, read by a stage that may not
/// see `ssn` and sees `email` hashed.
fn people_with_contract(extra_rules: &str) -> String {
    format!(
        r#"datasets:
  people:
    store: lake
    path: raw/people.csv
    contract:
      on_violation: quarantine
      quarantine: rejected
      columns:
        id: {{ type: int64, range: {{ max: 2 }} }}
        name: string
        email: string
        ssn: {{ type: string{extra_rules} }}
        dept: string
  depts: {{ store: lake, path: raw/depts.csv }}
  out: {{ store: lake, path: out/x }}
  rejected: {{ store: lake, path: out/rejected }}
stages:
  - name: q
    kind: validate
    inputs: [people]
    outputs: [out, rejected]
"#
    )
}

#[tokio::test]
async fn quarantined_rows_get_the_reading_stages_column_limits() {
    let run = run(
        &people_with_contract(""),
        COLUMN_POLICY,
        &[("raw/people.csv", PEOPLE.as_bytes())],
    )
    .await;
    run.assert_succeeded("q");
    assert_eq!(run.ids("out/x").await, vec![1, 2]);
    let rejected = run.rows("out/rejected").await;
    let text = arrow::util::pretty::pretty_format_batches(&rejected)
        .unwrap()
        .to_string();
    assert!(
        rejected[0].schema().field_with_name("ssn").is_err(),
        "{text}"
    );
    assert!(
        rejected[0]
            .schema()
            .field_with_name("weir_violations")
            .is_ok(),
        "{text}"
    );
    for secret in ["333-33-3333", "ann@example.com", "Cy"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    assert!(text.contains("id:range"), "{text}");
}

#[tokio::test]
async fn rules_on_a_column_the_stage_cannot_see_are_not_an_oracle() {
    // Every ssn breaks this rule; a stage that cannot see ssn must learn
    // nothing from it: no failure, no quarantined row, no count.
    let run = run(
        &people_with_contract(", regex: '^9'"),
        COLUMN_POLICY,
        &[("raw/people.csv", PEOPLE.as_bytes())],
    )
    .await;
    run.assert_succeeded("q");
    let check = &run.stage("q").checks[0];
    assert_eq!(
        (check.rows, check.bad),
        (3, 1),
        "only id 3 breaks a visible rule"
    );
    let rejected = run.rows("out/rejected").await;
    let text = arrow::util::pretty::pretty_format_batches(&rejected)
        .unwrap()
        .to_string();
    assert!(!text.contains("ssn"), "{text}");
}

#[tokio::test]
async fn an_empty_contracted_output_is_committed() {
    let pipeline = r#"datasets:
  raw: { store: lake, path: raw/customers.csv }
  none:
    store: lake
    path: out/none
    contract:
      columns: { id: int64 }
  none_csv:
    store: lake
    path: out/none_csv
    format: csv
    contract:
      columns: { id: int64 }
stages:
  - name: pick
    kind: sql
    inputs: [raw]
    outputs: [none]
    sql: SELECT id FROM raw WHERE id < 0
  - name: pick-csv
    kind: sql
    inputs: [raw]
    outputs: [none_csv]
    sql: SELECT id FROM raw WHERE id < 0
"#;
    let run = run(
        pipeline,
        POLICY,
        &[("raw/customers.csv", CUSTOMERS.as_bytes())],
    )
    .await;
    run.assert_succeeded("pick");
    run.assert_succeeded("pick-csv");
    assert!(run.ids("out/none").await.is_empty());
}
