//! The conformance suite against [`InProcessQueue`] and
//! [`InProcessCoordination`], on a paused tokio clock: visibility
//! timeouts and ttls pass without waiting.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;
use weir_queue::{InProcessCoordination, InProcessQueue, QueueConfig, TaskId, WorkQueue};
use weir_testkit::queue::{self as conformance, Coordination, Harness};

struct InProcessHarness {
    start: Instant,
}

impl InProcessHarness {
    fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

#[async_trait]
impl Harness for InProcessHarness {
    async fn open(&self, config: QueueConfig, handles: usize) -> Vec<Arc<dyn WorkQueue>> {
        let queue: Arc<dyn WorkQueue> = Arc::new(InProcessQueue::new(config).unwrap());
        vec![queue; handles]
    }

    async fn coordination(&self) -> Coordination {
        let c = InProcessCoordination::default();
        Coordination {
            leases: Arc::new(c.clone()),
            once: Arc::new(c.clone()),
            fences: Arc::new(c),
        }
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

macro_rules! suite {
    ($($property:ident),* $(,)?) => {$(
        #[tokio::test(start_paused = true)]
        async fn $property() {
            conformance::$property(&InProcessHarness::new()).await;
        }
    )*};
}

suite!(
    delivers_payloads_byte_exact_in_order,
    each_task_goes_to_exactly_one_consumer,
    acked_task_is_never_redelivered,
    redelivers_after_visibility_timeout,
    extend_keeps_a_long_task,
    dead_letters_after_max_deliveries,
    refuses_oversized_payloads,
    receive_wakes_when_a_task_arrives,
    receive_returns_empty_after_the_wait,
    len_counts_ready_pending_and_dead,
    delete_removes_tasks_and_dead_letters,
    invalid_arguments_are_refused,
    lease_is_exclusive,
    lease_renew_and_release_only_by_holder,
    lease_expires_unless_renewed,
    once_set_is_true_once,
    fences_only_move_up,
);

/// The suite's competing consumers share one task; here they run on two
/// threads against one queue, in real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_on_two_threads_never_share_a_task() {
    const N: usize = 5000;
    let q = Arc::new(InProcessQueue::new(QueueConfig::default()).unwrap());
    let payloads = (0..N).map(|i| Bytes::from(i.to_string())).collect();
    let ids = q.enqueue_many(payloads).await.unwrap();
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let q = Arc::clone(&q);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let got = q
                        .receive(&format!("w{w}"), 8, Duration::from_millis(20))
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return seen;
                    }
                    let got: Vec<TaskId> = got.into_iter().map(|d| d.id).collect();
                    q.ack_many(&got).await.unwrap();
                    seen.extend(got);
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    assert_eq!(seen.len(), N);
    assert_eq!(
        seen.into_iter().collect::<BTreeSet<_>>(),
        ids.into_iter().collect::<BTreeSet<_>>()
    );
}
