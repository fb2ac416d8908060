//! Run records: what ran, when, and how it ended, kept in the state directory.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The state of a stage in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    /// Not started yet.
    Waiting,
    /// An attempt is running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Never ran because a dependency failed.
    Skipped,
    /// Stopped by a cancel.
    Cancelled,
}

/// The state of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still running.
    Running,
    /// Every stage succeeded.
    Succeeded,
    /// At least one stage failed or was skipped.
    Failed,
    /// Cancelled by the user.
    Cancelled,
}

/// One stage in a run record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Stage name.
    pub name: String,
    /// Where it ended up.
    pub state: StageState,
    /// Attempts made.
    pub attempts: u32,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
    /// Rows written across outputs.
    pub rows_written: u64,
    /// Output datasets and the version committed for each.
    pub outputs: Vec<OutputRecord>,
    /// The error, if it failed or was skipped.
    pub error: Option<String>,
}

/// An output committed by a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Dataset name.
    pub dataset: String,
    /// Version folder committed.
    pub version: String,
    /// Rows.
    pub rows: u64,
}

/// A run of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id (a ULID: sortable by start time).
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// The pipeline file.
    pub source: String,
    /// The principal it ran as.
    pub principal: String,
    /// Overall status.
    pub status: RunStatus,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: Option<DateTime<Utc>>,
    /// Stages, in pipeline order.
    pub stages: Vec<StageRecord>,
}

/// Run records under `<state_dir>/runs/`, one JSON file per run, written atomically.
#[derive(Debug, Clone)]
pub struct RunStore {
    dir: PathBuf,
}

impl RunStore {
    /// Run records kept under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("runs"),
        }
    }

    /// Writes `record`, replacing any earlier version of it atomically.
    ///
    /// # Errors
    /// [`Error::Io`] if the state directory is not writable.
    pub fn save(&self, record: &RunRecord) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.path(&record.run_id)?;
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(record).map_err(|e| Error::Internal {
            message: format!("run record encoding: {e}"),
        })?;
        std::fs::write(&tmp, body).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// Reads the record of `run_id`.
    ///
    /// # Errors
    /// [`Error::Io`] if it does not exist or cannot be read.
    pub fn load(&self, run_id: &str) -> Result<RunRecord> {
        let path = self.path(run_id)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Internal {
            message: format!("{}: {e}", path.display()),
        })
    }

    /// Every run, newest first.
    ///
    /// # Errors
    /// [`Error::Io`] if the folder exists but cannot be read.
    pub fn list(&self) -> Result<Vec<RunRecord>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(id) = name.strip_suffix(".json")
                && let Ok(r) = self.load(id)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| b.run_id.cmp(&a.run_id));
        Ok(out)
    }

    fn path(&self, run_id: &str) -> Result<PathBuf> {
        let ok = !run_id.is_empty()
            && run_id.len() <= 64
            && run_id.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(Error::Internal {
                message: format!("invalid run id `{}`", run_id.escape_debug()),
            });
        }
        Ok(self.dir.join(format!("{run_id}.json")))
    }
}
