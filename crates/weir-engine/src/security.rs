//! Least privilege in the engine: plan-time grant checks, one scoped token
//! per stage attempt, and guarded stores built only from a verified token.
//!
//! # Security
//! - [`Security::plan`] compiles every stage's scope from what the stage
//!   declared; a run with any gap fails before anything executes.
//! - `Security::stage_stores` mints a token for exactly that scope, verifies
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

use crate::audit::Audit;
use crate::error::{Error, Result};
use crate::executor::StageStores;
use crate::presign::Presigner;
use crate::store::StoreSet;
use weir_audit::{Action as AuditAction, Decision};

/// Issuer of stage tokens.
pub const ISSUER: &str = "weir";
/// Audience of stage tokens: the data plane.
pub const AUDIENCE: &str = "weir-data-plane";
/// Slack added to a stage's timeout for its token's lifetime, so cleanup after
/// a timed-out attempt still holds a valid token.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// What one stage attempt may use: its verified claims, its guarded
/// stores by store name, and a URL signer for each of them that is in S3.
pub(crate) struct AttemptAccess {
    pub(crate) claims: StageClaims,
    pub(crate) stores: HashMap<String, Arc<dyn ObjectStore>>,
    pub(crate) presigners: HashMap<String, Presigner>,
}

/// The security context of an engine: policies, keys, and the decision sink.
pub struct Security {
    policies: Arc<PolicySet>,
    minter: Minter,
    verifier: StageVerifier,
    audit: Audit,
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
    /// Opens (or creates, 0600) the stage signing keys under `state_dir`;
    /// every decision and token event goes to `audit`.
    ///
    /// # Errors
    /// [`Error::Security`] if the key store is unreadable or insecure.
    pub fn open(state_dir: &Path, policies: PolicySet, audit: Audit) -> Result<Self> {
        let sink = audit.decision_sink();
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
            audit,
            sink,
            clock,
        })
    }

    /// The audit trail.
    pub fn audit(&self) -> &Audit {
        &self.audit
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

    /// Mints the token of one stage attempt, checks it as a worker would
    /// (public key only, every check applied) and records the mint. The
    /// token is returned for a remote worker; it is never logged.
    ///
    /// # Errors
    /// [`Error::Security`] if minting or verification fails;
    /// [`Error::Audit`] if the mint cannot be recorded (then the token must
    /// not be used, and is not returned).
    pub(crate) async fn mint_attempt(
        &self,
        run_id: &str,
        pipeline: &Pipeline,
        stage: &Stage,
        attempt: u32,
        scope: &Scope,
    ) -> Result<(weir_auth::SecretString, StageClaims)> {
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
        let claims = self
            .verifier
            .verify(minted.token.expose(), self.clock.now())
            .map_err(Error::security)?;
        // No record of the mint, no token in use.
        self.audit
            .record(
                self.audit
                    .event(&claims.sub, AuditAction::TokenMint, Decision::None)
                    .with_stage(&claims.run, &claims.stage, claims.attempt)
                    .with_token(self.audit.token(&claims.jti))
                    .with_reason(format!(
                        "{} scope entries, expires {}",
                        claims.scope.entries().len(),
                        claims.exp
                    )),
            )
            .await?;
        Ok((minted.token, claims))
    }

    /// Mints, verifies and binds: the stores stage `stage` may use for this
    /// attempt, each guarded by the verified claims.
    ///
    /// # Errors
    /// [`Error::Security`] if minting or verification fails.
    pub(crate) async fn stage_stores(
        &self,
        stores: &StoreSet,
        run_id: &str,
        pipeline: &Pipeline,
        stage: &Stage,
        attempt: u32,
        scope: &Scope,
    ) -> Result<AttemptAccess> {
        let (_, claims) = self
            .mint_attempt(run_id, pipeline, stage, attempt, scope)
            .await?;
        let (stores, presigners) = bind_stores(stores, &claims, &self.clock, &self.sink)?;
        Ok(AttemptAccess {
            claims,
            stores,
            presigners,
        })
    }

    /// Revokes a stage token (run end, cancel) and records it.
    pub(crate) async fn revoke(&self, claims: &StageClaims) {
        if let Err(e) = self.verifier.revoke(claims) {
            tracing::warn!(stage = %claims.stage, error = %e, "could not revoke a stage token");
            return;
        }
        let event = self
            .audit
            .event(&claims.sub, AuditAction::TokenRevoke, Decision::None)
            .with_stage(&claims.run, &claims.stage, claims.attempt)
            .with_token(self.audit.token(&claims.jti))
            .with_reason("run ended");
        if let Err(e) = self.audit.record(event).await {
            tracing::warn!(stage = %claims.stage, error = %e, "could not record a token revocation");
        }
    }
}

