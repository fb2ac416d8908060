//! Dataset layout and the atomic commit protocol.
//!
//! A dataset written by weir lives under its path as immutable versions plus
//! one small manifest that names the current version:
//!
//! ```text
//! <path>/_weir/manifest.json          which version is current, its files and row count
//! <path>/<version>/part-00000.parquet the data of one committed (or in-flight) attempt
//! ```
//!
//! A stage writes its output into a fresh version folder nobody reads, then
//! commits by replacing the manifest with a single `put`, which object_store
//! guarantees to be atomic on every backend. Readers resolve the manifest
//! first, so they see either the previous version or the new one, never a
//! mix. A failed attempt deletes its version folder; one killed outright
//! leaves an orphan folder that no manifest names and no reader sees.
//!
//! A dataset without a manifest is an external source (a file or a folder
//! that some other system put there) and is read as is.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of weir's metadata folder inside a dataset.
pub const META_DIR: &str = "_weir";
/// How many committed versions to keep (current included).
pub const RETAINED_VERSIONS: usize = 3;
/// Largest manifest we will read.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// The record that makes a version current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; always 1.
    pub format_version: u32,
    /// The dataset's name in the pipeline that wrote it.
    pub dataset: String,
    /// The current version folder (one segment under the dataset path).
    pub version: String,
    /// Data files, relative to the version folder.
    pub files: Vec<ManifestFile>,
    /// Total rows across files.
    pub rows: u64,
    /// The run that committed this version.
    pub run_id: String,
    /// The stage that committed it.
    pub stage: String,
    /// The attempt that committed it.
    pub attempt: u32,
    /// When.
    pub committed_at: DateTime<Utc>,
    /// Versions kept for rollback, newest first (current excluded).
    #[serde(default)]
    pub previous: Vec<String>,
}

/// One data file in a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name inside the version folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Rows in the file.
    pub rows: u64,
}

/// An output an attempt has written into its version folder but not yet
/// committed.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    /// Dataset name.
    pub(crate) dataset: String,
    /// The files written, relative to the version folder.
    pub(crate) files: Vec<ManifestFile>,
}

/// Where to read a dataset from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadLocation {
    /// A committed weir version: read this folder.
    Version {
        /// The version folder.
        prefix: Path,
        /// The manifest that named it.
        manifest: Box<Manifest>,
    },
    /// An external file.
    File(Path),
    /// An external folder.
    Folder(Path),
}

/// The manifest path of the dataset at `path`.
pub fn manifest_path(path: &Path) -> Path {
    path.clone().join(META_DIR).join("manifest.json")
}

/// Reads the current manifest, if the dataset has one.
///
/// # Errors
/// A store error other than "not found", or a manifest that is too large or
/// not valid.
pub async fn read_manifest(store: &dyn ObjectStore, path: &Path) -> Result<Option<Manifest>> {
    let location = manifest_path(path);
    let got = match store.get(&location).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => return Err(Error::store(&location, source)),
    };
    if got.meta.size > MAX_MANIFEST_BYTES {
        return Err(Error::Manifest {
            path: location.to_string(),
            message: format!(
                "manifest is {} bytes, limit {MAX_MANIFEST_BYTES}",
                got.meta.size
            ),
        });
    }
    let bytes = got.bytes().await.map_err(|e| Error::store(&location, e))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
        path: location.to_string(),
        message: e.to_string(),
    })?;
    if manifest.format_version != 1 || !is_version_name(&manifest.version) {
        return Err(Error::Manifest {
            path: location.to_string(),
            message: "unsupported manifest format or invalid version name".into(),
        });
    }
    Ok(Some(manifest))
}

