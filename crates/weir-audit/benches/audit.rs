//! Audit log benchmarks: durable group-commit append throughput on SQLite
//! with many concurrent appenders, single-append latency, and verification
//! throughput.
//!
//! Quick run: `cargo bench -p weir-audit --bench audit -- --warm-up-time 1
//! --measurement-time 5 --sample-size 10`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use weir_audit::{
    Action, AuditSink, ChainId, CheckpointSigner, Decision, NewEvent, Origin, SinkConfig,
    SqliteSink, verify,
};

fn event(i: usize) -> NewEvent {
    NewEvent::new(
        "svc-train",
        Action::Read,
        Decision::Allow,
        Origin::Worker {
            host: "gpu-1".into(),
        },
    )
    .with_stage("01J0RUN0000000000000000000", "prepare", 1)
    .with_resource("lake", format!("raw/train/part-{i:05}.parquet"))
    .with_reason("grant train-readers")
}

struct Fixture {
    _dir: tempfile::TempDir,
    sink: Arc<SqliteSink>,
    signer: Arc<CheckpointSigner>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let config = SinkConfig::new(ChainId::parse("bench").unwrap(), Arc::clone(&signer));
    let sink = SqliteSink::open(&dir.path().join("audit.db"), config)
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        sink: Arc::new(sink),
        signer,
    }
}

/// `appenders` tasks each appending sequentially until `total` events are
/// durable; every append waits for its own commit.
async fn concurrent_appends(sink: &Arc<SqliteSink>, appenders: usize, total: usize) {
    let per = total / appenders;
    let tasks = (0..appenders).map(|t| {
        let sink = Arc::clone(sink);
        tokio::spawn(async move {
            for i in 0..per {
                sink.append(event(t * per + i)).await.unwrap();
            }
        })
    });
    for t in join_all(tasks).await {
        t.unwrap();
    }
}

fn append_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fixture());
    let mut group = c.benchmark_group("sqlite_durable_append");
    const TOTAL: usize = 20_000;
    for appenders in [64, 1024] {
        group.throughput(Throughput::Elements(TOTAL as u64));
        group.bench_with_input(
            BenchmarkId::new("appenders", appenders),
            &appenders,
            |b, &n| {
                b.to_async(&rt).iter_custom(|iters| {
                    let sink = Arc::clone(&f.sink);
                    async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            concurrent_appends(&sink, n, TOTAL).await;
                        }
                        start.elapsed()
                    }
                });
            },
        );
    }
    group.finish();
}

fn append_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fixture());
    c.bench_function("sqlite_single_append_latency", |b| {
        b.to_async(&rt).iter(|| {
            let sink = Arc::clone(&f.sink);
            async move { sink.append(event(0)).await.unwrap() }
        });
    });
}

fn verify_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fixture());
    const EVENTS: usize = 100_000;
    rt.block_on(async {
        concurrent_appends(&f.sink, 256, EVENTS).await;
        f.sink.checkpoint_now().await.unwrap();
    });
    let key = f.signer.verifying_key();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.bench_function("sqlite_100k_events", |b| {
        b.to_async(&rt).iter(|| {
            let sink = Arc::clone(&f.sink);
            async move {
                let report = verify(sink.as_ref(), &key).await.unwrap();
                assert!(report.is_ok());
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(10);
    targets = append_throughput, append_latency, verify_throughput
}
criterion_main!(benches);
