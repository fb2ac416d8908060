//! The DAG scheduler: runs ready stages concurrently, retries, times out,
//! skips the dependents of a failed stage and lets unrelated branches finish.
//!
//! It knows nothing about data: a [`StageRunner`] does the work, so the same
//! scheduler drives SQL stages, remote workers, and no-op stages in benchmarks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_spec::Dag;

use crate::error::{Error, humantime};

/// Per-stage limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagePolicy {
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Wall-clock limit of one attempt.
    pub timeout: Duration,
}

/// Does the work of one stage attempt.
///
/// # Contract
/// `run` either succeeds with the stage's output or fails with an error that
/// names what went wrong. `cleanup` is called after every attempt that did
/// not succeed (failed, timed out or cancelled), so the runner can remove
/// anything the attempt staged; it must be idempotent.
#[async_trait::async_trait]
pub trait StageRunner: Send + Sync + 'static {
    /// What a successful stage produces (row counts, say).
    type Output: Send + 'static;
    /// Runs attempt `attempt` (1-based) of stage `stage`.
    async fn run(&self, stage: usize, attempt: u32) -> Result<Self::Output, Error>;
    /// Removes whatever a failed attempt left behind.
    async fn cleanup(&self, stage: usize, attempt: u32);
}

/// Something that happened to a stage, for progress displays.
#[derive(Debug)]
pub enum StageEvent {
    /// An attempt started.
    Started {
        /// Stage index.
        stage: usize,
        /// 1-based attempt.
        attempt: u32,
    },
    /// An attempt failed and another will follow after `delay`.
    Retrying {
        /// Stage index.
        stage: usize,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        error: String,
        /// Wait before the next attempt.
        delay: Duration,
    },
    /// A stage reached its final state.
    Finished {
        /// Stage index.
        stage: usize,
        /// Final state.
        end: End,
        /// Attempts made.
        attempts: u32,
        /// Time from first start to end.
        elapsed: Duration,
    },
}

/// A stage's final state, without its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Succeeded.
    Succeeded,
    /// Failed, with the error message.
    Failed(String),
    /// Skipped because this stage failed.
    Skipped(usize),
    /// Cancelled.
    Cancelled,
}

/// How a stage ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It succeeded.
    Succeeded(T),
    /// Its last attempt failed.
    Failed(Error),
    /// A stage it depends on failed, so it never ran.
    Skipped {
        /// The stage whose failure caused the skip.
        because: usize,
    },
    /// The run was cancelled before or while it ran.
    Cancelled,
}

/// The result of one stage.
#[derive(Debug)]
pub struct StageResult<T> {
    /// How it ended.
    pub outcome: Outcome<T>,
    /// Attempts made.
    pub attempts: u32,
    /// Time from first start to end (zero if it never ran).
    pub elapsed: Duration,
}

/// Backoff before retry `n` (1-based): 0.5 s doubling, capped at 30 s.
pub fn backoff(n: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << n.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(30_000))
}