/// Wraps each raw store named in `claims`' scope in a [`GuardedStore`]
/// bound to those (already verified) claims, plus a URL signer for each S3
/// store. Stores outside the scope are not handed out at all.
///
/// # Errors
/// [`Error::Security`] if a local store's root cannot be confined, or a
/// scope names a store the run does not have.
pub(crate) fn bind_stores(
    stores: &StoreSet,
    claims: &StageClaims,
    clock: &Arc<dyn Clock>,
    sink: &Arc<dyn DecisionSink>,
) -> Result<(StageStores, HashMap<String, Presigner>)> {
    let mut out: StageStores = HashMap::new();
    let mut presigners = HashMap::new();
    for entry in claims.scope.entries() {
        if out.contains_key(&entry.store) {
            continue;
        }
        let raw = stores.get(&entry.store)?;
        let mut guarded = GuardedStore::new(raw, &entry.store, claims, clock.clone(), sink.clone());
        if let Some(root) = stores.local_root(&entry.store) {
            guarded = guarded
                .with_local_root(root.to_path_buf())
                .map_err(Error::security)?;
        }
        if let Some(s3) = stores.s3(&entry.store) {
            presigners.insert(
                entry.store.clone(),
                Presigner::new(
                    guarded.clone(),
                    Arc::clone(&s3.bucket),
                    s3.prefix.clone(),
                    claims.exp,
                    clock.clone(),
                ),
            );
        }
        out.insert(entry.store.clone(), Arc::new(guarded));
    }
    Ok((out, presigners))
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

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStoreExt, PutPayload};
    use std::collections::BTreeMap;
    use weir_audit::{
        AuditKey, CheckpointSigner, FailingSink, Filter, Page, SinkConfig, SqliteSink,
    };

    const PIPELINE: &str = r#"
name: t
principal: svc-t
stores: { lake: { url: ./lake } }
datasets:
  a: { store: lake, path: raw/a.csv }
  out: { store: lake, path: out/x }
stages:
  - name: s
    kind: sql
    inputs: [a]
    outputs: [out]
    sql: SELECT * FROM a
