//! Stage-token throughput: mint, verify (full), verify (cache hit).
//!
//! `cargo bench -p weir-auth -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use weir_auth::{
    Action, ActionSet, DEFAULT_MAX_LIFETIME, FixedClock, MintRequest, Minter, PathKind, Scope,
    ScopeEntry, ScopePath, StageKeySet,
};

const NOW: i64 = 1_700_000_000;

fn request() -> MintRequest {
    let entry = |path: &str, action| ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse(path).expect("valid path"),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(action),
        columns: None,
    };
    MintRequest {
        principal: "svc-train".into(),
        run: "01J0000000000000000000RUN1".into(),
        stage: "prepare".into(),
        attempt: 1,
        scope: Scope::new(vec![
            entry("raw/train", Action::Read),
            entry("raw/validation", Action::Read),
            entry("staging/prepare/out", Action::Write),
        ])
        .expect("valid scope"),
        ttl: Duration::from_secs(3600),
    }
}

fn tokens(c: &mut Criterion) {
    let state = tempfile::tempdir().expect("tempdir");
    let keys = StageKeySet::open(state.path(), NOW).expect("key set");
    let minter = Minter::new(keys, "weir", "weir-worker", DEFAULT_MAX_LIFETIME)
        .expect("minter")
        .with_clock(Arc::new(FixedClock::new(NOW)));
    let token = minter.mint(request()).expect("mint").token;
    let uncached = minter.verifier().without_cache();
    let cached = minter.verifier();
    cached.verify(token.expose(), NOW).expect("warm cache");

    let mut group = c.benchmark_group("stage_token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mint", |b| {
        b.iter(|| minter.mint(black_box(request())).expect("mint"))
    });
    group.bench_function("verify_uncached", |b| {
        b.iter(|| {
            uncached
                .verify(black_box(token.expose()), NOW)
                .expect("verify")
        })
    });
    group.bench_function("verify_cached", |b| {
        b.iter(|| {
            cached
                .verify(black_box(token.expose()), NOW)
                .expect("verify")
        })
    });
    group.finish();
}

// The macro defines an undocumented `pub fn`; keep it in a private module.
#[allow(missing_docs, unreachable_pub)]
mod entry {
    criterion::criterion_group!(benches, super::tokens);
}

criterion_main!(entry::benches);
