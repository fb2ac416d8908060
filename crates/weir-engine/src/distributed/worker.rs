//! `weir worker`: takes stage tasks from the queue and runs them.
//!
//! # Security
//! - A worker holds the stage tokens' public keys and the HMAC envelope
//!   keys, nothing else: it cannot mint a token.
//! - Every delivery is verified as raw bytes (MAC, type, time window, and a
//!   nonce never seen before) before its body is decoded; a refused
//!   envelope is acknowledged (dropped) and audited with the reason.
//! - The stage token inside is verified with the public keys, and its
//!   claims must name the task's run, stage and attempt. The stage then
//!   reaches data only through guarded stores bound to those claims, and its
//!   commit is fenced by the attempt number.
//! - A redelivered task (its first worker went silent) is never run: the
//!   worker answers `lost` and the dispatcher issues a fresh attempt.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use weir_audit::{Action as AuditAction, Decision};
use weir_auth::envelope::{EnvelopeError, EnvelopeType};
use weir_auth::{Clock, StageClaims, StageKeySet, StageVerifier, SystemClock, VerifierConfig};
use weir_queue::{Delivery, WorkQueue};

use super::ack_batch::{AckHandle, Acker};
use super::broker::{Broker, BrokerFence, queue_error};
use super::dispatcher::Envelopes;
use super::protocol::{self, PROTOCOL_VERSION, ResultBody, TaskBody, TaskOutcome};
use super::token_batch::{SharedVerifier, TokenBatcher};
use crate::audit::Audit;
use crate::engine::StageOutput;
use crate::error::{Error, Result};
use crate::executor::StageExecutor;
use crate::security::{AUDIENCE, AttemptAccess, ISSUER, bind_stores};
use crate::store::StoreSet;

/// How often a worker re-reads the stage public keys (rotation).
const KEY_RELOAD: Duration = Duration::from_secs(30);

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's consumer name, unique among live workers.
    pub consumer: String,
    /// Stages run at once.
    pub concurrency: usize,
    /// Holds the public stage keys, HMAC keys and command-stage logs.
    pub state_dir: PathBuf,
    /// DataFusion partitions per stage.
    pub partitions: usize,
    /// Longest wait for new tasks in one receive call.
    pub poll: Duration,
    /// Heartbeat period: a running task's idle time is reset this often, so
    /// it is not redelivered while its worker lives. Keep it well under the
    /// queue's visibility timeout.
    pub heartbeat: Duration,
}

/// What a worker does with a verified task; the real one runs the stage,
/// benchmarks plug in a no-op.
#[async_trait::async_trait]
pub trait StageOperator: Send + Sync + 'static {
    /// Runs the stage of `task`, whose token verified into `claims`.
    ///
    /// # Errors
    /// Whatever the stage reports.
    async fn run(&self, task: &TaskBody, claims: &StageClaims) -> Result<StageOutput>;
}

/// Runs stages of validated pipelines through guarded stores.
pub struct PipelineOperator {
    state_dir: PathBuf,
    partitions: usize,
    audit: Audit,
    broker: Arc<dyn Broker>,
}

impl PipelineOperator {
    /// An operator recording every data access to `audit`.
    pub fn new(state_dir: &Path, partitions: usize, audit: Audit, broker: Arc<dyn Broker>) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            partitions,
            audit,
            broker,
        }
    }
}

