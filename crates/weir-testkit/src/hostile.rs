//! The policy suite: one `pub async fn` per attack.
//!
//! Every function takes the guarded store under test (`guarded`, scoped
//! with [`crate::fixture::stage_scope`] unless said otherwise) and the raw store it
//! wraps (`raw`, seeded with [`crate::fixture::seed`]) to prove nothing changed
//! behind a denial.

use std::fmt::Write as _;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Error, GetOptions, ObjectStore, ObjectStoreExt, PutPayload};

use crate::fixture::{OUTPUT_DIR, OUTPUT_FILE, OUTSIDE_FILES, TRAIN_FILES, VISIBLE};

/// Panics unless `result` is a `PermissionDenied` error.
///
/// # Panics
///
/// As described.
#[track_caller]
pub fn assert_denied<T: std::fmt::Debug>(what: &str, result: object_store::Result<T>) {
    match result {
        Err(Error::PermissionDenied { .. }) => {}
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    }
}

pub(crate) async fn raw_bytes(raw: &dyn ObjectStore, path: &str) -> Option<Bytes> {
    match raw.get(&Path::from(path)).await {
        Ok(r) => Some(r.bytes().await.unwrap()),
        Err(Error::NotFound { .. }) => None,
        Err(e) => panic!("raw get {path}: {e}"),
    }
}

pub(crate) async fn listed(store: &dyn ObjectStore, prefix: Option<&Path>) -> Vec<String> {
    let mut out: Vec<String> = store
        .list(prefix)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    out.sort();
    out
}

/// Every call is denied, and nothing behind it changes. `guarded` must be
/// scoped with [`crate::fixture::no_grant_scope`].
///
/// # Panics
///
/// On the first call that is not denied, or if the raw store changed.
pub async fn every_method_is_denied_without_a_grant(
    guarded: &dyn ObjectStore,
    raw: &dyn ObjectStore,
) {
    for (what, result) in denied_calls(guarded).await {
        assert!(
            matches!(result, Err(Error::PermissionDenied { .. })),
            "{what}: expected PermissionDenied, got {result:?}"
        );
    }
    let mut all: Vec<&str> = TRAIN_FILES.iter().chain(OUTSIDE_FILES).copied().collect();
    all.push(OUTPUT_FILE);
    for p in all {
        assert!(
            raw_bytes(raw, p).await.is_some(),
            "{p} was deleted or moved"
        );
    }
    for p in [
        "raw/train/new",
        "out/model/new",
        "out/model/copied",
        "out/model/renamed",
    ] {
        assert!(raw_bytes(raw, p).await.is_none(), "{p} was written");
    }
}

fn dbg<T: std::fmt::Debug>(r: object_store::Result<T>) -> object_store::Result<String> {
    r.map(|v| format!("{v:?}"))
}

/// Calls every `ObjectStore` and `ObjectStoreExt` method once on paths the
/// fixture stage scope would allow, returning each outcome as text.
async fn denied_calls(s: &dyn ObjectStore) -> Vec<(&'static str, object_store::Result<String>)> {
    let read = Path::from(*TRAIN_FILES.first().unwrap_or(&"raw/train/a.parquet"));
    let out = Path::from(OUTPUT_FILE);
    let new = Path::from("out/model/new");
    let mut v = vec![
        ("get", dbg(s.get(&read).await.map(|_| ()))),
        ("head", dbg(s.head(&read).await)),
        ("get_range", dbg(s.get_range(&read, 0..2).await)),
        ("get_ranges", dbg(s.get_ranges(&read, &[0..1, 1..2]).await)),
        (
            "get_opts",
            dbg(s
                .get_opts(&read, GetOptions::new().with_head(true))
                .await
                .map(|_| ())),
        ),
        ("put", dbg(s.put(&new, PutPayload::from_static(b"x")).await)),
        (
            "put_multipart",
            dbg(s.put_multipart(&new).await.map(|_| ())),
        ),
        ("delete", dbg(s.delete(&out).await)),
        ("list", dbg(s.list(None).try_collect::<Vec<_>>().await)),
        (
            "list prefix",
            dbg(s
                .list(Some(&Path::from("raw/train")))
                .try_collect::<Vec<_>>()
                .await),
        ),
        (
            "list_with_offset",
            dbg(s
                .list_with_offset(None, &read)
                .try_collect::<Vec<_>>()
                .await),
        ),
        (
            "list_with_delimiter",
            dbg(s.list_with_delimiter(None).await),
        ),
        (
            "list_with_delimiter prefix",
            dbg(s.list_with_delimiter(Some(&Path::from(OUTPUT_DIR))).await),
        ),
        (
            "copy",
            dbg(s.copy(&read, &Path::from("out/model/copied")).await),
        ),
        (
            "copy_if_not_exists",
            dbg(s
                .copy_if_not_exists(&read, &Path::from("out/model/copied"))
                .await),
        ),
        (
            "rename",
            dbg(s.rename(&out, &Path::from("out/model/renamed")).await),
        ),
        (
            "rename_if_not_exists",
            dbg(s
                .rename_if_not_exists(&out, &Path::from("out/model/renamed"))
                .await),
        ),
    ];
    let stream = futures::stream::iter([Ok(out.clone()), Ok(Path::from("raw/train/new"))]).boxed();
    let results: Vec<_> = s.delete_stream(stream).collect().await;
    for r in results {
        v.push(("delete_stream", dbg(r)));
    }
    v
}

