//! The crate's one error type.

use crate::checker::SchemaViolation;
use crate::rule::Rule;

/// What can go wrong compiling a contract or checking data against it.
///
/// # Security
/// No variant holds a value read from a sensitive column, nor a literal of
/// one (its `range` bounds, `allowed` values or `regex`): messages name the
/// column, the rule and what was expected. Values of other columns appear
/// only where they help fix the input, truncated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A contract cannot be compiled: a literal that does not fit its
    /// column's type, a regex that does not compile, an empty range.
    #[error("contract column `{column}`: {rule}: {reason}")]
    Contract {
        /// The column the rule belongs to (the key columns, joined with
        /// `,`, for `primary_key`).
        column: String,
        /// The rule.
        rule: Rule,
        /// What is wrong.
        reason: String,
    },
    /// The data's schema breaks the contract (missing column, wrong type,
    /// undeclared column under `strict`); no row was checked.
    #[error("the data does not match the contract: {}", list(violations))]
    Schema {
        /// Every problem found, in declared column order.
        violations: Vec<SchemaViolation>,
    },
    /// A verdict was applied to a batch it was not computed for.
    #[error("the verdict covers {expected} rows, the batch has {found}")]
    VerdictMismatch {
        /// Rows in the verdict.
        expected: usize,
        /// Rows in the batch.
        found: usize,
    },
    /// A caller-supplied argument is out of range.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong with it.
        message: String,
    },
    /// Reading CSV failed (I/O, or a header that is not UTF-8).
    #[error("CSV{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Csv {
        /// The line, when known (1-based).
        line: Option<u64>,
        /// What went wrong.
        message: String,
    },
    /// Building an Arrow array or batch failed.
    #[error("arrow: {message}")]
    Arrow {
        /// Arrow's message (about shapes and types, never values: the
        /// kernels this crate calls do not format data).
        message: String,
    },
    /// A broken invariant inside this crate; a bug, never the data's fault.
    #[error("internal error: {message}")]
    Internal {
        /// What broke.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            message: e.to_string(),
        }
    }
}

pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::Internal {
        message: message.into(),
    }
}

fn list(violations: &[SchemaViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
