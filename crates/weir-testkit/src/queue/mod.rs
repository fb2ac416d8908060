//! The [`WorkQueue`] and coordination ([`Leases`], [`OnceSet`], [`Fences`])
//! conformance suite: every backend in `weir-queue` must pass it.
//!
//! Plain `async fn`s over a [`Harness`], which opens fresh queues on one
//! backend and provides its clock. One `pub async fn` per property, so each
//! backend's test is named after it:
//!
//! ```text
//! #[tokio::test(start_paused = true)]
//! async fn in_process_redelivers_after_visibility_timeout() {
//!     weir_testkit::queue::redelivers_after_visibility_timeout(&InProcessHarness::new()).await;
//! }
//! ```
//!
//! Timing properties use visibility timeouts of 200-600 ms and leave at
//! least 100 ms of slack on each side of every deadline they check. Like
//! the other suites, these panic on the first broken expectation; each
//! deletes its queues when it passes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
mod coordination;
mod delivery;

pub use coordination::{
    fences_only_move_up, lease_expires_unless_renewed, lease_is_exclusive,
    lease_renew_and_release_only_by_holder, once_set_is_true_once,
};
pub use delivery::{
    acked_task_is_never_redelivered, dead_letters_after_max_deliveries,
    delete_removes_tasks_and_dead_letters, delivers_payloads_byte_exact_in_order,
    each_task_goes_to_exactly_one_consumer, extend_keeps_a_long_task,
    invalid_arguments_are_refused, len_counts_ready_pending_and_dead,
    receive_returns_empty_after_the_wait, receive_wakes_when_a_task_arrives,
    redelivers_after_visibility_timeout, refuses_oversized_payloads,
};

use weir_queue::{
    Delivery, Fences, LeaseOutcome, Leases, OnceSet, QueueConfig, QueueDepth, QueueError, TaskId,
    WorkQueue,
};

/// The coordination primitives of one backend, sharing one store.
#[derive(Clone, Debug)]
pub struct Coordination {
    /// Exclusive leases.
    pub leases: Arc<dyn Leases>,
    /// The replay cache.
    pub once: Arc<dyn OnceSet>,
    /// Fencing tokens.
    pub fences: Arc<dyn Fences>,
}

/// What the suite needs from a backend.
///
/// # Contract
///
/// [`Harness::open`] returns `handles` handles onto one fresh, empty queue
/// that no other test uses: for a networked backend each handle has its
/// own connection, like separate worker processes. [`Harness::sleep`] and
/// [`Harness::now`] use the clock the backend measures visibility timeouts
/// and ttls with (tokio's, which a test may pause).
///
/// # Errors
///
/// None: a harness panics when its backend fails, failing the test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Handles onto one fresh queue with `config`.
    async fn open(&self, config: QueueConfig, handles: usize) -> Vec<Arc<dyn WorkQueue>>;
    /// The backend's coordination primitives. Keys are unique per call of
    /// the suite, so they may share a store with other tests.
    async fn coordination(&self) -> Coordination;
    /// Sleeps on the backend's clock.
    async fn sleep(&self, duration: Duration);
    /// Time since an arbitrary fixed instant, on the backend's clock.
    fn now(&self) -> Duration;
}

fn config(visibility_ms: u64) -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_millis(visibility_ms),
        ..QueueConfig::default()
    }
}

async fn open_one(h: &dyn Harness, config: QueueConfig) -> Arc<dyn WorkQueue> {
    h.open(config, 1).await.remove(0)
}

/// A key no other run of the suite uses.
fn unique(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "suite/{what}/{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn depth(q: &dyn WorkQueue) -> (u64, u64, u64) {
    let QueueDepth {
        ready,
        pending,
        dead,
    } = q.len().await.unwrap();
    (ready, pending, dead)
}

async fn recv(q: &dyn WorkQueue, consumer: &str, max: usize) -> Vec<Delivery> {
    q.receive(consumer, max, Duration::ZERO).await.unwrap()
}

fn is_not_owner(r: Result<(), QueueError>) -> bool {
    matches!(r, Err(QueueError::NotOwner { .. }))
}
