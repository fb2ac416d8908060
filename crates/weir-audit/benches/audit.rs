//! Audit log benchmarks: durable group-commit append throughput on SQLite
//! with many concurrent appenders, single-append latency, verification
//! throughput, and the latency an audited access decision adds to a guarded
//! object-store call (`GuardedStore` over `InMemory`, each decision appended
//! durably to a `SqliteSink`) against the raw store.
//!
//! Quick run: `cargo bench -p weir-audit -- --warm-up-time 1
//! --measurement-time 5`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use weir_audit::{
    Action, AuditKey, AuditSink, ChainId, CheckpointSigner, Decision, Filter,
    NETWORK_GATHER_WINDOW, NewEvent, Origin, Page, SinkConfig, SqliteSink, verify,
};
use weir_auth::{ActionSet, FixedClock, PathKind, Scope, ScopeEntry, ScopePath, StageClaims};
use weir_policy::{AccessDecision, DecisionSink, GuardedStore, SinkError};

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
    fixture_with(Duration::ZERO).await
}

/// A fresh sink whose group commit may wait `gather` for returning appenders.
async fn fixture_with(gather: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let config = SinkConfig::new(ChainId::parse("bench").unwrap(), Arc::clone(&signer))
        .with_gather_window(gather);
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
    let gathering = rt.block_on(fixture_with(NETWORK_GATHER_WINDOW));
    let mut group = c.benchmark_group("sqlite_durable_append");
    const TOTAL: usize = 20_000;
    // "gather_": the API server's setting (`SinkConfig::with_gather_window`).
    for (label, f, appenders) in [
        ("appenders", &f, 64),
        ("appenders", &f, 1024),
        ("gather_appenders", &gathering, 64),
        ("gather_appenders", &gathering, 1024),
    ] {
        group.throughput(Throughput::Elements(TOTAL as u64));
        group.bench_with_input(BenchmarkId::new(label, appenders), &appenders, |b, &n| {
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
        });
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

    // What reading the same rows costs before any of verify's own work, on
    // a second connection to the same file: the floor under verify.
    let floor = rt.block_on(floor_pool(f.sink.path()));
    let mut group = c.benchmark_group("verify_floor");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for (name, sql) in FLOOR_QUERIES {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let pool = floor.clone();
                async move {
                    let rows = sqlx::query(sql)
                        .bind("bench")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                    assert!(!rows.is_empty());
                }
            });
        });
    }
    group.finish();

    // `audit query` over the same chain: a first page of a matching filter,
    // and a filter no event matches, so every row is scanned and its field
    // extracted from the record (format 2 reads fields through a view).
    let mut group = c.benchmark_group("query_100k_events");
    group.sample_size(10);
    let cases = [
        (
            "first_page_of_1000_by_actor",
            Filter::all().actor("svc-train"),
        ),
        (
            "full_scan_by_path_prefix_no_match",
            Filter::all().path_prefix("raw/test"),
        ),
    ];
    for (name, filter) in cases {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let sink = Arc::clone(&f.sink);
                let filter = filter.clone();
                async move { sink.query(&filter, Page::first(1000)).await.unwrap() }
            });
        });
    }
    group.finish();
}

/// Reads of the 100k-event chain, from most to least work left to SQLite's
/// C code: what verify reads (seq and record) fetched through sqlx, one
/// integer column fetched, and one aggregate row whose computation reads
/// every record inside SQLite (no row crosses into Rust).
const FLOOR_QUERIES: [(&str, &str); 3] = [
    (
        "sqlx_fetch_seq_record",
        "SELECT seq, record FROM audit_events WHERE chain = ?1 ORDER BY seq",
    ),
    (
        "sqlx_fetch_1_column",
        "SELECT seq FROM audit_events WHERE chain = ?1 ORDER BY seq",
    ),
    (
        "sqlite_scan_in_c",
        "SELECT sum(length(record)) FROM audit_events WHERE chain = ?1",
    ),
];

