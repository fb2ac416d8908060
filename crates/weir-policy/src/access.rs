//! Access decisions and where they go: one [`AccessDecision`] per guarded
//! call, awaited into a [`DecisionSink`] before the call is delegated.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use weir_auth::Action;

/// The object-store operation a decision is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `get_opts` (content).
    Get,
    /// `get_opts` with `head: true` (metadata only).
    Head,
    /// `get_ranges`.
    GetRanges,
    /// `put_opts`.
    Put,
    /// `put_multipart_opts` (the start of a multipart upload).
    PutMultipart,
    /// One location of `delete_stream`.
    Delete,
    /// `list`.
    List,
    /// `list_with_offset`.
    ListWithOffset,
    /// `list_with_delimiter`.
    ListWithDelimiter,
    /// `copy_opts`.
    Copy,
    /// `rename_opts`.
    Rename,
    /// Issuing a presigned GET URL (no data moves through weir).
    PresignGet,
    /// Issuing a presigned PUT URL.
    PresignPut,
}

impl Operation {
    /// A short lowercase name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Head => "head",
            Self::GetRanges => "get_ranges",
            Self::Put => "put",
            Self::PutMultipart => "put_multipart",
            Self::Delete => "delete",
            Self::List => "list",
            Self::ListWithOffset => "list_with_offset",
            Self::ListWithDelimiter => "list_with_delimiter",
            Self::Copy => "copy",
            Self::Rename => "rename",
            Self::PresignGet => "presign_get",
            Self::PresignPut => "presign_put",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One guard decision. It names the token by its `jti` and never holds
/// the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessDecision<'a> {
    /// The principal the stage runs as (`sub`).
    pub principal: Cow<'a, str>,
    /// The run.
    pub run: Cow<'a, str>,
    /// The stage.
    pub stage: Cow<'a, str>,
    /// The attempt.
    pub attempt: u32,
    /// The token's id.
    pub jti: Cow<'a, str>,
    /// The store.
    pub store: Cow<'a, str>,
    /// The operation.
    pub operation: Operation,
    /// The path operated on (the destination of a copy or rename, the
    /// prefix of a list, `""` for the store root).
    pub path: Cow<'a, str>,
    /// The source of a copy or rename.
    pub source: Option<Cow<'a, str>>,
    /// The action checked: on a denial, the one that failed; otherwise the
    /// action on `path` (a copy or rename also needs `read`, and a rename
    /// `delete`, on `source`).
    pub action: Action,
    /// Whether the call is allowed to go through.
    pub allowed: bool,
    /// Why, as a short phrase.
    pub reason: &'static str,
    /// When (Unix seconds, from the guard's clock).
    pub time: i64,
}

impl AccessDecision<'_> {
    /// An owned copy.
    #[must_use]
    pub fn into_owned(self) -> AccessDecision<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        AccessDecision {
            principal: own(self.principal),
            run: own(self.run),
            stage: own(self.stage),
            attempt: self.attempt,
            jti: own(self.jti),
            store: own(self.store),
            operation: self.operation,
            path: own(self.path),
            source: self.source.map(own),
            action: self.action,
            allowed: self.allowed,
            reason: self.reason,
            time: self.time,
        }
    }
}

/// A [`DecisionSink`] could not record a decision. The guard then denies
/// the call (fail closed).
///
/// A struct rather than a variant of [`crate::Error`]: sinks live in other
/// crates (the audit log) and only need to say why they failed.
#[derive(Debug, thiserror::Error)]
#[error("the decision sink failed: {reason}")]
pub struct SinkError {
    reason: Cow<'static, str>,
}

