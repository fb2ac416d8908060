//! The dispatcher: runs a pipeline's DAG here and its stages on workers.
//!
//! For every attempt it advances the stage's fence to a fresh attempt
//! number, mints a token for exactly the stage's scope, seals the task in
//! an envelope and enqueues it; a listener opens the run's reply queue and
//! hands each verified result to the attempt waiting for it.
//!
//! # Redelivery
//! When a worker dies mid-stage the queue redelivers its task after the
//! visibility timeout. The worker that receives the copy does not run it; it
//! answers `lost`, and the dispatcher supersedes the attempt (its fence moves
//! on, so the dead attempt can never commit) and dispatches a fresh one with
//! a new token, a new envelope and a new nonce. This is "re-sign on
//! reclaim": replay and expiry checks never need a window wide enough for a
//! redelivered copy, and an attempt number always names one execution.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weir_auth::envelope::{EnvelopeKeys, EnvelopeType, HmacKeySet, Opener, Sealer};
use weir_auth::{Clock, Scope, StageClaims, SystemClock};
use weir_queue::WorkQueue;
use weir_spec::Pipeline;

use super::broker::{
    Broker, BrokerNonces, TASKS, fence_key, fence_ttl, queue_error, results_queue,
};
use super::protocol::{self, PROTOCOL_VERSION, ResultBody, TaskBody, TaskOutcome};
use crate::engine::{StageOutput, Tracker};
use crate::error::{Error, Result};
use crate::scheduler::StageRunner;
use crate::security::{IssuedTokens, Security, TOKEN_MARGIN};

/// How many times one attempt may be lost (its worker died) before the
/// attempt counts as failed.
pub const MAX_LOST: u32 = 5;

/// The envelope sealer and opener of one process.
pub struct Envelopes {
    /// Seals outgoing messages.
    pub sealer: Arc<Sealer>,
    /// Opens incoming ones (replay cache in the broker).
    pub opener: Arc<Opener>,
}

impl std::fmt::Debug for Envelopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelopes").finish_non_exhaustive()
    }
}

impl Envelopes {
    /// The dispatcher's envelopes: HMAC keys under `state_dir`, created
    /// (0600) on first use.
    ///
    /// # Errors
    /// [`Error::Security`] if the key store is unreadable or insecure.
    pub fn open(state_dir: &Path, broker: &dyn Broker) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let set = HmacKeySet::open(state_dir, clock.now()).map_err(Error::security)?;
        Ok(Self::with_keys(
            Arc::new(EnvelopeKeys::from_set(set)),
            clock,
            broker,
        ))
    }

    /// A worker's envelopes: the HMAC keys must already exist under
    /// `state_dir` (a worker never creates one).
    ///
    /// # Errors
    /// [`Error::Security`] naming the missing or unreadable key store.
    pub fn open_existing(state_dir: &Path, broker: &dyn Broker) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let keys = EnvelopeKeys::load(state_dir, clock.now()).map_err(Error::security)?;
        Ok(Self::with_keys(Arc::new(keys), clock, broker))
    }

    fn with_keys(keys: Arc<EnvelopeKeys>, clock: Arc<dyn Clock>, broker: &dyn Broker) -> Self {
        let nonces = Arc::new(BrokerNonces {
            once: broker.once(),
        });
        Self {
            sealer: Arc::new(Sealer::new(keys.clone(), clock.clone())),
            opener: Arc::new(Opener::new(keys, clock, nonces)),
        }
    }
}

/// What a remote run needs.
pub(crate) struct RemoteRun {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) pipeline_yaml: String,
    pub(crate) run_id: String,
    pub(crate) security: Arc<Security>,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) envelopes: Envelopes,
}

type Waiters = Arc<Mutex<HashMap<(String, u32), oneshot::Sender<ResultBody>>>>;

