//! Runs started through the API: each runs in a background task; its
//! progress is kept as JSON lines that `GET /runs/{id}/events` replays and
//! follows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use weir_engine::record::RunRecord;
use weir_engine::{Engine, RunEvent, Security};
use weir_spec::Pipeline;

/// How long a submit waits for the engine to assign a run id.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Most events kept per run (a runaway retry loop cannot fill memory).
const MAX_EVENTS: usize = 100_000;

/// The progress log of one run.
#[derive(Debug, Default)]
pub struct RunLog {
    events: Mutex<LogState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct LogState {
    lines: Vec<Value>,
    done: bool,
}

impl RunLog {
    fn push(&self, event: Value) {
        if let Ok(mut s) = self.events.lock()
            && s.lines.len() < MAX_EVENTS
        {
            s.lines.push(event);
        }
        self.notify.notify_waiters();
    }

    fn finish(&self) {
        if let Ok(mut s) = self.events.lock() {
            s.done = true;
        }
        self.notify.notify_waiters();
    }

    /// Events from index `from`, and whether the run has finished.
    pub fn since(&self, from: usize) -> (Vec<Value>, bool) {
        match self.events.lock() {
            Ok(s) => (s.lines.get(from..).unwrap_or_default().to_vec(), s.done),
            Err(_) => (Vec::new(), true),
        }
    }

    /// Waits until something is pushed or the run finishes (or `timeout`).
    pub async fn changed(&self, from: usize, timeout: Duration) {
        let notified = self.notify.notified();
        let (new, done) = self.since(from);
        if !new.is_empty() || done {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}

/// A run this server started.
#[derive(Debug)]
pub struct ActiveRun {
    /// The pipeline's name.
    pub pipeline: String,
    /// Who submitted it.
    pub submitted_by: String,
    /// Cancels it.
    pub cancel: CancellationToken,
    /// Its progress.
    pub log: Arc<RunLog>,
    /// The final record, once finished.
    pub record: Mutex<Option<RunRecord>>,
}

/// The runs this server started, by run id.
#[derive(Debug, Default)]
pub struct RunManager {
    runs: Mutex<HashMap<String, Arc<ActiveRun>>>,
}

/// Why a run could not start.
#[derive(Debug)]
pub enum StartError {
    /// The plan check failed: the grants to add, as YAML.
    PlanDenied(Vec<String>),
    /// Anything else, with a message safe to show.
    Failed(String),
}

impl RunManager {
    /// A run by id.
    pub fn get(&self, run_id: &str) -> Option<Arc<ActiveRun>> {
        self.runs.lock().ok()?.get(run_id).cloned()
    }

    /// Starts `pipeline` in the background; returns its run id once the
    /// engine has assigned one (after the plan check passed).
    ///
    /// # Errors
    /// [`StartError`] if planning fails or the run does not start.
    pub async fn start(
        &self,
        pipeline: Arc<Pipeline>,
        security: Arc<Security>,
        engine: Engine,
        submitted_by: &str,
    ) -> Result<String, StartError> {
        if let Err(missing) = security.plan(&pipeline) {
            return Err(StartError::PlanDenied(
                missing
                    .iter()
                    .map(weir_policy::MissingGrant::yaml_snippet)
                    .collect(),
            ));
        }
        let names: Vec<String> = pipeline.stages.iter().map(|s| s.name.clone()).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let log = Arc::new(RunLog::default());
        let task = {
            let pipeline = pipeline.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { engine.run(pipeline, security, cancel, Some(tx)).await })
        };
        let run_id = match tokio::time::timeout(START_TIMEOUT, rx.recv()).await {
            Ok(Some(RunEvent::RunStarted { run_id })) => run_id,
            _ => {
                cancel.cancel();
                return Err(match task.await {
                    Ok(Err(weir_engine::Error::PlanDenied { missing })) => StartError::PlanDenied(
                        missing
                            .iter()
                            .map(weir_policy::MissingGrant::yaml_snippet)
                            .collect(),
                    ),
                    Ok(Err(e)) => StartError::Failed(e.to_string()),
                    _ => StartError::Failed("the run did not start".into()),
                });
            }
        };
        log.push(json!({"event": "run_started", "run_id": run_id}));
        let run = Arc::new(ActiveRun {
            pipeline: pipeline.name.clone(),
            submitted_by: submitted_by.to_owned(),
            cancel,
            log: log.clone(),
            record: Mutex::new(None),
        });
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(run_id.clone(), run.clone());
        }
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                log.push(describe(&event, &names));
            }
            match task.await {
                Ok(Ok(record)) => {
                    log.push(json!({
                        "event": "run_finished",
                        "status": record.status,
                    }));
                    if let Ok(mut slot) = run.record.lock() {
                        *slot = Some(record);
                    }
                }
                Ok(Err(e)) => log.push(json!({"event": "run_failed", "error": e.to_string()})),
                Err(e) => log.push(json!({"event": "run_failed", "error": e.to_string()})),
            }
            log.finish();
        });
        Ok(run_id)
    }
}

fn describe(event: &RunEvent, names: &[String]) -> Value {
    let name = |i: &usize| names.get(*i).cloned().unwrap_or_default();
    match event {
        RunEvent::RunStarted { run_id } => json!({"event": "run_started", "run_id": run_id}),
        RunEvent::StageStarted { stage, attempt } => {
            json!({"event": "stage_started", "stage": name(stage), "attempt": attempt})
        }
        RunEvent::StageRetrying {
            stage,
            attempt,
            error,
            delay,
        } => json!({
            "event": "stage_retrying",
            "stage": name(stage),
            "attempt": attempt,
            "error": error,
            "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        }),
        RunEvent::StageFinished {
            stage,
            state,
            attempts,
            elapsed,
            rows,
            error,
        } => json!({
            "event": "stage_finished",
            "stage": name(stage),
            "state": state,
            "attempts": attempts,
            "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "rows": rows,
            "error": error,
        }),
        #[allow(unreachable_patterns)]
        _ => json!({"event": "other"}),
    }
}