"#;

    fn policy(base: &Path) -> PolicySet {
        let text = r#"
version: 1
stores: { lake: { url: ./lake } }
principals: { svc-t: { kind: service } }
grants:
  - id: read-raw
    principal: svc-t
    effect: allow
    actions: [read]
    resources: [{ store: lake, path: "raw/**" }]
  - id: write-out
    principal: svc-t
    effect: allow
    actions: [read, write, delete]
    resources: [{ store: lake, path: "out/**" }]
"#;
        PolicySet::load_str("p.yaml", text, base).unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        security: Security,
        pipeline: Pipeline,
        stores: StoreSet,
        raw: Arc<dyn ObjectStore>,
    }

    async fn fixture(sink: Option<Arc<dyn weir_audit::AuditSink>>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = weir_spec::load_str("t.yaml", PIPELINE, dir.path())
            .unwrap()
            .pipeline;
        let audit = match sink {
            Some(sink) => Audit::new(
                sink,
                Arc::new(AuditKey::generate().unwrap()),
                weir_audit::Origin::Cli,
            ),
            None => Audit::open_local(dir.path()).await.unwrap(),
        };
        let security = Security::open(dir.path(), policy(dir.path()), audit).unwrap();
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for p in ["raw/a.csv", "raw/secret.csv"] {
            raw.put(
                &ObjectPath::from(p),
                PutPayload::from_static(b"id,v\n1,2\n"),
            )
            .await
            .unwrap();
        }
        let stores = StoreSet::from_stores(BTreeMap::from([("lake".to_owned(), raw.clone())]));
        Fixture {
            _dir: dir,
            security,
            pipeline,
            stores,
            raw,
        }
    }

    async fn guarded(f: &Fixture) -> (StageClaims, HashMap<String, Arc<dyn ObjectStore>>) {
        let scopes = f.security.plan(&f.pipeline).unwrap();
        let scope = Scope::from(scopes.into_iter().next().unwrap());
        let stage = f.pipeline.stages.first().unwrap();
        let access = f
            .security
            .stage_stores(&f.stores, "RUN1", &f.pipeline, stage, 1, &scope)
            .await
            .unwrap();
        (access.claims, access.stores)
    }

    #[tokio::test]
    async fn sql_reading_an_undeclared_dataset_is_denied_by_the_guard_and_audited() {
        let f = fixture(None).await;
        let (_, stores) = guarded(&f).await;
        let ctx = crate::sql::stage_context(stores, 1).unwrap();
        // A compromised operator registers a table over a path the stage never declared.
        let err = ctx
            .register_csv(
                "secret",
                "weir://lake/raw/secret.csv",
                datafusion::prelude::CsvReadOptions::new(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("may not read `raw/secret.csv`"), "{err}");
        let denied = f
            .security
            .audit()
            .sink()
            .query(&Filter::all().decision(Decision::Deny), Page::first(100))
            .await
            .unwrap();
        assert!(
            denied
                .iter()
                .any(|e| e.path.as_deref() == Some("raw/secret.csv")),
            "{denied:?}"
        );
        // The declared input still reads fine.
        crate::sql::register_input(
            &ctx,
            &crate::sql::SqlInput {
                name: "a".into(),
                store: "lake".into(),
                location: crate::dataset::ReadLocation::File(ObjectPath::from("raw/a.csv")),
                format: weir_spec::Format::Csv,
            },
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn token_mint_is_audited_with_an_hmac_never_the_token_id() {
        let f = fixture(None).await;
        let (claims, _) = guarded(&f).await;
        let mints = f
            .security
            .audit()
            .sink()
            .query(
                &Filter::all().action(AuditAction::TokenMint),
                Page::first(10),
            )
            .await
            .unwrap();
        assert_eq!(mints.len(), 1);
        let stored = mints[0].token_id_hmac.as_ref().unwrap().as_str().to_owned();
        assert_ne!(stored, claims.jti);
        assert_eq!(stored, f.security.audit().token(&claims.jti).as_str());
    }

    #[tokio::test]
    async fn a_sink_failing_on_the_kth_append_denies_access_k_and_nothing_is_written() {
        // Appends: 1 = token mint, 2 = first put, 3 = second put (fails).
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(CheckpointSigner::generate().unwrap());
        let inner = SqliteSink::open(
            &dir.path().join("a.db"),
            SinkConfig::new(weir_audit::ChainId::parse("t").unwrap(), signer),
        )
        .await
        .unwrap();
        let failing: Arc<dyn weir_audit::AuditSink> = Arc::new(FailingSink::new(inner, 3));
        let f = fixture(Some(failing)).await;
        let (_, stores) = guarded(&f).await;
        let lake = stores.get("lake").unwrap();
        lake.put(
            &ObjectPath::from("out/x/one"),
            PutPayload::from_static(b"1"),
        )
        .await
        .unwrap();
        let err = lake
            .put(
                &ObjectPath::from("out/x/two"),
                PutPayload::from_static(b"2"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::PermissionDenied { .. }),
            "{err}"
        );
        assert!(f.raw.head(&ObjectPath::from("out/x/one")).await.is_ok());
        assert!(
            f.raw.head(&ObjectPath::from("out/x/two")).await.is_err(),
            "nothing written for the denied call"
        );
        // Later calls go through again once the log accepts events.
        lake.put(
            &ObjectPath::from("out/x/three"),
            PutPayload::from_static(b"3"),
        )
        .await
        .unwrap();
    }
}