/// Runs every stage of `dag` with `runner`, at most `concurrency` at once.
///
/// Returns one result per stage, indexed like the DAG's stages.
pub async fn run_dag<R: StageRunner>(
    dag: &Dag,
    policies: &[StagePolicy],
    concurrency: usize,
    runner: Arc<R>,
    cancel: CancellationToken,
    events: Option<UnboundedSender<StageEvent>>,
) -> Vec<StageResult<R::Output>> {
    let n = dag.len();
    let mut results: Vec<Option<StageResult<R::Output>>> = (0..n).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..n).map(|i| dag.dependencies(i).len()).collect();
    let dependents: Vec<Vec<usize>> = (0..n).map(|i| dag.dependents(i)).collect();
    let mut ready: VecDeque<usize> = dag
        .order()
        .iter()
        .copied()
        .filter(|i| pending.get(*i) == Some(&0))
        .collect();
    let mut running = JoinSet::new();
    let concurrency = concurrency.max(1);

    loop {
        while running.len() < concurrency && !cancel.is_cancelled() {
            let Some(stage) = ready.pop_front() else {
                break;
            };
            let policy = policies.get(stage).copied().unwrap_or(StagePolicy {
                retries: 0,
                timeout: Duration::from_secs(3600),
            });
            running.spawn(attempt_loop(
                stage,
                policy,
                runner.clone(),
                cancel.clone(),
                events.clone(),
            ));
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (stage, result) = match joined {
            Ok(done) => done,
            Err(join_error) => {
                // A panicking runner is a bug; surface it as an internal error on
                // no particular stage and stop scheduling new work.
                tracing::error!(error = %join_error, "stage task panicked");
                cancel.cancel();
                continue;
            }
        };
        let succeeded = matches!(result.outcome, Outcome::Succeeded(_));
        let cancelled = matches!(result.outcome, Outcome::Cancelled);
        if let Some(tx) = &events {
            let end = match &result.outcome {
                Outcome::Succeeded(_) => End::Succeeded,
                Outcome::Failed(e) => End::Failed(e.to_string()),
                Outcome::Skipped { because } => End::Skipped(*because),
                Outcome::Cancelled => End::Cancelled,
            };
            let _ = tx.send(StageEvent::Finished {
                stage,
                end,
                attempts: result.attempts,
                elapsed: result.elapsed,
            });
        }
        if let Some(slot) = results.get_mut(stage) {
            *slot = Some(result);
        }
        if succeeded {
            for d in dependents.get(stage).into_iter().flatten() {
                if let Some(p) = pending.get_mut(*d) {
                    *p = p.saturating_sub(1);
                    if *p == 0 {
                        ready.push_back(*d);
                    }
                }
            }
        } else if !cancelled {
            skip_descendants(stage, &dependents, &mut results, events.as_ref());
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(StageResult {
                outcome: Outcome::Cancelled,
                attempts: 0,
                elapsed: Duration::ZERO,
            })
        })
        .collect()
}

/// Marks every transitive dependent of `failed` as skipped.
fn skip_descendants<T>(
    failed: usize,
    dependents: &[Vec<usize>],
    results: &mut [Option<StageResult<T>>],
    events: Option<&UnboundedSender<StageEvent>>,
) {
    let mut stack: Vec<usize> = dependents.get(failed).cloned().unwrap_or_default();
    while let Some(s) = stack.pop() {
        if let Some(slot @ None) = results.get_mut(s) {
            *slot = Some(StageResult {
                outcome: Outcome::Skipped { because: failed },
                attempts: 0,
                elapsed: Duration::ZERO,
            });
            if let Some(tx) = events {
                let _ = tx.send(StageEvent::Finished {
                    stage: s,
                    end: End::Skipped(failed),
                    attempts: 0,
                    elapsed: Duration::ZERO,
                });
            }
            stack.extend(dependents.get(s).into_iter().flatten().copied());
        }
    }
}

