//! Signed no-op stages end to end through Redis (`cargo bench -p weir-engine
//! --bench distributed`; needs `WEIR_TEST_REDIS_URL`).
//!
//! Per stage, as in a real distributed run: the dispatcher mints a stage
//! token (Ed25519) for a two-entry scope, seals the task (HMAC envelope) and
//! enqueues it; a real [`Worker`] receives it, verifies the envelope (MAC,
//! times, nonce claimed in Redis), decodes it, verifies the stage token with
//! the public keys, records the `task_receive` audit event (SQLite, durable),
//! runs a no-op operator, seals the result and sends it to the reply queue;
//! the dispatcher opens the result (nonce claimed in Redis) and counts it.
//! Not included: the pipeline planner, run records, and the mint audit event
//! of `Engine::run_distributed`, which a real run adds per stage.
//!
//! Prints stages/s with 1 and 2 workers, and the median and p99 round trip
//! of one stage at a time.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir_audit::Origin;
use weir_auth::envelope::EnvelopeType;
use weir_auth::{
    Action, ActionSet, DEFAULT_MAX_LIFETIME, MintRequest, Minter, PathKind, Scope, ScopeEntry,
    ScopePath, StageClaims, StageKeySet,
};
use weir_engine::distributed::protocol::{self, PROTOCOL_VERSION, TaskBody};
use weir_engine::distributed::{Envelopes, RedisBroker, StageOperator, Worker, WorkerConfig};
use weir_engine::queue::{QueueConfig, WorkQueue};
use weir_engine::security::{AUDIENCE, ISSUER};
use weir_engine::{Audit, Broker, StageOutput};

struct NoOp;

#[async_trait::async_trait]
impl StageOperator for NoOp {
    async fn run(&self, _: &TaskBody, _: &StageClaims) -> weir_engine::Result<StageOutput> {
        Ok(StageOutput::default())
    }
}

fn scope() -> Scope {
    let entry = |path: &str, action| ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse(path).expect("valid path"),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(action),
        columns: None,
    };
    Scope::new(vec![
        entry("raw/in", Action::Read),
        entry("out/noop", Action::Write),
    ])
    .expect("valid scope")
}

struct Dispatcher {
    minter: Minter,
    envelopes: Envelopes,
    tasks: Arc<dyn WorkQueue>,
    replies: Arc<dyn WorkQueue>,
    reply_to: String,
    run_id: String,
    state: std::path::PathBuf,
}

impl Dispatcher {
    fn task(&self, i: u32) -> bytes::Bytes {
        let minted = self
            .minter
            .mint(MintRequest {
                principal: "svc-bench".into(),
                run: self.run_id.clone(),
                stage: format!("s{i}"),
                attempt: 1,
                scope: scope(),
                ttl: Duration::from_secs(600),
            })
            .expect("mint");
        let body = TaskBody {
            v: PROTOCOL_VERSION,
            run_id: self.run_id.clone(),
            pipeline_file: "/bench.yaml".into(),
            pipeline_yaml: String::new(),
            stage: format!("s{i}"),
            attempt: 1,
            token: minted.token.expose().to_owned(),
            reply_to: self.reply_to.clone(),
        };
        let sealed = self
            .envelopes
            .sealer
            .seal(
                EnvelopeType::Task,
                &protocol::encode(&body).expect("encode"),
                Duration::from_secs(600),
            )
            .expect("seal");
        sealed.into()
    }

    /// Prints what the workers recorded about refused tasks.
    async fn explain(&self) {
        let Ok(audit) = Audit::open_local(&self.state).await else {
            return;
        };
        let filter = weir_audit::Filter::all().action(weir_audit::Action::TaskReceive);
        if let Ok(events) = audit
            .sink()
            .query(&filter, weir_audit::Page::first(20))
            .await
        {
            for e in events {
                eprintln!("task_receive {:?}: {:?}", e.decision, e.reason);
            }
        }
    }

    /// Receives and opens results until `n` distinct stages answered.
    async fn collect(&self, n: usize) {
        let mut done = HashSet::new();
        while done.len() < n {
            let got = self
                .replies
                .receive("dispatcher", 1000, Duration::from_secs(5))
                .await
                .expect("receive");
            if got.is_empty() {
                self.explain().await;
                panic!("results stopped after {}", done.len());
            }
            let ids: Vec<_> = got.iter().map(|d| d.id).collect();
            // As the engine's dispatcher does: open the batch at once.
            let opened = futures::future::join_all(
                got.iter()
                    .map(|d| self.envelopes.opener.open(&d.payload, EnvelopeType::Result)),
            )
            .await;
            for opened in opened {
                let opened = opened.expect("result opens");
                let result = protocol::decode_result(&opened.body).expect("decodes");
                assert!(
                    matches!(result.outcome, protocol::TaskOutcome::Succeeded { .. }),
                    "{result:?}"
                );
                done.insert(result.stage);
            }
            self.replies.ack_many(&ids).await.expect("ack");
        }
    }
}