/// `raw/train` never covers `raw/training` (nor `raw/trainx`).
///
/// # Panics
///
/// If a sibling is readable, listable or shown in a listing.
pub async fn prefix_sibling_is_refused(guarded: &dyn ObjectStore) {
    assert_denied(
        "get raw/training",
        guarded.get(&Path::from("raw/training/c.parquet")).await,
    );
    assert_denied(
        "head raw/trainx",
        guarded.head(&Path::from("raw/trainx")).await,
    );
    let listing: Vec<_> = guarded
        .list(Some(&Path::from("raw/training")))
        .collect()
        .await;
    assert!(listing.len() == 1, "list raw/training: {listing:?}");
    for item in listing {
        assert_denied("list raw/training", item);
    }
    let shown = guarded
        .list_with_delimiter(Some(&Path::from("raw")))
        .await
        .unwrap();
    let prefixes: Vec<String> = shown
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(prefixes, ["raw/train"], "raw/training must be hidden");
    assert!(
        shown.objects.is_empty(),
        "raw/trainx must be hidden: {:?}",
        shown.objects
    );
}

/// Listings show only what the stage may read; common prefixes only lead
/// towards it.
///
/// # Panics
///
/// If anything outside the scope is listed.
pub async fn list_results_outside_scope_are_filtered(guarded: &dyn ObjectStore) {
    let mut expected: Vec<String> = TRAIN_FILES.iter().map(|s| (*s).to_owned()).collect();
    expected.push(OUTPUT_FILE.to_owned());
    expected.sort();
    assert_eq!(listed(guarded, None).await, expected);
    let mut offset: Vec<String> = guarded
        .list_with_offset(None, &Path::from("raw"))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    offset.sort();
    let after: Vec<String> = expected
        .iter()
        .filter(|p| p.as_str() > "raw")
        .cloned()
        .collect();
    assert_eq!(offset, after);
    let top = guarded.list_with_delimiter(None).await.unwrap();
    let mut prefixes: Vec<String> = top
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    prefixes.sort();
    assert_eq!(prefixes, ["out", "raw"], "`secret` must be hidden");
    let out = guarded
        .list_with_delimiter(Some(&Path::from("out")))
        .await
        .unwrap();
    let prefixes: Vec<String> = out
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(prefixes, [OUTPUT_DIR], "out/modelx must be hidden");
}

/// Listing a prefix from which nothing in scope can be reached is denied.
///
/// # Panics
///
/// If such a listing is not denied.
pub async fn list_prefix_outside_scope_is_denied(guarded: &dyn ObjectStore) {
    for prefix in ["secret", "raw/training", "out/modelx"] {
        let items: Vec<_> = guarded.list(Some(&Path::from(prefix))).collect().await;
        assert!(items.len() == 1, "list {prefix}: {items:?}");
        for item in items {
            assert_denied(prefix, item);
        }
        assert_denied(
            prefix,
            guarded.list_with_delimiter(Some(&Path::from(prefix))).await,
        );
    }
}