/// Runs attempts of one stage until success, retries run out, or cancel.
async fn attempt_loop<R: StageRunner>(
    stage: usize,
    policy: StagePolicy,
    runner: Arc<R>,
    cancel: CancellationToken,
    events: Option<UnboundedSender<StageEvent>>,
) -> (usize, StageResult<R::Output>) {
    let start = Instant::now();
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        if let Some(tx) = &events {
            let _ = tx.send(StageEvent::Started { stage, attempt });
        }
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(Error::Cancelled),
            r = tokio::time::timeout(policy.timeout, runner.run(stage, attempt)) => {
                r.unwrap_or(Err(Error::Timeout { after: policy.timeout }))
            }
        };
        match result {
            Ok(output) => break Outcome::Succeeded(output),
            Err(error) => {
                runner.cleanup(stage, attempt).await;
                if matches!(error, Error::Cancelled) {
                    break Outcome::Cancelled;
                }
                if attempt > policy.retries {
                    break Outcome::Failed(error);
                }
                let delay = backoff(attempt);
                if let Some(tx) = &events {
                    let _ = tx.send(StageEvent::Retrying {
                        stage,
                        attempt,
                        error: error.to_string(),
                        delay,
                    });
                }
                tracing::debug!(stage, attempt, error = %error, retry_in = %humantime(delay), "attempt failed");
                tokio::select! {
                    () = cancel.cancelled() => break Outcome::Cancelled,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    (
        stage,
        StageResult {
            outcome,
            attempts: attempt,
            elapsed: start.elapsed(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use weir_spec::Edge;

    struct Scripted {
        fail: Vec<usize>,
        fail_first_attempt: Vec<usize>,
        started: Mutex<Vec<usize>>,
        live: AtomicUsize,
        max_live: AtomicUsize,
        cleaned: Mutex<Vec<(usize, u32)>>,
    }

    impl Scripted {
        fn new(fail: Vec<usize>, fail_first_attempt: Vec<usize>) -> Arc<Self> {
            Arc::new(Self {
                fail,
                fail_first_attempt,
                started: Mutex::default(),
                live: AtomicUsize::new(0),
                max_live: AtomicUsize::new(0),
                cleaned: Mutex::default(),
            })
        }
    }

    #[async_trait::async_trait]
    impl StageRunner for Scripted {
        type Output = usize;
        async fn run(&self, stage: usize, attempt: u32) -> Result<usize, Error> {
            self.started.lock().unwrap().push(stage);
            let live = self.live.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_live.fetch_max(live, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.live.fetch_sub(1, Ordering::SeqCst);
            if self.fail.contains(&stage)
                || (attempt == 1 && self.fail_first_attempt.contains(&stage))
            {
                return Err(Error::Internal {
                    message: format!("stage {stage} failed"),
                });
            }
            Ok(stage * 10)
        }
        async fn cleanup(&self, stage: usize, attempt: u32) {
            self.cleaned.lock().unwrap().push((stage, attempt));
        }
    }

    fn dag(n: usize, edges: &[(usize, usize)]) -> Dag {
        let edges: Vec<_> = edges.iter().map(|(a, b)| (*a, *b, Edge::Needs)).collect();
        Dag::build(n, &edges).unwrap()
    }

    fn policies(n: usize, retries: u32) -> Vec<StagePolicy> {
        vec![
            StagePolicy {
                retries,
                timeout: Duration::from_secs(5)
            };
            n
        ]
    }

    #[tokio::test]
    async fn failure_skips_dependents_and_unrelated_branches_finish() {
        // 0 -> 1 -> 2, and 3 alone.
        let d = dag(4, &[(0, 1), (1, 2)]);
        let r = Scripted::new(vec![1], vec![]);
        let res = run_dag(
            &d,
            &policies(4, 0),
            2,
            r.clone(),
            CancellationToken::new(),
            None,
        )
        .await;
        assert!(matches!(res[0].outcome, Outcome::Succeeded(0)));
        assert!(matches!(res[1].outcome, Outcome::Failed(_)));
        assert!(matches!(res[2].outcome, Outcome::Skipped { because: 1 }));
        assert!(matches!(res[3].outcome, Outcome::Succeeded(30)));
        assert_eq!(*r.cleaned.lock().unwrap(), vec![(1, 1)]);
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        let d = dag(10, &[]);
        let r = Scripted::new(vec![], vec![]);
        run_dag(
            &d,
            &policies(10, 0),
            3,
            r.clone(),
            CancellationToken::new(),
            None,
        )
        .await;
        assert_eq!(r.max_live.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_backoff_succeeds() {
        let d = dag(1, &[]);
        let r = Scripted::new(vec![], vec![0]);
        let res = run_dag(
            &d,
            &policies(1, 2),
            1,
            r.clone(),
            CancellationToken::new(),
            None,
        )
        .await;
        assert!(matches!(res[0].outcome, Outcome::Succeeded(0)));
        assert_eq!(res[0].attempts, 2);
    }

    struct Slow;
    #[async_trait::async_trait]
    impl StageRunner for Slow {
        type Output = ();
        async fn run(&self, _: usize, _: u32) -> Result<(), Error> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        async fn cleanup(&self, _: usize, _: u32) {}
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_fails_the_attempt() {
        let d = dag(1, &[]);
        let p = vec![StagePolicy {
            retries: 0,
            timeout: Duration::from_secs(2),
        }];
        let res = run_dag(&d, &p, 1, Arc::new(Slow), CancellationToken::new(), None).await;
        assert!(
            matches!(res[0].outcome, Outcome::Failed(Error::Timeout { .. })),
            "{:?}",
            res[0].outcome
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_running_and_waiting_stages() {
        let d = dag(2, &[(0, 1)]);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            c.cancel();
        });
        let res = run_dag(&d, &policies(2, 0), 1, Arc::new(Slow), cancel, None).await;
        assert!(matches!(res[0].outcome, Outcome::Cancelled));
        assert!(matches!(res[1].outcome, Outcome::Cancelled));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
