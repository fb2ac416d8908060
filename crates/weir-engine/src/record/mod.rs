//! Run records: what ran, when, and how it ended.
//!
//! A [`RunStore`] keeps them: [`FileRunStore`] in the state folder (the
//! embedded default), [`PostgresRunStore`] in a database every machine
//! shares. [`open`] picks one from the configuration.

mod file;
mod postgres;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::database::Database;
use crate::error::{Error, Result};

pub use file::FileRunStore;
pub use postgres::{PostgresRunStore, RUNS_TABLE};

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

impl RunStatus {
    /// The serialized form: `running`, `succeeded`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
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
    /// Data-contract checks the stage made, on its inputs and outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ContractCheck>,
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

/// Where a data contract was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckPoint {
    /// When a stage read an input.
    Read,
    /// When a stage wrote an output, before the commit.
    Write,
}

/// The outcome of checking one dataset against its contract in one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractCheck {
    /// The dataset checked.
    pub dataset: String,
    /// On read or on write.
    pub on: CheckPoint,
    /// Rows checked (CSV rows that could not be parsed included).
    pub rows: u64,
    /// Rows that broke the contract (malformed CSV rows included).
    pub bad: u64,
    /// The dataset the bad rows went to, when the contract quarantines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
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

/// Where run records are kept.
///
/// # Contract
/// - [`save`](Self::save) replaces any earlier record with the same run id
///   in one step: readers see the old record or the new one, never a mix.
/// - [`load`](Self::load) returns `None` for a run id never saved.
/// - [`list`](Self::list) returns runs newest first (by run id: ULIDs sort
///   by start time), at most `limit` of them; a stored record that no
///   longer decodes is left out with a warning.
/// - Run ids are 1 to 64 ASCII letters and digits; any other id is refused
///   by every method before it reaches storage.
///
/// # Errors
/// [`Error::InvalidRunId`] for a refused id; [`Error::Io`] (files) or
/// [`Error::Database`] (PostgreSQL) when storage fails.
///
/// # Security
/// A run id never becomes part of a path outside the runs folder or of SQL
/// text: it is checked, then joined to a folder or bound as a parameter.
#[async_trait::async_trait]
pub trait RunStore: std::fmt::Debug + Send + Sync {
    /// Writes `record`, replacing any earlier version of it.
    async fn save(&self, record: &RunRecord) -> Result<()>;

    /// The record of `run_id`, if there is one.
    async fn load(&self, run_id: &str) -> Result<Option<RunRecord>>;

    /// Runs, newest first; all of them if `limit` is `None`.
    async fn list(&self, limit: Option<usize>) -> Result<Vec<RunRecord>>;
}

/// The run store for this configuration: `database` if given, else JSON
/// files under `<state_dir>/runs/`.
///
/// # Errors
/// [`Error::Database`] if the database cannot be reached or its table
/// cannot be set up.
pub async fn open(state_dir: &Path, database: Option<&Database>) -> Result<Arc<dyn RunStore>> {
    Ok(match database {
        None => Arc::new(FileRunStore::new(state_dir)),
        Some(db) => Arc::new(PostgresRunStore::connect(db).await?),
    })
}

/// Refuses anything but 1 to 64 ASCII letters and digits.
pub(crate) fn check_run_id(run_id: &str) -> Result<()> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 64
        && run_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_run_id(run_id))
    }
}