async fn floor_pool(db: &std::path::Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .row_buffer_size(4096);
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap()
}

/// Appends each access decision to a [`SqliteSink`] and waits until it is
/// durable, as the engine's audit adapter does.
struct AuditedDecisions {
    sink: Arc<SqliteSink>,
    key: AuditKey,
}

impl std::fmt::Debug for AuditedDecisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditedDecisions")
    }
}

impl AuditedDecisions {
    fn event(&self, d: &AccessDecision<'_>) -> NewEvent {
        let action = match d.action {
            weir_auth::Action::Read => Action::Read,
            weir_auth::Action::Write => Action::Write,
            weir_auth::Action::List => Action::List,
            weir_auth::Action::Delete => Action::Delete,
        };
        let decision = if d.allowed {
            Decision::Allow
        } else {
            Decision::Deny
        };
        NewEvent::new(d.principal.as_ref(), action, decision, Origin::Api)
            .with_stage(d.run.as_ref(), d.stage.as_ref(), d.attempt)
            .with_resource(d.store.as_ref(), d.path.as_ref())
            .with_reason(format!("{}: {}", d.operation.as_str(), d.reason))
            .with_token(self.key.token_id_hmac(&d.jti))
    }
}

#[async_trait]
impl DecisionSink for AuditedDecisions {
    async fn record(&self, decision: &AccessDecision<'_>) -> Result<(), SinkError> {
        self.sink
            .append(self.event(decision))
            .await
            .map(drop)
            .map_err(|_| SinkError::new("audit append failed"))
    }
}

/// A raw `InMemory` store holding one object, and the same store guarded
/// with every decision audited to `sink`.
fn guarded_stores(
    rt: &tokio::runtime::Runtime,
    sink: Arc<SqliteSink>,
) -> (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, Path) {
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let path = Path::from("features/customer_features/v-01/part-00000.parquet");
    rt.block_on(raw.put(&path, PutPayload::from_static(&[7u8; 256])))
        .unwrap();
    let scope = Scope::new(vec![ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse("features/customer_features").unwrap(),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(weir_auth::Action::Read),
        columns: None,
    }])
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
        typ: weir_auth::TokenType::Stage,
    };
    let decisions = AuditedDecisions {
        sink,
        key: AuditKey::generate().unwrap(),
    };
    let guarded: Arc<dyn ObjectStore> = Arc::new(GuardedStore::new(
        Arc::clone(&raw),
        "lake",
        &claims,
        Arc::new(FixedClock::new(1)),
        Arc::new(decisions),
    ));
    (raw, guarded, path)
}

/// `callers` tasks each calling `head` until `total` calls returned.
async fn concurrent_heads(store: &Arc<dyn ObjectStore>, path: &Path, callers: usize, total: usize) {
    let per = total / callers;
    let tasks = (0..callers).map(|_| {
        let (store, path) = (Arc::clone(store), path.clone());
        tokio::spawn(async move {
            for _ in 0..per {
                std::hint::black_box(store.head(&path).await.unwrap());
            }
        })
    });
    for t in join_all(tasks).await {
        t.unwrap();
    }
}

fn audited_decision(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(fixture());
    let (raw, guarded, path) = guarded_stores(&rt, Arc::clone(&f.sink));
    let mut group = c.benchmark_group("audited_head");
    for (name, store) in [("raw", &raw), ("guarded_sqlite", &guarded)] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("single/{name}"), |b| {
            b.to_async(&rt)
                .iter(|| async { std::hint::black_box(store.head(&path).await.unwrap()) });
        });
        const TOTAL: usize = 6_400;
        group.throughput(Throughput::Elements(TOTAL as u64));
        group.bench_function(format!("callers_64/{name}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, path) = (Arc::clone(store), path.clone());
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        concurrent_heads(&store, &path, 64, TOTAL).await;
                    }
                    start.elapsed()
                }
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(10);
    targets = append_throughput, append_latency, verify_throughput, audited_decision
}
criterion_main!(benches);
