//! Distributed runs end to end: the dispatcher and workers talk through a
//! broker (in process, and the real Redis when `WEIR_TEST_REDIS_URL` is
//! set), with signed envelopes, verified stage tokens, fenced commits and
//! output leases.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use tokio_util::sync::CancellationToken;
use weir_audit::{Action, Decision, Filter, Origin, Page};
use weir_auth::StageClaims;
use weir_engine::distributed::protocol::TaskBody;
use weir_engine::distributed::{
    Envelopes, InProcessBroker, PipelineOperator, RedisBroker, StageOperator, Worker, WorkerConfig,
};
use weir_engine::queue::{Fences, Leases, OnceSet, QueueConfig, TaskId, WorkQueue};
use weir_engine::record::{RunRecord, RunStatus, StageState};
use weir_engine::{Audit, Broker, Engine, EngineConfig, Security, StageOutput, dataset};

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
    actions: [read, write, delete, list]
    resources: [{ store: lake, path: "out/**" }]
"#;

fn pipeline_text(stages: &str) -> String {
    format!(
        "version: 1
name: t
principal: svc-t
defaults: {{ concurrency: 2 }}
stores: {{ lake: {{ url: ./lake }} }}
datasets:
  raw: {{ store: lake, path: raw/a.csv }}
  out: {{ store: lake, path: out/x }}
  sums: {{ store: lake, path: out/sums }}
stages:
{stages}"
    )
}

const SQL_STAGES: &str = "  - name: copy
    kind: sql
    inputs: [raw]
    outputs: [out]
    sql: SELECT id, v FROM raw
  - name: sum
    kind: sql
    inputs: [out]
    outputs: [sums]
    sql: SELECT count(*) AS n, sum(v) AS total FROM out
";

fn queue_config() -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_millis(800),
        ..QueueConfig::default()
    }
}

/// A broker that remembers every task payload it carried, so tests can
/// replay one.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Broker>,
    tasks: Arc<RecordingQueue>,
}

#[derive(Debug)]
struct RecordingQueue {
    inner: Arc<dyn WorkQueue>,
    seen: Mutex<Vec<Bytes>>,
}

