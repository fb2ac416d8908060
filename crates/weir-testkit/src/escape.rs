//! Path escapes: one `pub async fn` per spelling of a way out of the scope.
//!
//! Each takes the guarded store under test (scoped with
//! [`crate::fixture::stage_scope`]) and, where writes are tried, the raw
//! store it wraps, to prove nothing landed behind a denial.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::fixture::{OUTPUT_DIR, SECRET};
use crate::hostile::{assert_denied, listed, raw_bytes};

async fn assert_escape_refused(
    guarded: &dyn ObjectStore,
    raw: &dyn ObjectStore,
    spellings: &[Path],
) {
    for path in spellings {
        let what = format!("get {path}");
        assert_denied(&what, guarded.get(path).await);
        assert_denied(
            &format!("put {path}"),
            guarded.put(path, PutPayload::from_static(b"x")).await,
        );
        assert_denied(&format!("delete {path}"), guarded.delete(path).await);
        assert!(
            raw_bytes(raw, path.as_ref()).await.is_none(),
            "{path} was written"
        );
    }
}

/// `..` segments, however spelled, are refused.
///
/// # Panics
///
/// If a spelling is not denied.
pub async fn dot_dot_traversal_is_refused(guarded: &dyn ObjectStore, raw: &dyn ObjectStore) {
    let spellings = [
        Path::from("raw/train/../training/c.parquet"),
        Path::from_iter(["raw", "train", "..", "..", "secret", "key.txt"]),
        Path::from_iter(["out", "model", "..", "modelx", "d.bin"]),
    ];
    assert!(
        Path::parse("raw/train/../training").is_err(),
        "object_store let `..` through"
    );
    assert_escape_refused(guarded, raw, &spellings).await;
}

/// Percent-encoded dots and separators (`%2e%2e`, `%2F`, `%252e`) are
/// refused before any later decoding step can turn them into traversal.
///
/// # Panics
///
/// If a spelling is not denied.
pub async fn percent_encoded_traversal_is_refused(
    guarded: &dyn ObjectStore,
    raw: &dyn ObjectStore,
) {
    let spellings = [
        Path::parse("raw/train/%2e%2e/training/c.parquet").unwrap(),
        Path::parse("raw/train/%2E%2E/%2E%2E/secret/key.txt").unwrap(),
        Path::parse("out/model/%2e%2e%2fmodelx%2fd.bin").unwrap(),
        Path::parse("out/model/%252e%252e/modelx").unwrap(),
        Path::from_iter(["out/model", "../modelx/d.bin"]),
    ];
    assert_escape_refused(guarded, raw, &spellings).await;
}

/// Empty segments (`//`) cannot be spelled as a `Path`, and an encoded
/// separator that would produce one is refused.
///
/// # Panics
///
/// If `//` parses or an encoded form is not denied.
pub async fn double_slash_is_refused(guarded: &dyn ObjectStore, raw: &dyn ObjectStore) {
    assert!(
        Path::parse("out/model//x").is_err(),
        "object_store let `//` through"
    );
    let spellings = [
        Path::from_iter(["out", "model/", "x"]),
        Path::parse("out/model/%2F%2Fx").unwrap(),
        Path::parse("out/model/%2f").unwrap(),
    ];
    assert_escape_refused(guarded, raw, &spellings).await;
}

/// Backslashes, raw or encoded, are refused (a Windows path separator).
///
/// # Panics
///
/// If a spelling is not denied.
pub async fn backslash_is_refused(guarded: &dyn ObjectStore, raw: &dyn ObjectStore) {
    let spellings = [
        Path::parse("out/model/..\\modelx\\d.bin").unwrap(),
        Path::parse("out/model/x\\y").unwrap(),
        Path::from("out/model/..\\..\\secret"),
        Path::parse("out/model/%5c..%5Csecret").unwrap(),
    ];
    assert_escape_refused(guarded, raw, &spellings).await;
}

/// Segments ending in `.` (which Windows strips: `model.` is `model`) are
/// refused.
///
/// # Panics
///
/// If a spelling is not denied.
pub async fn trailing_dot_is_refused(guarded: &dyn ObjectStore, raw: &dyn ObjectStore) {
    let spellings = [
        Path::parse("out/model./x").unwrap(),
        Path::parse("out/model/x.").unwrap(),
        Path::parse("out/model/...").unwrap(),
        Path::parse("raw/train.").unwrap(),
    ];
    assert_escape_refused(guarded, raw, &spellings).await;
}

/// A symlink inside the scope pointing outside the store root is refused,
/// for reads, writes and listings. `root` is the local store's root folder
/// and `outside` a folder outside it; `guarded` must have the symlink check
/// enabled.
///
/// # Panics
///
/// If the symlink can be followed.
#[cfg(unix)]
pub async fn symlink_escape_is_refused(
    guarded: &dyn ObjectStore,
    root: &std::path::Path,
    outside: &std::path::Path,
) {
    std::fs::write(outside.join("stolen.txt"), SECRET).unwrap();
    std::fs::create_dir_all(root.join("raw/train")).unwrap();
    std::fs::create_dir_all(root.join(OUTPUT_DIR)).unwrap();
    std::os::unix::fs::symlink(outside, root.join("raw/train/link")).unwrap();
    std::os::unix::fs::symlink(outside, root.join(OUTPUT_DIR).join("link")).unwrap();
    assert_denied(
        "get through symlink",
        guarded.get(&Path::from("raw/train/link/stolen.txt")).await,
    );
    assert_denied(
        "put through symlink",
        guarded
            .put(
                &Path::from("out/model/link/planted.txt"),
                PutPayload::from_static(b"x"),
            )
            .await,
    );
    assert_denied(
        "delete through symlink",
        guarded
            .delete(&Path::from("out/model/link/stolen.txt"))
            .await,
    );
    assert!(
        !outside.join("planted.txt").exists(),
        "write escaped through the symlink"
    );
    assert!(
        outside.join("stolen.txt").exists(),
        "delete escaped through the symlink"
    );
    let shown = listed(guarded, Some(&Path::from("raw/train"))).await;
    assert!(
        shown.iter().all(|p| !p.contains("link")),
        "listing followed the symlink: {shown:?}"
    );
}
