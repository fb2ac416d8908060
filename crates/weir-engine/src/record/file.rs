//! [`FileRunStore`]: one JSON file per run under `<state_dir>/runs/`.

use std::path::{Path, PathBuf};

use super::{RunRecord, RunStore, check_run_id};
use crate::error::{Error, Result};

/// Run records under `<state_dir>/runs/`, one JSON file per run, each
/// replaced atomically (written aside, then renamed).
#[derive(Debug, Clone)]
pub struct FileRunStore {
    dir: PathBuf,
}

impl FileRunStore {
    /// Run records kept under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("runs"),
        }
    }

    /// The file that holds (or would hold) the record of `run_id`.
    ///
    /// # Errors
    /// [`Error::InvalidRunId`] if `run_id` is not a run id.
    pub fn path(&self, run_id: &str) -> Result<PathBuf> {
        check_run_id(run_id)?;
        Ok(self.dir.join(format!("{run_id}.json")))
    }

    fn save_blocking(&self, record: &RunRecord) -> Result<()> {
        let path = self.path(&record.run_id)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(record).map_err(|e| Error::Internal {
            message: format!("run record encoding: {e}"),
        })?;
        std::fs::write(&tmp, body).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    fn load_blocking(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let path = self.path(run_id)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Internal {
                message: format!("{}: {e}", path.display()),
            })
    }

    fn list_blocking(&self, limit: Option<usize>) -> Result<Vec<RunRecord>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".json")?;
                check_run_id(id).ok().map(|()| id.to_owned())
            })
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::new();
        for id in ids {
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            match self.load_blocking(&id) {
                Ok(Some(record)) => out.push(record),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(run_id = %id, error = %e, "skipping unreadable run record")
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl RunStore for FileRunStore {
    async fn save(&self, record: &RunRecord) -> Result<()> {
        let (store, record) = (self.clone(), record.clone());
        blocking(move || store.save_blocking(&record)).await
    }

    async fn load(&self, run_id: &str) -> Result<Option<RunRecord>> {
        let (store, run_id) = (self.clone(), run_id.to_owned());
        blocking(move || store.load_blocking(&run_id)).await
    }

    async fn list(&self, limit: Option<usize>) -> Result<Vec<RunRecord>> {
        let store = self.clone();
        blocking(move || store.list_blocking(limit)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal {
            message: format!("run store task: {e}"),
        })?
}