/// Runs stage attempts on workers.
pub(crate) struct RemoteRunner {
    run: RemoteRun,
    pipeline_file: String,
    reply_to: String,
    tasks: Arc<dyn WorkQueue>,
    replies: Arc<dyn WorkQueue>,
    waiters: Waiters,
    /// The newest attempt number dispatched per stage index.
    dispatched: Mutex<HashMap<usize, u32>>,
    rows: Mutex<HashMap<usize, u64>>,
    issued: IssuedTokens,
    stop: CancellationToken,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl RemoteRunner {
    /// Opens the run's reply queue and starts listening on it.
    pub(crate) async fn start(run: RemoteRun) -> Result<Self> {
        let reply_to = results_queue(&run.run_id);
        let replies = run.broker.queue(&reply_to).await?;
        let tasks = run.broker.tasks();
        let pipeline_file = std::path::absolute(&run.pipeline.source)
            .unwrap_or_else(|_| run.pipeline.source.clone())
            .display()
            .to_string();
        let waiters: Waiters = Arc::default();
        let stop = CancellationToken::new();
        let listener = tokio::spawn(listen(
            replies.clone(),
            run.envelopes.opener.clone(),
            run.run_id.clone(),
            waiters.clone(),
            stop.clone(),
        ));
        tracing::debug!(queue = TASKS, reply_to = %reply_to, "dispatcher started");
        Ok(Self {
            run,
            pipeline_file,
            reply_to,
            tasks,
            replies,
            waiters,
            dispatched: Mutex::default(),
            rows: Mutex::default(),
            issued: IssuedTokens::default(),
            stop,
            listener: Mutex::new(Some(listener)),
        })
    }

    /// Stops the listener and removes the run's reply queue.
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        let listener = self.listener.lock().ok().and_then(|mut l| l.take());
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        if let Err(e) = self.replies.delete().await {
            tracing::warn!(error = %e, "could not remove the run's reply queue");
        }
    }

    /// The next attempt number of stage `index`.
    fn next_attempt(&self, index: usize) -> u32 {
        let Ok(mut dispatched) = self.dispatched.lock() else {
            return 1;
        };
        let n = dispatched.entry(index).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Seals and enqueues attempt `attempt` of stage `index`; returns the
    /// receiver of its result.
    async fn dispatch(&self, index: usize, attempt: u32) -> Result<oneshot::Receiver<ResultBody>> {
        let run = &self.run;
        let stage = run
            .pipeline
            .stages
            .get(index)
            .ok_or_else(|| Error::Internal {
                message: format!("no stage #{index}"),
            })?;
        let scope = run.scopes.get(index).ok_or_else(|| Error::Internal {
            message: format!("no compiled scope for stage #{index}"),
        })?;
        // Fence first: from now on no older attempt of this stage can commit.
        run.broker
            .fences()
            .advance(
                &fence_key(&run.run_id, &stage.name),
                u64::from(attempt),
                fence_ttl(stage.timeout),
            )
            .await
            .map_err(queue_error)?;
        let (token, claims) = run
            .security
            .mint_attempt(&run.run_id, &run.pipeline, stage, attempt, scope)
            .await?;
        self.issued.push(claims);
        let body = TaskBody {
            v: PROTOCOL_VERSION,
            run_id: run.run_id.clone(),
            pipeline_file: self.pipeline_file.clone(),
            pipeline_yaml: run.pipeline_yaml.clone(),
            stage: stage.name.clone(),
            attempt,
            token: token.expose().to_owned(),
            reply_to: self.reply_to.clone(),
        };
        let sealed = run
            .envelopes
            .sealer
            .seal(
                EnvelopeType::Task,
                &protocol::encode(&body)?,
                stage.timeout.saturating_add(TOKEN_MARGIN),
            )
            .map_err(Error::security)?;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.insert((stage.name.clone(), attempt), tx);
        }
        self.tasks
            .enqueue(sealed.into())
            .await
            .map_err(queue_error)?;
        Ok(rx)
    }

    /// Moves stage `index`'s fence past its newest attempt, so that attempt
    /// (if a worker still runs it) can never commit.
    async fn supersede(&self, index: usize) {
        let Some(stage) = self.run.pipeline.stages.get(index) else {
            return;
        };
        let newest = self
            .dispatched
            .lock()
            .ok()
            .and_then(|d| d.get(&index).copied())
            .unwrap_or(0);
        let key = fence_key(&self.run.run_id, &stage.name);
        let next = u64::from(newest).saturating_add(1);
        if let Err(e) = self
            .run
            .broker
            .fences()
            .advance(&key, next, fence_ttl(stage.timeout))
            .await
        {
            tracing::warn!(stage = %stage.name, error = %e, "could not advance a commit fence");
        }
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(&(stage.name.clone(), newest));
        }
    }
}

