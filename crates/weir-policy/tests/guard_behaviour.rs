//! GuardedStore behaviour beyond the shared suite: expiry, fail-closed
//! recording, what a decision and a denial say.

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{Error, ObjectStore, ObjectStoreExt, PutPayload};
use weir_auth::{Action, FixedClock, StageClaims, TokenType};
use weir_policy::{GuardedStore, InMemoryDecisionSink, Operation};
use weir_testkit::fixture;

const NOW: i64 = 1_800_000_000;

struct Setup {
    guarded: GuardedStore,
    clock: Arc<FixedClock>,
    sink: Arc<InMemoryDecisionSink>,
}

async fn setup() -> Setup {
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    fixture::seed(raw.as_ref()).await;
    let claims = StageClaims {
        iss: "weir".into(),
        aud: "weir-worker".into(),
        sub: "svc-train".into(),
        run: "01JRUN".into(),
        stage: "prepare".into(),
        attempt: 2,
        scope: fixture::stage_scope(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 60,
        jti: "01JTOKENID".into(),
        typ: TokenType::Stage,
    };
    let clock = Arc::new(FixedClock::new(NOW));
    let sink = Arc::new(InMemoryDecisionSink::new());
    let guarded = GuardedStore::new(raw, "lake", &claims, clock.clone(), sink.clone());
    Setup {
        guarded,
        clock,
        sink,
    }
}

fn train() -> Path {
    Path::from("raw/train/a.parquet")
}

#[tokio::test]
async fn expired_token_mid_stage_is_unauthenticated() {
    let s = setup().await;
    s.guarded.head(&train()).await.unwrap();
    s.clock.advance(60);
    let err = s.guarded.head(&train()).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    assert!(err.to_string().contains("expired"), "{err}");
    let last = s.sink.decisions().pop().unwrap();
    assert!(!last.allowed);
    assert_eq!(last.reason, "the stage token has expired");
}

#[tokio::test]
async fn upload_outliving_its_token_cannot_complete() {
    let s = setup().await;
    let mut upload = s
        .guarded
        .put_multipart(&Path::from("out/model/big.bin"))
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from_static(b"a"))
        .await
        .unwrap();
    s.clock.advance(61);
    let part = upload
        .put_part(PutPayload::from_static(b"b"))
        .await
        .unwrap_err();
    assert!(matches!(part, Error::Unauthenticated { .. }), "{part:?}");
    let done = upload.complete().await.unwrap_err();
    assert!(matches!(done, Error::Unauthenticated { .. }), "{done:?}");
    upload.abort().await.unwrap();
}

#[tokio::test]
async fn failing_decision_sink_denies_allowed_calls() {
    let s = setup().await;
    s.sink.set_failing(true);
    let err = s.guarded.get(&train()).await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("could not be recorded"), "{err}");
    let put = s
        .guarded
        .put(&Path::from("out/model/x"), PutPayload::from_static(b"x"))
        .await;
    assert!(matches!(put, Err(Error::PermissionDenied { .. })));
    let listed: Vec<_> = futures::StreamExt::collect(s.guarded.list(None)).await;
    assert!(matches!(
        listed.as_slice(),
        [Err(Error::PermissionDenied { .. })]
    ));
    s.sink.set_failing(false);
    s.guarded.get(&train()).await.unwrap();
}

#[tokio::test]
async fn decision_names_principal_run_stage_attempt_jti_path_and_action() {
    let s = setup().await;
    s.guarded.get(&train()).await.unwrap();
    let _ = s
        .guarded
        .copy(&Path::from("secret/key.txt"), &Path::from("out/model/k"))
        .await;
    let d = s.sink.decisions();
    let [allowed, denied] = d.as_slice() else {
        panic!("{d:?}")
    };
    assert_eq!(
        (
            &*allowed.principal,
            &*allowed.run,
            &*allowed.stage,
            allowed.attempt,
            &*allowed.jti
        ),
        ("svc-train", "01JRUN", "prepare", 2, "01JTOKENID")
    );
    assert_eq!(
        (&*allowed.store, &*allowed.path),
        ("lake", "raw/train/a.parquet")
    );
    assert_eq!(
        (
            allowed.operation,
            allowed.action,
            allowed.allowed,
            allowed.time
        ),
        (Operation::Get, Action::Read, true, NOW)
    );
    assert_eq!(denied.operation, Operation::Copy);
    assert_eq!(denied.source.as_deref(), Some("secret/key.txt"));
    assert_eq!((denied.action, denied.allowed), (Action::Read, false));
}

#[tokio::test]
async fn denial_names_stage_path_and_action() {
    let s = setup().await;
    let err = s
        .guarded
        .put(&Path::from("raw/train/x"), PutPayload::from_static(b"x"))
        .await
        .unwrap_err();
    let text = err.to_string();
    for needle in ["prepare", "raw/train/x", "write", "lake"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[tokio::test]
async fn delete_stream_denies_each_ungranted_location_in_place() {
    let s = setup().await;
    let paths = vec![
        Ok(Path::from("out/model/old.bin")),
        Ok(Path::from("secret/key.txt")),
        Ok(Path::from("raw/train/a.parquet")),
    ];
    let out: Vec<_> = futures::StreamExt::collect(
        s.guarded
            .delete_stream(futures::StreamExt::boxed(futures::stream::iter(paths))),
    )
    .await;
    assert!(out[0].is_ok());
    assert!(matches!(out[1], Err(Error::PermissionDenied { .. })));
    assert!(matches!(out[2], Err(Error::PermissionDenied { .. })));
    assert_eq!(s.sink.len(), 3);
}

#[tokio::test]
async fn display_and_debug_name_the_store_not_a_token() {
    let s = setup().await;
    let shown = format!("{} {:?}", s.guarded, s.guarded);
    assert!(
        shown.contains("lake") && shown.contains("prepare"),
        "{shown}"
    );
    assert_eq!(s.guarded.store_name(), "lake");
}
