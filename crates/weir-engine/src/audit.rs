//! The engine's audit trail: every guarded access decision and every
//! security-relevant event of a run, appended to a tamper-evident log.
//!
//! # Security
//! - [`AuditDecisionSink`] is the guard's sink: a decision is appended, and
//!   durable, before the guarded call is delegated; if the append fails the
//!   call is denied (fail closed).
//! - Token ids are stored only as HMAC-SHA256 under the audit key; tokens,
//!   signatures and keys are never recorded.

use std::path::Path;
use std::sync::Arc;

use weir_audit::{
    Action as AuditAction, AuditKey, AuditSink, ChainId, CheckpointSigner, Decision, NewEvent,
    Origin, SinkConfig, SqliteSink,
};
use weir_auth::Action;
use weir_policy::{AccessDecision, DecisionSink, SinkError};

use crate::error::{Error, Result};

/// The chain the embedded (single-machine) default writes.
pub const LOCAL_CHAIN: &str = "local";

/// An audit log plus the key that hashes token ids.
#[derive(Clone)]
pub struct Audit {
    sink: Arc<dyn AuditSink>,
    key: Arc<AuditKey>,
    origin: Origin,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("chain", &self.sink.chain().as_str())
            .finish_non_exhaustive()
    }
}

impl Audit {
    /// The embedded default: a SQLite log in `<state_dir>/audit/`, with its
    /// checkpoint-signing key and HMAC key under `<state_dir>/keys/audit/`
    /// (created 0600 on first use).
    ///
    /// # Errors
    /// [`Error::Audit`] if the log or its keys cannot be opened.
    pub async fn open_local(state_dir: &Path) -> Result<Self> {
        Self::open_local_as(state_dir, Origin::Cli).await
    }

    /// [`open_local`](Self::open_local) for another origin (the API server).
    ///
    /// # Errors
    /// [`Error::Audit`] if the log or its keys cannot be opened.
    pub async fn open_local_as(state_dir: &Path, origin: Origin) -> Result<Self> {
        let signer = Arc::new(CheckpointSigner::open_or_create(state_dir).map_err(Error::audit)?);
        let key = Arc::new(AuditKey::open_or_create(state_dir).map_err(Error::audit)?);
        let chain = ChainId::parse(LOCAL_CHAIN).map_err(Error::audit)?;
        let sink = SqliteSink::open_in_state_dir(state_dir, SinkConfig::new(chain, signer))
            .await
            .map_err(Error::audit)?;
        Ok(Self::new(Arc::new(sink), key, origin))
    }

    /// An audit trail over any sink (PostgreSQL, a failing sink in tests).
    pub fn new(sink: Arc<dyn AuditSink>, key: Arc<AuditKey>, origin: Origin) -> Self {
        Self { sink, key, origin }
    }

    /// The underlying log.
    pub fn sink(&self) -> &Arc<dyn AuditSink> {
        &self.sink
    }

    /// The key that hashes token ids.
    pub fn key(&self) -> &AuditKey {
        &self.key
    }

    /// A new event from this origin.
    pub fn event(&self, actor: &str, action: AuditAction, decision: Decision) -> NewEvent {
        NewEvent::new(actor, action, decision, self.origin.clone())
    }

    /// The HMAC of a token id, for events about that token.
    pub fn token(&self, jti: &str) -> weir_audit::TokenIdHmac {
        self.key.token_id_hmac(jti)
    }

    /// Appends `event`; durable when this returns.
    ///
    /// # Errors
    /// [`Error::Audit`] if the event is refused or cannot be written.
    pub async fn record(&self, event: NewEvent) -> Result<()> {
        self.sink
            .append(event)
            .await
            .map(|_| ())
            .map_err(Error::audit)
    }

    /// The guard's sink, writing to this log.
    pub fn decision_sink(&self) -> Arc<dyn DecisionSink> {
        Arc::new(AuditDecisionSink {
            audit: self.clone(),
        })
    }
}

/// Records each guarded access decision as one audit event.
#[derive(Debug)]
pub struct AuditDecisionSink {
    audit: Audit,
}

fn audit_action(action: Action) -> AuditAction {
    match action {
        Action::Read => AuditAction::Read,
        Action::Write => AuditAction::Write,
        Action::List => AuditAction::List,
        Action::Delete => AuditAction::Delete,
    }
}

impl AuditDecisionSink {
    fn event(&self, d: &AccessDecision<'_>) -> NewEvent {
        let decision = if d.allowed {
            Decision::Allow
        } else {
            Decision::Deny
        };
        let mut reason = format!("{}: {}", d.operation.as_str(), d.reason);
        if let Some(source) = &d.source {
            reason.push_str(&format!(" (source {source})"));
        }
        self.audit
            .event(&d.principal, audit_action(d.action), decision)
            .with_stage(d.run.as_ref(), d.stage.as_ref(), d.attempt)
            .with_resource(d.store.as_ref(), d.path.as_ref())
            .with_reason(reason)
            .with_token(self.audit.token(&d.jti))
    }
}

#[async_trait::async_trait]
impl DecisionSink for AuditDecisionSink {
    async fn record(&self, decision: &AccessDecision<'_>) -> Result<(), SinkError> {
        let event = self.event(decision);
        match self.audit.sink.append(event).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "audit append failed; denying the access");
                Err(SinkError::new(format!(
                    "the audit log refused the event: {e}"
                )))
            }
        }
    }
}