impl SinkError {
    /// A failure described by `reason` (which must not contain secrets).
    #[must_use]
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// The reason.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Where the guard records every decision (the audit log plugs in here).
///
/// Asynchronous, so a sink that waits for durable storage (the audit log's
/// group commit) suspends the guarded call instead of blocking a runtime
/// worker thread.
///
/// # Contract
///
/// - The guard calls `record` exactly once per guarded call (once per
///   location of a `delete_stream`), for allowed and denied calls alike.
/// - The guard awaits `record` to completion *before* it delegates the
///   call to the wrapped store: when the wrapped store sees a call, its
///   decision has already been recorded.
/// - `record` returns `Ok` only once the decision is recorded as durably
///   as the sink promises. On `Err`, the guard denies the call (fail
///   closed): nothing is read or written for it.
/// - `list`, `list_with_offset` and `delete_stream` return streams
///   synchronously; their decisions are recorded when the stream is first
///   polled (for `delete_stream`, as each location is reached), still
///   before the wrapped store is asked for anything. A stream dropped
///   unpolled records nothing and touches nothing.
/// - If the caller drops a guarded call's future while `record` is
///   pending, the call is never delegated; whether the decision was
///   recorded is up to the sink.
///
/// # Errors
///
/// [`SinkError`] if the decision could not be recorded; the guard then
/// denies the call with `object_store::Error::PermissionDenied`.
///
/// # Security
///
/// A sink must not make the guard wait unboundedly (it holds up the
/// stage's call), and must not record or log more than the decision
/// (which names the token by `jti` and never holds the token itself).
///
/// # Example
///
/// ```
/// use async_trait::async_trait;
/// use weir_policy::{AccessDecision, DecisionSink, SinkError};
///
/// /// Counts denials; records nothing durable.
/// #[derive(Debug, Default)]
/// struct DenialCounter(std::sync::atomic::AtomicUsize);
///
/// #[async_trait]
/// impl DecisionSink for DenialCounter {
///     async fn record(&self, decision: &AccessDecision<'_>) -> Result<(), SinkError> {
///         if !decision.allowed {
///             self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///         }
///         Ok(())
///     }
/// }
/// # let _ = DenialCounter::default();
/// ```
#[async_trait]
pub trait DecisionSink: Send + Sync + fmt::Debug {
    /// Records `decision`.
    ///
    /// # Errors
    ///
    /// See the [trait docs](Self).
    async fn record(&self, decision: &AccessDecision<'_>) -> Result<(), SinkError>;
}

/// Keeps decisions in memory (for tests); can be told to fail.
#[derive(Debug, Default)]
pub struct InMemoryDecisionSink {
    decisions: Mutex<Vec<AccessDecision<'static>>>,
    failing: AtomicBool,
}

impl InMemoryDecisionSink {
    /// An empty sink that records.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `record` fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// A copy of the decisions recorded so far, in order.
    #[must_use]
    pub fn decisions(&self) -> Vec<AccessDecision<'static>> {
        self.decisions.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// How many decisions were recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.decisions.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// Whether none were recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl DecisionSink for InMemoryDecisionSink {
    async fn record(&self, decision: &AccessDecision<'_>) -> Result<(), SinkError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(SinkError::new("the in-memory sink was told to fail"));
        }
        let mut decisions = self
            .decisions
            .lock()
            .map_err(|_| SinkError::new("the in-memory sink's lock is poisoned"))?;
        decisions.push(decision.clone().into_owned());
        Ok(())
    }
}

/// Emits decisions as `tracing` events (denials at `warn`, others at
/// `debug`) and never fails. For development; it is not an audit log.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingDecisionSink;

#[async_trait]
impl DecisionSink for TracingDecisionSink {
    async fn record(&self, d: &AccessDecision<'_>) -> Result<(), SinkError> {
        if d.allowed {
            tracing::debug!(principal = %d.principal, run = %d.run, stage = %d.stage, attempt = d.attempt,
                jti = %d.jti, store = %d.store, operation = %d.operation, path = %d.path,
                source = ?d.source, action = %d.action, reason = d.reason, "access allowed");
        } else {
            tracing::warn!(principal = %d.principal, run = %d.run, stage = %d.stage, attempt = d.attempt,
                jti = %d.jti, store = %d.store, operation = %d.operation, path = %d.path,
                source = ?d.source, action = %d.action, reason = d.reason, "access denied");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> AccessDecision<'static> {
        AccessDecision {
            principal: "svc".into(),
            run: "r".into(),
            stage: "s".into(),
            attempt: 1,
            jti: "j".into(),
            store: "lake".into(),
            operation: Operation::Get,
            path: "raw/x".into(),
            source: None,
            action: Action::Read,
            allowed: true,
            reason: "ok",
            time: 5,
        }
    }

    #[tokio::test]
    async fn in_memory_sink_records_and_fails_on_request() {
        let sink = InMemoryDecisionSink::new();
        sink.record(&decision()).await.unwrap();
        assert_eq!(sink.len(), 1);
        sink.set_failing(true);
        assert!(sink.record(&decision()).await.is_err());
        assert_eq!(sink.decisions(), vec![decision()]);
    }

    #[tokio::test]
    async fn tracing_sink_never_fails() {
        let mut d = decision();
        TracingDecisionSink.record(&d).await.unwrap();
        d.allowed = false;
        TracingDecisionSink.record(&d).await.unwrap();
    }
}
