//! The seeded objects and scopes the suites expect.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use weir_auth::{Action, ActionSet, PathKind, Scope, ScopeEntry, ScopePath};

/// The store name the fixture scopes use.
pub const STORE: &str = "lake";

/// Content of every object the stage may read.
pub const VISIBLE: &[u8] = b"in scope";
/// Content of every object the stage may not read.
pub const SECRET: &[u8] = b"SECRET: never through the guard";

/// Readable by the stage (under `raw/train`, read only).
pub const TRAIN_FILES: &[&str] = &["raw/train/a.parquet", "raw/train/sub/b.parquet"];
/// The stage's output folder (read, write, delete).
pub const OUTPUT_DIR: &str = "out/model";
/// An object already in the output folder.
pub const OUTPUT_FILE: &str = "out/model/old.bin";
/// Outside the scope: a sibling whose name extends `raw/train`, and more.
pub const OUTSIDE_FILES: &[&str] = &[
    "raw/training/c.parquet",
    "raw/trainx",
    "secret/key.txt",
    "out/modelx/d.bin",
];

/// Puts the fixture objects into the raw (unguarded) store.
///
/// # Panics
///
/// If a put fails.
pub async fn seed(raw: &dyn ObjectStore) {
    for p in TRAIN_FILES.iter().chain([&OUTPUT_FILE]) {
        raw.put(&Path::from(*p), VISIBLE.into()).await.unwrap();
    }
    for p in OUTSIDE_FILES {
        raw.put(&Path::from(*p), SECRET.into()).await.unwrap();
    }
}

fn entry(store: &str, path: &str, actions: &[Action]) -> ScopeEntry {
    ScopeEntry {
        store: store.to_owned(),
        path: ScopePath::parse(path).unwrap(),
        kind: PathKind::Prefix,
        actions: actions.iter().copied().collect::<ActionSet>(),
        columns: None,
    }
}

/// The scope of the stage under test: `raw/train` (read) and `out/model`
/// (read, write, delete) in [`STORE`].
///
/// # Panics
///
/// Never (the entries are valid).
#[must_use]
pub fn stage_scope() -> Scope {
    Scope::new(vec![
        entry(STORE, "raw/train", &[Action::Read]),
        entry(
            STORE,
            OUTPUT_DIR,
            &[Action::Read, Action::Write, Action::Delete],
        ),
    ])
    .unwrap()
}

/// A scope that grants everything in another store and nothing in
/// [`STORE`]: a wrapper for [`STORE`] must deny every call.
///
/// # Panics
///
/// Never (the entries are valid).
#[must_use]
pub fn no_grant_scope() -> Scope {
    Scope::new(vec![entry(
        "elsewhere",
        "raw",
        &ActionSet::all().iter().collect::<Vec<_>>(),
    )])
    .unwrap()
}

/// Every top-level name object_store's integration functions (those run by
/// [`crate::transparency`]) touch.
pub const INTEGRATION_TOP_LEVEL: &[&str] = &[
    "test_dir",
    "test_file",
    "test1",
    "test2",
    "test",
    "not_exists_nested",
    "this_file_should_not_exist",
    "I don't exist",
    "RACE",
    "put_opts",
    "attributes",
    "empty",
    "foo",
    "foo.bar",
    "mydb",
    "a",
    "aa",
    "ab",
    "b",
    "test_multipart",
    "test_multipart_race_condition",
    "test_multipart_out_of_order",
    "test_empty_multipart",
    "test_offset",
    "not_there",
];

/// An "allow-all" scope for `store`: every action on every top-level name
/// in [`INTEGRATION_TOP_LEVEL`]. (A weir scope never covers a whole store.)
///
/// # Panics
///
/// Never (the entries are valid).
#[must_use]
pub fn allow_all_scope(store: &str) -> Scope {
    let all: Vec<Action> = ActionSet::all().iter().collect();
    Scope::new(
        INTEGRATION_TOP_LEVEL
            .iter()
            .map(|top| entry(store, top, &all))
            .collect(),
    )
    .unwrap()
}
