//! Running a validated pipeline end to end: schedule, execute, commit, record.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;
use weir_spec::{Format, Pipeline, Stage, StageKind};

use crate::command::{self, CommandJob, DatasetRef};
use crate::dataset::{self, Manifest};
use crate::error::{Error, Result};
use crate::presign::Presigner;
use crate::record::{OutputRecord, RunRecord, RunStatus, RunStore, StageRecord, StageState};
use crate::scheduler::{End, Outcome, StageEvent, StagePolicy, StageRunner, run_dag};
use crate::security::{IssuedTokens, Security};
use crate::sql::{self, SqlInput, SqlOutput};
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
    /// Where run records live (`.weir/` by default).
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
}

/// Runs pipelines.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
}

impl Engine {
    /// An engine with `config`.
    pub fn new(config: EngineConfig) -> Self {
        Self { config }
    }

    /// Runs `pipeline` to completion (or cancel), sending progress to `events`.
    ///
    /// The returned record is also saved under the state directory.
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
        let audit = security.audit();
        let policy = format!("policies sha256:{}", security.policies().digest_hex());
        let scopes = match security.plan(&pipeline) {
            Ok(scopes) => scopes,
            Err(missing) => {
                for gap in &missing {
                    let event = audit
                        .event(&pipeline.principal, AuditAction::PlanDenied, Decision::Deny)
                        .with_resource(gap.store.clone(), gap.path.as_str())
                        .with_reason(format!("{gap}; {policy}"));
                    audit.record(event).await?;
                }
                return Err(Error::PlanDenied { missing });
            }
        };
        let stores = StoreSet::open(&pipeline)?;
        self.run_with_stores(pipeline, security, scopes, stores, cancel, events)
            .await
    }

    /// As [`Engine::run`], with stores supplied by the caller and scopes
    /// already compiled by [`Security::plan`].
    ///
    /// # Errors
    /// As [`Engine::run`].
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
        let runs = RunStore::new(&self.config.state_dir);
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
        runs.save(&record)?;
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

        let runner = Arc::new(PipelineRunner {
            pipeline: pipeline.clone(),
            stores,
            run_id,
            state_dir: self.config.state_dir.clone(),
            partitions: self.config.partitions,
            rows: Mutex::new(HashMap::new()),
            security: security.clone(),
            scopes: scopes.into_iter().map(Scope::from).collect(),
            issued: IssuedTokens::default(),
            attempt_stores: Mutex::new(HashMap::new()),
        });
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
        let forwarder = tokio::spawn(async move {
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
                                Some(format!(
                                    "skipped because stage `{}` failed",
                                    rows_seen.stage_name(b)
                                )),
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
        for claims in issued.issued.take() {
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
                error: None,
            };
            match result.outcome {
                Outcome::Succeeded(out) => {
                    rec.state = StageState::Succeeded;
                    rec.rows_written = out.outputs.iter().map(|o| o.rows).sum();
                    rec.outputs = out.outputs;
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
        runs.save(&record)?;
        let finish = audit
            .event(&pipeline.principal, AuditAction::RunFinish, Decision::None)
            .with_run(record.run_id.as_str())
            .with_reason(format!("{:?}", record.status).to_lowercase());
        audit.record(finish).await?;
        tracing::info!(run_id = %record.run_id, status = ?record.status, "run finished");
        Ok(record)
    }
}

fn waiting(name: &str) -> StageRecord {
    StageRecord {
        name: name.to_owned(),
        state: StageState::Waiting,
        attempts: 0,
        elapsed_ms: 0,
        rows_written: 0,
        outputs: Vec::new(),
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

/// Executes the stages of one pipeline run.
struct PipelineRunner {
    pipeline: Arc<Pipeline>,
    stores: StoreSet,
    run_id: String,
    /// The engine's state folder; command logs go under `runs/<run_id>/`.
    state_dir: PathBuf,
    partitions: usize,
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

type StageStores = HashMap<String, Arc<dyn ObjectStore>>;

impl PipelineRunner {
    fn stage_name(&self, index: usize) -> &str {
        self.pipeline
            .stages
            .get(index)
            .map_or("?", |s| s.name.as_str())
    }

    fn rows_of(&self, index: usize) -> u64 {
        self.rows
            .lock()
            .map(|m| m.get(&index).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn stage(&self, index: usize) -> Result<&Stage> {
        self.pipeline
            .stages
            .get(index)
            .ok_or_else(|| Error::Internal {
                message: format!("no stage #{index}"),
            })
    }

    /// The dataset's store (guarded, from `stores`) and canonical object path.
    fn locate(
        &self,
        stores: &StageStores,
        dataset: &str,
    ) -> Result<(String, Arc<dyn ObjectStore>, Path)> {
        let ds = self
            .pipeline
            .datasets
            .get(dataset)
            .ok_or_else(|| Error::Internal {
                message: format!("dataset `{dataset}` vanished after validation"),
            })?;
        let path = Path::parse(&ds.path).map_err(|e| Error::Internal {
            message: format!("dataset `{dataset}` path: {e}"),
        })?;
        let store = stores
            .get(&ds.store)
            .cloned()
            .ok_or_else(|| Error::Internal {
                message: format!("store `{}` is not in the stage's scope", ds.store),
            })?;
        Ok((ds.store.clone(), store, path))
    }

    /// The declared format of `dataset`.
    fn format_of(&self, dataset: &str) -> Result<Format> {
        self.pipeline
            .datasets
            .get(dataset)
            .map(|d| d.format)
            .ok_or_else(|| Error::Internal {
                message: format!("dataset `{dataset}` vanished"),
            })
    }

    /// Mints this attempt's token and builds its guarded stores.
    async fn open_attempt(
        &self,
        index: usize,
        stage: &Stage,
        attempt: u32,
    ) -> Result<(StageStores, HashMap<String, Presigner>)> {
        let scope = self.scopes.get(index).ok_or_else(|| Error::Internal {
            message: format!("no compiled scope for stage #{index}"),
        })?;
        let access = self
            .security
            .stage_stores(
                &self.stores,
                &self.run_id,
                &self.pipeline,
                stage,
                attempt,
                scope,
            )
            .await?;
        self.issued.push(access.claims);
        if let Ok(mut live) = self.attempt_stores.lock() {
            live.insert((index, attempt), access.stores.clone());
        }
        Ok((access.stores, access.presigners))
    }

    async fn run_sql(
        &self,
        stores: &StageStores,
        stage: &Stage,
        sql_text: &str,
        attempt: u32,
    ) -> Result<StageOutput> {
        let ctx = sql::stage_context(stores.clone(), self.partitions)?;
        for input in &stage.inputs {
            let (store_name, store, path) = self.locate(stores, input)?;
            let format = self
                .pipeline
                .datasets
                .get(input)
                .map(|d| d.format)
                .ok_or_else(|| Error::Internal {
                    message: format!("dataset `{input}` vanished"),
                })?;
            let location = dataset::resolve_read(store.as_ref(), input, &path).await?;
            sql::register_input(
                &ctx,
                &SqlInput {
                    name: input.clone(),
                    store: store_name,
                    location,
                    format,
                },
            )
            .await?;
        }
        let output = stage.outputs.first().ok_or_else(|| Error::Internal {
            message: "sql stage without output".into(),
        })?;
        let (store_name, store, path) = self.locate(stores, output)?;
        let format = self
            .pipeline
            .datasets
            .get(output)
            .map(|d| d.format)
            .ok_or_else(|| Error::Internal {
                message: format!("dataset `{output}` vanished"),
            })?;
        let version = dataset::version_name(&self.run_id, attempt);
        let target = SqlOutput {
            store: store_name,
            prefix: path.clone().join(version.as_str()),
            format,
        };
        let files = sql::run_query(&ctx, sql_text, store.clone(), &target).await?;
        let rows = files.iter().map(|f| f.rows).sum();
        let manifest = Manifest {
            format_version: 1,
            dataset: output.clone(),
            version: version.clone(),
            files,
            rows,
            run_id: self.run_id.clone(),
            stage: stage.name.clone(),
            attempt,
            committed_at: Utc::now(),
            previous: Vec::new(),
        };
        dataset::commit(store.as_ref(), &path, manifest).await?;
        Ok(StageOutput {
            outputs: vec![OutputRecord {
                dataset: output.clone(),
                version,
                rows,
            }],
        })
    }
}

#[async_trait::async_trait]
impl StageRunner for PipelineRunner {
    type Output = StageOutput;

    async fn run(&self, index: usize, attempt: u32) -> Result<StageOutput> {
        let stage = self.stage(index)?;
        tracing::info!(stage = %stage.name, attempt, "stage started");
        let (stores, presigners) = self.open_attempt(index, stage, attempt).await?;
        let output = match &stage.kind {
            StageKind::Sql { sql } => self.run_sql(&stores, stage, sql, attempt).await?,
            StageKind::Command {
                argv,
                shell,
                workdir,
                env,
                access,
            } => {
                let datasets = |names: &[String]| -> Result<Vec<DatasetRef>> {
                    names
                        .iter()
                        .map(|name| {
                            let (store_name, store, path) = self.locate(&stores, name)?;
                            Ok(DatasetRef {
                                name: name.clone(),
                                store,
                                path,
                                format: self.format_of(name)?,
                                presigner: presigners.get(&store_name).cloned(),
                            })
                        })
                        .collect()
                };
                let job = CommandJob {
                    run_id: &self.run_id,
                    stage: &stage.name,
                    attempt,
                    argv,
                    shell: *shell,
                    workdir: workdir.as_deref(),
                    env,
                    access: *access,
                    inputs: datasets(&stage.inputs)?,
                    outputs: datasets(&stage.outputs)?,
                    log_path: self
                        .state_dir
                        .join("runs")
                        .join(&self.run_id)
                        .join(format!("{}-a{attempt}.log", stage.name)),
                };
                StageOutput {
                    outputs: command::run(job).await?,
                }
            }
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::Internal {
                    message: format!("stage kind `{}` has no operator", other.name()),
                });
            }
        };
        if let Ok(mut rows) = self.rows.lock() {
            rows.insert(index, output.outputs.iter().map(|o| o.rows).sum());
        }
        if let Ok(mut live) = self.attempt_stores.lock() {
            live.remove(&(index, attempt));
        }
        Ok(output)
    }

    async fn cleanup(&self, index: usize, attempt: u32) {
        let Ok(stage) = self.stage(index) else { return };
        // Clean up with the attempt's own guarded stores; an attempt that never
        // got a token wrote nothing.
        let stores = self
            .attempt_stores
            .lock()
            .ok()
            .and_then(|mut live| live.remove(&(index, attempt)));
        let Some(stores) = stores else { return };
        let version = dataset::version_name(&self.run_id, attempt);
        for output in &stage.outputs {
            let Ok((_, store, path)) = self.locate(&stores, output) else {
                continue;
            };
            let prefix = path.join(version.as_str());
            if let Err(e) = dataset::delete_prefix(store.as_ref(), &prefix).await {
                tracing::warn!(stage = %stage.name, error = %e, "could not remove a failed attempt's output");
            }
        }
    }
}
