//! Least privilege in the engine: plan-time grant checks, one scoped token
//! per stage attempt, and guarded stores built only from a verified token.
//!
//! # Security
//! - [`Security::plan`] compiles every stage's scope from what the stage
//!   declared; a run with any gap fails before anything executes.
//! - [`Security::stage_stores`] mints a token for exactly that scope, verifies
//!   it with the public key only (as a remote worker would), and wraps each raw
//!   store in a [`GuardedStore`] bound to the verified claims. Raw stores never
//!   leave this module.
//! - Every token minted for a run is revoked when the run ends.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use object_store::ObjectStore;
use weir_auth::{
    Clock, MintRequest, Minter, Scope, StageClaims, StageKeySet, StageVerifier, SystemClock,
};
use weir_policy::{
    CompiledScope, DecisionSink, GuardedStore, MissingGrant, PolicySet, compile_stage,
};
use weir_spec::{Pipeline, Stage};

use crate::error::{Error, Result};
use crate::store::StoreSet;

/// Issuer of stage tokens.
pub const ISSUER: &str = "weir";
/// Audience of stage tokens: the data plane.
pub const AUDIENCE: &str = "weir-data-plane";
/// Slack added to a stage's timeout for its token's lifetime, so cleanup after
/// a timed-out attempt still holds a valid token.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The security context of an engine: policies, keys, and the decision sink.
pub struct Security {
    policies: Arc<PolicySet>,
    minter: Minter,
    verifier: StageVerifier,
    sink: Arc<dyn DecisionSink>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("policy_digest", &self.policies.digest_hex())
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Opens (or creates, 0600) the stage signing keys under `state_dir`.
    ///
    /// # Errors
    /// [`Error::Security`] if the key store is unreadable or insecure.
    pub fn open(
        state_dir: &Path,
        policies: PolicySet,
        sink: Arc<dyn DecisionSink>,
    ) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let keys = StageKeySet::open(state_dir, clock.now()).map_err(Error::security)?;
        let minter = Minter::new(keys, ISSUER, AUDIENCE, weir_auth::DEFAULT_MAX_LIFETIME)
            .map_err(Error::security)?
            .with_clock(clock.clone());
        let verifier = minter.verifier();
        Ok(Self {
            policies: Arc::new(policies),
            minter,
            verifier,
            sink,
            clock,
        })
    }

    /// The policies in force.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Compiles the scope of every stage, in pipeline order.
    ///
    /// # Errors
    /// Every missing grant across all stages, so one `plan` shows them all.
    pub fn plan(&self, pipeline: &Pipeline) -> Result<Vec<CompiledScope>, Vec<MissingGrant>> {
        plan(&self.policies, pipeline)
    }

    /// Mints, verifies and binds: the stores stage `stage` may use for this
    /// attempt, each guarded by the verified claims.
    ///
    /// # Errors
    /// [`Error::Security`] if minting or verification fails.
    pub(crate) fn stage_stores(
        &self,
        stores: &StoreSet,
        run_id: &str,
        pipeline: &Pipeline,
        stage: &Stage,
        attempt: u32,
        scope: &Scope,
    ) -> Result<(StageClaims, HashMap<String, Arc<dyn ObjectStore>>)> {
        let minted = self
            .minter
            .mint(MintRequest {
                principal: pipeline.principal.clone(),
                run: run_id.to_owned(),
                stage: stage.name.clone(),
                attempt,
                scope: scope.clone(),
                ttl: stage.timeout.saturating_add(TOKEN_MARGIN),
            })
            .map_err(Error::security)?;
        // Verify as a worker would: public key only, every check applied.
        let claims = self
            .verifier
            .verify(minted.token.expose(), self.clock.now())
            .map_err(Error::security)?;
        let mut out: HashMap<String, Arc<dyn ObjectStore>> = HashMap::new();
        for entry in claims.scope.entries() {
            if out.contains_key(&entry.store) {
                continue;
            }
            let raw = stores.get(&entry.store)?;
            let mut guarded = GuardedStore::new(
                raw,
                &entry.store,
                &claims,
                self.clock.clone(),
                self.sink.clone(),
            );
            if let Some(root) = stores.local_root(&entry.store) {
                guarded = guarded
                    .with_local_root(root.to_path_buf())
                    .map_err(Error::security)?;
            }
            out.insert(entry.store.clone(), Arc::new(guarded));
        }
        Ok((claims, out))
    }

    /// Revokes a stage token (run end, cancel).
    pub(crate) fn revoke(&self, claims: &StageClaims) {
        if let Err(e) = self.verifier.revoke(claims) {
            tracing::warn!(stage = %claims.stage, error = %e, "could not revoke a stage token");
        }
    }
}

/// Compiles every stage's scope against `policies`, collecting every gap.
///
/// # Errors
/// Every missing grant across all stages.
pub fn plan(
    policies: &PolicySet,
    pipeline: &Pipeline,
) -> Result<Vec<CompiledScope>, Vec<MissingGrant>> {
    let today = Utc::now().date_naive();
    let mut scopes = Vec::new();
    let mut missing = Vec::new();
    for stage in &pipeline.stages {
        match compile_stage(policies, pipeline, stage, today) {
            Ok(scope) => scopes.push(scope),
            Err(mut gaps) => missing.append(&mut gaps),
        }
    }
    if missing.is_empty() {
        Ok(scopes)
    } else {
        Err(missing)
    }
}

/// Tokens minted during one run, revoked together at its end.
#[derive(Debug, Default)]
pub(crate) struct IssuedTokens {
    claims: Mutex<Vec<StageClaims>>,
}

impl IssuedTokens {
    pub(crate) fn push(&self, claims: StageClaims) {
        if let Ok(mut all) = self.claims.lock() {
            all.push(claims);
        }
    }

    pub(crate) fn take(&self) -> Vec<StageClaims> {
        self.claims
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }
}