impl Tracker for RemoteRunner {
    fn rows_of(&self, index: usize) -> u64 {
        self.rows
            .lock()
            .map(|m| m.get(&index).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn take_issued(&self) -> Vec<StageClaims> {
        self.issued.take()
    }
}

#[async_trait::async_trait]
impl StageRunner for RemoteRunner {
    type Output = StageOutput;

    async fn run(&self, index: usize, _attempt: u32) -> Result<StageOutput> {
        let mut lost = 0;
        loop {
            let attempt = self.next_attempt(index);
            let rx = self.dispatch(index, attempt).await?;
            let result = rx.await.map_err(|_| Error::Queue {
                message: "the result listener stopped".into(),
            })?;
            match result.outcome {
                TaskOutcome::Succeeded { outputs, checks } => {
                    if let Ok(mut rows) = self.rows.lock() {
                        rows.insert(index, outputs.iter().map(|o| o.rows).sum());
                    }
                    return Ok(StageOutput { outputs, checks });
                }
                TaskOutcome::Failed { error } => {
                    return Err(Error::Remote {
                        worker: result.worker,
                        message: error,
                    });
                }
                TaskOutcome::Lost { deliveries } => {
                    lost += 1;
                    tracing::warn!(
                        stage = %result.stage,
                        attempt,
                        deliveries,
                        "a worker went silent; dispatching a fresh attempt"
                    );
                    self.supersede(index).await;
                    if lost >= MAX_LOST {
                        return Err(Error::Remote {
                            worker: result.worker,
                            message: format!(
                                "the stage was lost {lost} times (its workers died or went silent)"
                            ),
                        });
                    }
                }
            }
        }
    }

    async fn cleanup(&self, index: usize, _attempt: u32) {
        // A timed-out or cancelled attempt may still be running on a worker:
        // fence it off. The worker removes its own staged files when its
        // commit is refused.
        self.supersede(index).await;
    }
}

/// Receives verified results for run `run_id` and wakes their waiters.
async fn listen(
    replies: Arc<dyn WorkQueue>,
    opener: Arc<Opener>,
    run_id: String,
    waiters: Waiters,
    stop: CancellationToken,
) {
    const WAIT: std::time::Duration = std::time::Duration::from_millis(500);
    while !stop.is_cancelled() {
        let deliveries = tokio::select! {
            () = stop.cancelled() => return,
            got = replies.receive("dispatcher", 64, WAIT) => got,
        };
        let deliveries = match deliveries {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "reading results failed; retrying");
                tokio::time::sleep(WAIT).await;
                continue;
            }
        };
        // Open every result of the batch at once: each claims its nonce in
        // Redis, and concurrent claims share round trips on the multiplexed
        // connection instead of waiting one after another.
        let opened = futures::future::join_all(
            deliveries
                .iter()
                .map(|d| opener.open(&d.payload, EnvelopeType::Result)),
        )
        .await;
        for opened in opened {
            match opened {
                Ok(opened) => match protocol::decode_result(&opened.body) {
                    Ok(result) if result.run_id == run_id => {
                        let waiter = waiters
                            .lock()
                            .ok()
                            .and_then(|mut w| w.remove(&(result.stage.clone(), result.attempt)));
                        match waiter {
                            Some(tx) => {
                                let _ = tx.send(result);
                            }
                            None => tracing::debug!(
                                stage = %result.stage,
                                attempt = result.attempt,
                                "result for a superseded attempt ignored"
                            ),
                        }
                    }
                    Ok(_) => tracing::warn!("a result for another run was ignored"),
                    Err(e) => tracing::warn!(error = %e, "an undecodable result was ignored"),
                },
                Err(e) => {
                    tracing::warn!(reason = e.reason(), "a result envelope was refused");
                }
            }
        }
        // Every result of the batch has been handled (or refused): one
        // acknowledgement for all of them.
        let ids: Vec<_> = deliveries.iter().map(|d| d.id).collect();
        if let Err(e) = replies.ack_many(&ids).await {
            tracing::warn!(error = %e, "could not acknowledge results");
        }
    }
}