/// Whether `name` is a version folder name weir could have made.
fn is_version_name(name: &str) -> bool {
    name.starts_with("v-")
        && name.len() <= 96
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The version folder name for one attempt of one run.
pub fn version_name(run_id: &str, attempt: u32) -> String {
    format!("v-{run_id}-a{attempt}")
}

/// Decides where to read the dataset at `path`.
///
/// # Errors
/// Store errors, an invalid manifest, or [`Error::MissingInput`] if nothing is there.
pub async fn resolve_read(
    store: &dyn ObjectStore,
    dataset: &str,
    path: &Path,
) -> Result<ReadLocation> {
    let head_error = match store.head(path).await {
        Ok(_) => return Ok(ReadLocation::File(path.clone())),
        Err(object_store::Error::NotFound { .. }) => None,
        // Some S3-compatible servers answer a HEAD on a "folder" with an
        // error other than 404; the manifest or a listing settles it.
        Err(source) => Some(source),
    };
    if let Some(manifest) = read_manifest(store, path).await? {
        return Ok(ReadLocation::Version {
            prefix: path.clone().join(manifest.version.as_str()),
            manifest: Box::new(manifest),
        });
    }
    let mut listing = store.list(Some(path));
    match (listing.next().await, head_error) {
        (Some(Ok(_)), _) => Ok(ReadLocation::Folder(path.clone())),
        (_, Some(source)) | (Some(Err(source)), None) => Err(Error::store(path, source)),
        (None, None) => Err(Error::MissingInput {
            dataset: dataset.to_owned(),
            path: path.to_string(),
        }),
    }
}

/// Whether an attempt may still commit, asked right before the commit point.
///
/// In one process the scheduler never leaves an attempt running once it has
/// given up on it, so [`NoFence`] suffices. With remote workers a slow or
/// partitioned worker can outlive its attempt; the distributed fence (in
/// Redis) refuses any attempt older than the newest one dispatched.
#[async_trait::async_trait]
pub trait CommitFence: Send + Sync {
    /// `Ok` if attempt `attempt` of `stage` in `run_id` may commit now.
    ///
    /// # Errors
    /// [`Error::Fenced`] when a newer attempt superseded this one, or the
    /// error that prevented the check (the commit is then refused too).
    async fn check(&self, run_id: &str, stage: &str, attempt: u32) -> Result<()>;
}

/// The fence of a single process: every attempt may commit.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFence;

#[async_trait::async_trait]
impl CommitFence for NoFence {
    async fn check(&self, _: &str, _: &str, _: u32) -> Result<()> {
        Ok(())
    }
}

/// Makes `version` the current version of the dataset at `path`.
///
/// The manifest `put` is the commit point. Versions beyond
/// [`RETAINED_VERSIONS`] are deleted afterwards (best effort: a failure there
/// leaves extra files, never a broken dataset).
///
/// # Fencing
/// An attempt never replaces what a newer attempt of the same run and stage
/// committed: if the current manifest names a higher attempt, the commit is
/// refused with [`Error::Fenced`]. `fence` is asked last, right before the
/// `put`, so a superseded remote attempt is refused even when the newer one
/// has not committed yet.
///
/// # Errors
/// [`Error::Fenced`] as above; store errors while reading the old manifest or
/// writing the new one. In every error case the previous version stays
/// current.
pub async fn commit(
    store: &dyn ObjectStore,
    path: &Path,
    mut manifest: Manifest,
    fence: &dyn CommitFence,
) -> Result<Manifest> {
    let old = match read_manifest(store, path).await {
        Ok(old) => old,
        // A corrupt manifest is replaced; an unreachable one blocks the
        // commit, since the fence cannot be checked.
        Err(Error::Manifest { path, message }) => {
            tracing::warn!(manifest = %path, %message, "replacing an invalid manifest");
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(old) = &old {
        refuse_if_superseded(old, &manifest)?;
        manifest.previous = std::iter::once(old.version.clone())
            .chain(old.previous.iter().cloned())
            .filter(|v| *v != manifest.version)
            .take(RETAINED_VERSIONS.saturating_sub(1))
            .collect();
    }
    fence
        .check(&manifest.run_id, &manifest.stage, manifest.attempt)
        .await?;
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal {
        message: format!("manifest encoding: {e}"),
    })?;
    let location = manifest_path(path);
    store
        .put(&location, PutPayload::from(body))
        .await
        .map_err(|e| Error::store(&location, e))?;
    if let Some(old) = old {
        let keep: Vec<&str> = std::iter::once(manifest.version.as_str())
            .chain(manifest.previous.iter().map(String::as_str))
            .collect();
        for expired in std::iter::once(&old.version)
            .chain(&old.previous)
            .filter(|v| !keep.contains(&v.as_str()))
        {
            if let Err(e) = delete_prefix(store, &path.clone().join(expired.as_str())).await {
                tracing::warn!(version = %expired, error = %e, "could not delete an expired version");
            }
        }
    }
    Ok(manifest)
}

/// The attempt-number fence on the manifest itself.
fn refuse_if_superseded(current: &Manifest, next: &Manifest) -> Result<()> {
    let same_stage = current.run_id == next.run_id && current.stage == next.stage;
    if same_stage && current.attempt > next.attempt {
        return Err(Error::Fenced {
            stage: next.stage.clone(),
            attempt: next.attempt,
            newer: current.attempt,
        });
    }
    Ok(())
}

/// Deletes every object under `prefix`.
///
/// # Errors
/// The first store error.
pub async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> Result<()> {
    let objects: Vec<_> = store
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix, e))?;
    for location in objects {
        match store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(&location, e)),
        }
    }
    Ok(())
}

