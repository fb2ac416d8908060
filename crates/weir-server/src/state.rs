//! The state every handler shares.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use weir_audit::NewEvent;
use weir_auth::ApiVerifier;
use weir_engine::record::RunStore;
use weir_engine::{Audit, Engine, EngineConfig, Security};
use weir_policy::PolicySet;

use crate::error::ApiError;
use crate::failures::FailureCounter;
use crate::refresh::KeyRefresh;
use crate::runs::RunManager;

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    keys: Arc<KeyRefresh>,
    audit: Audit,
    security: Arc<Security>,
    policies: Arc<PolicySet>,
    state_dir: PathBuf,
    pipelines_dir: PathBuf,
    run_store: Arc<dyn RunStore>,
    runs: RunManager,
    failures: FailureCounter,
    jwks: Mutex<Option<(Instant, Arc<Value>)>>,
}

/// How long the served JWKS document is reused before the key manifest is
/// read again: a rotation by another process shows within this time.
const JWKS_TTL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("state_dir", &self.0.state_dir)
            .field("pipelines_dir", &self.0.pipelines_dir)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Everything the handlers need. `security` must have been opened with
    /// `audit` (its origin should be [`weir_audit::Origin::Api`]); run
    /// records go to `run_store`. `verifier` is an [`ApiVerifier`] (keys
    /// fixed for the server's life) or a [`KeyRefresh`] (keys reloaded).
    #[must_use]
    pub fn new(
        verifier: impl Into<KeyRefresh>,
        audit: Audit,
        security: Arc<Security>,
        policies: Arc<PolicySet>,
        state_dir: PathBuf,
        pipelines_dir: PathBuf,
        run_store: Arc<dyn RunStore>,
    ) -> Self {
        Self(Arc::new(Inner {
            keys: Arc::new(verifier.into()),
            audit,
            security,
            policies,
            state_dir,
            pipelines_dir,
            run_store,
            runs: RunManager::default(),
            failures: FailureCounter::new(),
            jwks: Mutex::new(None),
        }))
    }

    /// The stage-token public keys as JWKS, read from the key manifest (no
    /// private key is read) at most once a second; one caller reads
    /// while the others wait for its result.
    ///
    /// # Errors
    /// [`ApiError::Internal`] if the manifest cannot be read.
    pub fn stage_jwks(&self) -> Result<Arc<Value>, ApiError> {
        let mut cached = self.0.jwks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((read_at, doc)) = cached.as_ref()
            && read_at.elapsed() < JWKS_TTL
        {
            return Ok(Arc::clone(doc));
        }
        let now = chrono::Utc::now().timestamp();
        let doc = weir_auth::StageKeySet::public_jwks_on_disk(&self.0.state_dir, now)
            .or_else(|_| {
                // No key set yet: create it, as the first run would.
                weir_auth::StageKeySet::open(&self.0.state_dir, now).map(|k| k.public_jwks())
            })
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the stage public keys");
                ApiError::Internal
            })?;
        let doc = Arc::new(doc);
        *cached = Some((Instant::now(), Arc::clone(&doc)));
        Ok(doc)
    }

    /// The API token verifier.
    #[must_use]
    pub fn verifier(&self) -> &ApiVerifier {
        self.0.keys.verifier()
    }

    /// The verifier with its key sources, which reloads keys.
    #[must_use]
    pub fn keys(&self) -> &Arc<KeyRefresh> {
        &self.0.keys
    }

    /// The audit trail.
    #[must_use]
    pub fn audit(&self) -> &Audit {
        &self.0.audit
    }

    /// Appends `event`; a failure refuses the request (fail closed).
    ///
    /// # Errors
    /// [`ApiError::AuditUnavailable`].
    pub async fn record(&self, event: NewEvent) -> Result<(), ApiError> {
        self.0.audit.record(event).await.map_err(|e| {
            tracing::error!(error = %e, "audit append failed; refusing the request");
            ApiError::AuditUnavailable
        })
    }

    /// The engine's security context.
    #[must_use]
    pub fn security(&self) -> &Arc<Security> {
        &self.0.security
    }

    /// The policies in force.
    #[must_use]
    pub fn policies(&self) -> &PolicySet {
        &self.0.policies
    }

    /// weir's state folder.
    #[must_use]
    pub fn state_dir(&self) -> &Path {
        &self.0.state_dir
    }

    /// The folder of pipelines callers may run by name.
    #[must_use]
    pub fn pipelines_dir(&self) -> &Path {
        &self.0.pipelines_dir
    }

    /// Where run records are kept.
    #[must_use]
    pub fn run_store(&self) -> &Arc<dyn RunStore> {
        &self.0.run_store
    }

    /// An engine for a run started here.
    #[must_use]
    pub fn engine(&self) -> Engine {
        Engine::new(EngineConfig {
            state_dir: self.0.state_dir.clone(),
            ..EngineConfig::default()
        })
        .with_run_store(self.0.run_store.clone())
    }

    /// Runs started here.
    #[must_use]
    pub fn runs(&self) -> &RunManager {
        &self.0.runs
    }

    pub(crate) fn failures_of(&self, client: IpAddr) -> u32 {
        self.0.failures.of(client)
    }

    pub(crate) fn count_failure(&self, client: IpAddr) {
        self.0.failures.count(client);
    }
}
