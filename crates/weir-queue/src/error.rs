//! The crate's error type.
//!
//! # Security
//!
//! No variant carries payload bytes, a lease holder's secret or a Redis URL
//! (which may hold a password). Redis errors are reduced to their error code
//! (`NOGROUP`, `WRONGTYPE`, ...) unless they are connection failures, whose
//! I/O error is kept as the source.

use std::sync::Arc;
use std::time::Duration;

use crate::task::TaskId;

/// Convenience alias used throughout the crate.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// Everything that can go wrong in `weir-queue`.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// Redis could not be reached, or the connection broke during the call.
    /// Transient: the connection is re-established on a later call.
    #[error("redis unavailable during {operation}")]
    Unavailable {
        /// What the backend was doing.
        operation: &'static str,
        /// The I/O error (it names no payload and no credential).
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },

    /// Redis did not answer within the time limit. Transient. The call
    /// may or may not have taken effect.
    #[error("redis did not answer {operation} within {after:?}")]
    Timeout {
        /// What the backend was doing.
        operation: &'static str,
        /// The limit that expired.
        after: Duration,
    },

    /// Redis answered with an error (out of memory, a key of the wrong
    /// type, no permission, authentication failed, ...).
    #[error("redis refused {operation}: {code}")]
    Refused {
        /// What the backend was doing.
        operation: &'static str,
        /// The Redis error code (`WRONGTYPE`, `OOM`, `NOPERM`, ...), never
        /// the message, which may quote arguments.
        code: String,
    },

    /// Redis answered something this crate did not expect: the keys were
    /// written by something else, or the server is incompatible.
    #[error("unexpected redis reply to {operation}: {reason}")]
    Protocol {
        /// What the backend was doing.
        operation: &'static str,
        /// What was wrong with the reply.
        reason: &'static str,
    },

    /// A payload is larger than [`QueueConfig::max_payload`](crate::QueueConfig::max_payload).
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The configured limit.
        max: usize,
    },

    /// [`WorkQueue::extend`](crate::WorkQueue::extend) on a task the
    /// consumer no longer holds: it was acked, dead-lettered, or reclaimed
    /// by another consumer after its visibility timeout. The consumer
    /// should stop working on it; its result may be duplicated.
    #[error("task {id} is not held by this consumer")]
    NotOwner {
        /// The task.
        id: TaskId,
    },

    /// An argument or configuration value is unusable.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Which rule it broke.
        reason: &'static str,
    },
}

impl QueueError {
    /// True for failures that may go away by retrying later
    /// ([`Unavailable`](Self::Unavailable), [`Timeout`](Self::Timeout)).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }

    pub(crate) fn invalid(what: &'static str, reason: &'static str) -> Self {
        Self::InvalidArgument { what, reason }
    }

    pub(crate) fn protocol(operation: &'static str, reason: &'static str) -> Self {
        Self::Protocol { operation, reason }
    }

    /// Classifies a Redis error without keeping its message, which may
    /// quote command arguments.
    pub(crate) fn redis(operation: &'static str, e: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        match e.kind() {
            ErrorKind::Io
            | ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown,
            ) => Self::Unavailable {
                operation,
                source: Arc::new(e),
            },
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
                Self::protocol(operation, "reply of an unexpected type")
            }
            _ => Self::Refused {
                operation,
                code: e.code().unwrap_or_else(|| e.category()).to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_too_large_names_sizes_only() {
        let e = QueueError::PayloadTooLarge { len: 11, max: 10 };
        assert_eq!(
            e.to_string(),
            "payload of 11 bytes exceeds the limit of 10 bytes"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn server_errors_keep_the_code_not_the_message() {
        let raw = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "ERR",
            "value hunter2 is not an integer".to_owned(),
        ));
        let e = QueueError::redis("enqueue", raw);
        assert!(matches!(e, QueueError::Refused { .. }), "{e:?}");
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }

    #[test]
    fn io_errors_are_transient() {
        let raw =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let e = QueueError::redis("ack", raw);
        assert!(e.is_transient(), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
