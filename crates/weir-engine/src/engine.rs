//! Running a validated pipeline end to end: schedule, execute, commit, record.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;
use weir_spec::{Pipeline, Stage};

use crate::dataset::NoFence;
use crate::distributed::{Broker, Envelopes, OutputLeases, RemoteRun, RemoteRunner};
use crate::error::{Error, Result};
use crate::executor::{StageExecutor, StageStores};
use crate::record::{
    ContractCheck, FileRunStore, OutputRecord, RunRecord, RunStatus, RunStore, StageRecord,
    StageState,
};
use crate::scheduler::{End, Outcome, StageEvent, StagePolicy, StageRunner, run_dag};
use crate::security::{AttemptAccess, IssuedTokens, Security};
use crate::store::StoreSet;
use weir_audit::{Action as AuditAction, Decision};
use weir_auth::Scope;
use weir_policy::CompiledScope;

/// Progress of a run, for displays. Stage indexes follow `pipeline.stages`.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// The run started with this id.
    RunStarted {
        /// Run id.
        run_id: String,
    },
    /// An attempt of a stage started.
    StageStarted {
        /// Stage index.
        stage: usize,
        /// 1-based attempt.
        attempt: u32,
    },
    /// An attempt failed and will be retried.
    StageRetrying {
        /// Stage index.
        stage: usize,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// Wait before the next attempt.
        delay: Duration,
    },
    /// A stage reached its final state.
    StageFinished {
        /// Stage index.
        stage: usize,
        /// Final state.
        state: StageState,
        /// Attempts made.
        attempts: u32,
        /// Time from first start to end.
        elapsed: Duration,
        /// Rows written (succeeded stages).
        rows: u64,
        /// Why it failed or was skipped.
        error: Option<String>,
    },
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// weir's state folder (`.weir/` by default): command stages' work
    /// folders, and run records unless [`Engine::with_run_store`] says
    /// otherwise.
    pub state_dir: PathBuf,
    /// DataFusion partitions per stage.
    pub partitions: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(".weir"),
            partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What one stage produced.
#[derive(Debug, Clone, Default)]
pub struct StageOutput {
    /// Outputs committed.
    pub outputs: Vec<OutputRecord>,
    /// Data-contract checks made on the stage's inputs and outputs.
    pub checks: Vec<ContractCheck>,
}

/// Runs pipelines.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    runs: Arc<dyn RunStore>,
}

impl Engine {
    /// An engine with `config`, keeping run records as JSON files under
    /// `<state_dir>/runs/` ([`FileRunStore`]).
    pub fn new(config: EngineConfig) -> Self {
        let runs = Arc::new(FileRunStore::new(&config.state_dir));
        Self { config, runs }
    }

    /// Keeps run records in `runs` instead (a database every machine
    /// shares, see [`record::open`](crate::record::open)).
    #[must_use]
    pub fn with_run_store(mut self, runs: Arc<dyn RunStore>) -> Self {
        self.runs = runs;
        self
    }

    /// Where run records go.
    pub fn run_store(&self) -> &Arc<dyn RunStore> {
        &self.runs
    }

    /// Runs `pipeline` to completion (or cancel), sending progress to `events`.
    ///
    /// The returned record is also saved in the run store
    /// ([`Engine::with_run_store`]).
    ///
    /// # Errors
    /// Only for failures outside any stage (stores cannot be opened, the run
    /// record cannot be written). A failing stage is reported in the record.
    pub async fn run(
        &self,
        pipeline: Arc<Pipeline>,
        security: Arc<Security>,
        cancel: CancellationToken,
        events: Option<UnboundedSender<RunEvent>>,
    ) -> Result<RunRecord> {
        let scopes = self.plan_or_record(&pipeline, &security).await?;
        let stores = StoreSet::open(&pipeline)?;
        self.run_with_stores(pipeline, security, scopes, stores, cancel, events)
            .await
    }

