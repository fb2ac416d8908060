//! GuardedStore overhead against a raw `InMemory` store: `head` and `get`
//! on small objects, the token already verified, a no-op decision sink.
//!
//! `cargo bench -p weir-policy --bench guard -- --warm-up-time 1 --measurement-time 3`
//!
//! Besides criterion's per-call times, prints the ns added per call over
//! 100,000 calls of each kind.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use weir_auth::{
    Action, ActionSet, FixedClock, PathKind, Scope, ScopeEntry, ScopePath, StageClaims, TokenType,
};
use weir_policy::{AccessDecision, DecisionSink, GuardedStore, SinkError};

const CALLS: u32 = 100_000;

#[derive(Debug)]
struct NoopSink;

#[async_trait]
impl DecisionSink for NoopSink {
    async fn record(&self, decision: &AccessDecision<'_>) -> Result<(), SinkError> {
        black_box(decision);
        Ok(())
    }
}

fn entry(path: &str) -> ScopeEntry {
    ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse(path).unwrap(),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(Action::Read).with(Action::Write),
        columns: None,
    }
}

fn stores(rt: &tokio::runtime::Runtime) -> (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, Path) {
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let path = Path::from("features/customer_features/v-01/part-00000.parquet");
    rt.block_on(raw.put(&path, PutPayload::from_static(&[7u8; 256])))
        .unwrap();
    // A realistic stage scope: a few inputs and one output.
    let scope = Scope::new(vec![
        entry("raw/customers.csv"),
        entry("raw/orders.csv"),
        entry("curated/customers"),
        entry("features/customer_features"),
    ])
    .unwrap();
    let claims = StageClaims {
        iss: "weir".into(),
        aud: "weir-worker".into(),
        sub: "svc-customer-features".into(),
        run: "01JRUN".into(),
        stage: "features".into(),
        attempt: 1,
        scope,
        iat: 0,
        nbf: 0,
        exp: i64::MAX,
        jti: "01JTOKEN".into(),
        typ: TokenType::Stage,
    };
    let guarded: Arc<dyn ObjectStore> = Arc::new(GuardedStore::new(
        Arc::clone(&raw),
        "lake",
        &claims,
        Arc::new(FixedClock::new(1)),
        Arc::new(NoopSink),
    ));
    (raw, guarded, path)
}

async fn heads(store: &dyn ObjectStore, path: &Path, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        black_box(store.head(path).await.unwrap());
    }
    start.elapsed()
}

async fn gets(store: &dyn ObjectStore, path: &Path, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        black_box(store.get(path).await.unwrap().bytes().await.unwrap());
    }
    start.elapsed()
}

fn per_call(d: Duration, n: u32) -> f64 {
    d.as_secs_f64() * 1e9 / f64::from(n)
}

fn report_100k(rt: &tokio::runtime::Runtime) {
    let (raw, guarded, path) = stores(rt);
    let _ = rt.block_on(heads(guarded.as_ref(), &path, 10_000)); // warm up
    let rh = per_call(rt.block_on(heads(raw.as_ref(), &path, CALLS)), CALLS);
    let gh = per_call(rt.block_on(heads(guarded.as_ref(), &path, CALLS)), CALLS);
    let rg = per_call(rt.block_on(gets(raw.as_ref(), &path, CALLS)), CALLS);
    let gg = per_call(rt.block_on(gets(guarded.as_ref(), &path, CALLS)), CALLS);
    println!("100,000 calls each (ns per call):");
    println!("  head: raw {rh:.0}, guarded {gh:.0}, added {:.0}", gh - rh);
    println!("  get:  raw {rg:.0}, guarded {gg:.0}, added {:.0}", gg - rg);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    report_100k(&rt);
    let (raw, guarded, path) = stores(&rt);
    let mut group = c.benchmark_group("guard");
    for (name, store) in [("raw", &raw), ("guarded", &guarded)] {
        group.bench_function(format!("head/{name}"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(store.head(&path).await.unwrap()) });
        });
        group.bench_function(format!("get/{name}"), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(store.get(&path).await.unwrap().bytes().await.unwrap())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
