//! Group commit: one writer task per sink turns many concurrent appends into
//! few transactions.
//!
//! Appends queue on a bounded channel. The writer takes the first waiting
//! message, drains whatever else is queued (up to `max_batch`, yielding a
//! few times so appenders that are runnable can queue too), writes the
//! whole batch in one transaction through a [`Store`], and answers each
//! waiter, in order, only once the batch is durable. While one batch commits
//! the next one accumulates, so the cost of a durable commit (an `fsync`) is
//! shared by every append that arrived meanwhile. If the transaction fails,
//! every append in it fails and nothing of it was written.
//!
//! # Durability
//!
//! A store says how its commits become durable ([`Durability`]):
//! - [`Durability::AtCommit`] (PostgreSQL with `synchronous_commit = on`):
//!   the batch is answered as soon as its commit returns.
//! - [`Durability::AfterSync`] (the SQLite log): the commit returns before
//!   its bytes are on disk, and the [sync stage](sync) answers the batch
//!   only after an `fsync` that *began after the commit returned* has
//!   completed. The writer meanwhile commits the next batch, so one batch's
//!   `fsync` overlaps the next one's transaction instead of holding the
//!   write lock.
//!
//! Either way, **no append is answered `Ok` before its event is durable**,
//! and batches are answered in commit order. Checkpoints are copied to the
//! mirror file only once durable, so the mirror never names an event a
//! power loss could take back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, NewEvent};
use crate::mirror::Mirror;
use crate::sealer::{Sealed, Sealer};

mod sync;

pub(crate) use sync::{Durability, WalFile};

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

    /// How a returned commit becomes durable.
    fn durability(&self) -> Durability {
        Durability::AtCommit
    }

    /// Whether the writer should run on a thread of its own (see
    /// [`spawn_on_own_thread`]). Only for stores whose I/O is not bound to
    /// the caller's runtime.
    fn own_thread(&self) -> bool {
        false
    }
}