    /// As [`Engine::run`], with stores supplied by the caller and scopes
    /// already compiled by [`Security::plan`].
    ///
    /// # Errors
    /// As [`Engine::run`], plus [`Error::Leased`] if another run is writing
    /// one of the outputs.
    pub async fn run_with_stores(
        &self,
        pipeline: Arc<Pipeline>,
        security: Arc<Security>,
        scopes: Vec<CompiledScope>,
        stores: StoreSet,
        cancel: CancellationToken,
        events: Option<UnboundedSender<RunEvent>>,
    ) -> Result<RunRecord> {
        let run_id = ulid::Ulid::new().to_string();
        let runner = Arc::new(PipelineRunner {
            executor: StageExecutor {
                pipeline: pipeline.clone(),
                run_id: run_id.clone(),
                state_dir: self.config.state_dir.clone(),
                partitions: self.config.partitions,
                fence: Arc::new(NoFence),
                audit: security.audit().clone(),
                create_mask_key: true,
            },
            stores,
            rows: Mutex::new(HashMap::new()),
            security: security.clone(),
            scopes: scopes.into_iter().map(Scope::from).collect(),
            issued: IssuedTokens::default(),
            attempt_stores: Mutex::new(HashMap::new()),
        });
        self.drive(
            pipeline,
            security,
            run_id,
            runner,
            local_leases(),
            cancel,
            events,
        )
        .await
    }

