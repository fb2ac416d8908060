//! Stages on an S3-compatible server that verifies SigV4 (s3s-fs, started
//! by `.ci/run`), through [`Engine::run`] with a real policy and audit log.
//!
//! Runs when `WEIR_TEST_S3_ENDPOINT`, `WEIR_TEST_S3_BUCKET`,
//! `WEIR_TEST_S3_ACCESS_KEY` and `WEIR_TEST_S3_SECRET_KEY` are set (CI sets
//! them); otherwise each test prints why it skipped. Each test re-runs
//! itself with the credentials as `AWS_*` variables (weir reads them from
//! its environment; `std::env::set_var` is `unsafe`, which this workspace
//! forbids), so no other test process ever holds them.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ObjectStoreExt, PutPayload};
use tokio_util::sync::CancellationToken;
use weir_audit::{Filter, Page};
use weir_engine::record::{RunRecord, StageState};
use weir_engine::{Audit, Engine, EngineConfig, Security, dataset};

const INNER: &str = "WEIR_S3_TEST_INNER";

struct Server {
    endpoint: String,
    bucket: String,
    access_key: String,
    secret_key: String,
}

fn server() -> Option<Server> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    Some(Server {
        endpoint: var("WEIR_TEST_S3_ENDPOINT")?,
        bucket: var("WEIR_TEST_S3_BUCKET")?,
        access_key: var("WEIR_TEST_S3_ACCESS_KEY")?,
        secret_key: var("WEIR_TEST_S3_SECRET_KEY")?,
    })
}