#[async_trait::async_trait]
impl WorkQueue for RecordingQueue {
    async fn enqueue(&self, payload: Bytes) -> weir_engine::queue::Result<TaskId> {
        self.seen.lock().unwrap().push(payload.clone());
        self.inner.enqueue(payload).await
    }
    async fn enqueue_many(&self, payloads: Vec<Bytes>) -> weir_engine::queue::Result<Vec<TaskId>> {
        self.seen.lock().unwrap().extend(payloads.iter().cloned());
        self.inner.enqueue_many(payloads).await
    }
    async fn ack_many(&self, ids: &[TaskId]) -> weir_engine::queue::Result<()> {
        self.inner.ack_many(ids).await
    }
    async fn receive(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> weir_engine::queue::Result<Vec<weir_engine::queue::Delivery>> {
        self.inner.receive(consumer, max, wait).await
    }
    async fn ack(&self, id: &TaskId) -> weir_engine::queue::Result<()> {
        self.inner.ack(id).await
    }
    async fn extend(&self, consumer: &str, id: &TaskId) -> weir_engine::queue::Result<()> {
        self.inner.extend(consumer, id).await
    }
    async fn dead_letters(
        &self,
        max: usize,
    ) -> weir_engine::queue::Result<Vec<weir_engine::queue::DeadLetter>> {
        self.inner.dead_letters(max).await
    }
    async fn len(&self) -> weir_engine::queue::Result<weir_engine::queue::QueueDepth> {
        self.inner.len().await
    }
    async fn delete(&self) -> weir_engine::queue::Result<()> {
        self.inner.delete().await
    }
}

#[async_trait::async_trait]
impl Broker for Recording {
    fn tasks(&self) -> Arc<dyn WorkQueue> {
        self.tasks.clone()
    }
    async fn queue(&self, name: &str) -> weir_engine::Result<Arc<dyn WorkQueue>> {
        self.inner.queue(name).await
    }
    fn leases(&self) -> Arc<dyn Leases> {
        self.inner.leases()
    }
    fn fences(&self) -> Arc<dyn Fences> {
        self.inner.fences()
    }
    fn once(&self) -> Arc<dyn OnceSet> {
        self.inner.once()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    state: PathBuf,
    broker: Arc<Recording>,
    stop: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    async fn new(broker: Arc<dyn Broker>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("lake/raw");
        std::fs::create_dir_all(&raw).unwrap();
        std::fs::write(raw.join("a.csv"), "id,v\n1,10\n2,20\n3,30\n").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let broker = Arc::new(Recording {
            tasks: Arc::new(RecordingQueue {
                inner: broker.tasks(),
                seen: Mutex::default(),
            }),
            inner: broker,
        });
        Self {
            dir,
            state,
            broker,
            stop: CancellationToken::new(),
            workers: Vec::new(),
        }
    }

    async fn security(&self) -> Arc<Security> {
        let policies = weir_policy::PolicySet::load_str("p.yaml", POLICY, self.dir.path()).unwrap();
        let audit = Audit::open_local(&self.state).await.unwrap();
        Arc::new(Security::open(&self.state, policies, audit).unwrap())
    }

    /// Starts a worker running `operator` (the real one if `None`).
    async fn start_worker(&mut self, name: &str, operator: Option<Arc<dyn StageOperator>>) {
        let audit = Audit::open_local_as(
            &self.state,
            Origin::Worker {
                host: name.to_owned(),
            },
        )
        .await
        .unwrap();
        let broker: Arc<dyn Broker> = self.broker.clone();
        let operator = operator.unwrap_or_else(|| {
            Arc::new(PipelineOperator::new(
                &self.state,
                1,
                audit.clone(),
                broker.clone(),
            ))
        });
        let worker = Arc::new(
            Worker::new(
                broker,
                audit,
                WorkerConfig {
                    consumer: name.to_owned(),
                    concurrency: 2,
                    state_dir: self.state.clone(),
                    partitions: 1,
                    poll: Duration::from_millis(200),
                    heartbeat: Duration::from_millis(200),
                },
                operator,
            )
            .unwrap(),
        );
        let stop = self.stop.clone();
        self.workers.push(tokio::spawn(async move {
            worker.run(stop).await.unwrap();
        }));
    }

    async fn run(&self, stages: &str) -> RunRecord {
        let security = self.security().await;
        self.run_with(stages, security).await.unwrap()
    }

    async fn run_with(
        &self,
        stages: &str,
        security: Arc<Security>,
    ) -> weir_engine::Result<RunRecord> {
        let text = pipeline_text(stages);
        let file = self.dir.path().join("t.yaml");
        std::fs::write(&file, &text).unwrap();
        let pipeline = weir_spec::load_file(&file).unwrap().pipeline;
        let broker: Arc<dyn Broker> = self.broker.clone();
        let envelopes = Envelopes::open(&self.state, broker.as_ref()).unwrap();
        Engine::new(EngineConfig {
            state_dir: self.state.clone(),
            partitions: 1,
        })
        .run_distributed(
            Arc::new(pipeline),
            text,
            security,
            broker,
            envelopes,
            CancellationToken::new(),
            None,
        )
        .await
    }

    fn lake(&self) -> Arc<dyn ObjectStore> {
        Arc::new(LocalFileSystem::new_with_prefix(self.dir.path().join("lake")).unwrap())
    }

    async fn manifest(&self, path: &str) -> dataset::Manifest {
        dataset::read_manifest(self.lake().as_ref(), &ObjectPath::from(path))
            .await
            .unwrap()
            .expect("committed")
    }

    async fn events(&self, action: Action) -> Vec<weir_audit::AuditEvent> {
        let audit = Audit::open_local(&self.state).await.unwrap();
        audit
            .sink()
            .query(&Filter::all().action(action), Page::first(1000))
            .await
            .unwrap()
    }

    async fn shutdown(self) {
        self.stop.cancel();
        for w in self.workers {
            w.await.unwrap();
        }
        self.broker.inner.tasks().delete().await.unwrap();
    }
}

fn assert_succeeded(record: &RunRecord) {
    for s in &record.stages {
        assert_eq!(s.state, StageState::Succeeded, "{}: {:?}", s.name, s.error);
    }
    assert_eq!(record.status, RunStatus::Succeeded);
}

async fn in_process() -> Fixture {
    Fixture::new(Arc::new(InProcessBroker::new(queue_config()).unwrap())).await
}

/// Redis broker, or `None` (test skipped) without `WEIR_TEST_REDIS_URL`.
async fn redis() -> Option<Fixture> {
    let Ok(url) = std::env::var("WEIR_TEST_REDIS_URL") else {
        eprintln!("WEIR_TEST_REDIS_URL is not set: skipping the Redis test");
        return None;
    };
    // A task queue of its own: tests run in parallel, each with its own keys.
    let tasks = format!("tasks-{}", ulid::Ulid::new());
    let broker = RedisBroker::connect_to(&url, &tasks, queue_config())
        .await
        .unwrap();
    Some(Fixture::new(Arc::new(broker)).await)
}

async fn pipeline_runs_on_workers(mut f: Fixture) {
    // Keys exist before workers start (the coordinator creates them).
    let _ = f.security().await;
    let broker: Arc<dyn Broker> = f.broker.clone();
    Envelopes::open(&f.state, broker.as_ref()).unwrap();
    f.start_worker("w1", None).await;
    f.start_worker("w2", None).await;
    let record = f.run(SQL_STAGES).await;
    assert_succeeded(&record);
    assert_eq!(record.stages[0].rows_written, 3);
    let m = f.manifest("out/sums").await;
    assert_eq!((m.rows, m.attempt), (1, 1));
    // Every task was received by a worker, verified and recorded.
    let received = f.events(Action::TaskReceive).await;
    assert_eq!(
        received
            .iter()
            .filter(|e| e.decision == Decision::Allow)
            .count(),
        2
    );
    assert!(
        received
            .iter()
            .all(|e| e.origin.encode().starts_with("worker:"))
    );
    // Data access happened on the workers, through guarded stores.
    let reads = f.events(Action::Read).await;
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|e| e.origin.encode().starts_with("worker:"))
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_pipeline_runs_on_workers() {
    pipeline_runs_on_workers(in_process().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pipeline_runs_on_workers() {
    if let Some(f) = redis().await {
        pipeline_runs_on_workers(f).await;
    }
}

async fn hostile_and_replayed_tasks_are_refused_and_audited(mut f: Fixture) {
    let _ = f.security().await;
    let broker: Arc<dyn Broker> = f.broker.clone();
    Envelopes::open(&f.state, broker.as_ref()).unwrap();
    f.start_worker("w1", None).await;
    let record = f.run(SQL_STAGES).await;
    assert_succeeded(&record);
    let before = f.manifest("out/x").await;
    let sent = f.broker.tasks.seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);

    // Replay of an acknowledged task, garbage, and a flipped bit.
    let tasks = f.broker.inner.tasks();
    tasks.enqueue(sent[0].clone()).await.unwrap();
    tasks
        .enqueue(Bytes::from_static(b"{\"run_id\":\"x\"}"))
        .await
        .unwrap();
    let mut flipped = sent[1].to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    tasks.enqueue(Bytes::from(flipped)).await.unwrap();

    let mut refused = Vec::new();
    for _ in 0..100 {
        refused = f
            .events(Action::TaskReceive)
            .await
            .into_iter()
            .filter(|e| e.decision == Decision::Deny)
            .collect();
        if refused.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reasons: Vec<String> = refused
        .iter()
        .map(|e| e.reason.clone().unwrap_or_default())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("replayed")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("malformed")),
        "{reasons:?}"
    );
    // Nothing ran again: the dataset is the one the run committed.
    assert_eq!(f.manifest("out/x").await, before);
    // No token, MAC or payload reached the audit log.
    for r in &reasons {
        assert!(!r.contains("eyJ") && !r.contains("weir1."), "{r}");
    }
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_hostile_and_replayed_tasks_are_refused_and_audited() {
    hostile_and_replayed_tasks_are_refused_and_audited(in_process().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hostile_and_replayed_tasks_are_refused_and_audited() {
    if let Some(f) = redis().await {
        hostile_and_replayed_tasks_are_refused_and_audited(f).await;
    }
}

/// Holds attempt 1 back past the stage timeout, then lets it run: a zombie.
struct SlowFirstAttempt {
    inner: Arc<dyn StageOperator>,
    zombie_done: Arc<tokio::sync::Notify>,
    zombie_result: Arc<Mutex<Option<String>>>,
}

#[async_trait::async_trait]
impl StageOperator for SlowFirstAttempt {
    async fn run(&self, task: &TaskBody, claims: &StageClaims) -> weir_engine::Result<StageOutput> {
        if task.attempt == 1 {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let result = self.inner.run(task, claims).await;
            *self.zombie_result.lock().unwrap() = Some(match &result {
                Ok(_) => "committed".into(),
                Err(e) => e.to_string(),
            });
            self.zombie_done.notify_one();
            return result;
        }
        self.inner.run(task, claims).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_attempt_never_overwrites_the_newer_commit() {
    let mut f = in_process().await;
    let _ = f.security().await;
    let broker: Arc<dyn Broker> = f.broker.clone();
    Envelopes::open(&f.state, broker.as_ref()).unwrap();
    let audit = Audit::open_local(&f.state).await.unwrap();
    let zombie_done = Arc::new(tokio::sync::Notify::new());
    let zombie_result = Arc::new(Mutex::new(None));
    let operator = Arc::new(SlowFirstAttempt {
        inner: Arc::new(PipelineOperator::new(&f.state, 1, audit, broker.clone())),
        zombie_done: zombie_done.clone(),
        zombie_result: zombie_result.clone(),
    });
    f.start_worker("w1", Some(operator)).await;
    let record = f
        .run(
            "  - name: copy
    kind: sql
    timeout: 1s
    retries: 1
    inputs: [raw]
    outputs: [out]
    sql: SELECT id, v FROM raw
",
        )
        .await;
    assert_succeeded(&record);
    assert_eq!(record.stages[0].attempts, 2);
    tokio::time::timeout(Duration::from_secs(20), zombie_done.notified())
        .await
        .expect("the zombie attempt finished");
    let zombie = zombie_result.lock().unwrap().clone().unwrap();
    assert!(zombie.contains("may no longer commit"), "{zombie}");
    let m = f.manifest("out/x").await;
    assert_eq!(m.attempt, 2, "the newer attempt stays current");
    // The zombie removed what it staged.
    let zombie_version = dataset::version_name(&record.run_id, 1);
    let listed = f
        .lake()
        .list_with_delimiter(Some(&ObjectPath::from("out/x")))
        .await
        .unwrap();
    assert!(
        listed
            .common_prefixes
            .iter()
            .all(|p| !p.as_ref().ends_with(&zombie_version)),
        "{listed:?}"
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_writing_the_same_dataset_is_refused_while_the_first_runs() {
    let mut f = in_process().await;
    let _ = f.security().await;
    let broker: Arc<dyn Broker> = f.broker.clone();
    Envelopes::open(&f.state, broker.as_ref()).unwrap();
    // A lease held by another run, as a concurrent dispatcher would hold it.
    let key = format!(
        "file://{}/out/x",
        f.dir
            .path()
            .join("lake")
            .components()
            .collect::<PathBuf>()
            .display()
    );
    f.broker
        .leases()
        .acquire(&key, "run-other", Duration::from_secs(30))
        .await
        .unwrap();
    f.start_worker("w1", None).await;
    let security = f.security().await;
    let err = f.run_with(SQL_STAGES, security).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("dataset `out`") && msg.contains("run-other"),
        "{msg}"
    );
    f.broker.leases().release(&key, "run-other").await.unwrap();
    assert_succeeded(&f.run(SQL_STAGES).await);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_key_leaves_the_task_for_a_worker_that_has_it() {
    let mut f = in_process().await;
    let _ = f.security().await;
    let broker: Arc<dyn Broker> = f.broker.clone();
    let envelopes = Envelopes::open(&f.state, broker.as_ref()).unwrap();
    // A misconfigured worker: its own (other) keys.
    let stray_state = f.dir.path().join("stray");
    std::fs::create_dir_all(&stray_state).unwrap();
    Envelopes::open(&stray_state, broker.as_ref()).unwrap();
    weir_auth::StageKeySet::open(&stray_state, chrono::Utc::now().timestamp()).unwrap();
    let stray_audit = Audit::open_local(&stray_state).await.unwrap();
    let stray = Arc::new(
        Worker::new(
            broker.clone(),
            stray_audit.clone(),
            WorkerConfig {
                consumer: "stray".into(),
                concurrency: 2,
                state_dir: stray_state.clone(),
                partitions: 1,
                poll: Duration::from_millis(50),
                heartbeat: Duration::from_millis(200),
            },
            Arc::new(PipelineOperator::new(
                &stray_state,
                1,
                stray_audit.clone(),
                broker.clone(),
            )),
        )
        .unwrap(),
    );
    let stray_stop = CancellationToken::new();
    let stop = stray_stop.clone();
    let stray_task = tokio::spawn(async move { stray.run(stop).await.unwrap() });

    let body = TaskBody {
        v: weir_engine::distributed::protocol::PROTOCOL_VERSION,
        run_id: "01J0000000000000000000RUN1".into(),
        pipeline_file: "/nowhere.yaml".into(),
        pipeline_yaml: String::new(),
        stage: "s".into(),
        attempt: 1,
        token: "not-a-token".into(),
        reply_to: "replies.test".into(),
    };
    let sealed = envelopes
        .sealer
        .seal(
            weir_auth::envelope::EnvelopeType::Task,
            &weir_engine::distributed::protocol::encode(&body).unwrap(),
            Duration::from_secs(60),
        )
        .unwrap();
    let tasks = broker.tasks();
    tasks.enqueue(Bytes::from(sealed)).await.unwrap();
    // The stray refuses it (audited) but does not drop it.
    let mut refused = Vec::new();
    for _ in 0..100 {
        refused = stray_audit
            .sink()
            .query(&Filter::all().action(Action::TaskReceive), Page::first(10))
            .await
            .unwrap();
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("unknown_kid")
    );
    stray_stop.cancel();
    stray_task.await.unwrap();
    let depth = tasks.len().await.unwrap();
    assert_eq!(
        depth.pending + depth.ready,
        1,
        "left in the queue: {depth:?}"
    );
    // A worker with the key takes it over and answers it.
    f.start_worker("w1", None).await;
    let replies = broker.queue("replies.test").await.unwrap();
    let got = replies
        .receive("test", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let opened = envelopes
        .opener
        .open(&got[0].payload, weir_auth::envelope::EnvelopeType::Result)
        .await
        .unwrap();
    let result = weir_engine::distributed::protocol::decode_result(&opened.body).unwrap();
    assert_eq!(result.worker, "w1");
    assert!(matches!(
        result.outcome,
        weir_engine::distributed::protocol::TaskOutcome::Lost { .. }
    ));
    f.shutdown().await;
}
