//! `command` stages end to end through [`Engine::run`], with a real policy,
//! a local audit log and the local filesystem as the data lake.
//!
//! Tests that need a variable in weir's own environment re-run this test
//! binary with that variable set (`std::env::set_var` is `unsafe`, which
//! this workspace forbids).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;
use weir_engine::record::{RunRecord, StageState};
use weir_engine::{Audit, Engine, EngineConfig, Security, dataset};

const CANARY: &str = "canary-3f9c1d0e-do-not-leak";
const DEPLOY_KEY: &str = "dk-7d1e2a9b44";
const JWT: &str =
    "eyJhbGciOiJFZERTQSIsImtpZCI6IjEifQ.eyJzdWIiOiJzdmMtdCIsInNjb3BlIjpbXX0.c2lnbmF0dXJlLWJ5dGVz";

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

/// A pipeline with the given stage (YAML, indented as a list item).
fn pipeline_text(stage: &str) -> String {
    format!(
        "version: 1
name: t
principal: svc-t
stores: {{ lake: {{ url: ./lake }} }}
datasets:
  raw: {{ store: lake, path: raw/a.csv }}
  other: {{ store: lake, path: raw/other.csv }}
  feats: {{ store: lake, path: raw/feats.parquet }}
  out: {{ store: lake, path: out/x }}
  extra: {{ store: lake, path: out/y }}
stages:
{stage}"
    )
}

struct Run {
    dir: tempfile::TempDir,
    record: RunRecord,
}