    /// Plans `pipeline` and runs its stages on remote workers through
    /// `broker`: each attempt gets a freshly minted token in an envelope
    /// sealed by `sealer`; results come back on the run's own reply queue,
    /// opened by `opener`. `pipeline_yaml` is the text `pipeline` was loaded
    /// from; workers validate it again.
    ///
    /// # Errors
    /// As [`Engine::run`], plus [`Error::Queue`] if the broker is
    /// unreachable when the run starts.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_distributed(
        &self,
        pipeline: Arc<Pipeline>,
        pipeline_yaml: String,
        security: Arc<Security>,
        broker: Arc<dyn Broker>,
        envelopes: Envelopes,
        cancel: CancellationToken,
        events: Option<UnboundedSender<RunEvent>>,
    ) -> Result<RunRecord> {
        let scopes = self.plan_or_record(&pipeline, &security).await?;
        let run_id = ulid::Ulid::new().to_string();
        let runner = Arc::new(
            RemoteRunner::start(RemoteRun {
                pipeline: pipeline.clone(),
                pipeline_yaml,
                run_id: run_id.clone(),
                security: security.clone(),
                scopes: scopes.into_iter().map(Scope::from).collect(),
                broker: broker.clone(),
                envelopes,
            })
            .await?,
        );
        let record = self
            .drive(
                pipeline,
                security,
                run_id,
                runner.clone(),
                broker.leases(),
                cancel,
                events,
            )
            .await;
        runner.stop().await;
        record
    }

    /// Compiles every stage's scope; records and returns every gap.
    async fn plan_or_record(
        &self,
        pipeline: &Pipeline,
        security: &Security,
    ) -> Result<Vec<CompiledScope>> {
        let audit = security.audit();
        let policy = format!("policies sha256:{}", security.policies().digest_hex());
        match security.plan(pipeline) {
            Ok(scopes) => Ok(scopes),
            Err(missing) => {
                for gap in &missing {
                    let event = audit
                        .event(&pipeline.principal, AuditAction::PlanDenied, Decision::Deny)
                        .with_resource(gap.store.clone(), gap.path.as_str())
                        .with_reason(format!("{gap}; {policy}"));
                    audit.record(event).await?;
                }
                Err(Error::PlanDenied { missing })
            }
        }
    }

    /// Runs the DAG with `runner`, holding a lease on every output, and
    /// keeps the run record and audit trail.
    #[allow(clippy::too_many_arguments)]
    async fn drive<R>(
        &self,
        pipeline: Arc<Pipeline>,
        security: Arc<Security>,
        run_id: String,
        runner: Arc<R>,
        leases: Arc<dyn weir_queue::Leases>,
        cancel: CancellationToken,
        events: Option<UnboundedSender<RunEvent>>,
    ) -> Result<RunRecord>
    where
        R: StageRunner<Output = StageOutput> + Tracker,
    {
        let mut held = OutputLeases::acquire(leases, &pipeline, &run_id).await?;
        let result = self
            .drive_leased(pipeline, security, run_id, runner, cancel, events)
            .await;
        held.release().await;
        result
    }

    async fn drive_leased<R>(
        &self,
        pipeline: Arc<Pipeline>,
        security: Arc<Security>,
        run_id: String,
        runner: Arc<R>,
        cancel: CancellationToken,
        events: Option<UnboundedSender<RunEvent>>,
    ) -> Result<RunRecord>
    where
        R: StageRunner<Output = StageOutput> + Tracker,
    {
        let runs = self.runs.clone();
        let mut record = RunRecord {
            run_id: run_id.clone(),
            pipeline: pipeline.name.clone(),
            source: pipeline.source.display().to_string(),
            principal: pipeline.principal.clone(),
            status: RunStatus::Running,
            started_at: Utc::now(),
            finished_at: None,
            stages: pipeline.stages.iter().map(|s| waiting(&s.name)).collect(),
        };
        runs.save(&record).await?;
        let audit = security.audit().clone();
        audit
            .record(
                audit
                    .event(&pipeline.principal, AuditAction::RunStart, Decision::None)
                    .with_run(run_id.as_str())
                    .with_reason(format!(
                        "pipeline {}; policies sha256:{}",
                        pipeline.name,
                        security.policies().digest_hex()
                    )),
            )
            .await?;
        send(
            &events,
            RunEvent::RunStarted {
                run_id: run_id.clone(),
            },
        );
        tracing::info!(run_id = %run_id, pipeline = %pipeline.name, "run started");

        let issued = runner.clone();
        let rows_seen = runner.clone();
        let policies: Vec<StagePolicy> = pipeline
            .stages
            .iter()
            .map(|s| StagePolicy {
                retries: s.retries,
                timeout: s.timeout,
            })
            .collect();
        let (tx, mut rx) = unbounded_channel();
        let forward = events.clone();
        let names: Vec<String> = pipeline.stages.iter().map(|s| s.name.clone()).collect();
        let forwarder = tokio::spawn(async move {
            let name = |i: usize| names.get(i).map_or("?", String::as_str).to_owned();
            while let Some(ev) = rx.recv().await {
                let ev = match ev {
                    StageEvent::Started { stage, attempt } => {
                        RunEvent::StageStarted { stage, attempt }
                    }
                    StageEvent::Retrying {
                        stage,
                        attempt,
                        error,
                        delay,
                    } => RunEvent::StageRetrying {
                        stage,
                        attempt,
                        error,
                        delay,
                    },
                    StageEvent::Finished {
                        stage,
                        end,
                        attempts,
                        elapsed,
                    } => {
                        let (state, error) = match end {
                            End::Succeeded => (StageState::Succeeded, None),
                            End::Failed(e) => (StageState::Failed, Some(e)),
                            End::Skipped(b) => (
                                StageState::Skipped,
                                Some(format!("skipped because stage `{}` failed", name(b))),
                            ),
                            End::Cancelled => (StageState::Cancelled, None),
                        };
                        RunEvent::StageFinished {
                            stage,
                            state,
                            attempts,
                            elapsed,
                            rows: rows_seen.rows_of(stage),
                            error,
                        }
                    }
                };
                send(&forward, ev);
            }
        });
        let results = run_dag(
            &pipeline.dag,
            &policies,
            pipeline.defaults.concurrency,
            runner,
            cancel.clone(),
            Some(tx),
        )
        .await;
        let _ = forwarder.await;
        // The run is over: no token minted for it may be used again.
        for claims in issued.take_issued() {
            security.revoke(&claims).await;
        }

        for (i, result) in results.into_iter().enumerate() {
            let name = pipeline
                .stages
                .get(i)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let mut rec = StageRecord {
                name,
                state: StageState::Waiting,
                attempts: result.attempts,
                elapsed_ms: u64::try_from(result.elapsed.as_millis()).unwrap_or(u64::MAX),
                rows_written: 0,
                outputs: Vec::new(),
                checks: Vec::new(),
                error: None,
            };
            match result.outcome {
                Outcome::Succeeded(out) => {
                    rec.state = StageState::Succeeded;
                    rec.rows_written = out.outputs.iter().map(|o| o.rows).sum();
                    rec.outputs = out.outputs;
                    rec.checks = out.checks;
                }
                Outcome::Failed(e) => {
                    rec.state = StageState::Failed;
                    rec.error = Some(e.to_string());
                }
                Outcome::Skipped { because } => {
                    rec.state = StageState::Skipped;
                    let cause = pipeline
                        .stages
                        .get(because)
                        .map_or("?", |s| s.name.as_str());
                    rec.error = Some(format!("skipped because stage `{cause}` failed"));
                }
                Outcome::Cancelled => rec.state = StageState::Cancelled,
            }
            if let Some(slot) = record.stages.get_mut(i) {
                *slot = rec;
            }
        }
        record.status = overall(&record.stages, cancel.is_cancelled());
        record.finished_at = Some(Utc::now());
        runs.save(&record).await?;
        let finish = audit
            .event(&pipeline.principal, AuditAction::RunFinish, Decision::None)
            .with_run(record.run_id.as_str())
            .with_reason(format!("{:?}", record.status).to_lowercase());
        audit.record(finish).await?;
        // Seal the run's tail now rather than at the next periodic checkpoint,
        // which a short-lived `weir run` never reaches.
        if let Err(e) = audit.checkpoint().await {
            tracing::warn!(error = %e, "could not sign an audit checkpoint at the end of the run");
        }
        tracing::info!(run_id = %record.run_id, status = ?record.status, "run finished");
        Ok(record)
    }
}

