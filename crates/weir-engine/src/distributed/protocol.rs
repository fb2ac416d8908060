//! What travels between the dispatcher and workers, inside signed envelopes.
//!
//! Both bodies are JSON, decoded strictly (`deny_unknown_fields`, bounded
//! sizes) and only after the envelope's MAC, type, time window and nonce
//! have been verified. A body is never trusted for access: the stage token
//! inside a task is verified again with the stage public keys, and its
//! claims must name the same run, stage and attempt as the body.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::record::{ContractCheck, OutputRecord};

/// Version of the task and result bodies.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest pipeline text a task may carry (the pipeline loader's own limit
/// applies again when it is parsed).
pub const MAX_PIPELINE_BYTES: usize = 1024 * 1024;
/// Longest error message a result may carry; longer ones are cut.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// One stage attempt for a worker to run.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskBody {
    /// [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The run.
    pub run_id: String,
    /// The pipeline file's absolute path on the dispatcher: labels
    /// diagnostics and resolves relative local stores.
    pub pipeline_file: String,
    /// The pipeline text, validated again by the worker.
    pub pipeline_yaml: String,
    /// The stage's name.
    pub stage: String,
    /// The attempt (the fencing number: unique per dispatch of this stage).
    pub attempt: u32,
    /// The stage token (a bearer credential: never logged).
    pub token: String,
    /// Name of the queue the result goes to.
    pub reply_to: String,
}

impl fmt::Debug for TaskBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskBody")
            .field("run_id", &self.run_id)
            .field("stage", &self.stage)
            .field("attempt", &self.attempt)
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended on a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskOutcome {
    /// The stage ran and committed these outputs.
    Succeeded {
        /// Outputs committed.
        outputs: Vec<OutputRecord>,
        /// Data-contract checks made.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        checks: Vec<ContractCheck>,
    },
    /// The stage failed (the dispatcher may retry with a new attempt).
    Failed {
        /// What went wrong (redacted by the operator, cut to
        /// [`MAX_ERROR_BYTES`]).
        error: String,
    },
    /// The task was delivered again after its worker went silent past the
    /// visibility timeout. The redelivered copy is not executed: the
    /// dispatcher supersedes the attempt and dispatches a fresh one.
    Lost {
        /// Deliveries so far, as the queue counted them.
        deliveries: u32,
    },
}

/// A worker's answer about one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultBody {
    /// [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The run.
    pub run_id: String,
    /// The stage's name.
    pub stage: String,
    /// The attempt.
    pub attempt: u32,
    /// The worker that answered (its consumer name).
    pub worker: String,
    /// What happened.
    pub outcome: TaskOutcome,
}

/// Decodes a task body that arrived in a verified envelope.
///
/// # Errors
/// [`Error::Protocol`] naming what is wrong: not JSON of this shape, an
/// unknown version, or a field out of bounds.
pub fn decode_task(bytes: &[u8]) -> Result<TaskBody> {
    let task: TaskBody = serde_json::from_slice(bytes).map_err(|e| Error::Protocol {
        message: format!("task body: {e}"),
    })?;
    check_version(task.v)?;
    if task.pipeline_yaml.len() > MAX_PIPELINE_BYTES {
        return Err(Error::Protocol {
            message: format!(
                "task body: pipeline is {} bytes, limit {MAX_PIPELINE_BYTES}",
                task.pipeline_yaml.len()
            ),
        });
    }
    if task.attempt == 0 {
        return Err(Error::Protocol {
            message: "task body: attempt 0".into(),
        });
    }
    Ok(task)
}

/// Decodes a result body that arrived in a verified envelope.
///
/// # Errors
/// [`Error::Protocol`] as for [`decode_task`].
pub fn decode_result(bytes: &[u8]) -> Result<ResultBody> {
    let result: ResultBody = serde_json::from_slice(bytes).map_err(|e| Error::Protocol {
        message: format!("result body: {e}"),
    })?;
    check_version(result.v)?;
    if let TaskOutcome::Failed { error } = &result.outcome
        && error.len() > MAX_ERROR_BYTES
    {
        return Err(Error::Protocol {
            message: "result body: error message over the limit".into(),
        });
    }
    Ok(result)
}

/// Encodes a body (infallible for these types in practice).
///
/// # Errors
/// [`Error::Internal`] if serialization fails.
pub fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::Internal {
        message: format!("encoding a task message: {e}"),
    })
}

/// Cuts `message` to at most [`MAX_ERROR_BYTES`] on a character boundary.
pub fn cut_error(mut message: String) -> String {
    if message.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES.saturating_sub(3);
        while !message.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

fn check_version(v: u32) -> Result<()> {
    if v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::Protocol {
            message: format!("protocol version {v}; this build speaks {PROTOCOL_VERSION}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskBody {
        TaskBody {
            v: PROTOCOL_VERSION,
            run_id: "r".into(),
            pipeline_file: "/p.yaml".into(),
            pipeline_yaml: "x".into(),
            stage: "s".into(),
            attempt: 1,
            token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
            reply_to: "q".into(),
        }
    }

    #[test]
    fn task_round_trips_and_debug_hides_the_token() {
        let t = task();
        let back = decode_task(&encode(&t).unwrap()).unwrap();
        assert_eq!(back.token, t.token);
        assert!(!format!("{t:?}").contains("eyJ"));
    }

    #[test]
    fn unknown_fields_versions_and_bounds_are_refused() {
        let mut v: serde_json::Value = serde_json::to_value(task()).unwrap();
        v["extra"] = 1.into();
        assert!(decode_task(&serde_json::to_vec(&v).unwrap()).is_err());
        let mut t = task();
        t.v = 2;
        assert!(decode_task(&encode(&t).unwrap()).is_err());
        t.v = 1;
        t.attempt = 0;
        assert!(decode_task(&encode(&t).unwrap()).is_err());
        t.attempt = 1;
        t.pipeline_yaml = "x".repeat(MAX_PIPELINE_BYTES + 1);
        assert!(decode_task(&encode(&t).unwrap()).is_err());
        assert!(decode_result(b"{}").is_err());
    }

    #[test]
    fn long_errors_are_cut_on_a_char_boundary() {
        let cut = cut_error("é".repeat(MAX_ERROR_BYTES));
        assert!(cut.len() <= MAX_ERROR_BYTES);
        assert!(cut.ends_with("..."));
    }
}
