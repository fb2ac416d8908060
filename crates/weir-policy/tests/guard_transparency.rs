//! object_store's own integration suite through a `GuardedStore` with an
//! allow-all scope: the wrapper must be transparent.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use weir_auth::{FixedClock, StageClaims, TokenType};
use weir_policy::{GuardedStore, InMemoryDecisionSink};
use weir_testkit::fixture;
use weir_testkit::transparency::{Backend, object_store_integration};

fn claims() -> StageClaims {
    StageClaims {
        iss: "weir".into(),
        aud: "weir-worker".into(),
        sub: "svc".into(),
        run: "run".into(),
        stage: "stage".into(),
        attempt: 1,
        scope: fixture::allow_all_scope("lake"),
        iat: 0,
        nbf: 0,
        exp: 600,
        jti: "jti".into(),
        typ: TokenType::Stage,
    }
}

fn guard(inner: Arc<dyn ObjectStore>, sink: Arc<InMemoryDecisionSink>) -> GuardedStore {
    GuardedStore::new(inner, "lake", &claims(), Arc::new(FixedClock::new(1)), sink)
}

fn assert_all_allowed(sink: &InMemoryDecisionSink) {
    let denied: Vec<_> = sink
        .decisions()
        .into_iter()
        .filter(|d| !d.allowed)
        .collect();
    assert!(denied.is_empty(), "the allow-all scope denied: {denied:?}");
    assert!(sink.len() > 100, "the suite went around the guard");
}

#[tokio::test]
async fn object_store_suite_passes_through_guard_over_in_memory() {
    let sink = Arc::new(InMemoryDecisionSink::new());
    let store = guard(Arc::new(InMemory::new()), sink.clone());
    object_store_integration(&store, Backend::InMemory).await;
    assert_all_allowed(&sink);
}

#[tokio::test]
async fn object_store_suite_passes_through_guard_over_local_fs() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let sink = Arc::new(InMemoryDecisionSink::new());
    let store = guard(inner, sink.clone())
        .with_local_root(dir.path().to_path_buf())
        .unwrap();
    object_store_integration(&store, Backend::LocalFileSystem).await;
    assert_all_allowed(&sink);
}
