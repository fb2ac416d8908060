//! The engine's audit trail: every guarded access decision and every
//! security-relevant event of a run, appended to a tamper-evident log.
//!
//! # Security
//! - [`AuditDecisionSink`] is the guard's sink: a decision is appended, and
//!   durable, before the guarded call is delegated; if the append fails the
//!   call is denied (fail closed).
//! - Token ids are stored only as HMAC-SHA256 under the audit key; tokens,
//!   signatures and keys are never recorded.
//!
//! # Chains
//! The embedded log (SQLite in the state folder) has one chain, `local`,
//! shared by every process on that folder. In a shared database each role
//! on each machine writes its own chain, `<role>:<host>` (`cli:gpu-3`,
//! `api:web-1`, `worker:gpu-3`): processes of one role on one machine take
//! turns on it (the sink locks the chain's head row), while machines never
//! wait for each other. `weir audit verify` checks every chain.

use std::path::Path;
use std::sync::Arc;

use weir_audit::{
    Action as AuditAction, AuditKey, AuditSink, ChainId, CheckpointSigner, Decision,
    NETWORK_GATHER_WINDOW, NewEvent, Origin, PostgresSink, SinkConfig, SqliteSink,
};
use weir_auth::Action;
use weir_policy::{AccessDecision, DecisionSink, SinkError};

use crate::database::Database;
use crate::error::{Error, Result, error_chain};

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

/// The sink settings for `origin`. The HTTP API's appends (one per request)
/// come back over the network while request handling keeps the cores busy,
/// so its group commit waits briefly for them ([`NETWORK_GATHER_WINDOW`]:
/// on PostgreSQL for the last batch's appenders, on the embedded SQLite log
/// for the pending fsync, see [`SinkConfig::with_gather_window`]); every
/// other origin appends in bursts from within the process, which that wait
/// would only delay.
fn sink_config(chain: ChainId, signer: Arc<CheckpointSigner>, origin: &Origin) -> SinkConfig {
    let config = SinkConfig::new(chain, signer);
    if matches!(origin, Origin::Api) {
        config.with_gather_window(NETWORK_GATHER_WINDOW)
    } else {
        config
    }
}

impl Audit {
    /// The audit log for this configuration: in `database` if given (on the
    /// chain `<role>:<host>` of `origin`), else the embedded SQLite log in
    /// `state_dir` ([`open_local_as`](Self::open_local_as)). The
    /// checkpoint-signing key and HMAC key come from `state_dir` either way
    /// (created 0600 on first use).
    ///
    /// # Errors
    /// [`Error::Audit`] if the keys cannot be opened; [`Error::Database`]
    /// if the database cannot be reached or set up.
    pub async fn open(
        state_dir: &Path,
        database: Option<&Database>,
        origin: Origin,
    ) -> Result<Self> {
        let Some(db) = database else {
            return Self::open_local_as(state_dir, origin).await;
        };
        let signer = Arc::new(CheckpointSigner::open_or_create(state_dir).map_err(Error::audit)?);
        let key = Arc::new(AuditKey::open_or_create(state_dir).map_err(Error::audit)?);
        let chain = chain_of(&origin)?;
        let sink = PostgresSink::connect(
            db.url().expose(),
            db.schema(),
            sink_config(chain, signer, &origin),
        )
        .await
        .map_err(|e| Error::Database {
            host: db.host().to_owned(),
            operation: "open the audit log",
            message: error_chain(&e),
        })?;
        Ok(Self::new(Arc::new(sink), key, origin))
    }

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
        let sink = SqliteSink::open_in_state_dir(state_dir, sink_config(chain, signer, &origin))
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

    /// Signs a checkpoint over every event this process appended that no
    /// checkpoint covers yet, so that cutting those events off the end of
    /// the log is detected by `weir audit verify`. Called when a run ends
    /// and when a worker stops: short-lived processes would otherwise exit
    /// before the periodic checkpoint.
    ///
    /// # Errors
    /// [`Error::Audit`] if the checkpoint cannot be signed or stored.
    pub async fn checkpoint(&self) -> Result<()> {
        self.sink
            .checkpoint_now()
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

/// This machine's name as audit origins and chains use it: the kernel's
/// host name if it is plain printable ASCII of at most 64 bytes, else
/// `localhost`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".into())
}

/// The chain a process of `origin` writes in a shared database.
fn chain_of(origin: &Origin) -> Result<ChainId> {
    let (role, host) = match origin {
        Origin::Worker { host } => ("worker".to_owned(), host.clone()),
        other => (other.encode().into_owned(), host_name()),
    };
    // Chain ids allow [A-Za-z0-9._:-]; anything else becomes `-`.
    let plain = |s: &str| -> String {
        s.chars()
            .take(56)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    ChainId::parse(&format!("{}:{}", plain(&role), plain(&host))).map_err(Error::audit)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_and_host_has_its_own_chain() {
        let worker = |host: &str| {
            chain_of(&Origin::Worker {
                host: host.to_owned(),
            })
            .unwrap()
        };
        assert_eq!(worker("gpu-3").as_str(), "worker:gpu-3");
        assert_eq!(worker("a b/c'd").as_str(), "worker:a-b-c-d");
        assert_eq!(
            worker(&"h".repeat(200)).as_str().len(),
            "worker:".len() + 56
        );
        let cli = chain_of(&Origin::Cli).unwrap();
        let api = chain_of(&Origin::Api).unwrap();
        assert!(cli.as_str().starts_with("cli:"));
        assert!(api.as_str().starts_with("api:"));
        assert_eq!(cli.as_str()[4..], api.as_str()[4..], "same host");
    }
}
