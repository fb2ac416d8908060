//! Group commit: one writer task per sink turns many concurrent appends into
//! few transactions.
//!
//! Appends queue on a bounded channel. The writer takes the first waiting
//! message, drains whatever else is queued (up to `max_batch`, yielding a
//! few times so appenders that are runnable can queue too), writes the
//! whole batch in one transaction through a [`Store`], and only after the
//! commit returns answers each waiter, in order. While one batch commits the
//! next one accumulates, so the cost of a durable commit (an `fsync`) is
//! shared by every append that arrived meanwhile. If the transaction fails,
//! every append in it fails and nothing of it was written.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, NewEvent};
use crate::mirror::Mirror;
use crate::sealer::{Sealed, Sealer};

/// A backend's write transaction.
#[async_trait]
pub(crate) trait Store: Send + 'static {
    /// In one transaction: lock and read the chain head, seal `batch` with
    /// `sealer`, insert the events and any checkpoint, store the new head,
    /// commit. Returns what was committed.
    async fn commit(
        &mut self,
        sealer: &Sealer,
        batch: Vec<NewEvent>,
        force_checkpoint: bool,
    ) -> Result<Sealed>;
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// How many times the writer yields to let more appends queue before it
/// commits a batch (it stops early once a yield brings nothing new).
const COALESCE_ROUNDS: usize = 8;

/// The gather window used in this module's tests (see [`gather`]).
#[cfg(test)]
const GATHER_WINDOW: Duration = crate::sink::NETWORK_GATHER_WINDOW;

// Appends are nearly every message: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append(NewEvent, Reply<AuditEvent>),
    Checkpoint(Reply<Option<Checkpoint>>),
    Close(Reply<()>),
}

/// The sink's handle on its writer task.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub(crate) fn spawn<S: Store>(
        store: S,
        sealer: Sealer,
        mirror: Option<Mirror>,
        max_batch: usize,
        queue_capacity: usize,
        gather_window: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue_capacity);
        let task = Loop {
            store,
            sealer,
            mirror,
            max_batch,
            gather_window,
            dirty: true,
            last_batch: 0,
        };
        Self {
            tx,
            task: Mutex::new(Some(tokio::spawn(task.run(rx)))),
        }
    }

    pub(crate) async fn append(&self, event: NewEvent) -> Result<AuditEvent> {
        event.validate()?;
        self.request(|reply| Msg::Append(event, reply)).await
    }

    pub(crate) async fn checkpoint_now(&self) -> Result<Option<Checkpoint>> {
        self.request(Msg::Checkpoint).await
    }

    /// Commits what is queued, signs a final checkpoint and stops the task.
    pub(crate) async fn close(&self) -> Result<()> {
        let result = self.request(Msg::Close).await;
        if let Some(task) = self.task.lock().await.take() {
            task.await.map_err(|_| Error::Internal {
                reason: "audit writer task panicked",
            })?;
        }
        match result {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    async fn request<T>(&self, msg: impl FnOnce(Reply<T>) -> Msg) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(msg(reply)).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// Messages of one batch, sorted by kind.
#[derive(Default)]
struct Batch {
    events: Vec<NewEvent>,
    waiters: Vec<Reply<AuditEvent>>,
    checkpoints: Vec<Reply<Option<Checkpoint>>>,
    close: Option<Reply<()>>,
}

impl Batch {
    fn full(&self, max_batch: usize) -> bool {
        self.events.len() >= max_batch || self.close.is_some()
    }

    fn add(&mut self, msg: Msg) {
        match msg {
            Msg::Append(event, reply) => {
                self.events.push(event);
                self.waiters.push(reply);
            }
            Msg::Checkpoint(reply) => self.checkpoints.push(reply),
            Msg::Close(reply) => self.close = Some(reply),
        }
    }
}

struct Loop<S> {
    store: S,
    sealer: Sealer,
    mirror: Option<Mirror>,
    max_batch: usize,
    /// See [`gather`]; zero never waits.
    gather_window: Duration,
    /// Whether events may be uncovered by a checkpoint (true at start: a
    /// previous process may have left some).
    dirty: bool,
    /// Events in the last committed batch: how many appenders were waiting
    /// on the last commit, so how many are likely to append again.
    last_batch: usize,
}

impl<S: Store> Loop<S> {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let period = self.sealer.policy().every().max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                msg = rx.recv() => msg,
                _ = tick.tick(), if self.dirty => {
                    // Commits a checkpoint only if the interval has passed.
                    let _ = self.commit(Vec::new(), false).await;
                    continue;
                }
            };
            let Some(first) = first else { break };
            let mut batch = Batch::default();
            batch.add(first);
            self.drain(&mut batch, &mut rx);
            // Appenders answered by the last commit are usually runnable but
            // not yet queued again: let them run before committing, or the
            // next fsync carries only the first few of them.
            for _ in 0..COALESCE_ROUNDS {
                if batch.full(self.max_batch) {
                    break;
                }
                tokio::task::yield_now().await;
                if self.drain(&mut batch, &mut rx) == 0 {
                    break;
                }
            }
            gather(
                self.last_batch,
                self.max_batch,
                self.gather_window,
                &mut batch,
                &mut rx,
            )
            .await;
            self.last_batch = batch.events.len();
            if self.process(batch).await {
                return;
            }
        }
        // Every handle dropped without close(): still cover the tail.
        if self.dirty {
            let _ = self.commit(Vec::new(), true).await;
        }
    }

    /// Moves queued messages into `batch` until it is full; returns how many.
    fn drain(&self, batch: &mut Batch, rx: &mut mpsc::Receiver<Msg>) -> usize {
        drain(self.max_batch, batch, rx)
    }

    /// Commits one batch and answers its waiters; true if asked to close.
    async fn process(&mut self, batch: Batch) -> bool {
        let Batch {
            events,
            waiters,
            checkpoints,
            close,
        } = batch;
        let closing = close.is_some();
        let force = !checkpoints.is_empty() || closing;
        match self.commit(events, force).await {
            Ok(sealed) => {
                for (waiter, event) in waiters.into_iter().zip(sealed.events) {
                    let _ = waiter.send(Ok(event));
                }
                for waiter in checkpoints {
                    let _ = waiter.send(Ok(sealed.checkpoint.clone()));
                }
                if let Some(waiter) = close {
                    let _ = waiter.send(Ok(()));
                }
            }
            Err(e) => {
                let source = Arc::new(e);
                let failed = || Error::CommitFailed {
                    source: Arc::clone(&source),
                };
                for waiter in waiters {
                    let _ = waiter.send(Err(failed()));
                }
                for waiter in checkpoints {
                    let _ = waiter.send(Err(failed()));
                }
                if let Some(waiter) = close {
                    let _ = waiter.send(Err(failed()));
                }
            }
        }
        closing
    }

    async fn commit(&mut self, events: Vec<NewEvent>, force: bool) -> Result<Sealed> {
        let sealed = self.store.commit(&self.sealer, events, force).await?;
        self.dirty = sealed.head.seq > sealed.head.checkpoint_seq;
        if let (Some(mirror), Some(cp)) = (&self.mirror, &sealed.checkpoint) {
            // The checkpoint is already committed in the database; a mirror
            // failure weakens truncation evidence but loses no event.
            if let Err(e) = mirror.append(cp).await {
                tracing::warn!(error = %e, "audit checkpoint mirror write failed");
            }
        }
        Ok(sealed)
    }
}

