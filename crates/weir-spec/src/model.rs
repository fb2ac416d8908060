//! The validated pipeline: the only form the rest of weir may trust.
//!
//! Every value here has passed [`crate::load_str`]: names are valid, every
//! reference resolves, no dataset has two writers and the stage graph is
//! acyclic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::contract::Contract;
use crate::dag::Dag;

/// A validated pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    /// Pipeline name (`[a-z][a-z0-9_-]*`).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The identity the pipeline runs as; its grants bound what stages may touch.
    pub principal: String,
    /// The file the pipeline came from.
    pub source: PathBuf,
    /// Run-wide defaults.
    pub defaults: Defaults,
    /// Named storage roots.
    pub stores: BTreeMap<String, Store>,
    /// Named datasets.
    pub datasets: BTreeMap<String, Dataset>,
    /// Stages, in file order. Indexes into this vector are the DAG's node weights.
    pub stages: Vec<Stage>,
    /// The stage graph.
    #[serde(skip)]
    pub dag: Dag,
}

impl Pipeline {
    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The stage that writes `dataset`, if any.
    pub fn writer_of(&self, dataset: &str) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| s.outputs.iter().any(|o| o == dataset))
    }
}

/// Run-wide defaults, overridable per stage where noted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Defaults {
    /// Most stages running at once.
    pub concurrency: usize,
    /// Retries after a failed attempt (per stage override: `retries`).
    pub retries: u32,
    /// Wall-clock limit of one attempt (per stage override: `timeout`).
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            concurrency: 4,
            retries: 0,
            timeout: Duration::from_secs(3600),
        }
    }
}

/// A named storage root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Store {
    /// Store name.
    pub name: String,
    /// Where the store lives.
    pub location: StoreLocation,
}

/// Where a store's objects live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "root")]
#[non_exhaustive]
pub enum StoreLocation {
    /// A local folder, absolute (relative paths are resolved against the
    /// pipeline file's folder during loading).
    Local(PathBuf),
    /// An S3-compatible bucket and key prefix.
    S3(crate::store::S3Location),
}

/// The on-disk format of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// The file extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }
}

/// A named dataset: a canonical path in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dataset {
    /// Dataset name; also its SQL table name (`[a-z][a-z0-9_]*`).
    pub name: String,
    /// The store it lives in.
    pub store: String,
    /// Canonical relative path inside the store (`/`-separated, no `.`/`..`).
    pub path: String,
    /// File format.
    pub format: Format,
    /// The data contract every read and write of this dataset is checked
    /// against, if any.
    pub contract: Option<Contract>,
}

/// What a stage does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
#[non_exhaustive]
pub enum StageKind {
    /// A DataFusion SQL query over the inputs, written to the single output.
    Sql {
        /// The query.
        sql: String,
    },
    /// A program (an ML training job, a script) run as a child process that
    /// sees only its materialized inputs and writes its outputs to folders
    /// weir then commits.
    Command {
        /// The program and its arguments; with `shell`, a single element:
        /// the script run by `/bin/sh -c`. Never empty.
        argv: Vec<String>,
        /// Whether `argv[0]` is a shell script.
        shell: bool,
        /// Working folder, absolute (resolved against the pipeline file's
        /// folder during loading); `None`: the attempt's private folder.
        workdir: Option<PathBuf>,
        /// Names of environment variables passed through from weir's own
        /// environment. Never `WEIR_*` or an obvious credential name.
        env: Vec<String>,
        /// How the child reaches its datasets.
        access: Access,
    },
    /// Checks its one input against the input's contract. With an output,
    /// writes the rows that pass to it; with a quarantining contract, the
    /// bad rows go to the quarantine dataset (also listed in `outputs`).
    Validate,
    /// Splits its one input deterministically into its outputs by hashing
    /// `key`: a row goes to the part whose share of `0..1_000_000` holds
    /// `SHA-256(key as text)` (first 8 bytes, big-endian) modulo 1,000,000.
    Split {
        /// The column hashed; rows with the same key land in the same part.
        key: String,
        /// Outputs and their shares, in the order written.
        parts: Vec<SplitPart>,
    },
}

/// One output of a `split` stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitPart {
    /// The output dataset.
    pub dataset: String,
    /// Its share, in millionths; the shares of a stage sum to 1,000,000.
    pub millionths: u32,
}

/// How a `command` stage's child reaches its datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Access {
    /// Inputs are copied into a private folder and outputs uploaded from
    /// one, all through the stage's guarded stores (the default).
    Materialized,
    /// For datasets in S3 stores: the child gets SigV4 presigned URLs, GET
    /// for each current object of its inputs and PUT for `parts` object
    /// names per output, expiring with the stage token.
    Presigned {
        /// Upload URLs issued per output (`part-00000` ...).
        parts: u32,
    },
}

impl StageKind {
    /// The kind's name as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            StageKind::Sql { .. } => "sql",
            StageKind::Command { .. } => "command",
            StageKind::Validate => "validate",
            StageKind::Split { .. } => "split",
        }
    }
}

/// A validated stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Stage name (`[a-z][a-z0-9_-]*`).
    pub name: String,
    /// What it does.
    #[serde(flatten)]
    pub kind: StageKind,
    /// Datasets it reads.
    pub inputs: Vec<String>,
    /// Datasets it writes.
    pub outputs: Vec<String>,
    /// Stages that must finish first, beyond data dependencies.
    pub needs: Vec<String>,
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Wall-clock limit of one attempt.
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
}

mod duration_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