async fn start_workers(
    n: usize,
    state: &Path,
    broker: &Arc<dyn Broker>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for w in 0..n {
        let audit = Audit::open_local_as(
            state,
            Origin::Worker {
                host: format!("bench-{w}"),
            },
        )
        .await
        .expect("audit");
        let worker = Arc::new(
            Worker::new(
                broker.clone(),
                audit,
                WorkerConfig {
                    consumer: format!("bench-{w}-{}", ulid::Ulid::new()),
                    concurrency: 256,
                    state_dir: state.to_path_buf(),
                    partitions: 1,
                    poll: Duration::from_millis(100),
                    heartbeat: Duration::from_secs(10),
                },
                Arc::new(NoOp),
            )
            .expect("worker"),
        );
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            worker.run(stop).await.expect("worker runs");
        }));
    }
    handles
}

/// A dispatcher and `workers` workers on a task queue of their own.
struct Bench {
    _dir: tempfile::TempDir,
    d: Dispatcher,
    stop: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Bench {
    async fn start(url: &str, workers: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path();
        let broker: Arc<dyn Broker> = Arc::new(
            RedisBroker::connect_to(
                url,
                &format!("bench-tasks-{}", ulid::Ulid::new()),
                QueueConfig::default(),
            )
            .await
            .expect("redis"),
        );
        let keys = StageKeySet::open(state, chrono::Utc::now().timestamp()).expect("keys");
        let minter = Minter::new(keys, ISSUER, AUDIENCE, DEFAULT_MAX_LIFETIME).expect("minter");
        let envelopes = Envelopes::open(state, broker.as_ref()).expect("envelopes");
        let run_id = ulid::Ulid::new().to_string();
        let reply_to = format!("bench.{run_id}");
        let d = Dispatcher {
            minter,
            envelopes,
            tasks: broker.tasks(),
            replies: broker.queue(&reply_to).await.expect("reply queue"),
            reply_to,
            run_id,
            state: state.to_path_buf(),
        };
        let stop = CancellationToken::new();
        let handles = start_workers(workers, state, &broker, &stop).await;
        Self {
            _dir: dir,
            d,
            stop,
            handles,
        }
    }

    /// Stops the workers and removes the queues.
    async fn finish(self) {
        self.stop.cancel();
        for h in self.handles {
            h.await.expect("worker stops");
        }
        self.d.replies.delete().await.expect("cleanup");
        self.d.tasks.delete().await.expect("cleanup");
    }
}

async fn throughput(url: &str, workers: usize, stages: u32) -> f64 {
    let bench = Bench::start(url, workers).await;
    let d = &bench.d;
    // Warm up (connections, SQLite, caches).
    d.tasks.enqueue(d.task(u32::MAX)).await.expect("enqueue");
    d.collect(1).await;

    let start = Instant::now();
    let batch = 500;
    let mut i = 0;
    while i < stages {
        let end = (i + batch).min(stages);
        let payloads: Vec<_> = (i..end).map(|k| d.task(k)).collect();
        d.tasks.enqueue_many(payloads).await.expect("enqueue");
        i = end;
    }
    d.collect(stages as usize).await;
    let rate = f64::from(stages) / start.elapsed().as_secs_f64();
    bench.finish().await;
    rate
}

async fn round_trip(url: &str, samples: usize) -> (Duration, Duration) {
    let bench = Bench::start(url, 1).await;
    let d = &bench.d;
    let mut times = Vec::with_capacity(samples);
    for k in 0..samples + 20 {
        let start = Instant::now();
        let k = u32::try_from(k).expect("small");
        d.tasks.enqueue(d.task(k)).await.expect("enqueue");
        d.collect(1).await;
        if k >= 20 {
            times.push(start.elapsed());
        }
    }
    bench.finish().await;
    times.sort();
    let median = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    (median, p99)
}

fn main() {
    let Ok(url) = std::env::var("WEIR_TEST_REDIS_URL") else {
        eprintln!("WEIR_TEST_REDIS_URL is not set: skipping the distributed benchmark");
        return;
    };
    // `cargo test --benches` runs this binary too: keep that quick.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let (stages, samples) = if quick { (200, 50) } else { (20_000, 2_000) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for workers in [1, 2] {
            let rate = throughput(&url, workers, stages).await;
            println!("distributed/no-op stages, {workers} worker(s): {rate:.0} stages/s ({stages} stages)");
        }
        let (median, p99) = round_trip(&url, samples).await;
        println!(
            "distributed/round trip of one stage: median {:.3} ms, p99 {:.3} ms ({samples} samples)",
            median.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    });
}
