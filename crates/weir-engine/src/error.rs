//! The engine's error type.

use std::time::Duration;

/// Errors from planning and running pipelines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An object-store call failed.
    #[error("storage error at `{path}`: {source}")]
    Store {
        /// The object or prefix.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A store could not be opened.
    #[error("cannot open store `{store}`: {message}")]
    OpenStore {
        /// Store name.
        store: String,
        /// Why.
        message: String,
    },
    /// An input dataset has no data.
    #[error("input dataset `{dataset}` has no data at `{path}`")]
    MissingInput {
        /// Dataset name.
        dataset: String,
        /// Where we looked.
        path: String,
    },
    /// A dataset manifest is unreadable.
    #[error("invalid dataset manifest `{path}`: {message}")]
    Manifest {
        /// Manifest path.
        path: String,
        /// Why.
        message: String,
    },
    /// DataFusion refused or failed the query.
    #[error("{source}")]
    Query {
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// Data broke its dataset's contract and the contract does not
    /// quarantine (or the dataset was written by weir and changed since).
    /// The report names columns, rules, counts and row numbers, and never a
    /// value of a sensitive column.
    #[error("dataset `{dataset}` breaks its contract on {on}:\n{report}")]
    Contract {
        /// The dataset.
        dataset: String,
        /// `read` or `write`.
        on: &'static str,
        /// The violation report.
        report: String,
    },
    /// A query named a column the stage's grants hide, or the column rules
    /// could not be applied.
    #[error("{message}")]
    ColumnDenied {
        /// Which column, of which dataset, hidden by which grant.
        message: String,
    },
    /// A `split` stage could not assign a row.
    #[error("{message}")]
    Split {
        /// Why.
        message: String,
    },
    /// A data file could not be read or decoded.
    #[error("reading `{path}`: {message}")]
    Read {
        /// The object being read.
        path: String,
        /// Why.
        message: String,
    },
    /// Writing Parquet failed.
    #[error("writing `{path}`: {message}")]
    Write {
        /// The object being written.
        path: String,
        /// Why.
        message: String,
    },
    /// An attempt ran past its timeout.
    #[error("timed out after {}", humantime(*after))]
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Local I/O (state directory, run records).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The pipeline's principal lacks grants for what its stages declared.
    /// Nothing ran.
    #[error("plan denied: {} missing grant(s); nothing was run", missing.len())]
    PlanDenied {
        /// Every gap, across all stages.
        missing: Vec<weir_policy::MissingGrant>,
    },
    /// Keys, tokens or guards could not be set up.
    #[error("security: {message}")]
    Security {
        /// What failed (never a token or key).
        message: String,
    },
    /// The audit log refused or failed an append; the action it was to
    /// record did not happen.
    #[error("audit log: {message}")]
    Audit {
        /// What failed.
        message: String,
    },
    /// A command stage could not be set up, or its outputs were unusable.
    #[error("command: {message}")]
    Command {
        /// What went wrong (never a token or an environment value).
        message: String,
    },
    /// A command stage's program exited unsuccessfully.
    #[error("{}", command_failed(status, stderr_tail))]
    CommandFailed {
        /// The exit status, e.g. `exit status: 3` or `signal: 9 (SIGKILL)`.
        status: String,
        /// The last lines of its stderr, redacted.
        stderr_tail: String,
    },
    /// A stage failed on a remote worker.
    #[error("on worker {worker}: {message}")]
    Remote {
        /// The worker's consumer name.
        worker: String,
        /// What it reported.
        message: String,
    },
    /// A task or result message that is not what the protocol expects.
    #[error("task protocol: {message}")]
    Protocol {
        /// What is wrong (never the message bytes).
        message: String,
    },
    /// The task queue, lease table or fence store failed.
    #[error("task queue: {message}")]
    Queue {
        /// What failed.
        message: String,
    },
    /// Another run holds the lease on an output dataset.
    #[error(
        "dataset `{dataset}` is being written by run {holder} (its lease expires in {}s unless renewed); wait for that run or cancel it",
        remaining_secs
    )]
    Leased {
        /// The dataset.
        dataset: String,
        /// The run holding it.
        holder: String,
        /// Seconds left on its lease.
        remaining_secs: u64,
    },
    /// A superseded attempt tried to commit (fencing).
    #[error(
        "attempt {attempt} of stage `{stage}` may no longer commit: attempt {newer} superseded it"
    )]
    Fenced {
        /// The stage.
        stage: String,
        /// The refused attempt.
        attempt: u32,
        /// The newer attempt in force.
        newer: u32,
    },
    /// A run id that is not 1 to 64 ASCII letters and digits (shown
    /// escaped and cut short).
    #[error("invalid run id `{run_id}`: a run id is 1 to 64 ASCII letters and digits")]
    InvalidRunId {
        /// The refused id, escaped.
        run_id: String,
    },
    /// The `--database` setting is unusable. The URL is never echoed: it may
    /// hold a password.
    #[error("{reason}")]
    DatabaseConfig {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database refused or failed an operation.
    #[error("the database at {host} failed to {operation}: {message}")]
    Database {
        /// The database host (never the URL).
        host: String,
        /// What weir was doing.
        operation: &'static str,
        /// The driver's error (never the URL).
        message: String,
    },
    /// A broken internal invariant.
    #[error("internal error: {message}")]
    Internal {
        /// What broke.
        message: String,
    },
}

impl Error {
    pub(crate) fn store(path: &object_store::path::Path, source: object_store::Error) -> Self {
        Error::Store {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn column(dataset: &str, e: impl std::fmt::Display) -> Self {
        Error::ColumnDenied {
            message: format!("input `{dataset}`: {e}"),
        }
    }

    pub(crate) fn security(e: impl std::fmt::Display) -> Self {
        Error::Security {
            message: e.to_string(),
        }
    }

    pub(crate) fn audit(e: impl std::fmt::Display) -> Self {
        Error::Audit {
            message: e.to_string(),
        }
    }

    pub(crate) fn invalid_run_id(run_id: &str) -> Self {
        Error::InvalidRunId {
            run_id: run_id
                .chars()
                .take(80)
                .collect::<String>()
                .escape_debug()
                .to_string(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(source: datafusion::error::DataFusionError) -> Self {
        Error::Query { source }
    }
}

/// `e` and its sources, joined with `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        out.push_str(": ");
        out.push_str(&source.to_string());
        next = source.source();
    }
    out
}

fn command_failed(status: &str, tail: &str) -> String {
    if tail.trim().is_empty() {
        format!("command failed ({status}) and wrote nothing to stderr")
    } else {
        format!("command failed ({status}); last lines of stderr:\n{tail}")
    }
}

/// Formats a duration as `1h2m3s` / `250ms`.
pub fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