/// A copy needs read on its source: copying an ungranted object into the
/// output is denied.
///
/// # Panics
///
/// If the copy goes through.
pub async fn copy_from_ungranted_source_is_denied(
    guarded: &dyn ObjectStore,
    raw: &dyn ObjectStore,
) {
    let to = Path::from("out/model/stolen");
    assert_denied(
        "copy",
        guarded.copy(&Path::from("secret/key.txt"), &to).await,
    );
    assert_denied(
        "copy_if_not_exists",
        guarded
            .copy_if_not_exists(&Path::from("raw/training/c.parquet"), &to)
            .await,
    );
    assert!(
        raw_bytes(raw, to.as_ref()).await.is_none(),
        "the copy happened"
    );
    guarded
        .copy(&Path::from(OUTPUT_FILE), &Path::from("out/model/copy"))
        .await
        .unwrap();
}

/// A rename needs write on its destination (and read and delete on its
/// source): renaming the output somewhere ungranted, or moving a read-only
/// input, is denied.
///
/// # Panics
///
/// If the rename goes through.
pub async fn rename_into_ungranted_destination_is_denied(
    guarded: &dyn ObjectStore,
    raw: &dyn ObjectStore,
) {
    assert_denied(
        "rename out",
        guarded
            .rename(&Path::from(OUTPUT_FILE), &Path::from("raw/training/x"))
            .await,
    );
    assert_denied(
        "rename read-only source",
        guarded
            .rename(
                &Path::from("raw/train/a.parquet"),
                &Path::from("out/model/a.parquet"),
            )
            .await,
    );
    assert_eq!(raw_bytes(raw, OUTPUT_FILE).await.as_deref(), Some(VISIBLE));
    assert_eq!(
        raw_bytes(raw, "raw/train/a.parquet").await.as_deref(),
        Some(VISIBLE)
    );
    assert!(raw_bytes(raw, "raw/training/x").await.is_none());
    assert!(raw_bytes(raw, "out/model/a.parquet").await.is_none());
}

/// A multipart upload to an ungranted (or read-only) path never starts.
///
/// # Panics
///
/// If an upload starts.
pub async fn multipart_to_ungranted_path_is_denied(
    guarded: &dyn ObjectStore,
    raw: &dyn ObjectStore,
) {
    for p in ["raw/train/new.parquet", "secret/new", "out/modelx/new"] {
        assert_denied(p, guarded.put_multipart(&Path::from(p)).await.map(|_| ()));
        assert!(raw_bytes(raw, p).await.is_none());
    }
    let mut upload = guarded
        .put_multipart(&Path::from("out/model/part.bin"))
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from_static(b"ok"))
        .await
        .unwrap();
    upload.complete().await.unwrap();
    assert_eq!(
        raw_bytes(raw, "out/model/part.bin").await.as_deref(),
        Some(&b"ok"[..])
    );
}

/// In scope, the guard is transparent: reads return the content, writes
/// and deletes in the output land.
///
/// # Panics
///
/// If an allowed call fails.
pub async fn allowed_calls_pass_through(guarded: &dyn ObjectStore, raw: &dyn ObjectStore) {
    for p in TRAIN_FILES {
        let got = guarded
            .get(&Path::from(*p))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], VISIBLE);
    }
    let new = Path::from("out/model/new.bin");
    guarded
        .put(&new, PutPayload::from_static(b"new"))
        .await
        .unwrap();
    assert_eq!(
        raw_bytes(raw, new.as_ref()).await.as_deref(),
        Some(&b"new"[..])
    );
    guarded.delete(&new).await.unwrap();
    assert!(raw_bytes(raw, new.as_ref()).await.is_none());
}

/// No denial, through any method, mentions `secret` (the stage token, or
/// any other credential the caller handed the guard's builder) in its
/// `Display`, `Debug` or source chain. `guarded` must be scoped with
/// [`crate::fixture::no_grant_scope`].
///
/// # Panics
///
/// If an error mentions `secret`, or `secret` is too short to search for.
pub async fn no_secret_in_any_error(guarded: &dyn ObjectStore, secret: &str) {
    assert!(secret.len() >= 16, "search for a real token");
    let mut text = format!("{guarded} {guarded:?}");
    for (what, result) in denied_calls(guarded).await {
        if let Err(e) = result {
            let _ = write!(text, "\n{what}: {e} {e:?}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let _ = write!(text, " {s} {s:?}");
                source = s.source();
            }
        }
    }
    assert!(!text.contains(secret), "a secret leaked into an error");
    for part in secret.split('.').filter(|p| p.len() >= 16) {
        assert!(
            !text.contains(part),
            "part of a secret leaked into an error"
        );
    }
}