impl Run {
    fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    fn log(&self) -> String {
        let path = self
            .dir
            .path()
            .join("state/runs")
            .join(&self.record.run_id)
            .join("job-a1.log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn error(&self) -> String {
        self.record.stages[0].error.clone().unwrap_or_default()
    }

    fn assert_succeeded(&self) {
        assert_eq!(
            self.record.stages[0].state,
            StageState::Succeeded,
            "{}",
            self.error()
        );
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(LocalFileSystem::new_with_prefix(self.lake()).unwrap())
    }

    /// The named file of the current version of the dataset at `path`.
    async fn read(&self, path: &str, file: &str) -> String {
        let store = self.store();
        let manifest = dataset::read_manifest(store.as_ref(), &ObjectPath::from(path))
            .await
            .unwrap()
            .expect("committed");
        assert!(
            manifest.files.iter().any(|f| f.name == file),
            "{file} not in {manifest:?}"
        );
        let location = ObjectPath::parse(format!("{path}/{}/{file}", manifest.version)).unwrap();
        let bytes = store.get(&location).await.unwrap().bytes().await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

fn write_parquet(path: &Path, rows: i64) {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
    let batch = RecordBatch::try_from_iter([("id", ids)]).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

async fn run_stage(stage: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("lake/raw");
    std::fs::create_dir_all(&raw).unwrap();
    std::fs::write(raw.join("a.csv"), "id,v\n1,2\n").unwrap();
    std::fs::write(raw.join("other.csv"), "id,v\n9,9\n").unwrap();
    write_parquet(&raw.join("feats.parquet"), 7);
    let text = pipeline_text(stage);
    let pipeline = match weir_spec::load_str("t.yaml", &text, dir.path()) {
        Ok(loaded) => loaded.pipeline,
        Err(e) => panic!("{text}\n{e:?}"),
    };
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let policies = weir_policy::PolicySet::load_str("p.yaml", POLICY, dir.path()).unwrap();
    let audit = Audit::open_local(&state).await.unwrap();
    let security = Arc::new(Security::open(&state, policies, audit).unwrap());
    let engine = Engine::new(EngineConfig {
        state_dir: state.clone(),
        partitions: 1,
    });
    let record = engine
        .run(Arc::new(pipeline), security, CancellationToken::new(), None)
        .await
        .unwrap();
    Run { dir, record }
}

/// Runs `test` again in a child test process with `vars` in its
/// environment. Returns true in the outer process (the inner one did the
/// work), false in the inner one (go on and test).
fn reexec_with(test: &str, vars: &[(&str, &str)]) -> bool {
    if std::env::var_os("WEIR_COMMAND_TEST_INNER").is_some() {
        return false;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("WEIR_COMMAND_TEST_INNER", "1")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inner run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[tokio::test]
async fn child_env_has_no_canary_secret() {
    if reexec_with(
        "child_env_has_no_canary_secret",
        &[
            ("WEIR_TEST_CANARY", CANARY),
            ("AWS_SECRET_ACCESS_KEY", CANARY),
            ("WEIR_STAGE_TOKEN", JWT),
            ("PASSTHROUGH_OK", "visible"),
        ],
    ) {
        return;
    }
    assert_eq!(std::env::var("WEIR_TEST_CANARY").as_deref(), Ok(CANARY));
    let run = run_stage(
        r#"  - name: job
    kind: command
    inputs: [raw]
    outputs: [out]
    env: [PASSTHROUGH_OK, NOT_SET_ANYWHERE]
    run: ["/bin/sh", "-c", "env > \"$WEIR_OUTPUT_OUT/env.txt\""]
"#,
    )
    .await;
    run.assert_succeeded();
    let env = run.read("out/x", "env.txt").await;
    assert!(!env.contains(CANARY), "{env}");
    assert!(!env.contains("eyJ"), "{env}");
    assert!(!env.contains("AWS_"), "{env}");
    assert!(env.contains("PASSTHROUGH_OK=visible\n"), "{env}");
    assert!(env.contains("PATH=/usr/local/bin:/usr/bin:/bin\n"), "{env}");
    assert!(env.contains("WEIR_STAGE=job\n"), "{env}");
    assert!(env.contains("WEIR_ATTEMPT=1\n"), "{env}");
    assert!(env.contains("WEIR_ACCESS=materialized\n"), "{env}");
    assert!(
        env.contains(&format!("WEIR_RUN_ID={}\n", run.record.run_id)),
        "{env}"
    );
    // Nothing beyond what weir sets, the allowlist, and what sh adds itself.
    let allowed = [
        "PASSTHROUGH_OK",
        "PATH",
        "HOME",
        "WEIR_INPUT_RAW",
        "WEIR_OUTPUT_OUT",
        "WEIR_RUN_ID",
        "WEIR_STAGE",
        "WEIR_ATTEMPT",
        "WEIR_ACCESS",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ];
    for line in env.lines() {
        let name = line.split('=').next().unwrap();
        assert!(allowed.contains(&name), "unexpected variable {line}");
    }
}

#[tokio::test]
async fn child_sees_only_declared_inputs() {
    let run = run_stage(
        r#"  - name: job
    kind: command
    inputs: [raw]
    outputs: [out]
    shell: true
    run: |
      cd "$HOME/in" && find . | sort > "$WEIR_OUTPUT_OUT/in.txt"
      env | grep '^WEIR_INPUT_' | sort > "$WEIR_OUTPUT_OUT/inputs.txt"
      cp "$WEIR_INPUT_RAW/a.csv" "$WEIR_OUTPUT_OUT/copy.csv"
"#,
    )
    .await;
    run.assert_succeeded();
    assert_eq!(run.read("out/x", "in.txt").await, ".\n./raw\n./raw/a.csv\n");
    let inputs = run.read("out/x", "inputs.txt").await;
    assert_eq!(inputs.lines().count(), 1, "{inputs}");
    assert!(inputs.starts_with("WEIR_INPUT_RAW="), "{inputs}");
    assert!(inputs.trim_end().ends_with("/in/raw"), "{inputs}");
    assert_eq!(run.read("out/x", "copy.csv").await, "id,v\n1,2\n");
}

#[tokio::test]
async fn token_printed_by_child_is_redacted_in_logs() {
    if reexec_with(
        "token_printed_by_child_is_redacted_in_logs",
        &[("DEPLOY_KEY", DEPLOY_KEY)],
    ) {
        return;
    }
    let stage = format!(
        r#"  - name: job
    kind: command
    outputs: [out]
    env: [DEPLOY_KEY]
    shell: true
    run: |
      echo "bearer {JWT} end"
      echo "key=$DEPLOY_KEY" >&2
      echo visible-line
      echo ok > "$WEIR_OUTPUT_OUT/done.txt"
"#
    );
    let run = run_stage(&stage).await;
    run.assert_succeeded();
    let log = run.log();
    assert!(!log.contains("eyJ"), "{log}");
    assert!(!log.contains(DEPLOY_KEY), "{log}");
    assert!(log.contains("bearer *** end"), "{log}");
    assert!(log.contains("key=***"), "{log}");
    assert!(log.contains("visible-line"), "{log}");
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn timeout_kills_grandchildren() {
    let marker = tempfile::tempdir().unwrap();
    let pidfile = marker.path().join("grandchild.pid");
    let stage = format!(
        r#"  - name: job
    kind: command
    outputs: [out]
    timeout: 2s
    shell: true
    run: |
      sleep 1000 &
      echo $! > "{}"
      wait
"#,
        pidfile.display()
    );
    let run = run_stage(&stage).await;
    assert_eq!(run.record.stages[0].state, StageState::Failed);
    assert!(run.error().contains("timed out"), "{}", run.error());
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !process_gone(pid) {
        assert!(
            Instant::now() < deadline,
            "grandchild {pid} still alive after the stage timed out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn nonzero_exit_shows_stderr_tail() {
    let run = run_stage(
        r#"  - name: job
    kind: command
    outputs: [out]
    shell: true
    run: |
      echo partial > "$WEIR_OUTPUT_OUT/part.csv"
      i=1
      while [ $i -le 30 ]; do echo "problem line $i" >&2; i=$((i+1)); done
      exit 3
"#,
    )
    .await;
    assert_eq!(run.record.stages[0].state, StageState::Failed);
    let err = run.error();
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("problem line 11\n"), "{err}");
    assert!(err.ends_with("problem line 30"), "{err}");
    assert!(!err.contains("problem line 10\n"), "{err}");
    // Nothing was committed.
    assert!(!run.lake().join("out/x/_weir").exists());
}

#[tokio::test]
async fn outputs_are_committed_atomically() {
    let run = run_stage(
        r#"  - name: job
    kind: command
    inputs: [raw, feats]
    outputs: [out, extra]
    run:
      - /bin/sh
      - -c
      - |
        cp "$WEIR_INPUT_RAW/a.csv" "$WEIR_OUTPUT_OUT/part.csv"
        cp "$WEIR_INPUT_FEATS/feats.parquet" "$WEIR_OUTPUT_OUT/feats.parquet"
        mkdir -p "$WEIR_OUTPUT_EXTRA/sub"
        printf model > "$WEIR_OUTPUT_EXTRA/model.bin"
        printf cfg > "$WEIR_OUTPUT_EXTRA/sub/cfg.txt"
"#,
    )
    .await;
    run.assert_succeeded();
    let stage = &run.record.stages[0];
    assert_eq!(stage.rows_written, 7, "parquet footer rows");
    assert_eq!(stage.outputs.len(), 2);
    assert_eq!(run.read("out/x", "part.csv").await, "id,v\n1,2\n");
    assert_eq!(run.read("out/y", "model.bin").await, "model");
    assert_eq!(run.read("out/y", "sub/cfg.txt").await, "cfg");
    let store = run.store();
    let files = dataset::current_files(store, "out", &ObjectPath::from("out/x"))
        .await
        .unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    let version = &stage.outputs[0].version;
    assert!(
        files
            .iter()
            .all(|f| f.as_ref().starts_with(&format!("out/x/{version}/"))),
        "{files:?}"
    );
}

#[tokio::test]
async fn empty_output_is_an_error() {
    let run = run_stage(
        r#"  - name: job
    kind: command
    outputs: [out, extra]
    shell: true
    run: echo hi > "$WEIR_OUTPUT_OUT/x.txt"
"#,
    )
    .await;
    assert_eq!(run.record.stages[0].state, StageState::Failed);
    assert!(
        run.error()
            .contains("command wrote nothing to output `extra`"),
        "{}",
        run.error()
    );
    assert!(!run.lake().join("out/x/_weir").exists());
}

#[tokio::test]
async fn symlinked_output_is_refused() {
    let run = run_stage(
        r#"  - name: job
    kind: command
    outputs: [out]
    shell: true
    run: ln -s /etc/passwd "$WEIR_OUTPUT_OUT/passwd"
"#,
    )
    .await;
    assert_eq!(run.record.stages[0].state, StageState::Failed);
    assert!(run.error().contains("symbolic link"), "{}", run.error());
}