/// In the outer process: re-runs `test` with the `AWS_*` credentials set
/// and returns true. In the inner process: returns false (go on).
fn reexec(test: &str) -> Option<bool> {
    let Some(s) = server() else {
        eprintln!("skipped: WEIR_TEST_S3_ENDPOINT and friends are not set (.ci/run sets them)");
        return None;
    };
    if std::env::var_os(INNER).is_some() {
        return Some(false);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .env("AWS_ACCESS_KEY_ID", &s.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(true)
}

/// A bucket client with the test credentials (or `secret` instead).
fn client(s: &Server, secret: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(&s.endpoint)
        .with_bucket_name(&s.bucket)
        .with_region("us-east-1")
        .with_access_key_id(&s.access_key)
        .with_secret_access_key(secret)
        .with_allow_http(true)
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap()
}

const POLICY: &str = r#"
version: 1
stores:
  lake: { url: "s3://${WEIR_TEST_S3_BUCKET}/${WEIR_S3_TEST_PREFIX}", endpoint: "${WEIR_TEST_S3_ENDPOINT}" }
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

struct Lake {
    server: Server,
    prefix: String,
    bucket: AmazonS3,
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
}

impl Lake {
    /// A fresh prefix in the test bucket with `raw/data.csv` and an
    /// undeclared `raw/secret.csv`.
    async fn new() -> Self {
        let server = server().unwrap();
        let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
        let bucket = client(&server, &server.secret_key);
        for (name, body) in [
            ("raw/data.csv", "id,v\n1,10\n2,20\n3,30\n"),
            ("private/secret.csv", "ssn\n123-45-6789\n"),
        ] {
            bucket
                .put(
                    &ObjectPath::from(format!("{prefix}/{name}")),
                    PutPayload::from(body.as_bytes().to_vec()),
                )
                .await
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        Self {
            server,
            prefix,
            bucket,
            _dir: dir,
            state,
        }
    }

    fn store_yaml(&self) -> String {
        format!(
            "{{ lake: {{ url: \"s3://{}/{}\", endpoint: \"{}\" }} }}",
            self.server.bucket, self.prefix, self.server.endpoint
        )
    }

    async fn run(&self, stages: &str) -> RunRecord {
        let text = format!(
            "version: 1
name: t
principal: svc-t
stores: {}
datasets:
  raw: {{ store: lake, path: raw/data.csv, format: csv }}
  secret: {{ store: lake, path: private/secret.csv, format: csv }}
  table: {{ store: lake, path: out/table }}
  copy: {{ store: lake, path: out/copy }}
stages:
{stages}",
            self.store_yaml()
        );
        let pipeline = match weir_spec::load_str("t.yaml", &text, self._dir.path()) {
            Ok(loaded) => loaded.pipeline,
            Err(e) => panic!("{text}\n{e:?}"),
        };
        let policy = POLICY
            .replace("${WEIR_S3_TEST_PREFIX}", &self.prefix)
            .replace("${WEIR_TEST_S3_BUCKET}", &self.server.bucket);
        let policies =
            weir_policy::PolicySet::load_str("p.yaml", &policy, self._dir.path()).unwrap();
        let audit = Audit::open_local(&self.state).await.unwrap();
        let security = Arc::new(Security::open(&self.state, policies, audit).unwrap());
        let engine = Engine::new(EngineConfig {
            state_dir: self.state.clone(),
            partitions: 1,
        });
        engine
            .run(Arc::new(pipeline), security, CancellationToken::new(), None)
            .await
            .unwrap()
    }

    /// The bytes of `file` in the current version of the dataset at `path`.
    async fn read(&self, path: &str, file: &str) -> Vec<u8> {
        let store =
            object_store::prefix::PrefixStore::new(self.bucket.clone(), self.prefix.as_str());
        let manifest = dataset::read_manifest(&store, &ObjectPath::from(path))
            .await
            .unwrap()
            .expect("committed");
        let location = ObjectPath::parse(format!("{path}/{}/{file}", manifest.version)).unwrap();
        store
            .get(&location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    fn log(&self, record: &RunRecord, stage: &str) -> String {
        let path = self
            .state
            .join("runs")
            .join(&record.run_id)
            .join(format!("{stage}-a1.log"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// (reason, decision, path) of every data-access event.
    async fn audit_operations(&self) -> Vec<(String, String, String)> {
        let audit = Audit::open_local(&self.state).await.unwrap();
        let events = audit
            .sink()
            .query(&Filter::all(), Page::first(1000))
            .await
            .unwrap();
        events
            .into_iter()
            .filter_map(|e| {
                let path = e.path?;
                Some((
                    e.reason.unwrap_or_default(),
                    format!("{:?}", e.decision).to_lowercase(),
                    path,
                ))
            })
            .collect()
    }
}

fn assert_succeeded(record: &RunRecord) {
    for s in &record.stages {
        assert_eq!(s.state, StageState::Succeeded, "{}: {:?}", s.name, s.error);
    }
}

const SQL_STAGE: &str = "  - name: load
    kind: sql
    inputs: [raw]
    outputs: [table]
    sql: SELECT CAST(id AS BIGINT) AS id, CAST(v AS BIGINT) AS v FROM raw ORDER BY id
";

#[tokio::test]
async fn sql_and_command_stages_run_on_s3_through_the_guard() {
    if reexec("sql_and_command_stages_run_on_s3_through_the_guard") != Some(false) {
        return;
    }
    let lake = Lake::new().await;
    let record = lake
        .run(&format!(
            "{SQL_STAGE}  - name: copy
    kind: command
    inputs: [table]
    outputs: [copy]
    run: [\"/bin/sh\", \"-c\", \"cp \\\"$WEIR_INPUT_TABLE\\\"/* \\\"$WEIR_OUTPUT_COPY\\\"/ && env > \\\"$WEIR_OUTPUT_COPY\\\"/env.txt\"]
"
        ))
        .await;
    assert_succeeded(&record);
    let env = String::from_utf8(lake.read("out/copy", "env.txt").await).unwrap();
    let secret = &lake.server.secret_key;
    assert!(
        !env.contains(secret.as_str()),
        "the child saw the S3 secret"
    );
    assert!(!env.contains("AWS_"), "{env}");
    let manifest = {
        let store =
            object_store::prefix::PrefixStore::new(lake.bucket.clone(), lake.prefix.as_str());
        dataset::read_manifest(&store, &ObjectPath::from("out/copy"))
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(manifest.rows, 3, "{manifest:?}");
    let ops = lake.audit_operations().await;
    assert!(
        ops.iter().all(|(_, d, _)| d != "deny"),
        "unexpected denial: {ops:?}"
    );
    assert!(!ops.iter().any(|(_, _, p)| p.contains("secret")), "{ops:?}");
}

/// A presigned stage: GET URLs for its input, PUT URLs for its output. The
/// child (Python, standard library only) also tries what it must not do.
const PRESIGNED_CHILD: &str = r#"
import json, os, sys, urllib.request, urllib.error
def status(req):
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
inp = json.load(open(os.environ["WEIR_INPUT_TABLE"]))
out = json.load(open(os.environ["WEIR_OUTPUT_COPY"]))
assert inp["method"] == "GET" and out["method"] == "PUT", (inp["method"], out["method"])
src = inp["files"][0]["url"]
code, body = status(src)
assert code == 200, code
print("fetched", len(body), "bytes from", src)
other = src.split("/out/table/")[0] + "/private/secret.csv?" + src.split("?", 1)[1]
sig = src.rsplit("X-Amz-Signature=", 1)
tampered = sig[0] + "X-Amz-Signature=" + ("0" if sig[1][0] != "0" else "1") + sig[1][1:]
put_as_get = out["files"][0]["url"]
results = {
    "other_object": status(other)[0],
    "tampered": status(tampered)[0],
    "put_url_used_for_get": status(put_as_get)[0],
    "unsigned": status(src.split("?")[0])[0],
}
print("hostile", json.dumps(results, sort_keys=True))
if any(c != 403 for c in results.values()):
    sys.exit("a hostile request was not refused: " + json.dumps(results))
req = urllib.request.Request(out["files"][0]["url"], data=body, method="PUT")
code, _ = status(req)
assert code == 200, code
print("uploaded", out["files"][0]["name"])
"#;

#[tokio::test]
async fn presigned_stage_gets_exactly_its_objects_and_urls_are_never_logged() {
    if reexec("presigned_stage_gets_exactly_its_objects_and_urls_are_never_logged") != Some(false) {
        return;
    }
    let lake = Lake::new().await;
    let script = lake._dir.path().join("child.py");
    std::fs::write(&script, PRESIGNED_CHILD).unwrap();
    let record = lake
        .run(&format!(
            "{SQL_STAGE}  - name: copy
    kind: command
    access: presigned
    parts: 2
    inputs: [table]
    outputs: [copy]
    run: [\"python3\", \"{}\"]
",
            script.display()
        ))
        .await;
    let log = lake.log(&record, "copy");
    assert_succeeded(&record);
    assert!(log.contains(r#""other_object": 403"#), "{log}");
    assert!(log.contains("X-Amz-Signature=***"), "{log}");
    // The signature never reaches the log.
    assert!(
        log.match_indices("X-Amz-Signature=")
            .all(|(i, k)| log[i + k.len()..].starts_with("***")),
        "{log}"
    );
    let copied = lake.read("out/copy", "part-00000.parquet").await;
    let table = {
        let store =
            object_store::prefix::PrefixStore::new(lake.bucket.clone(), lake.prefix.as_str());
        let m = dataset::read_manifest(&store, &ObjectPath::from("out/table"))
            .await
            .unwrap()
            .unwrap();
        lake.read("out/table", &m.files[0].name).await
    };
    assert_eq!(copied, table);
    let ops = lake.audit_operations().await;
    let presign = |op: &str| ops.iter().filter(|(r, _, _)| r.starts_with(op)).count();
    assert_eq!(presign("presign_get"), 1, "{ops:?}");
    assert_eq!(presign("presign_put"), 2, "{ops:?}");
}

#[tokio::test]
async fn presigned_stage_on_an_undeclared_object_is_refused_at_plan_time() {
    if reexec("presigned_stage_on_an_undeclared_object_is_refused_at_plan_time") != Some(false) {
        return;
    }
    let lake = Lake::new().await;
    let text = format!(
        "version: 1\nname: t\nprincipal: svc-t\nstores: {}\ndatasets:\n  secret: {{ store: lake, path: private/secret.csv, format: csv }}\n  copy: {{ store: lake, path: out/copy }}\nstages:\n  - name: leak\n    kind: command\n    access: presigned\n    inputs: [secret]\n    outputs: [copy]\n    run: [\"true\"]\n",
        lake.store_yaml()
    );
    let pipeline = weir_spec::load_str("t.yaml", &text, lake._dir.path())
        .unwrap()
        .pipeline;
    let policy = POLICY
        .replace("${WEIR_S3_TEST_PREFIX}", &lake.prefix)
        .replace("${WEIR_TEST_S3_BUCKET}", &lake.server.bucket);
    let policies = weir_policy::PolicySet::load_str("p.yaml", &policy, lake._dir.path()).unwrap();
    let audit = Audit::open_local(&lake.state).await.unwrap();
    let security = Security::open(&lake.state, policies, audit).unwrap();
    let missing = security.plan(&pipeline).unwrap_err();
    assert!(
        missing
            .iter()
            .any(|m| m.yaml_snippet().contains("private/secret.csv")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn the_server_verifies_signatures_and_expiry() {
    if reexec("the_server_verifies_signatures_and_expiry") != Some(false) {
        return;
    }
    let lake = Lake::new().await;
    let key = ObjectPath::from(format!("{}/raw/data.csv", lake.prefix));
    // Wrong secret: refused.
    let wrong = client(&lake.server, "not-the-secret-at-all");
    let err = wrong.get(&key).await.unwrap_err();
    assert!(
        err.to_string().contains("403")
            || matches!(
                err,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
        "{err}"
    );
    // Anonymous: refused.
    let http = reqwest::Client::new();
    let anon = format!("{}/{}/{key}", lake.server.endpoint, lake.server.bucket);
    assert_eq!(http.get(&anon).send().await.unwrap().status(), 403);
    // A presigned URL works, then expires.
    let url = lake
        .bucket
        .signed_url(http::Method::GET, &key, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(http.get(url.clone()).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(http.get(url).send().await.unwrap().status(), 403);
}
