//! weir-testkit's policy suite through `GuardedStore`, over `InMemory` and
//! `LocalFileSystem`: one test per attack, named after it.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use tempfile::TempDir;
use weir_auth::{FixedClock, Scope, StageClaims, TokenType};
use weir_policy::{GuardedStore, InMemoryDecisionSink};
use weir_testkit::{decisions, escape, fixture, hostile};

const NOW: i64 = 1_800_000_000;

fn claims(scope: Scope) -> StageClaims {
    StageClaims {
        iss: "weir".into(),
        aud: "weir-worker".into(),
        sub: "svc-train".into(),
        run: "01JRUN".into(),
        stage: "prepare".into(),
        attempt: 1,
        scope,
        iat: NOW,
        nbf: NOW,
        exp: NOW + 600,
        jti: "01JTOKENID".into(),
        typ: TokenType::Stage,
    }
}

struct Harness {
    raw: Arc<dyn ObjectStore>,
    guarded: GuardedStore,
    sink: Arc<InMemoryDecisionSink>,
    root: Option<PathBuf>,
    _dir: Option<TempDir>,
}

async fn harness(local: bool, scope: Scope) -> Harness {
    let (raw, root, dir): (Arc<dyn ObjectStore>, _, _) = if local {
        let dir = TempDir::new().unwrap();
        let fs = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        (Arc::new(fs), Some(dir.path().to_path_buf()), Some(dir))
    } else {
        (Arc::new(InMemory::new()), None, None)
    };
    fixture::seed(raw.as_ref()).await;
    let sink = Arc::new(InMemoryDecisionSink::new());
    let mut guarded = GuardedStore::new(
        Arc::clone(&raw),
        fixture::STORE,
        &claims(scope),
        Arc::new(FixedClock::new(NOW)),
        sink.clone(),
    );
    if let Some(root) = &root {
        guarded = guarded.with_local_root(root.clone()).unwrap();
    }
    Harness {
        raw,
        guarded,
        sink,
        root,
        _dir: dir,
    }
}

macro_rules! hostile_cases {
    ($backend:ident, $local:expr) => {
        mod $backend {
            use super::*;

            async fn staged() -> Harness {
                harness($local, fixture::stage_scope()).await
            }

            #[tokio::test]
            async fn every_method_is_denied_without_a_grant() {
                let h = harness($local, fixture::no_grant_scope()).await;
                hostile::every_method_is_denied_without_a_grant(&h.guarded, h.raw.as_ref()).await;
                assert!(h.sink.decisions().iter().all(|d| !d.allowed));
            }

            #[tokio::test]
            async fn prefix_sibling_raw_training_is_refused() {
                hostile::prefix_sibling_is_refused(&staged().await.guarded).await;
            }

            #[tokio::test]
            async fn dot_dot_traversal_is_refused() {
                let h = staged().await;
                escape::dot_dot_traversal_is_refused(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn percent_encoded_traversal_is_refused() {
                let h = staged().await;
                escape::percent_encoded_traversal_is_refused(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn double_slash_is_refused() {
                let h = staged().await;
                escape::double_slash_is_refused(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn backslash_is_refused() {
                let h = staged().await;
                escape::backslash_is_refused(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn trailing_dot_is_refused() {
                let h = staged().await;
                escape::trailing_dot_is_refused(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn list_results_outside_scope_are_filtered() {
                hostile::list_results_outside_scope_are_filtered(&staged().await.guarded).await;
            }

            #[tokio::test]
            async fn list_prefix_outside_scope_is_denied() {
                hostile::list_prefix_outside_scope_is_denied(&staged().await.guarded).await;
            }

            #[tokio::test]
            async fn copy_from_ungranted_source_is_denied() {
                let h = staged().await;
                hostile::copy_from_ungranted_source_is_denied(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn rename_into_ungranted_destination_is_denied() {
                let h = staged().await;
                hostile::rename_into_ungranted_destination_is_denied(&h.guarded, h.raw.as_ref())
                    .await;
            }

            #[tokio::test]
            async fn multipart_to_ungranted_path_is_denied() {
                let h = staged().await;
                hostile::multipart_to_ungranted_path_is_denied(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn allowed_calls_pass_through() {
                let h = staged().await;
                hostile::allowed_calls_pass_through(&h.guarded, h.raw.as_ref()).await;
            }

            #[tokio::test]
            async fn exactly_one_decision_per_call() {
                let h = staged().await;
                let sink = h.sink.clone();
                decisions::exactly_one_decision_per_call(&h.guarded, &move || sink.len()).await;
            }
        }
    };
}

hostile_cases!(in_memory, false);
hostile_cases!(local_fs, true);

#[cfg(unix)]
#[tokio::test]
async fn symlink_escape_is_refused() {
    let h = harness(true, fixture::stage_scope()).await;
    let outside = TempDir::new().unwrap();
    let root = h.root.clone().unwrap();
    escape::symlink_escape_is_refused(&h.guarded, &root, outside.path()).await;
}

#[tokio::test]
async fn no_token_string_in_any_error() {
    let keys_dir = TempDir::new().unwrap();
    let now = weir_auth::SystemClock;
    let keys = weir_auth::StageKeySet::open(keys_dir.path(), weir_auth::Clock::now(&now)).unwrap();
    let minter =
        weir_auth::Minter::new(keys, "weir", "weir-worker", weir_auth::DEFAULT_MAX_LIFETIME)
            .unwrap();
    let minted = minter
        .mint(weir_auth::MintRequest {
            principal: "svc-train".into(),
            run: "01JRUN".into(),
            stage: "prepare".into(),
            attempt: 1,
            scope: fixture::no_grant_scope(),
            ttl: std::time::Duration::from_secs(600),
        })
        .unwrap();
    let verified = minter.verifier().verify_now(minted.token.expose()).unwrap();
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    fixture::seed(raw.as_ref()).await;
    let sink = Arc::new(InMemoryDecisionSink::new());
    let guarded = GuardedStore::new(
        raw,
        fixture::STORE,
        &verified,
        Arc::new(weir_auth::SystemClock),
        sink.clone(),
    );
    hostile::no_secret_in_any_error(&guarded, minted.token.expose()).await;
    let recorded = format!("{:?}", sink.decisions());
    assert!(!recorded.contains(minted.token.expose()));
    assert!(
        recorded.contains(&verified.jti),
        "decisions name the token by jti"
    );
}
