//! The crate's error type.
//!
//! # Security
//!
//! No variant carries key material, a token or a signature. Rejected event
//! fields are named, never echoed: the value that was refused may be the
//! secret it was refused for.

use std::path::PathBuf;
use std::sync::Arc;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `weir-audit`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An event field was refused (too long, control characters, or it looks
    /// like a credential). The value itself is never echoed.
    #[error("invalid audit event field {field}: {reason}")]
    InvalidEvent {
        /// The field that was refused.
        field: &'static str,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A chain id does not match `[A-Za-z0-9._:-]{1,128}`.
    #[error("invalid chain id: {reason}")]
    InvalidChainId {
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A hex digest or HMAC is malformed.
    #[error("invalid digest: {reason}")]
    InvalidDigest {
        /// Which rule it broke.
        reason: &'static str,
    },

    /// Configuration given to a constructor is unusable.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A filter or page is unusable.
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The database refused or failed an operation.
    #[error("database error during {operation}")]
    Database {
        /// What the sink was doing.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },

    /// The audit database's tables were redefined outside weir (see
    /// [`DamageKind::Restructured`](crate::DamageKind::Restructured)): weir
    /// neither writes to it nor trusts its columns.
    #[error("the audit database was restructured outside weir: {reason}")]
    Restructured {
        /// What differs.
        reason: &'static str,
    },

    /// A stored row does not decode: the database was edited outside the API.
    #[error("stored row at seq {seq} is corrupt: {column} {reason}")]
    CorruptRow {
        /// The row's sequence number (0 if that column is itself corrupt).
        seq: u64,
        /// The column that failed to decode.
        column: &'static str,
        /// Why.
        reason: &'static str,
    },

    /// The group-commit batch holding this append failed; nothing in it was
    /// written.
    #[error("audit batch commit failed")]
    CommitFailed {
        /// The batch's error, shared by every append in the batch.
        #[source]
        source: Arc<Error>,
    },

    /// The log could not be made durable: the sync after this append's
    /// batch was committed failed. The append is reported failed (it may or
    /// may not survive a power loss), and the sink refuses every later
    /// append: after a failed `fsync` the kernel may have dropped the dirty
    /// pages, so only a restart, which re-reads the log, can tell what is
    /// stored.
    #[error("audit log sync failed; the sink refuses further appends")]
    SyncFailed {
        /// The first sync's error, shared by every refused append.
        #[source]
        source: Arc<Error>,
    },

    /// Reading or writing a file failed.
    #[error("i/o error on {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A key file or directory is accessible beyond its owner, or is not a
    /// plain file or directory.
    #[error("refusing {path}: mode {mode:o} is accessible beyond its owner or not a plain file")]
    InsecurePermissions {
        /// The file or directory involved.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A key file is malformed.
    #[error("invalid key file {path}: {reason}")]
    InvalidKeyFile {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A line of a checkpoint mirror file is malformed.
    #[error("invalid checkpoint mirror {path} line {line}: {reason}")]
    InvalidMirror {
        /// The mirror file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    Random,

    /// The sink's writer has shut down.
    #[error("audit sink is closed")]
    Closed,

    /// A failure injected by [`FailingSink`](crate::FailingSink).
    #[error("injected failure on append {append}")]
    Injected {
        /// 1-based number of the append that was failed.
        append: u64,
    },

    /// A broken internal invariant (a bug, not bad input).
    #[error("internal error: {reason}")]
    Internal {
        /// Which invariant.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |e| Self::Database {
            operation,
            source: Arc::new(e),
        }
    }

    /// As [`db`](Self::db), for the SQLite writer's own connection.
    pub(crate) fn sqlite(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |e| Self::Database {
            operation,
            source: Arc::new(e),
        }
    }

    pub(crate) fn corrupt(seq: u64, column: &'static str, reason: &'static str) -> Self {
        Self::CorruptRow {
            seq,
            column,
            reason,
        }
    }

    /// A [`CorruptRow`](Self::CorruptRow) that could not name its seq
    /// (seq 0) now names `seq`; any other error is unchanged.
    pub(crate) fn at_seq_if_unknown(self, seq: u64) -> Self {
        match self {
            Self::CorruptRow {
                seq: 0,
                column,
                reason,
            } => Self::CorruptRow {
                seq,
                column,
                reason,
            },
            other => other,
        }
    }

    pub(crate) fn event(field: &'static str, reason: &'static str) -> Self {
        Self::InvalidEvent { field, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_failed_keeps_the_cause() {
        let inner = Arc::new(Error::Closed);
        let e = Error::CommitFailed { source: inner };
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("audit sink is closed"));
    }

    #[test]
    fn invalid_event_names_the_field_only() {
        let e = Error::event("reason", "looks like a JWT");
        assert_eq!(
            e.to_string(),
            "invalid audit event field reason: looks like a JWT"
        );
    }
}