/// Moves queued messages into `batch` until it holds `max_batch` events (or
/// a close); returns how many.
fn drain(max_batch: usize, batch: &mut Batch, rx: &mut mpsc::Receiver<Msg>) -> usize {
    let mut taken = 0;
    while !batch.full(max_batch) {
        match rx.try_recv() {
            Ok(msg) => {
                batch.add(msg);
                taken += 1;
            }
            Err(_) => break,
        }
    }
    taken
}

/// Under load, waits up to `window` for `batch` to reach the size of the
/// last one (`last_batch`): the appenders that last commit answered are
/// likely coming back, and one fsync for all of them beats one each.
/// Adapts both ways: a lone appender (last batch of 1) never waits, and a
/// batch that falls short because load dropped sets a lower target for the
/// next one. A zero window never waits (the default: see
/// [`SinkConfig::with_gather_window`](crate::SinkConfig::with_gather_window)).
async fn gather(
    last_batch: usize,
    max_batch: usize,
    window: Duration,
    batch: &mut Batch,
    rx: &mut mpsc::Receiver<Msg>,
) {
    let target = last_batch.min(max_batch);
    let deadline = tokio::time::Instant::now() + window;
    while !window.is_zero() && target > 1 && batch.events.len() < target && !batch.full(max_batch) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(msg)) => {
                batch.add(msg);
                drain(max_batch, batch, rx);
            }
            // Deadline passed, or every sender is gone: commit now.
            Ok(None) | Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::Utc;

    use super::*;
    use crate::chain_id::ChainId;
    use crate::checkpoint::CheckpointPolicy;
    use crate::event::{Action, Decision, Origin};
    use crate::sealer::Head;
    use crate::signer::CheckpointSigner;

    /// An in-memory store that records batch sizes and can fail a batch.
    struct MemStore {
        head: Head,
        events: Arc<std::sync::Mutex<Vec<AuditEvent>>>,
        commits: Arc<AtomicUsize>,
        fail_commit: Option<usize>,
    }

    #[async_trait]
    impl Store for MemStore {
        async fn commit(
            &mut self,
            sealer: &Sealer,
            batch: Vec<NewEvent>,
            force: bool,
        ) -> Result<Sealed> {
            let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
            if self.fail_commit == Some(n) {
                return Err(Error::Internal { reason: "boom" });
            }
            let sealed = sealer.seal(&self.head, batch, Utc::now(), force)?;
            self.head = sealed.head.clone();
            self.events
                .lock()
                .unwrap()
                .extend(sealed.events.iter().cloned());
            Ok(sealed)
        }
    }

    fn writer(
        fail_commit: Option<usize>,
    ) -> (
        Writer,
        Arc<std::sync::Mutex<Vec<AuditEvent>>>,
        Arc<AtomicUsize>,
    ) {
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicUsize::new(0));
        let store = MemStore {
            head: Head::empty(Utc::now().timestamp_micros()),
            events: Arc::clone(&events),
            commits: Arc::clone(&commits),
            fail_commit,
        };
        let sealer = Sealer::new(
            crate::event::EventFormat::V1,
            ChainId::parse("w").unwrap(),
            Arc::new(CheckpointSigner::generate().unwrap()),
            CheckpointPolicy::default(),
        );
        (
            Writer::spawn(store, sealer, None, 64, 1024, GATHER_WINDOW),
            events,
            commits,
        )
    }

    fn ev() -> NewEvent {
        NewEvent::new("a", Action::Read, Decision::Allow, Origin::Cli)
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits_and_stay_gapless() {
        let (w, stored, commits) = writer(None);
        let results = futures_join(&w, 200).await;
        let mut seqs: Vec<u64> = results.iter().map(|r| r.as_ref().unwrap().seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        assert!(commits.load(Ordering::SeqCst) < 200, "appends were grouped");
        assert_eq!(stored.lock().unwrap().len(), 200);
        w.close().await.unwrap();
        assert!(matches!(w.append(ev()).await, Err(Error::Closed)));
    }

    fn append_msg() -> Msg {
        Msg::Append(ev(), oneshot::channel().0)
    }

    /// A batch of one, the last batch held `last`; `late` more appends
    /// arrive after `after` (`None`: as soon as the gathering task yields,
    /// as an appender on another thread would). Returns the batch size.
    async fn gathered(last: usize, late: usize, after: Option<Duration>) -> usize {
        let (tx, mut rx) = mpsc::channel(16);
        let mut batch = Batch::default();
        batch.add(append_msg());
        tokio::spawn(async move {
            if let Some(after) = after {
                tokio::time::sleep(after).await;
            }
            for _ in 0..late {
                let _ = tx.send(append_msg()).await;
            }
        });
        gather(last, 1024, GATHER_WINDOW, &mut batch, &mut rx).await;
        batch.events.len()
    }

    #[tokio::test(start_paused = true)]
    async fn under_load_a_batch_waits_for_the_appenders_of_the_last_one() {
        assert_eq!(gathered(3, 2, None).await, 3);
        // Whatever is queued when it wakes comes along too.
        assert_eq!(gathered(3, 5, None).await, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_never_waits_longer_than_the_window() {
        let start = tokio::time::Instant::now();
        assert_eq!(gathered(3, 2, Some(GATHER_WINDOW * 5)).await, 1);
        assert!(start.elapsed() < GATHER_WINDOW * 5, "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_lone_append_nothing_waits() {
        let start = tokio::time::Instant::now();
        assert_eq!(gathered(1, 2, None).await, 1);
        assert_eq!(gathered(0, 2, None).await, 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_appender_is_committed_without_waiting_for_others() {
        let (w, stored, _) = writer(None);
        w.append(ev()).await.unwrap();
        // From here on the last batch held one event: no gathering wait.
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            w.append(ev()).await.unwrap();
        }
        let took = start.elapsed();
        assert_eq!(stored.lock().unwrap().len(), 6);
        // Each commit of the test store takes 2 ms of virtual time (and a
        // checkpoint commit falls in between): had each append waited for
        // company, five would take at least 5 x (2 ms + GATHER_WINDOW).
        assert!(
            took < (Duration::from_millis(2) + GATHER_WINDOW) * 5,
            "five lone appends took {took:?}"
        );
    }

    #[tokio::test]
    async fn failed_batch_fails_every_waiter_and_writes_nothing() {
        let (w, stored, _) = writer(Some(1));
        let err = w.append(ev()).await.unwrap_err();
        assert!(matches!(err, Error::CommitFailed { .. }));
        assert!(stored.lock().unwrap().is_empty());
        assert_eq!(
            w.append(ev()).await.unwrap().seq,
            1,
            "no gap after a failure"
        );
    }

    #[tokio::test]
    async fn invalid_event_is_refused_before_queueing() {
        let (w, _, commits) = writer(None);
        let bad = NewEvent::new("", Action::Read, Decision::Allow, Origin::Cli);
        assert!(matches!(
            w.append(bad).await,
            Err(Error::InvalidEvent { .. })
        ));
        assert_eq!(commits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn checkpoint_now_covers_the_tail() {
        let (w, _, _) = writer(None);
        let e = w.append(ev()).await.unwrap();
        let cp = w.checkpoint_now().await.unwrap().unwrap();
        assert_eq!((cp.seq, cp.hash), (e.seq, e.hash));
        assert!(w.checkpoint_now().await.unwrap().is_none());
    }

    async fn futures_join(w: &Writer, n: usize) -> Vec<Result<AuditEvent>> {
        futures::future::join_all((0..n).map(|_| w.append(ev()))).await
    }
}
