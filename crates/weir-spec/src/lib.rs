//! weir-spec: pipeline files in, a validated [`Pipeline`] and its stage DAG out.
//!
//! A data engineer writes a pipeline as YAML; this crate reads it strictly and
//! reports every problem at once, each with file, line, column and a hint.
//!
//! # Guarantees
//! - Unknown fields, wrong types, duplicate keys, YAML 1.1 booleans where a
//!   string is expected, undefined references, two writers of one dataset,
//!   overlapping dataset paths and cycles are all errors.
//! - Hostile input fails fast with bounded memory: size, nesting depth and
//!   alias expansion are capped ([`Limits`]).
//! - Untrusted input never panics.
//! - Data contracts are checked as far as a file can be: column types,
//!   constraints that fit them, literals of the column's type, compiling
//!   regexes, and quarantine datasets that are declared and written by the
//!   stages that send rows to them.
//!
//! # Non-goals
//! No I/O beyond reading the pipeline file and the contract files it
//! references (inside its folder, under the same [`Limits`]); nothing here
//! touches data.
//!
//! ```
//! let yaml = r#"
//! name: demo
//! principal: svc-demo
//! stores: { lake: { url: ./data } }
//! datasets:
//!   raw: { store: lake, path: raw/events.csv }
//!   clean: { store: lake, path: clean/events }
//! stages:
//!   - name: clean
//!     kind: sql
//!     inputs: [raw]
//!     outputs: [clean]
//!     sql: SELECT * FROM raw
//! "#;
//! let loaded = weir_spec::load_str("demo.yaml", yaml, std::path::Path::new(".")).unwrap();
//! assert_eq!(loaded.pipeline.stages.len(), 1);
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod calendar;
mod column;
mod column_type;
mod command;
pub mod contract;
mod contract_file;
mod contract_rules;
mod contract_spec;
mod dag;
pub mod decode;
mod diagnostic;
mod literal;
mod model;
mod pipeline;
mod rules;
mod split;
mod stage;
pub mod store;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use contract::{ColumnContract, ColumnType, Contract, Literal, OnViolation, Range, TimeUnit};
pub use dag::{Dag, Edge};
pub use decode::parse_duration;
pub use diagnostic::{Diagnostic, Location, Severity, did_you_mean};
pub use model::{
    Access, Dataset, Defaults, Format, Pipeline, SplitPart, Stage, StageKind, Store, StoreLocation,
};
pub use store::S3Location;
pub use yaml::Limits;

/// Errors from loading a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read and is not a valid pipeline.
    #[error("{} has {} error(s)", file, diagnostics.iter().filter(|d| d.severity == Severity::Error).count())]
    Invalid {
        /// The file, as displayed.
        file: String,
        /// The source text, for rendering snippets.
        source_text: String,
        /// Every problem found, errors and warnings, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A pipeline that passed validation, with any warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated pipeline.
    pub pipeline: Pipeline,
    /// Problems that do not stop the pipeline from running.
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates the pipeline file at `path`.
///
/// Relative store paths are resolved against the file's folder.
///
/// # Errors
/// [`Error::Read`] if the file cannot be read (or is larger than
/// [`Limits::max_bytes`], checked before reading), [`Error::Invalid`] with
/// every diagnostic if it is not a valid pipeline.
pub fn load_file(path: &Path) -> Result<Loaded> {
    use std::io::Read as _;

    let limits = Limits::default();
    let display = path.display().to_string();
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size: String| Error::Invalid {
        file: display.clone(),
        source_text: String::new(),
        diagnostics: vec![
            Diagnostic::error(
                Location::new(&display, 1, 1),
                format!(
                    "file is {size} bytes; the limit is {} bytes",
                    limits.max_bytes
                ),
            )
            .with_hint("a pipeline file this large is almost certainly not a pipeline"),
        ],
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if meta.len() > limits.max_bytes as u64 {
        return Err(too_large(meta.len().to_string()));
    }
    // The size can lie (a device, a FIFO, a file still growing): read at
    // most one byte past the limit, whatever the metadata said.
    let mut bytes = Vec::new();
    file.take(limits.max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > limits.max_bytes {
        return Err(too_large(format!("more than {}", limits.max_bytes)));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    load_str_at(&display, &text, path, &base, limits)
}

/// Validates pipeline YAML held in memory. `file` labels diagnostics;
/// `base_dir` resolves relative store paths.
///
/// # Errors
/// [`Error::Invalid`] with every diagnostic if the text is not a valid pipeline.
pub fn load_str(file: &str, text: &str, base_dir: &Path) -> Result<Loaded> {
    load_str_at(file, text, Path::new(file), base_dir, Limits::default())
}

fn load_str_at(
    file: &str,
    text: &str,
    source: &Path,
    base_dir: &Path,
    limits: Limits,
) -> Result<Loaded> {
    let (root, mut diagnostics) = yaml::load(file, text, limits);
    let mut cx = decode::Ctx::default();
    let pipeline = root.and_then(|root| pipeline::decode(&mut cx, &root, source, base_dir, limits));
    diagnostics.append(&mut cx.diags);
    // The pipeline file first, then each contract file it references.
    diagnostics.sort_by(|a, b| {
        (
            a.loc.file != file,
            &a.loc.file,
            a.loc.line,
            a.loc.column,
            a.severity,
        )
            .cmp(&(
                b.loc.file != file,
                &b.loc.file,
                b.loc.line,
                b.loc.column,
                b.severity,
            ))
    });
    diagnostics.dedup();
    let has_error = diagnostics.iter().any(|d| d.severity == Severity::Error);
    match pipeline {
        Some(pipeline) if !has_error => Ok(Loaded {
            pipeline,
            warnings: diagnostics,
        }),
        _ => Err(Error::Invalid {
            file: file.to_owned(),
            source_text: text.to_owned(),
            diagnostics,
        }),
    }
}