/// What the run driver needs from a runner besides running stages.
pub(crate) trait Tracker {
    /// Rows written by stage `index` (0 until it succeeds).
    fn rows_of(&self, index: usize) -> u64;
    /// Every token minted so far, handed over once for revocation.
    fn take_issued(&self) -> Vec<weir_auth::StageClaims>;
}

/// The lease table of runs in this process.
fn local_leases() -> Arc<dyn weir_queue::Leases> {
    static TABLE: std::sync::OnceLock<Arc<weir_queue::InProcessCoordination>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(Default::default).clone()
}

fn waiting(name: &str) -> StageRecord {
    StageRecord {
        name: name.to_owned(),
        state: StageState::Waiting,
        attempts: 0,
        elapsed_ms: 0,
        rows_written: 0,
        outputs: Vec::new(),
        checks: Vec::new(),
        error: None,
    }
}

fn overall(stages: &[StageRecord], cancelled: bool) -> RunStatus {
    if cancelled {
        RunStatus::Cancelled
    } else if stages.iter().all(|s| s.state == StageState::Succeeded) {
        RunStatus::Succeeded
    } else {
        RunStatus::Failed
    }
}

fn send(events: &Option<UnboundedSender<RunEvent>>, ev: RunEvent) {
    if let Some(tx) = events {
        let _ = tx.send(ev);
    }
}

/// Executes the stages of one pipeline run in this process.
struct PipelineRunner {
    executor: StageExecutor,
    stores: StoreSet,
    /// Rows written by succeeded stages, filled before `run` returns so the
    /// scheduler's `Finished` event can report them.
    rows: Mutex<HashMap<usize, u64>>,
    security: Arc<Security>,
    /// Compiled scope of each stage, in pipeline order.
    scopes: Vec<Scope>,
    issued: IssuedTokens,
    /// Guarded stores of each live attempt, kept for its cleanup.
    attempt_stores: Mutex<HashMap<(usize, u32), StageStores>>,
}

impl Tracker for PipelineRunner {
    fn rows_of(&self, index: usize) -> u64 {
        self.rows
            .lock()
            .map(|m| m.get(&index).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn take_issued(&self) -> Vec<weir_auth::StageClaims> {
        self.issued.take()
    }
}

impl PipelineRunner {
    /// Mints this attempt's token and builds its guarded stores.
    async fn open_attempt(
        &self,
        index: usize,
        stage: &Stage,
        attempt: u32,
    ) -> Result<AttemptAccess> {
        let scope = self.scopes.get(index).ok_or_else(|| Error::Internal {
            message: format!("no compiled scope for stage #{index}"),
        })?;
        let access = self
            .security
            .stage_stores(
                &self.stores,
                &self.executor.run_id,
                &self.executor.pipeline,
                stage,
                attempt,
                scope,
            )
            .await?;
        self.issued.push(access.claims.clone());
        if let Ok(mut live) = self.attempt_stores.lock() {
            live.insert((index, attempt), access.stores.clone());
        }
        Ok(access)
    }
}

#[async_trait::async_trait]
impl StageRunner for PipelineRunner {
    type Output = StageOutput;

    async fn run(&self, index: usize, attempt: u32) -> Result<StageOutput> {
        let stage = self.executor.stage(index)?;
        tracing::info!(stage = %stage.name, attempt, "stage started");
        let access = self.open_attempt(index, stage, attempt).await?;
        let output = self.executor.execute(index, attempt, &access).await?;
        if let Ok(mut rows) = self.rows.lock() {
            rows.insert(index, output.outputs.iter().map(|o| o.rows).sum());
        }
        if let Ok(mut live) = self.attempt_stores.lock() {
            live.remove(&(index, attempt));
        }
        Ok(output)
    }

    async fn cleanup(&self, index: usize, attempt: u32) {
        // Clean up with the attempt's own guarded stores; an attempt that never
        // got a token wrote nothing.
        let stores = self
            .attempt_stores
            .lock()
            .ok()
            .and_then(|mut live| live.remove(&(index, attempt)));
        if let Some(stores) = stores {
            self.executor.discard(index, attempt, &stores).await;
        }
    }
}
