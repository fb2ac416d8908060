//! Scheduler overhead: `run_dag` over 1,000 no-op stages, in process.
//!
//! Two shapes: a chain (each stage waits for the one before it, so nothing
//! runs concurrently and every stage pays the full schedule -> spawn -> join
//! round trip) and a fan-out (one root, 999 dependents that become ready at
//! once, so the concurrency limit is what throttles them). Each shape runs at
//! concurrency 4 and 1, with and without a progress-event channel (the engine
//! always passes one), and once more from a task on a worker thread instead
//! of `Runtime::block_on`, to show the thread hand-off. Criterion reports the time for the whole DAG; divide
//! by 1,000 for the time per stage (`docs/benchmarks.md` does).
//!
//! Run with:
//! `CARGO_TARGET_DIR=/var/tmp/weir-target cargo bench -p weir-engine --bench scheduler`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;
use weir_engine::Error;
use weir_engine::scheduler::{Outcome, StagePolicy, StageRunner, run_dag};
use weir_spec::{Dag, Edge};

/// Stages per DAG.
const STAGES: usize = 1_000;

/// A stage that does nothing and succeeds at once.
struct NoOp;

#[async_trait::async_trait]
impl StageRunner for NoOp {
    type Output = ();
    async fn run(&self, _stage: usize, _attempt: u32) -> Result<(), Error> {
        Ok(())
    }
    async fn cleanup(&self, _stage: usize, _attempt: u32) {}
}

/// `0 -> 1 -> ... -> n-1`.
fn chain(n: usize) -> Dag {
    let edges: Vec<_> = (1..n).map(|i| (i - 1, i, Edge::Needs)).collect();
    Dag::build(n, &edges).expect("a chain has no cycle")
}

/// `0 -> i` for every `i` in `1..n`.
fn fan_out(n: usize) -> Dag {
    let edges: Vec<_> = (1..n).map(|i| (0, i, Edge::Needs)).collect();
    Dag::build(n, &edges).expect("a fan-out has no cycle")
}

/// One whole run; checks every stage succeeded so a broken scheduler cannot
/// post a flattering number.
async fn run_once(dag: &Dag, policies: &[StagePolicy], concurrency: usize, events: bool) {
    let (tx, drain) = if events {
        let (tx, mut rx) = unbounded_channel();
        // The engine forwards events from a separate task; do the same.
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        (Some(tx), Some(drain))
    } else {
        (None, None)
    };
    let results = run_dag(
        dag,
        policies,
        concurrency,
        Arc::new(NoOp),
        CancellationToken::new(),
        tx,
    )
    .await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Succeeded(())))
    );
    if let Some(drain) = drain {
        drain.await.expect("event drain task");
    }
    black_box(results);
}

fn scheduler(c: &mut Criterion) {
    // The default multi-threaded runtime: one worker per core, as `weir run` uses.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let policies = Arc::new(vec![
        StagePolicy {
            retries: 0,
            timeout: Duration::from_secs(3600),
        };
        STAGES
    ]);
    let shapes = [
        ("chain", Arc::new(chain(STAGES))),
        ("fan_out", Arc::new(fan_out(STAGES))),
    ];

    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(STAGES as u64));
    for (shape, dag) in &shapes {
        for concurrency in [4, 1] {
            for events in [false, true] {
                let id = BenchmarkId::new(
                    format!("{shape}_{STAGES}{}", if events { "_events" } else { "" }),
                    format!("concurrency_{concurrency}"),
                );
                group.bench_with_input(id, &concurrency, |b, &concurrency| {
                    b.to_async(&rt)
                        .iter(|| run_once(dag, &policies, concurrency, events));
                });
            }
            // `weir run` drives `run_dag` from `Runtime::block_on`, as above,
            // so every stage hands off between the main thread and a worker.
            // The same run from a task on a worker shows what that costs.
            let id = BenchmarkId::new(
                format!("{shape}_{STAGES}_on_worker"),
                format!("concurrency_{concurrency}"),
            );
            group.bench_with_input(id, &concurrency, |b, &concurrency| {
                b.to_async(&rt).iter(|| {
                    let (dag, policies) = (dag.clone(), policies.clone());
                    async move {
                        tokio::spawn(
                            async move { run_once(&dag, &policies, concurrency, false).await },
                        )
                        .await
                        .expect("run task");
                    }
                });
            });
        }
    }
    group.finish();
}

// `criterion_group!` generates an undocumented `pub fn benches()`.
#[allow(missing_docs)]
mod entry {
    use super::*;
    criterion_group!(benches, scheduler);
}
criterion_main!(entry::benches);