/// Runs the writer on a single-threaded runtime on its own OS thread.
///
/// Every statement of a commit is a hand-off to the database's worker
/// thread and back. On the caller's runtime each hand-back queues the
/// writer behind every runnable request task (measured in the HTTP API:
/// about 90 µs per statement under load, most of a commit), and the writer
/// is the one task everyone waits for. On its own thread it is woken by
/// the operating system's scheduler instead.
fn spawn_on_own_thread(task: impl Future<Output = ()> + Send + 'static) {
    let started = std::thread::Builder::new()
        .name("weir-audit-writer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(task),
                Err(e) => tracing::error!(error = %e, "cannot start the audit writer's runtime"),
            }
        });
    if let Err(e) = started {
        // Appends then fail with `Error::Closed`.
        tracing::error!(error = %e, "cannot start the audit writer's thread");
    }
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
    /// Resolves when the writer task has ended; an error if it panicked.
    done: Mutex<Option<oneshot::Receiver<()>>>,
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
        let own_thread = store.own_thread();
        let task = async move {
            let settle = match store.durability() {
                Durability::AtCommit => Settle::Inline(mirror),
                Durability::AfterSync(target) => Settle::Staged(sync::Stage::spawn(target, mirror)),
            };
            Loop {
                store,
                sealer,
                settle,
                max_batch,
                gather_window,
                dirty: true,
                last_batch: 0,
            }
            .run(rx)
            .await;
        };
        let (done_tx, done) = oneshot::channel();
        let task = async move {
            task.await;
            // Not sent if the task panicked.
            let _ = done_tx.send(());
        };
        if own_thread {
            spawn_on_own_thread(task);
        } else {
            tokio::spawn(task);
        }
        Self {
            tx,
            done: Mutex::new(Some(done)),
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
        if let Some(done) = self.done.lock().await.take() {
            done.await.map_err(|_| Error::Internal {
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

/// Who waits on one batch.
#[derive(Default)]
struct Waiters {
    appends: Vec<Reply<AuditEvent>>,
    checkpoints: Vec<Reply<Option<Checkpoint>>>,
    close: Option<Reply<()>>,
}

impl Waiters {
    /// Answers everyone with what `sealed` committed. Only call once
    /// `sealed` is durable.
    fn answer(self, sealed: Sealed) {
        for (waiter, event) in self.appends.into_iter().zip(sealed.events) {
            let _ = waiter.send(Ok(event));
        }
        for waiter in self.checkpoints {
            let _ = waiter.send(Ok(sealed.checkpoint.clone()));
        }
        if let Some(waiter) = self.close {
            let _ = waiter.send(Ok(()));
        }
    }

    /// Answers everyone with `error()`.
    fn fail(self, error: impl Fn() -> Error) {
        for waiter in self.appends {
            let _ = waiter.send(Err(error()));
        }
        for waiter in self.checkpoints {
            let _ = waiter.send(Err(error()));
        }
        if let Some(waiter) = self.close {
            let _ = waiter.send(Err(error()));
        }
    }
}

/// Messages of one batch, sorted by kind.
#[derive(Default)]
struct Batch {
    events: Vec<NewEvent>,
    waiters: Waiters,
}

impl Batch {
    fn full(&self, max_batch: usize) -> bool {
        self.events.len() >= max_batch || self.waiters.close.is_some()
    }

    fn add(&mut self, msg: Msg) {
        match msg {
            Msg::Append(event, reply) => {
                self.events.push(event);
                self.waiters.appends.push(reply);
            }
            Msg::Checkpoint(reply) => self.waiters.checkpoints.push(reply),
            Msg::Close(reply) => self.waiters.close = Some(reply),
        }
    }
}

/// What happens to a committed batch.
enum Settle {
    /// Durable at commit: mirror its checkpoint, answer its waiters.
    Inline(Option<Mirror>),
    /// Handed to the sync stage, which does both after an `fsync`.
    Staged(sync::Stage),
}

/// Copies `sealed`'s checkpoint, if any, to the mirror. Only call once
/// `sealed` is durable.
async fn mirror_checkpoint(mirror: Option<&Mirror>, sealed: &Sealed) {
    if let (Some(mirror), Some(cp)) = (mirror, &sealed.checkpoint) {
        // The checkpoint is already durable in the database; a mirror
        // failure weakens truncation evidence but loses no event.
        if let Err(e) = mirror.append(cp).await {
            tracing::warn!(error = %e, "audit checkpoint mirror write failed");
        }
    }
}

struct Loop<S> {
    store: S,
    sealer: Sealer,
    settle: Settle,
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
                    self.process(Batch::default(), false).await;
                    continue;
                }
            };
            let Some(first) = first else {
                // Every handle dropped without close(): still cover the tail.
                if self.dirty {
                    self.process(Batch::default(), true).await;
                }
                break;
            };
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
            // With a sync stage, the appenders of the last batch wait for its
            // fsync, which overlaps this batch: waiting for them would only
            // put the fsync back in series.
            if matches!(self.settle, Settle::Inline(_)) {
                gather(
                    self.last_batch,
                    self.max_batch,
                    self.gather_window,
                    &mut batch,
                    &mut rx,
                )
                .await;
            }
            self.last_batch = batch.events.len();
            if batch.waiters.close.is_some() {
                self.process(batch, true).await;
                break;
            }
            self.process(batch, false).await;
        }
        if let Settle::Staged(stage) = self.settle {
            // Every committed batch is answered before the task ends.
            stage.finish().await;
        }
    }

    /// Moves queued messages into `batch` until it is full; returns how many.
    fn drain(&self, batch: &mut Batch, rx: &mut mpsc::Receiver<Msg>) -> usize {
        drain(self.max_batch, batch, rx)
    }

    /// Commits one batch (with a checkpoint if `force`, if anyone asked for
    /// one, or if the policy's interval has passed) and settles it.
    async fn process(&mut self, batch: Batch, force: bool) {
        let Batch { events, waiters } = batch;
        let force = force || !waiters.checkpoints.is_empty();
        if let Settle::Staged(stage) = &self.settle
            && let Some(source) = stage.failed()
        {
            // A sync failed: nothing more is written.
            waiters.fail(|| Error::SyncFailed {
                source: Arc::clone(&source),
            });
            return;
        }
        match self.store.commit(&self.sealer, events, force).await {
            Ok(sealed) => {
                self.dirty = sealed.head.seq > sealed.head.checkpoint_seq;
                match &self.settle {
                    Settle::Inline(mirror) => {
                        mirror_checkpoint(mirror.as_ref(), &sealed).await;
                        waiters.answer(sealed);
                    }
                    Settle::Staged(stage) => stage.submit(sealed, waiters).await,
                }
            }
            Err(e) => {
                let source = Arc::new(e);
                waiters.fail(|| Error::CommitFailed {
                    source: Arc::clone(&source),
                });
            }
        }
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
        sync: Option<Arc<dyn sync::SyncTarget>>,
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

        fn durability(&self) -> Durability {
            match &self.sync {
                Some(target) => Durability::AfterSync(Arc::clone(target)),
                None => Durability::AtCommit,
            }
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
            sync: None,
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

    /// A sync target over a [`MemStore`]'s events: each sync notes how many
    /// events were stored when it began and, once done, marks them durable.
    struct MemSync {
        stored: Arc<std::sync::Mutex<Vec<AuditEvent>>>,
        durable: std::sync::atomic::AtomicU64,
        fail: std::sync::atomic::AtomicBool,
        syncs: AtomicUsize,
    }

    impl sync::SyncTarget for MemSync {
        fn path(&self) -> &std::path::Path {
            std::path::Path::new("mem-wal")
        }

        fn sync(&self) -> std::io::Result<()> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            let began_with = self.stored.lock().unwrap().len() as u64;
            std::thread::sleep(Duration::from_millis(3));
            if self.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("disk gone"));
            }
            self.durable.fetch_max(began_with, Ordering::SeqCst);
            Ok(())
        }
    }

    fn synced_writer() -> (Writer, Arc<MemSync>, Arc<AtomicUsize>) {
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicUsize::new(0));
        let target = Arc::new(MemSync {
            stored: Arc::clone(&events),
            durable: std::sync::atomic::AtomicU64::new(0),
            fail: std::sync::atomic::AtomicBool::new(false),
            syncs: AtomicUsize::new(0),
        });
        let store = MemStore {
            head: Head::empty(Utc::now().timestamp_micros()),
            events,
            commits: Arc::clone(&commits),
            fail_commit: None,
            sync: Some(Arc::clone(&target) as _),
        };
        let sealer = Sealer::new(
            crate::event::EventFormat::V2,
            ChainId::parse("w").unwrap(),
            Arc::new(CheckpointSigner::generate().unwrap()),
            CheckpointPolicy::default(),
        );
        let writer = Writer::spawn(store, sealer, None, 64, 1024, Duration::ZERO);
        (writer, target, commits)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_is_answered_only_once_a_later_sync_covers_it() {
        let (w, target, commits) = synced_writer();
        let appends = (0..300).map(|_| async {
            let event = w.append(ev()).await.unwrap();
            // The sync that made it durable began after it was stored.
            assert!(
                event.seq <= target.durable.load(Ordering::SeqCst),
                "seq {} answered before it was synced",
                event.seq
            );
            event.seq
        });
        let mut seqs = futures::future::join_all(appends).await;
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
        let syncs = target.syncs.load(Ordering::SeqCst);
        assert!(
            syncs <= commits.load(Ordering::SeqCst),
            "one sync covers one or more commits"
        );
        w.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_fails_its_appends_and_stops_all_later_commits() {
        let (w, target, commits) = synced_writer();
        w.append(ev()).await.unwrap();
        target.fail.store(true, Ordering::SeqCst);
        let err = w.append(ev()).await.unwrap_err();
        assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
        // Even once the disk is back, nothing more is committed: after a
        // failed fsync only a restart can tell what is stored.
        target.fail.store(false, Ordering::SeqCst);
        let committed = commits.load(Ordering::SeqCst);
        for _ in 0..3 {
            let err = w.append(ev()).await.unwrap_err();
            assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
        }
        assert!(matches!(
            w.checkpoint_now().await,
            Err(Error::SyncFailed { .. })
        ));
        assert_eq!(commits.load(Ordering::SeqCst), committed);
    }
}