#[async_trait::async_trait]
impl StageOperator for PipelineOperator {
    async fn run(&self, task: &TaskBody, claims: &StageClaims) -> Result<StageOutput> {
        let file = Path::new(&task.pipeline_file);
        let base = file.parent().unwrap_or(Path::new("/"));
        let pipeline = weir_spec::load_str(&task.pipeline_file, &task.pipeline_yaml, base)
            .map_err(|e| Error::Protocol {
                message: format!("the task's pipeline is not valid: {e}"),
            })?
            .pipeline;
        if claims.sub != pipeline.principal {
            return Err(Error::Protocol {
                message: "the stage token's principal is not the pipeline's".into(),
            });
        }
        let index = pipeline
            .stages
            .iter()
            .position(|s| s.name == task.stage)
            .ok_or_else(|| Error::Protocol {
                message: format!("the pipeline has no stage `{}`", task.stage),
            })?;
        let timeout = pipeline
            .stages
            .get(index)
            .map_or(Duration::from_secs(3600), |s| s.timeout);
        let stores = StoreSet::open(&pipeline)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (guarded, presigners) =
            bind_stores(&stores, claims, &clock, &self.audit.decision_sink())?;
        let executor = StageExecutor {
            pipeline: Arc::new(pipeline),
            run_id: task.run_id.clone(),
            state_dir: self.state_dir.clone(),
            partitions: self.partitions,
            fence: Arc::new(BrokerFence {
                fences: self.broker.fences(),
            }),
            audit: self.audit.clone(),
            create_mask_key: false,
        };
        let access = AttemptAccess {
            claims: claims.clone(),
            stores: guarded,
            presigners,
        };
        let ran = tokio::time::timeout(timeout, executor.execute(index, task.attempt, &access))
            .await
            .unwrap_or(Err(Error::Timeout { after: timeout }));
        if ran.is_err() {
            executor.discard(index, task.attempt, &access.stores).await;
        }
        ran
    }
}

/// Takes tasks from a broker's queue and runs them.
pub struct Worker {
    broker: Arc<dyn Broker>,
    envelopes: Envelopes,
    verifier: SharedVerifier,
    audit: Audit,
    config: WorkerConfig,
    operator: Arc<dyn StageOperator>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.config.consumer)
            .finish_non_exhaustive()
    }
}

/// A stage verifier from the public keys under `state_dir`.
fn load_verifier(state_dir: &Path) -> Result<StageVerifier> {
    StageKeySet::public_verifier(
        state_dir,
        SystemClock.now(),
        VerifierConfig::new(ISSUER, AUDIENCE),
    )
    .map_err(Error::security)
}

impl Worker {
    /// A worker over `broker`, verifying with the keys under
    /// `config.state_dir` and running verified stages with `operator`.
    ///
    /// # Errors
    /// [`Error::Security`] if the stage public keys or HMAC keys are missing.
    pub fn new(
        broker: Arc<dyn Broker>,
        audit: Audit,
        config: WorkerConfig,
        operator: Arc<dyn StageOperator>,
    ) -> Result<Self> {
        let verifier = load_verifier(&config.state_dir)?;
        let envelopes = Envelopes::open_existing(&config.state_dir, broker.as_ref())?;
        Ok(Self {
            broker,
            envelopes,
            verifier: Arc::new(RwLock::new(Arc::new(verifier))),
            audit,
            config,
            operator,
        })
    }

