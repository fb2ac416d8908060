//! Exactly one recorded decision per guarded call.

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload};

use crate::fixture::{OUTPUT_FILE, TRAIN_FILES};

/// Runs a sequence of allowed and denied calls on `guarded` (scoped with
/// [`crate::fixture::stage_scope`] over a store seeded with
/// [`crate::fixture::seed`]) and checks after each that `count()` (the
/// number of decisions the sink holds) grew by exactly one, or by one per
/// location for `delete_stream`.
///
/// # Panics
///
/// On the first call that records no decision or more than one.
pub async fn exactly_one_decision_per_call(guarded: &dyn ObjectStore, count: &dyn Fn() -> usize) {
    let read = Path::from(*TRAIN_FILES.first().unwrap_or(&"raw/train/a.parquet"));
    let secret = Path::from("secret/key.txt");
    let out = Path::from("out/model/one.bin");
    let mut before = count();
    let mut step = |what: &str, expected: usize| {
        let now = count();
        assert_eq!(
            now - before,
            expected,
            "{what} recorded {} decisions",
            now - before
        );
        before = now;
    };
    let _ = guarded.get(&read).await.unwrap().bytes().await;
    step("get allowed", 1);
    let _ = guarded.get(&secret).await;
    step("get denied", 1);
    let _ = guarded.head(&read).await;
    step("head", 1);
    let _ = guarded
        .get_opts(&read, GetOptions::new().with_range(Some(0..1)))
        .await;
    step("get_opts", 1);
    let _ = guarded.get_ranges(&read, &[0..1, 1..2, 2..3]).await;
    step("get_ranges", 1);
    let _ = guarded.get_range(&secret, 0..1).await;
    step("get_range denied", 1);
    let _ = guarded.put(&out, PutPayload::from_static(b"1")).await;
    step("put allowed", 1);
    let _ = guarded.put(&secret, PutPayload::from_static(b"1")).await;
    step("put denied", 1);
    if let Ok(mut upload) = guarded.put_multipart(&Path::from("out/model/mp.bin")).await {
        let _ = upload.put_part(PutPayload::from_static(b"p")).await;
        let _ = upload.complete().await;
    }
    step("put_multipart with a part", 1);
    let _: Vec<_> = guarded.list(None).collect().await;
    step("list root", 1);
    let _: Vec<_> = guarded.list(Some(&Path::from("secret"))).collect().await;
    step("list denied", 1);
    let _: Vec<_> = guarded
        .list_with_offset(Some(&Path::from("raw/train")), &read)
        .collect()
        .await;
    step("list_with_offset", 1);
    let _ = guarded.list_with_delimiter(None).await;
    step("list_with_delimiter", 1);
    let _ = guarded
        .copy(&Path::from(OUTPUT_FILE), &Path::from("out/model/c.bin"))
        .await;
    step("copy allowed", 1);
    let _ = guarded.copy(&secret, &Path::from("out/model/c.bin")).await;
    step("copy denied", 1);
    let _ = guarded
        .rename(
            &Path::from("out/model/c.bin"),
            &Path::from("out/model/r.bin"),
        )
        .await;
    step("rename", 1);
    let _ = guarded.delete(&out).await;
    step("delete", 1);
    let paths = [
        Path::from("out/model/r.bin"),
        secret.clone(),
        Path::from("out/model/mp.bin"),
    ];
    let stream = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
    let results: Vec<_> = guarded.delete_stream(stream).collect().await;
    assert_eq!(results.len(), 3);
    step("delete_stream of three", 3);
    let listed: Vec<_> = guarded
        .list(Some(&Path::from("out/model")))
        .try_collect()
        .await
        .unwrap_or_default();
    step("list output", 1);
    assert!(!listed.is_empty());
}