/// A convenience for tests and tools: the current data files of a dataset.
///
/// # Errors
/// As [`resolve_read`], plus listing errors.
pub async fn current_files(
    store: Arc<dyn ObjectStore>,
    dataset: &str,
    path: &Path,
) -> Result<Vec<Path>> {
    match resolve_read(store.as_ref(), dataset, path).await? {
        // A file name may hold `/` (a command stage's nested outputs): parse
        // it as a path, never as one segment (which would encode the `/`).
        ReadLocation::Version { prefix, manifest } => manifest
            .files
            .iter()
            .map(|f| {
                Path::parse(format!("{prefix}/{}", f.name)).map_err(|e| Error::Manifest {
                    path: prefix.to_string(),
                    message: format!("invalid file name in manifest: {e}"),
                })
            })
            .collect(),
        ReadLocation::File(p) => Ok(vec![p]),
        ReadLocation::Folder(p) => store
            .list(Some(&p))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| Error::store(&p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn manifest(version: &str) -> Manifest {
        Manifest {
            format_version: 1,
            dataset: "d".into(),
            version: version.into(),
            files: vec![],
            rows: 0,
            run_id: "r".into(),
            stage: "s".into(),
            attempt: 1,
            committed_at: Utc::now(),
            previous: vec![],
        }
    }

    #[tokio::test]
    async fn commit_keeps_a_bounded_history_and_deletes_the_rest() {
        let store = InMemory::new();
        let path = Path::from("ds");
        for i in 0..5 {
            let v = format!("v-{i}");
            store
                .put(
                    &path.clone().join(v.as_str()).join("f"),
                    PutPayload::from_static(b"x"),
                )
                .await
                .unwrap();
            commit(&store, &path, manifest(&v), &NoFence).await.unwrap();
        }
        let m = read_manifest(&store, &path).await.unwrap().unwrap();
        assert_eq!(m.version, "v-4");
        assert_eq!(m.previous, vec!["v-3", "v-2"]);
        let left: Vec<_> = store
            .list(Some(&path))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert!(
            !left
                .iter()
                .any(|p| p.starts_with("ds/v-0/") || p.starts_with("ds/v-1/")),
            "{left:?}"
        );
        assert!(left.iter().any(|p| p.starts_with("ds/v-2/")));
    }

    #[tokio::test]
    async fn missing_input_is_a_clear_error() {
        let store = InMemory::new();
        let err = resolve_read(&store, "raw", &Path::from("nothing/here"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("input dataset `raw`"), "{err}");
    }

    #[tokio::test]
    async fn hostile_manifest_version_is_refused() {
        let store = InMemory::new();
        let path = Path::from("ds");
        let mut m = manifest("../../etc");
        m.version = "../../etc".into();
        store
            .put(
                &manifest_path(&path),
                PutPayload::from(serde_json::to_vec(&m).unwrap()),
            )
            .await
            .unwrap();
        assert!(read_manifest(&store, &path).await.is_err());
    }

    fn attempt(version: &str, attempt: u32) -> Manifest {
        Manifest {
            attempt,
            ..manifest(version)
        }
    }

    #[tokio::test]
    async fn an_older_attempt_never_replaces_a_newer_commit() {
        let store = InMemory::new();
        let path = Path::from("ds");
        commit(&store, &path, attempt("v-r-a3", 3), &NoFence)
            .await
            .unwrap();
        let err = commit(&store, &path, attempt("v-r-a2", 2), &NoFence)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Fenced {
                    attempt: 2,
                    newer: 3,
                    ..
                }
            ),
            "{err}"
        );
        let current = read_manifest(&store, &path).await.unwrap().unwrap();
        assert_eq!(current.version, "v-r-a3");
        // A newer attempt, or another run, still commits.
        commit(&store, &path, attempt("v-r-a4", 4), &NoFence)
            .await
            .unwrap();
        let mut other = attempt("v-q-a1", 1);
        other.run_id = "q".into();
        commit(&store, &path, other, &NoFence).await.unwrap();
    }

    struct Superseded;
    #[async_trait::async_trait]
    impl CommitFence for Superseded {
        async fn check(&self, _: &str, stage: &str, attempt: u32) -> Result<()> {
            Err(Error::Fenced {
                stage: stage.into(),
                attempt,
                newer: attempt + 1,
            })
        }
    }

    #[tokio::test]
    async fn a_refusing_fence_leaves_the_previous_version_current() {
        let store = InMemory::new();
        let path = Path::from("ds");
        commit(&store, &path, attempt("v-r-a1", 1), &NoFence)
            .await
            .unwrap();
        let mut next = attempt("v-s-a1", 1);
        next.run_id = "s".into();
        assert!(commit(&store, &path, next, &Superseded).await.is_err());
        let current = read_manifest(&store, &path).await.unwrap().unwrap();
        assert_eq!(current.version, "v-r-a1");
    }
}