    /// Runs until `stop` is cancelled, then lets running stages finish.
    ///
    /// # Errors
    /// Only if the queue stays unreachable; single tasks never stop the loop.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> Result<()> {
        let tasks = self.broker.tasks();
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let reloader = tokio::spawn(reload_keys(self.clone(), stop.clone()));
        // Tokens of tasks taken together are verified together.
        let batcher = Arc::new(TokenBatcher::start(self.verifier.clone()));
        // Acknowledgements of handled tasks go out together.
        let acker = Acker::start(tasks.clone());
        tracing::info!(consumer = %self.config.consumer, concurrency = self.config.concurrency, "worker started");
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    () = stop.cancelled() => break,
                    permit = slots.clone().acquire_owned() => drop(permit),
                }
                continue;
            }
            let got = tokio::select! {
                () = stop.cancelled() => break,
                got = tasks.receive(&self.config.consumer, free, self.config.poll) => got,
            };
            let deliveries = match got {
                Ok(d) => {
                    failures = 0;
                    d
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "receiving tasks failed; retrying");
                    let backoff = Duration::from_millis(200u64 << failures.min(5));
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            for delivery in deliveries {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let worker = self.clone();
                let tasks = tasks.clone();
                let batcher = batcher.clone();
                let ack = acker.handle();
                tokio::spawn(async move {
                    worker.handle(&tasks, &batcher, &ack, delivery).await;
                    drop(permit);
                });
            }
        }
        // Wait for running stages.
        let _ = slots
            .acquire_many(u32::try_from(self.config.concurrency.max(1)).unwrap_or(1))
            .await;
        reloader.abort();
        acker.finish().await;
        if let Err(e) = self.audit.checkpoint().await {
            tracing::warn!(error = %e, "could not sign an audit checkpoint as the worker stopped");
        }
        tracing::info!(consumer = %self.config.consumer, "worker stopped");
        Ok(())
    }

    /// Handles one delivery from start to acknowledgement.
    async fn handle(
        &self,
        tasks: &Arc<dyn WorkQueue>,
        batcher: &TokenBatcher,
        ack: &AckHandle,
        delivery: Delivery,
    ) {
        let verdict = if delivery.deliveries > 1 {
            self.answer_lost(&delivery).await
        } else {
            match self.accept(&delivery).await {
                Verdict::Run(task) => {
                    let heartbeat = tokio::spawn(heartbeat(
                        tasks.clone(),
                        self.config.consumer.clone(),
                        delivery.id,
                        self.config.heartbeat,
                    ));
                    let outcome = self.execute(batcher, &task).await;
                    heartbeat.abort();
                    self.reply(&task, outcome).await;
                    Verdict::Done
                }
                other => other,
            }
        };
        if matches!(verdict, Verdict::Leave) {
            // Signed with a key this worker does not hold: a worker with the
            // right keys takes it after the visibility timeout; one nobody
            // can open ends in the dead letters. Never silently dropped.
            return;
        }
        ack.ack(delivery.id);
    }

    /// Opens and decodes a first delivery; refusals are audited.
    async fn accept(&self, delivery: &Delivery) -> Verdict {
        let opened = match self
            .envelopes
            .opener
            .open(&delivery.payload, EnvelopeType::Task)
            .await
        {
            Ok(opened) => opened,
            Err(e) => return self.refused(&e).await,
        };
        match protocol::decode_task(&opened.body) {
            Ok(task) => Verdict::Run(task),
            Err(e) => {
                self.refuse("bad_body", &e.to_string()).await;
                Verdict::Done
            }
        }
    }

    /// Audits a refused envelope and decides its fate: dropped, unless this
    /// worker merely lacks the key it was signed with (or cannot read its
    /// own key file), which is this worker's fault, not the task's.
    async fn refused(&self, e: &EnvelopeError) -> Verdict {
        self.refuse(e.reason(), &e.to_string()).await;
        if matches!(e, EnvelopeError::UnknownKid | EnvelopeError::Keys(_)) {
            tracing::error!(
                "a task is signed with an envelope key this worker does not have; \
                 leaving it for another worker (check this worker's keys/hmac files)"
            );
            Verdict::Leave
        } else {
            Verdict::Done
        }
    }

    /// Verifies the task's token and runs its stage.
    async fn execute(&self, batcher: &TokenBatcher, task: &TaskBody) -> TaskOutcome {
        let claims = match verify_token(batcher, task).await {
            Ok(claims) => claims,
            Err(e) => {
                self.refuse("bad_token", &e.to_string()).await;
                return TaskOutcome::Failed {
                    error: protocol::cut_error(format!("the worker refused the task: {e}")),
                };
            }
        };
        let accepted = self
            .audit
            .event(&claims.sub, AuditAction::TaskReceive, Decision::Allow)
            .with_stage(&claims.run, &claims.stage, claims.attempt)
            .with_token(self.audit.token(&claims.jti))
            .with_reason(format!("worker {}", self.config.consumer));
        if let Err(e) = self.audit.record(accepted).await {
            // No record, no run (fail closed, as for every access).
            return TaskOutcome::Failed {
                error: protocol::cut_error(e.to_string()),
            };
        }
        match self.operator.run(task, &claims).await {
            Ok(output) => TaskOutcome::Succeeded {
                outputs: output.outputs,
                checks: output.checks,
            },
            Err(e) => TaskOutcome::Failed {
                error: protocol::cut_error(e.to_string()),
            },
        }
    }

    /// Answers a redelivered task with `lost` without running it.
    async fn answer_lost(&self, delivery: &Delivery) -> Verdict {
        let opened = match self
            .envelopes
            .opener
            .open_redelivered(&delivery.payload, EnvelopeType::Task)
            .await
        {
            Ok(opened) => opened,
            Err(e) => return self.refused(&e).await,
        };
        match protocol::decode_task(&opened.body) {
            Ok(task) => {
                tracing::info!(stage = %task.stage, attempt = task.attempt, deliveries = delivery.deliveries, "redelivered task answered `lost`");
                self.reply(
                    &task,
                    TaskOutcome::Lost {
                        deliveries: delivery.deliveries,
                    },
                )
                .await;
            }
            Err(e) => self.refuse("bad_body", &e.to_string()).await,
        }
        Verdict::Done
    }

    /// Seals `outcome` and sends it to the task's reply queue.
    async fn reply(&self, task: &TaskBody, outcome: TaskOutcome) {
        let result = ResultBody {
            v: PROTOCOL_VERSION,
            run_id: task.run_id.clone(),
            stage: task.stage.clone(),
            attempt: task.attempt,
            worker: self.config.consumer.clone(),
            outcome,
        };
        let sent = async {
            let body = protocol::encode(&result)?;
            let sealed = self
                .envelopes
                .sealer
                .seal(EnvelopeType::Result, &body, Duration::from_secs(3600))
                .map_err(Error::security)?;
            let queue = self.broker.queue(&task.reply_to).await?;
            queue.enqueue(sealed.into()).await.map_err(queue_error)?;
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = sent {
            tracing::warn!(stage = %task.stage, attempt = task.attempt, error = %e, "could not send a result");
        }
    }

    /// Records a refused delivery (never its bytes).
    async fn refuse(&self, reason: &str, detail: &str) {
        tracing::warn!(reason, "task refused");
        let event = self
            .audit
            .event("unknown", AuditAction::TaskReceive, Decision::Deny)
            .with_reason(format!(
                "{reason}: {}; worker {}",
                protocol::cut_error(detail.to_owned()),
                self.config.consumer
            ));
        if let Err(e) = self.audit.record(event).await {
            tracing::error!(error = %e, "could not record a refused task");
        }
    }
}

