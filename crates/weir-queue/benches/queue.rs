//! Work-queue benchmarks, on both backends (Redis only when
//! `WEIR_TEST_REDIS_URL` is set):
//!
//! - `drain/batched`: one producer enqueues 10,000 tasks
//!   (`enqueue_many`, 500 a batch) while 2 workers, each on its own handle
//!   (its own connections, like separate processes), `receive` up to 100
//!   and `ack_many` them. Timed from the first enqueue to the last ack
//!   (not to the workers' exit: an idle worker's last blocking read ends
//!   on Redis's timer tick, up to 100 ms later). Reported as tasks/s end
//!   to end.
//! - `drain/ack_each`: the same with 2,000 tasks, each acked with its own
//!   `ack` call, one after the other (the cost of not batching acks).
//! - `round_trip`: latency of one task through an idle queue: enqueue,
//!   receive, ack.
//!
//! Quick run: `WEIR_TEST_REDIS_URL=redis://127.0.0.1:6379/ cargo bench -p
//! weir-queue -- --warm-up-time 1`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use weir_queue::{InProcessQueue, QueueConfig, RedisQueue, TaskId, WorkQueue};

type Opened = Pin<Box<dyn Future<Output = Vec<Arc<dyn WorkQueue>>> + Send>>;

/// Opens `n` handles onto one fresh queue.
type Backend = Box<dyn Fn(usize) -> Opened>;

fn backends() -> Vec<(&'static str, Backend)> {
    let mut out: Vec<(&'static str, Backend)> = vec![(
        "in_process",
        Box::new(|n| {
            Box::pin(async move {
                let q: Arc<dyn WorkQueue> =
                    Arc::new(InProcessQueue::new(QueueConfig::default()).unwrap());
                vec![q; n]
            }) as Opened
        }),
    )];
    match std::env::var("WEIR_TEST_REDIS_URL") {
        Ok(url) => out.push((
            "redis",
            Box::new(move |n| {
                let url = url.clone();
                Box::pin(async move {
                    let name = format!("bench-{}", ulid::Ulid::new());
                    let mut handles: Vec<Arc<dyn WorkQueue>> = Vec::new();
                    for _ in 0..n {
                        let q = RedisQueue::connect(&url, &name, QueueConfig::default())
                            .await
                            .unwrap();
                        handles.push(Arc::new(q));
                    }
                    handles
                }) as Opened
            }),
        )),
        Err(_) => eprintln!("SKIPPED: set WEIR_TEST_REDIS_URL to benchmark the Redis backend"),
    }
    out
}

const PAYLOAD: &[u8] = &[0x5a; 256];

/// Enqueues `n` tasks on `handles[0]` while workers on `handles[1..]`
/// drain them; returns the time until the last ack.
async fn drain(handles: &[Arc<dyn WorkQueue>], n: usize, batched: bool) -> Duration {
    let start = Instant::now();
    let producer = Arc::clone(&handles[0]);
    let produce = tokio::spawn(async move {
        for chunk in 0..n.div_ceil(500) {
            let size = 500.min(n - chunk * 500);
            producer
                .enqueue_many(vec![Bytes::from_static(PAYLOAD); size])
                .await
                .unwrap();
        }
    });
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = handles[1..]
        .iter()
        .enumerate()
        .map(|(w, q)| {
            let (q, done) = (Arc::clone(q), Arc::clone(&done));
            tokio::spawn(async move {
                let name = format!("worker-{w}");
                while done.load(std::sync::atomic::Ordering::Relaxed) < n {
                    let got = q
                        .receive(&name, 100, Duration::from_millis(20))
                        .await
                        .unwrap();
                    let ids: Vec<TaskId> = got.iter().map(|d| d.id).collect();
                    if batched {
                        q.ack_many(&ids).await.unwrap();
                    } else {
                        for id in &ids {
                            q.ack(id).await.unwrap();
                        }
                    }
                    let acked =
                        ids.len() + done.fetch_add(ids.len(), std::sync::atomic::Ordering::Relaxed);
                    if acked == n && !ids.is_empty() {
                        return Some(start.elapsed());
                    }
                }
                None
            })
        })
        .collect();
    produce.await.unwrap();
    let mut last_ack = None;
    for w in workers {
        last_ack = last_ack.or(w.await.unwrap());
    }
    last_ack.unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backends = backends();

    let mut group = c.benchmark_group("drain");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for (batched, label, n) in [(true, "batched", 10_000), (false, "ack_each", 2_000)] {
        group.throughput(Throughput::Elements(n as u64));
        for (name, open) in &backends {
            let handles = rt.block_on(open(3));
            group.bench_function(BenchmarkId::new(label, name), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let handles = handles.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += drain(&handles, n, batched).await;
                        }
                        total
                    }
                });
            });
            rt.block_on(handles[0].delete()).unwrap();
        }
    }
    group.finish();

    let mut group = c.benchmark_group("round_trip");
    for (name, open) in &backends {
        let q = rt.block_on(open(1)).remove(0);
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                let q = Arc::clone(&q);
                async move {
                    let id = q.enqueue(Bytes::from_static(PAYLOAD)).await.unwrap();
                    let got = q.receive("rt", 1, Duration::from_secs(1)).await.unwrap();
                    assert_eq!(got[0].id, id);
                    q.ack(&id).await.unwrap();
                }
            });
        });
        rt.block_on(q.delete()).unwrap();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