/// What to do with a delivery.
enum Verdict {
    /// Verified: run it.
    Run(TaskBody),
    /// Handled (answered, or refused for good): acknowledge it.
    Done,
    /// Not for this worker (it lacks the key): leave it for another.
    Leave,
}

/// The token's claims, if it verifies and names this very task.
async fn verify_token(batcher: &TokenBatcher, task: &TaskBody) -> Result<StageClaims> {
    let claims = batcher.verify(&task.token).await?;
    if claims.run != task.run_id || claims.stage != task.stage || claims.attempt != task.attempt {
        return Err(Error::Protocol {
            message: "the stage token names another run, stage or attempt".into(),
        });
    }
    Ok(claims)
}

/// Resets the idle time of a running task until aborted.
async fn heartbeat(
    tasks: Arc<dyn WorkQueue>,
    consumer: String,
    id: weir_queue::TaskId,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = tasks.extend(&consumer, &id).await {
            tracing::warn!(error = %e, "task heartbeat failed");
        }
    }
}

/// Re-reads the stage public keys now and then (key rotation).
async fn reload_keys(worker: Arc<Worker>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(KEY_RELOAD) => {}
        }
        match load_verifier(&worker.config.state_dir) {
            Ok(v) => {
                if let Ok(mut slot) = worker.verifier.write() {
                    *slot = Arc::new(v);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not reload the stage public keys"),
        }
    }
}
